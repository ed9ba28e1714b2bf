#!/usr/bin/env bash
# Builds the Kiln image from deploy/Dockerfile and checks it: the all-in-one container
# comes up, answers /readyz and registers a user; the mesh roles start from the same image.
# No registry is reachable here, so the base images are made locally first
# (deploy/base-images.sh: a Debian rootfs and a builder with this machine's Rust toolchain).
set -euo pipefail
cd "$(dirname "$0")/.."

runtime_image=kiln-test/debian:bookworm-slim
builder_image=kiln-test/rust:bookworm
trap 'docker rm -f kiln-image-check >/dev/null 2>&1 || true' EXIT

bash deploy/base-images.sh all

docker build --network host -q -f deploy/Dockerfile --target runtime \
  --build-arg RUST_IMAGE="$builder_image" --build-arg RUNTIME_IMAGE="$runtime_image" -t kiln:local . >/dev/null
echo "image kiln:local: $(docker image inspect -f '{{.Size}}' kiln:local | awk '{printf "%.0f MB", $1/1e6}')"

docker run -d --name kiln-image-check -p 127.0.0.1::4000 kiln:local >/dev/null
port=$(docker port kiln-image-check 4000/tcp | head -n 1 | sed 's/.*://')
for _ in $(seq 1 60); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.5
done
curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { docker logs kiln-image-check; echo "the container never became ready"; exit 1; }
status=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$port/api/v1/auth/register" \
  -H 'content-type: application/json' -d '{"email":"image@example.com","password":"correct horse 9"}')
[ "$status" = 201 ] || { echo "register answered $status"; exit 1; }
docker exec kiln-image-check kiln healthcheck --url http://127.0.0.1:4000
curl -sf -H 'accept: text/html' "http://127.0.0.1:$port/invoices/1" | grep -q 'name="kiln-api"' \
  || { echo "the web UI is not served"; exit 1; }
echo "kiln:local serves all-in-one: ready, registers users, healthy, serves the web UI"
