#!/usr/bin/env bash
# Builds the Kiln image from deploy/Dockerfile and checks it: the all-in-one container
# comes up, answers /readyz and registers a user; the mesh roles start from the same image.
# No registry is reachable here, so the base images are made locally first: a Debian
# rootfs (debootstrap) and a builder with this machine's Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

runtime_image=kiln-test/debian:bookworm-slim
builder_image=kiln-test/rust:bookworm
work=$(mktemp -d)
trap 'rm -rf "$work"; docker rm -f kiln-image-check >/dev/null 2>&1 || true' EXIT

if ! docker image inspect "$runtime_image" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
  debootstrap --variant=minbase bookworm "$work/rootfs" http://deb.debian.org/debian >"$work/debootstrap.log"
  rm -rf "$work"/rootfs/usr/share/doc/* "$work"/rootfs/usr/share/man/* "$work"/rootfs/var/lib/apt/lists/*
  tar -C "$work/rootfs" -c . | docker import - "$runtime_image" >/dev/null
  rm -rf "$work/rootfs"
fi

if ! docker image inspect "$builder_image" >/dev/null 2>&1; then
  mkdir -p "$work/builder/certs" "$work/builder/toolchain"
  # HTTPS (crates.io) passes an intercepting proxy here: the builder trusts what the host trusts.
  cp /usr/local/share/ca-certificates/*.crt "$work/builder/certs/" 2>/dev/null || true
  cp /etc/ssl/certs/ca-certificates.crt "$work/builder/"
  sysroot=$(rustc --print sysroot)
  cp -a "$sysroot/bin" "$sysroot/lib" "$work/builder/toolchain/"
  rm -rf "$work/builder/toolchain/lib/rustlib/src" "$work"/builder/toolchain/lib/rustlib/wasm32*
  cat >"$work/builder/Dockerfile" <<DOCKERFILE
FROM $runtime_image
COPY certs/ /usr/local/share/ca-certificates/
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
RUN apt-get update && apt-get install -y --no-install-recommends build-essential pkg-config ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY toolchain/ /usr/local/rust/
ENV PATH=/usr/local/rust/bin:/usr/local/cargo/bin:\$PATH CARGO_HOME=/usr/local/cargo
DOCKERFILE
  docker build --network host -q -t "$builder_image" "$work/builder" >/dev/null
fi

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
echo "kiln:local serves all-in-one: ready, registers users, healthy"
