#!/bin/sh
# Regenerate the committed *.pb.go of this module (kvpb, counterpb) from
# ../go/kvpb/kv.proto, ../go/counterpb/counter.proto and counterpb/helper.proto:
# protoc from grpcio-tools (the project venv), protoc-gen-go v1.36.6 and
# protoc-gen-go-grpc v1.3.0 (installed into a temporary GOBIN).
#
#   sh tests/interop/go18/generate.sh [PYTHON]     # PYTHON defaults to .venv/bin/python
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
PYTHON=${1:-$REPO/.venv/bin/python}
GOBIN=$(mktemp -d)
trap 'rm -rf "$GOBIN"' EXIT
GOBIN=$GOBIN go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.6
GOBIN=$GOBIN go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.3.0
MOD=gointerop.example/go18
cd "$HERE"
gen() { # OUTDIR PROTO_DIR FILE...
    out=$1 dir=$2
    shift 2
    maps=""
    for f in kv.proto counter.proto helper.proto; do
        case $f in kv.proto) pkg=kvpb ;; *) pkg=counterpb ;; esac
        maps="$maps,M$f=$MOD/$pkg"
    done
    "$PYTHON" -m grpc_tools.protoc -I "$dir" -I counterpb -I ../go/counterpb \
        --plugin=protoc-gen-go="$GOBIN/protoc-gen-go" \
        --plugin=protoc-gen-go-grpc="$GOBIN/protoc-gen-go-grpc" \
        --go_out="$out" --go_opt="paths=source_relative${maps}" \
        --go-grpc_out="$out" --go-grpc_opt="paths=source_relative${maps}" "$@"
}
gen kvpb ../go/kvpb kv.proto
gen counterpb ../go/counterpb counter.proto helper.proto
