#!/usr/bin/env bash
# docker-compose.yml brought up for real: the mesh's roles from kiln:local (made by
# deploy/test-image.sh), PostgreSQL, Redis and RabbitMQ from locally made stand-ins
# (deploy/stand-ins; no registry is reachable here), fresh random secrets. Waits for every
# health check, then as a user would: registers, creates a model and a record through the
# gateway, builds an application into an image through the worker, kills model-svc and
# brings it back, and finds every record still there. Everything is taken down at the end,
# volumes too, pass or fail.
set -euo pipefail
cd "$(dirname "$0")/.."

project=kiln-compose-test
compose() { docker compose -p "$project" -f docker-compose.yml -f deploy/compose.test.yml "$@"; }
finish() {
  local status=$?
  if [ "$status" -ne 0 ]; then
    compose ps -a || true
    compose logs --no-color --tail 30 || true
  fi
  compose down -v --remove-orphans >/dev/null 2>&1 || true
  exit "$status"
}
trap finish EXIT

docker image inspect kiln:local >/dev/null 2>&1 || { echo "kiln:local is missing: deploy/test-image.sh makes it"; exit 1; }
bash deploy/base-images.sh runtime
for service in postgres redis rabbitmq; do
  if ! docker image inspect "kiln-test/$service:stand-in" >/dev/null 2>&1; then
    docker build --network host -q --target "$service" -t "kiln-test/$service:stand-in" deploy/stand-ins >/dev/null
  fi
done

secret() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
KILN_JWT_SECRET=$(secret 32) KILN_POSTGRES_PASSWORD=$(secret 16) KILN_REDIS_PASSWORD=$(secret 16) \
  KILN_RABBITMQ_PASSWORD=$(secret 16) KILN_DOCKER_GID=$(stat -c %g /var/run/docker.sock)
export KILN_JWT_SECRET KILN_POSTGRES_PASSWORD KILN_REDIS_PASSWORD KILN_RABBITMQ_PASSWORD KILN_DOCKER_GID

started=$SECONDS
compose down -v --remove-orphans >/dev/null 2>&1 || true
compose up -d --no-build --wait --wait-timeout 300
echo "compose: every service healthy after $((SECONDS - started)) s"
gateway="http://$(compose port gateway 4000)"

python3 - "$gateway" "$project" <<'PY'
import json, subprocess, sys, time, urllib.error, urllib.request

gateway, project = sys.argv[1], sys.argv[2]
api = gateway + "/api/v1"

def call(method, path, body=None, token=None, expect=200):
    request = urllib.request.Request(api + path, method=method,
                                     data=None if body is None else json.dumps(body).encode())
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read()
    answer = json.loads(text) if text else None
    if status != expect:
        sys.exit(f"{method} {path}: {status} (expected {expect}): {answer}")
    return answer

def until(what, check, seconds=300):
    deadline = time.monotonic() + seconds
    while True:
        try:
            found = check()
        except (OSError, urllib.error.URLError):
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.5)

def ready():
    with urllib.request.urlopen(gateway + "/readyz", timeout=5) as response:
        return response.status == 200

registered = call("POST", "/auth/register", {"email": "compose@example.com", "password": "correct horse 9"}, expect=201)
token = registered["tokens"]["access_token"]
invoice = {"name": "Invoice", "fields": [
    {"name": "number", "type": "text", "required": True},
    {"name": "amount", "type": "decimal"},
]}
model = call("POST", "/models", invoice, token, expect=201)["model"]
record = call("POST", "/invoices", {"number": "INV-1", "amount": "12.5"}, token, expect=201)["record"]
print(f"compose: model {model['id']} and record {record['id']} created through the gateway")

# A small template set whose Dockerfile builds on the local base image.
templates = {
    "Dockerfile": 'ARG BASE=missing\nFROM ${BASE}\nCOPY . /app\nCMD ["cat", "/app/hello.txt"]\n',
    "hello.txt": "Hello from {{ application.name }}",
}
for name, body in templates.items():
    template = {"set": "compose-tiny", "name": name, "scope": "once", "output_path": name, "body": body}
    call("POST", "/templates", template, token, expect=201)
application = call("POST", "/applications", {
    "name": "Compose Tiny", "template_set": "compose-tiny", "model_ids": [model["id"]],
    "config": {"build_args": {"BASE": "kiln-test/debian:bookworm-slim"}},
}, token, expect=201)["application"]
build = call("POST", f"/applications/{application['id']}/generate", None, token, expect=202)["build"]
def build_done():
    current = call("GET", f"/builds/{build['id']}", None, token)["build"]
    return current if current["status"] in ("succeeded", "failed", "cancelled") else None
finished = until("the build to finish", build_done)
if finished["status"] != "succeeded" or finished.get("image_skipped"):
    sys.exit(f"the build did not make an image: {finished}")
image = finished["image_tags"][0]
said = subprocess.run(["docker", "run", "--rm", image], capture_output=True, text=True, check=True).stdout.strip()
assert said == "Hello from Compose Tiny", said
print(f"compose: build {build['id']} ran through the worker: image {image} runs")
for tag in finished["image_tags"]:
    subprocess.run(["docker", "image", "rm", tag], capture_output=True)

# model-svc killed, not stopped: nothing it answered may be lost.
compose = ["docker", "compose", "-p", project, "-f", "docker-compose.yml", "-f", "deploy/compose.test.yml"]
subprocess.run(compose + ["kill", "-s", "KILL", "model-svc"], check=True, capture_output=True)
subprocess.run(compose + ["up", "-d", "--no-build", "--wait", "--wait-timeout", "120", "model-svc"], check=True)
until("the gateway to be ready again", ready, 120)
again = call("GET", f"/invoices/{record['id']}", None, token)["record"]
assert again == record, (again, record)
plurals = [m["plural"] for m in call("GET", "/models", None, token)["models"]]
assert "invoices" in plurals, plurals
call("POST", "/invoices", {"number": "INV-2"}, token, expect=201)
listed = call("GET", "/invoices", None, token)
assert sorted(r["number"] for r in listed["records"]) == ["INV-1", "INV-2"], listed
print("compose: model-svc killed and restarted; the model and every record are there, and writes go on")
PY
echo "compose: docker-compose.yml runs the mesh end to end ($((SECONDS - started)) s)"
