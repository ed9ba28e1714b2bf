#!/usr/bin/env bash
# Checks the deployment manifests without a cluster:
#   - every Kubernetes overlay renders with kustomize (kubectl kustomize), and every
#     resource validates strictly against the Kubernetes schemas (kubernetes-validate);
#   - the rendered manifests keep their promises: each role a Deployment with probes,
#     requests and limits and a Service, an autoscaler for the gateway and the worker,
#     disruption budgets, NetworkPolicies letting only the gateway in from outside, the
#     migration Job, no secret value outside the Secret;
#   - each Fly.io file runs its role on the address its checks and the others use;
#   - the Grafana dashboard asks only for metrics the README lists.
# Run by .ci/run; installs kubectl (Debian) and kubernetes-validate (PyPI) if missing.
#   deploy/check-manifests.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kubernetes_version=1.32.0

if ! command -v kubectl >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubectl >/dev/null
fi
venv=${KILN_MANIFESTS_VENV:-/tmp/kiln-manifests-venv}
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q kubernetes-validate==1.37.0 pyyaml
fi

rendered=$(mktemp -d)
made=()
cleanup() { rm -rf "$rendered"; for file in "${made[@]}"; do rm -f "$file"; done; }
trap cleanup EXIT
for overlay in "$here"/k8s/overlays/*/; do
  name=$(basename "$overlay")
  # The Secret's values are the operator's (secrets.env is never committed): the
  # check makes random ones where there are none, and removes them after.
  if [ ! -f "$overlay/secrets.env" ]; then
    printf 'KILN_JWT_SECRET=%s\nKILN_DATABASE_URL=postgres://kiln:%s@db:5432/kiln\nKILN_REDIS_URL=redis://:%s@redis:6379\nKILN_AMQP_URL=amqp://kiln:%s@rabbitmq:5672/%%2f\n' \
      "$(openssl rand -hex 32)" "$(openssl rand -hex 16)" "$(openssl rand -hex 16)" "$(openssl rand -hex 16)" \
      > "$overlay/secrets.env"
    made+=("$overlay/secrets.env")
  fi
  kubectl kustomize "$overlay" > "$rendered/$name.yaml"
  "$venv/bin/kubernetes-validate" --strict --quiet -k "$kubernetes_version" "$rendered/$name.yaml"
  "$venv/bin/python" "$here/k8s/promises.py" "$rendered/$name.yaml" "$overlay/secrets.env"
  echo "k8s overlay $name: $(grep -c '^kind:' "$rendered/$name.yaml") resources render and validate against Kubernetes $kubernetes_version"
done
"$venv/bin/python" "$here/fly/promises.py" "$here"/fly/*.fly.toml

# The starter dashboard asks only for metrics Kiln exports (the README lists them).
"$venv/bin/python" - "$here/grafana/kiln-dashboard.json" "$here/../README.md" <<'PY'
import json, re, sys
dashboard, readme = json.load(open(sys.argv[1])), open(sys.argv[2]).read()
asked = {re.sub(r"_(bucket|sum|count)$", "", name)
         for panel in dashboard["panels"] for target in panel["targets"]
         for name in re.findall(r"\bkiln_[a-z_]+", target["expr"])}
unknown = sorted(name for name in asked if f"`{name}" not in readme)
if unknown:
    sys.exit(f"the dashboard asks for metrics the README does not list: {unknown}")
print(f"grafana: {len(dashboard['panels'])} panels over {len(asked)} metrics, each listed in the README")
PY
