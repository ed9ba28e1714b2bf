#!/usr/bin/env bash
# Makes the base images Kiln's image and the generated applications build on, locally: no
# registry is reachable here. `runtime` is a Debian rootfs (debootstrap) imported as
# kiln-test/debian:bookworm-slim; `builder` adds build tools and this machine's Rust
# toolchain as kiln-test/rust:bookworm. Each is made only if missing.
#   deploy/base-images.sh [runtime|builder|all]   (default: all)
set -euo pipefail

runtime_image=kiln-test/debian:bookworm-slim
builder_image=kiln-test/rust:bookworm
which=${1:-all}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Two tests may ask at once: one makes the images, the other waits for it.
exec 9>/tmp/kiln-base-images.lock
flock 9

if ! docker image inspect "$runtime_image" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
  debootstrap --variant=minbase bookworm "$work/rootfs" http://deb.debian.org/debian >"$work/debootstrap.log"
  rm -rf "$work"/rootfs/usr/share/doc/* "$work"/rootfs/usr/share/man/* "$work"/rootfs/var/lib/apt/lists/*
  tar -C "$work/rootfs" -c . | docker import - "$runtime_image" >/dev/null
  rm -rf "$work/rootfs"
fi
[ "$which" = runtime ] && exit 0

# A builder made before it carried the wasm32 target is made again.
if docker image inspect "$builder_image" >/dev/null 2>&1 \
  && ! docker run --rm "$builder_image" test -d /usr/local/rust/lib/rustlib/wasm32-unknown-unknown; then
  docker rmi -f "$builder_image" >/dev/null
fi
if ! docker image inspect "$builder_image" >/dev/null 2>&1; then
  mkdir -p "$work/builder/certs" "$work/builder/toolchain"
  # HTTPS (crates.io) passes an intercepting proxy here: the builder trusts what the host trusts.
  cp /usr/local/share/ca-certificates/*.crt "$work/builder/certs/" 2>/dev/null || true
  cp /etc/ssl/certs/ca-certificates.crt "$work/builder/"
  sysroot=$(rustc --print sysroot)
  cp -a "$sysroot/bin" "$sysroot/lib" "$work/builder/toolchain/"
  # wasm32 stays: the Kiln image's build compiles the web UI for it.
  rm -rf "$work/builder/toolchain/lib/rustlib/src"
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
