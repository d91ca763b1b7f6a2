#!/bin/sh
# generate.sh regenerates onnx.pb.go, the Go code of ONNX's onnx.proto.
#
# Usage, from the repository root:
#
#   go generate ./internal/onnx/...     regenerate onnx.pb.go in place
#   sh internal/onnx/generate.sh        the same
#   sh internal/onnx/generate.sh -check regenerate into a temporary directory
#                                       and fail with a diff if the committed
#                                       onnx.pb.go is stale
#
# protoc-gen-go is built from the version pinned in go.mod; protoc comes from
# PATH (or $PROTOC). onnx.proto has no go_package option, so the Go import
# path is given with an M flag. As in sdk/proto/generate.sh, the
# "// protoc vX.Y.Z" header line is ignored by -check.
set -eu

mode=generate
case "${1-}" in
"") ;;
-check | --check) mode=check ;;
*)
	echo "usage: $0 [-check]" >&2
	exit 2
	;;
esac

cd "$(dirname "$0")"

PROTOC=${PROTOC:-protoc}
if ! command -v "$PROTOC" >/dev/null 2>&1; then
	echo "generate.sh: $PROTOC not found (apt-get install protobuf-compiler)" >&2
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/l7-onnxgen.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

go build -o "$tmp/bin/" google.golang.org/protobuf/cmd/protoc-gen-go

mkdir "$tmp/out"
"$PROTOC" \
	--proto_path=. \
	--plugin=protoc-gen-go="$tmp/bin/protoc-gen-go" \
	--go_out="$tmp/out" --go_opt=paths=source_relative \
	--go_opt=Monnx.proto=github.com/dsmil/l7/internal/onnx \
	onnx.proto

if [ "$mode" = check ]; then
	strip() { sed '/^\/\/[[:space:]]*protoc[[:space:]]/d' "$1"; }
	if [ ! -f onnx.pb.go ]; then
		echo "generate.sh: internal/onnx/onnx.pb.go is missing;" \
			"run 'go generate ./internal/onnx/...' and commit it" >&2
		exit 1
	fi
	strip onnx.pb.go >"$tmp/committed.go"
	strip "$tmp/out/onnx.pb.go" >"$tmp/fresh.go"
	if ! diff -u "$tmp/committed.go" "$tmp/fresh.go"; then
		echo >&2
		echo "generate.sh: internal/onnx/onnx.pb.go is out of date;" \
			"run 'go generate ./internal/onnx/...' and commit the result" >&2
		exit 1
	fi
	exit 0
fi

if ! cmp -s "$tmp/out/onnx.pb.go" onnx.pb.go; then
	cp "$tmp/out/onnx.pb.go" onnx.pb.go
	echo "generate.sh: wrote internal/onnx/onnx.pb.go"
fi
