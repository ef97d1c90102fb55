#!/usr/bin/env bash
# imgforge benchmarks (not run by CI). Figures go into the README's "Performance" table.
#
#   bash bench/run.sh [FABRIC_TREE]
#
# FABRIC_TREE: a Fabric checkout at $GOPATH/src/github.com/hyperledger/fabric (default: a git
# copy of examples/fabric-mini). Needs: the base images (`imgforge baseimage|baseos
# --debootstrap bookworm`), hyperfine and GNU time (`apt-get install hyperfine time`).
#   P1  goshim.tar.bz2: the Makefile's `tar -jhc` vs imgforge's writer, same file list
#   P2  no-op `imgforge peer` (everything fresh)
#   P3  the image step alone, per image: assembled by imgforge vs --docker-build (cold: the
#       image and the step's fingerprint removed before each run, so only the image step runs)
#   P3b cold `imgforge peer` vs cold `make peer-docker` (Fabric's own Makefile), alternating, on
#       a real Fabric tree only (MAKE_TREE: a second checkout of the same commit, which make
#       may write into); needs DOCKER_BUILDKIT=0 for make's classic `docker build`
#   P4  peak RSS while streaming a 1 GiB build context to the engine
#   P5  one changed file under peer/: what `imgforge plan` says and which steps run
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q --bin imgforge --examples
IMG=$PWD/target/release/imgforge
# every image this script builds goes into its own namespace (removed at the end)
export DOCKER_NS=imgforge-bench
OUT=${BENCH_OUT:-$(mktemp -d)}
mkdir -p "$OUT"; echo "results in $OUT"

TREE=${1:-}
if [ -z "$TREE" ]; then
  TREE=$OUT/gopath/src/github.com/hyperledger/fabric
  mkdir -p "$TREE" && cp -r examples/fabric-mini/. "$TREE"
  (cd "$TREE" && git init -q && git add -A && git -c user.name=b -c user.email=b@b commit -qm bench)
fi
SRC=$(cd "$TREE/../../.." && pwd)          # $GOPATH/src
printf '#!/bin/sh\necho chaintool-standin\n' > "$OUT/chaintool"; chmod +x "$OUT/chaintool"
BUILD=$("$IMG" config BUILD_DIR --source "$TREE")
case "$BUILD" in /*) ;; *) BUILD=$TREE/$BUILD ;; esac

echo "== P1: goshim.tar.bz2"
"$IMG" payload ccenv --source "$TREE" --chaintool "$OUT/chaintool" --builtin-template -q
tar -tjf "$BUILD/goshim.tar.bz2" > "$OUT/goshim.list"
echo "files: $(wc -l < "$OUT/goshim.list"), bytes: $(cd "$SRC" && xargs cat < "$OUT/goshim.list" | wc -c)"
hyperfine -N --warmup 1 --runs 7 --export-markdown "$OUT/p1.md" \
  -n 'tar -jhc (Makefile)' "sh -c 'tar -jhc -C $SRC -T $OUT/goshim.list > $OUT/make.tar.bz2'" \
  -n 'imgforge (pbz2, all cores)' "target/release/examples/bench_archive $SRC $OUT/goshim.list $OUT/a.tar.bz2 0" \
  -n 'imgforge (pbz2, 1 thread)' "target/release/examples/bench_archive $SRC $OUT/goshim.list $OUT/b.tar.bz2 1" \
  -n 'imgforge (bzip2 crate, 1 thread)' "target/release/examples/bench_archive $SRC $OUT/goshim.list $OUT/c.tar.bz2 single"
cmp "$OUT/a.tar.bz2" "$OUT/b.tar.bz2" && echo "pbz2 output identical for 1 thread and all cores"
ls -l "$OUT/make.tar.bz2" "$OUT/a.tar.bz2" "$OUT/c.tar.bz2"

echo "== P2: no-op imgforge peer"
"$IMG" peer --source "$TREE" -q
hyperfine -N --warmup 2 --runs 20 --export-markdown "$OUT/p2.md" -n 'imgforge peer (no-op)' "$IMG peer --source $TREE -q"
before=$(docker ps -aq | wc -l)
"$IMG" peer --source "$TREE" --json | grep -c '"event":"step_started"' || true
echo "containers before/after a no-op: $before/$(docker ps -aq | wc -l)"

echo "== P3: the image step alone (assembled vs docker build), per image"
NS=imgforge-bench
for name in peer orderer ccenv; do
  extra=(); [ "$name" = ccenv ] && extra=(--chaintool "$OUT/chaintool")
  "$IMG" "$name" --source "$TREE" "${extra[@]}" DOCKER_NS=$NS -q
  prep="sh -c 'rm -f $BUILD/.imgforge/fp/image__$name.json; docker images -q $NS/fabric-$name | sort -u | xargs -r docker rmi -f >/dev/null'"
  hyperfine -N --runs 5 --export-markdown "$OUT/p3-$name.md" --prepare "$prep" \
    -n "$name: assembled" "$IMG $name --source $TREE ${extra[*]} DOCKER_NS=$NS -q" \
    -n "$name: docker build" "$IMG $name --source $TREE ${extra[*]} --docker-build DOCKER_NS=$NS -q"
done
docker images -q "$NS/*" | sort -u | xargs -r docker rmi -f >/dev/null

if [ -n "${MAKE_TREE:-}" ]; then
  echo "== P3b: cold imgforge peer vs cold make peer-docker, alternating"
  # make runs `go env GOARCH` on the host; without a host Go, ARCH and MARCH are given
  MAKEVARS=(BASE_DOCKER_NS="${BASE_DOCKER_NS:-hyperledger}" DOCKER_NS=imgforge-bench-make
    EXTRA_VERSION=bench EXECUTABLES="docker git curl" ARCH=amd64 MARCH=linux-amd64)
  for i in 1 2 3; do
    (cd "$MAKE_TREE" && rm -rf .build && docker images -q 'imgforge-bench-make/*' | sort -u | xargs -r docker rmi -f >/dev/null
     s=$(date +%s.%N); DOCKER_BUILDKIT=0 make peer-docker "${MAKEVARS[@]}" >"$OUT/make-$i.log" 2>&1
     echo "make $i: $(echo "$(date +%s.%N) - $s" | bc) s ($(grep -c 'Using cache' "$OUT/make-$i.log") cached steps)")
    rm -rf "$BUILD"; docker images -q 'imgforge-bench/fabric-peer' | sort -u | xargs -r docker rmi -f >/dev/null
    s=$(date +%s.%N); "$IMG" peer --source "$TREE" DOCKER_NS=imgforge-bench EXTRA_VERSION=bench >"$OUT/imgforge-$i.log" 2>&1
    echo "imgforge $i: $(echo "$(date +%s.%N) - $s" | bc) s"
  done
  docker images -q 'imgforge-bench-make/*' | sort -u | xargs -r docker rmi -f >/dev/null
fi

echo "== P5: one file under peer/ changed"
f=$(ls "$TREE"/peer/*.go | grep -v _test | head -1)
cp "$f" "$OUT/saved.go"
printf '\nvar _ = "imgforge bench %s"\n' "$(date +%s%N)" >> "$f"
"$IMG" plan peer --source "$TREE"
"$IMG" peer --source "$TREE" --json | grep -E '"event":"step_(stale|fresh)"' || true
cp "$OUT/saved.go" "$f"
"$IMG" peer --source "$TREE" -q

echo "== P4: peak RSS streaming a 1 GiB context"
CTX=$OUT/ctx; mkdir -p "$CTX"
head -c 1073741824 /dev/urandom > "$CTX/big"
printf 'FROM scratch\nCOPY big /big\n' > "$CTX/Dockerfile"
/usr/bin/time -v target/release/examples/bench_context "$CTX" imgforge-bench/context:1g 2> "$OUT/p4.time"
grep -E "Maximum resident|Elapsed" "$OUT/p4.time"
docker rmi -f imgforge-bench/context:1g >/dev/null
rm -rf "$CTX"

# the images this script built (its own namespaces only)
docker images -q 'imgforge-bench/*' | sort -u | xargs -r docker rmi -f >/dev/null
