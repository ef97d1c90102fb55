#!/usr/bin/env bash
# Runs imgforge's main job on the bundled example tree (examples/fabric-mini):
# makes the base images from a Debian rootfs (needs root and debootstrap; cached after the
# first run), then builds fabric-peer and fabric-ccenv and runs `peer version` in the image.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q
IMG=./target/release/imgforge
# The example builds into a namespace of its own: it never retags a user's hyperledger/* images.
export DOCKER_NS=imgforge-example BASE_DOCKER_NS=imgforge-example
$IMG baseimage --debootstrap bookworm
$IMG baseos --debootstrap bookworm
$IMG peer --source examples/fabric-mini
# chaintool is a download in Fabric's Makefile; the example uses a stand-in script
mkdir -p target/example
printf '#!/bin/sh\necho "chaintool stand-in $*"\n' > target/example/chaintool-standin
chmod +x target/example/chaintool-standin
$IMG ccenv --source examples/fabric-mini --chaintool target/example/chaintool-standin
TAG=$($IMG config DOCKER_TAG --source examples/fabric-mini)
docker run --rm --pull never "$DOCKER_NS/fabric-peer:$TAG" peer version
