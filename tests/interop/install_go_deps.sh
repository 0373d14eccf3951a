#!/bin/sh
# Idempotently install Debian bookworm's Go toolchain and go-plugin 1.0.1 sources
# for the interop tests (docs/install.md). A no-op (about a second) when present;
# `apt-get update` runs only if packages are missing and a first install fails.
#
#   bash tests/interop/install_go_deps.sh                # build deps only
#   bash tests/interop/install_go_deps.sh --with-protoc  # + protoc, protoc-gen-go 1.3.5
#                                                        #   (to regenerate go/kvpb/kv.pb.go)
# kv.pb.go is committed, so building needs neither protobuf-compiler nor
# protoc-gen-go-1-3; golang-google-grpc-dev pulls golang-github-golang-protobuf-1-3-dev.
set -eu

PACKAGES="golang-go golang-github-hashicorp-go-plugin-dev golang-google-grpc-dev"
case "${1:-}" in
    "") ;;
    --with-protoc) PACKAGES="$PACKAGES protobuf-compiler protoc-gen-go-1-3" ;;
    *) echo "usage: $0 [--with-protoc]" >&2; exit 2 ;;
esac

missing=""
for pkg in $PACKAGES; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing="$missing $pkg"
done
if [ -z "$missing" ]; then
    echo "install_go_deps: already installed:$(printf ' %s' $PACKAGES)"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_go_deps: missing:$missing; apt-get not found (Debian bookworm expected)" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install_go_deps: missing:$missing; need root or sudo to install" >&2
        exit 1
    fi
fi

echo "install_go_deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086  # word splitting of the package list is intended
if ! $SUDO apt-get install -y --no-install-recommends $missing; then
    echo "install_go_deps: install failed, running apt-get update and retrying" >&2
    $SUDO apt-get update
    $SUDO apt-get install -y --no-install-recommends $missing
fi
