"""What the rendered Kubernetes manifests promise, checked (deploy/check-manifests.sh).

Usage: promises.py RENDERED.yaml SECRETS.env
"""
import sys

import yaml

ROLES = {"gateway": 4000, "model": 50051, "app": 50052, "build-worker": 50053}
# Who may call each role besides the gateway (see network-policy.yaml).
CALLERS = {"model": {"gateway", "app"}, "app": {"gateway", "model", "build-worker"}, "build-worker": {"gateway", "app"}}
SECRET_KEYS = {"KILN_JWT_SECRET", "KILN_DATABASE_URL", "KILN_REDIS_URL", "KILN_AMQP_URL"}

rendered_path, secrets_path = sys.argv[1], sys.argv[2]
text = open(rendered_path).read()
docs = [d for d in yaml.safe_load_all(text) if d]
by_kind = {}
for doc in docs:
    by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
broken = []


def need(condition, why):
    if not condition:
        broken.append(why)


def component(labels):
    return (labels or {}).get("app.kubernetes.io/component")


for role, port in ROLES.items():
    name = f"kiln-{role}"
    deployment = by_kind.get("Deployment", {}).get(name)
    need(deployment, f"{name}: no Deployment")
    if not deployment:
        continue
    pod = deployment["spec"]["template"]
    need(component(pod["metadata"]["labels"]) == role, f"{name}: pods not labelled with their role")
    need(pod["spec"].get("automountServiceAccountToken") is False, f"{name}: mounts a service account token")
    need(pod["spec"].get("securityContext", {}).get("runAsNonRoot"), f"{name}: may run as root")
    [container] = pod["spec"]["containers"]
    need(container["args"] == ["serve", "--role", role], f"{name}: runs {container['args']}")
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        need(probe in container, f"{name}: no {probe}")
    probed = container.get("readinessProbe", {})
    if role == "gateway":
        need(probed.get("httpGet", {}).get("path") == "/readyz", f"{name}: readiness is not /readyz")
        need(container["livenessProbe"].get("httpGet", {}).get("path") == "/healthz", f"{name}: liveness is not /healthz")
    else:
        need(probed.get("grpc", {}).get("port") == port, f"{name}: readiness is not gRPC health on {port}")
    for bound in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            need(resource in container.get("resources", {}).get(bound, {}), f"{name}: no {resource} {bound}")
    need(container.get("securityContext", {}).get("readOnlyRootFilesystem"), f"{name}: root file system writable")
    sources = {next(iter(s)) for s in container.get("envFrom", [])}
    need(sources == {"configMapRef", "secretRef"}, f"{name}: settings not from the ConfigMap and the Secret")
    service = by_kind.get("Service", {}).get(name)
    need(service and component(service["spec"]["selector"]) == role, f"{name}: no Service selecting its pods")
    need(service and service["spec"]["ports"][0]["port"] == port, f"{name}: Service not on {port}")
    budget = by_kind.get("PodDisruptionBudget", {}).get(name)
    need(budget and component(budget["spec"]["selector"]["matchLabels"]) == role, f"{name}: no PodDisruptionBudget")
    policy = by_kind.get("NetworkPolicy", {}).get(name)
    need(policy and component(policy["spec"]["podSelector"]["matchLabels"]) == role, f"{name}: no NetworkPolicy")
    if policy and role != "gateway":
        peers = [peer for rule in policy["spec"]["ingress"] for peer in rule.get("from", [{}])]
        need(all(set(peer) == {"podSelector"} for peer in peers), f"{name}: reachable from outside the roles")
        allowed = {component(peer["podSelector"].get("matchLabels")) for peer in peers if "podSelector" in peer}
        need(allowed == CALLERS[role], f"{name}: reachable from {sorted(allowed)}, not {sorted(CALLERS[role])}")

for name in ("kiln-gateway", "kiln-build-worker"):
    scaler = by_kind.get("HorizontalPodAutoscaler", {}).get(name)
    need(scaler and scaler["spec"]["scaleTargetRef"]["name"] == name, f"{name}: no HorizontalPodAutoscaler")
deny = by_kind.get("NetworkPolicy", {}).get("kiln-default-deny")
need(deny and deny["spec"]["policyTypes"] == ["Ingress"] and not deny["spec"].get("ingress"), "no default deny of ingress")
job = by_kind.get("Job", {}).get("kiln-migrate")
need(job and job["spec"]["template"]["spec"]["containers"][0]["args"][0] == "migrate", "no migration Job")

[config] = by_kind.get("ConfigMap", {}).values()
need(not SECRET_KEYS & set(config["data"]), "a secret setting in the ConfigMap")
need("*" not in config["data"].get("KILN_CORS_ORIGINS", "*").split(","), "CORS origins open or unset")
[secret] = by_kind.get("Secret", {}).values()
need(set(secret["data"]) == SECRET_KEYS, f"the Secret holds {sorted(secret['data'])}")
values = [line.split("=", 1)[1] for line in open(secrets_path) if "=" in line and not line.startswith("#")]
need(all(value and value not in text for value in values), "a secret value in plain text in the manifests")

if broken:
    print(f"{rendered_path}:", *broken, sep="\n  ")
    sys.exit(1)
