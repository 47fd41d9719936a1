#!/usr/bin/env bash
# Build the Agenda images: the static release binaries once (one cargo invocation), then
# one FROM-scratch image per service plus the end-to-end client.
#
#   docker/build-images.sh            # cargo build + 4 images tagged agenda/<name>:dev
#   AGENDA_TAG=1.2.0 docker/build-images.sh
#   SKIP_CARGO=1 docker/build-images.sh   # reuse the binaries already in target/
#
# Environment:
#   AGENDA_TAG            image tag (default dev)
#   AGENDA_IMAGE_PREFIX   repository prefix (default agenda): agenda/store, agenda/api,
#                         agenda/discovery, agenda/e2e-client
#   SKIP_CARGO            1: do not run cargo, use the existing binaries
#
# No base image is pulled (there is no registry on the build machines): every image is
# FROM scratch, and each is built from a temporary context holding only its binary.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TAG="${AGENDA_TAG:-dev}"
PREFIX="${AGENDA_IMAGE_PREFIX:-agenda}"
TARGET=x86_64-unknown-linux-gnu
BIN_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/$TARGET/release"

log() { printf '[build-images %(%H:%M:%S)T] %s\n' -1 "$*"; }

if [[ "${SKIP_CARGO:-0}" != 1 ]]; then
    log "cargo build --release --target $TARGET (static)"
    # The explicit --target keeps RUSTFLAGS away from build scripts and proc-macros
    # (which cannot be static) and puts these binaries in their own folder, so they do
    # not invalidate the debug builds of the tests.
    started=$SECONDS
    (cd "$ROOT" && RUSTFLAGS='-C target-feature=+crt-static' cargo build --release \
        --target "$TARGET" \
        -p consensus-svc -p api-svc -p discovery-svc -p agenda-e2e-client -p agenda-local)
    log "cargo done in $((SECONDS - started))s"
fi

for bin in consensus-svc api-svc discovery-svc agenda-e2e; do
    path="$BIN_DIR/$bin"
    [[ -x "$path" ]] || { echo "missing $path (run without SKIP_CARGO=1)" >&2; exit 1; }
    # A dynamically linked binary would fail at start in a scratch image with a
    # confusing "no such file or directory": refuse it here.
    if command -v readelf >/dev/null && readelf -l "$path" | grep -q 'Requesting program interpreter'; then
        echo "$path is dynamically linked; build it with RUSTFLAGS='-C target-feature=+crt-static'" >&2
        exit 1
    fi
done

export DOCKER_BUILDKIT=0 # the classic builder: no buildx on these machines, no RUN steps needed
CONTEXTS="$(mktemp -d)"
trap 'rm -rf "$CONTEXTS"' EXIT
REVISION="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"

# build_image NAME BINARY DOCKERFILE
build_image() {
    local name=$1 bin=$2 dockerfile=$3 ctx="$CONTEXTS/$1"
    mkdir -p "$ctx/data" "$ctx/tmp"
    chmod 0755 "$ctx/data"
    chmod 1777 "$ctx/tmp"
    # Debug info stays in target/; the image keeps the symbols (names in backtraces).
    if command -v objcopy >/dev/null; then
        objcopy --strip-debug "$BIN_DIR/$bin" "$ctx/$bin"
    else
        cp "$BIN_DIR/$bin" "$ctx/$bin"
    fi
    cp "$ROOT/docker/$dockerfile" "$ctx/Dockerfile"
    # The classic builder warns about its deprecation on every run: show its output only
    # when the build fails.
    if ! docker build --quiet \
        --label "org.opencontainers.image.title=agenda-$name" \
        --label "org.opencontainers.image.revision=$REVISION" \
        -t "$PREFIX/$name:$TAG" "$ctx" >"$CONTEXTS/$name.log" 2>&1; then
        cat "$CONTEXTS/$name.log" >&2
        echo "docker build of $PREFIX/$name:$TAG failed" >&2
        exit 1
    fi
    log "$PREFIX/$name:$TAG ($(du -h "$ctx/$bin" | cut -f1) binary)"
}

build_image store consensus-svc store.Dockerfile
build_image api api-svc api.Dockerfile
build_image discovery discovery-svc discovery.Dockerfile
build_image e2e-client agenda-e2e e2e-client.Dockerfile
log "images built with tag $TAG"
