"""What the Fly.io files promise, checked (deploy/check-manifests.sh): each runs its
role, listens where its check and the other roles look, migrates its own tables before
a release, and holds no secret (those are `fly secrets`).

Usage: promises.py ROLE.fly.toml ...
"""
import os
import sys
import tomllib

PORTS = {"gateway": 4000, "model": 50051, "app": 50052, "build-worker": 50053}
URLS = {"model": "KILN_MODEL_SVC_URL", "app": "KILN_APP_SVC_URL", "build-worker": "KILN_BUILD_WORKER_URL"}
SECRETS = {"KILN_JWT_SECRET", "KILN_JWT_PREVIOUS_SECRETS", "KILN_DATABASE_URL", "KILN_REDIS_URL", "KILN_AMQP_URL"}
broken = []
seen = set()
for path in sys.argv[1:]:
    role = os.path.basename(path).removesuffix(".fly.toml")
    seen.add(role)
    app = tomllib.load(open(path, "rb"))
    env, port = app.get("env", {}), PORTS.get(role)

    def need(condition, why):
        if not condition:
            broken.append(f"{path}: {why}")

    need(port, "not a role")
    need(app.get("app") == f"kiln-{role}", f"app is {app.get('app')}")
    need(app.get("processes", {}).get("app") == f"serve --role {role}", "does not serve its role")
    need(not SECRETS & set(env), "a secret in [env]")
    if role == "gateway":
        need(env.get("KILN_HTTP_ADDR") == f"[::]:{port}", "the gateway does not listen on the private and public network")
        need(app["http_service"]["internal_port"] == port, "http_service is not on the gateway's port")
        need(app["http_service"]["checks"][0]["path"] == "/readyz", "the gateway's check is not /readyz")
    else:
        need(env.get("KILN_GRPC_ADDR") == f"[::]:{port}", f"does not listen on [::]:{port} (6PN is IPv6)")
        need(all(check["port"] == port for check in app.get("checks", {}).values()), "a check on another port")
        need(app.get("deploy", {}).get("release_command") == f"migrate --role {role}", "no migration before release")
    for other, variable in URLS.items():
        if variable in env:
            need(env[variable] == f"http://kiln-{other}.internal:{PORTS[other]}", f"{variable} is {env[variable]}")
if seen != set(PORTS):
    broken.append(f"Fly.io files for {sorted(seen)}, not every role {sorted(PORTS)}")
if broken:
    print(*broken, sep="\n")
    sys.exit(1)
print(f"fly: {len(seen)} apps, one per role, agree on their addresses")
