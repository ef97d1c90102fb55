#!/usr/bin/env bash
# Runs imgforge's main job on the bundled example tree (examples/fabric-mini):
# makes the base images from a Debian rootfs (needs root and debootstrap; cached after the
# first run), then builds fabric-peer and fabric-ccenv and runs `peer version` in the image.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q
IMG=./target/release/imgforge
$IMG baseimage --debootstrap bookworm
$IMG baseos --debootstrap bookworm
$IMG peer --source examples/fabric-mini
printf '#!/bin/sh\necho "chaintool stand-in $*"\n' > examples/fabric-mini/build/chaintool-standin 2>/dev/null \
  || { mkdir -p examples/fabric-mini/build && printf '#!/bin/sh\necho "chaintool stand-in $*"\n' > examples/fabric-mini/build/chaintool-standin; }
$IMG ccenv --source examples/fabric-mini --chaintool examples/fabric-mini/build/chaintool-standin
TAG=$($IMG config DOCKER_TAG --source examples/fabric-mini)
docker run --rm "hyperledger/fabric-peer:$TAG" peer version
