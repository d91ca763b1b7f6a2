#!/bin/sh
# generate.sh regenerates the Go code for every .proto file under sdk/proto.
#
# Usage, from the repository root:
#
#   go generate ./sdk/proto/...        regenerate the *.pb.go files in place
#   sh sdk/proto/generate.sh           the same
#   sh sdk/proto/generate.sh -check    regenerate into a temporary directory
#                                      and fail with a diff if the committed
#                                      *.pb.go files are stale
#
# protoc-gen-go and protoc-gen-go-grpc are built from the versions pinned in
# go.mod, so the output depends only on the .proto files, those versions and
# protoc. protoc itself comes from PATH (or $PROTOC) and must be >= 3.12
# for proto3 "optional" (the flag enabling it on 3.12-3.14 is a no-op on
# later versions). All .proto files are compiled in one protoc run with
# import root sdk/proto; protoc-gen-go-grpc writes *_grpc.pb.go only for
# files that declare a service. In generate mode, *.pb.go files under
# sdk/proto that no .proto produces any more are deleted.
#
# The "// protoc vX.Y.Z" version comment in generated headers is the only
# part of the output that depends on the local protoc version; -check ignores
# it so that a different (compatible) protoc does not count as drift.
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

# Work from sdk/proto so that generated "source:" comments are relative.
cd "$(dirname "$0")"

PROTOC=${PROTOC:-protoc}
if ! command -v "$PROTOC" >/dev/null 2>&1; then
	echo "generate.sh: $PROTOC not found (apt-get install protobuf-compiler)" >&2
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/l7-protogen.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

# Build the plugins at the versions go.mod pins (module mode; uses the
# module and build caches).
go build -o "$tmp/bin/" \
	google.golang.org/protobuf/cmd/protoc-gen-go \
	google.golang.org/grpc/cmd/protoc-gen-go-grpc

# Every .proto under sdk/proto, in a locale-independent order.
protos=$(find . -type f -name '*.proto' | sed 's|^\./||' | LC_ALL=C sort)
if [ -z "$protos" ]; then
	echo "generate.sh: no .proto files under sdk/proto" >&2
	exit 1
fi
for f in $protos; do
	case "$f" in
	*[!A-Za-z0-9_./-]*)
		echo "generate.sh: unsupported character in file name: $f" >&2
		exit 1
		;;
	esac
done

mkdir "$tmp/out"
# shellcheck disable=SC2086 # $protos is a whitespace-free file list.
"$PROTOC" \
	--proto_path=. \
	--experimental_allow_proto3_optional \
	--plugin=protoc-gen-go="$tmp/bin/protoc-gen-go" \
	--plugin=protoc-gen-go-grpc="$tmp/bin/protoc-gen-go-grpc" \
	--go_out="$tmp/out" --go_opt=paths=source_relative \
	--go-grpc_out="$tmp/out" --go-grpc_opt=paths=source_relative \
	$protos

# Lists the generated Go files under directory $1, relative to it, sorted.
list_generated() {
	(cd "$1" && find . -type f -name '*.pb.go' | sed 's|^\./||' | LC_ALL=C sort)
}

if [ "$mode" = check ]; then
	# Copy the committed generated files next to the fresh ones and compare,
	# dropping the protoc version comment from both sides.
	mkdir "$tmp/committed"
	for f in $(list_generated .); do
		mkdir -p "$tmp/committed/$(dirname "$f")"
		cp "$f" "$tmp/committed/$f"
	done
	for dir in committed out; do
		for f in $(list_generated "$tmp/$dir"); do
			sed '/^\/\/[[:space:]]*protoc[[:space:]]/d' \
				"$tmp/$dir/$f" >"$tmp/$dir/$f.tmp"
			mv "$tmp/$dir/$f.tmp" "$tmp/$dir/$f"
		done
	done
	if ! (cd "$tmp" && diff -r -u committed out); then
		echo >&2
		echo "generate.sh: generated protobuf code is out of date;" \
			"run 'go generate ./sdk/proto/...' and commit the result" >&2
		exit 1
	fi
	exit 0
fi

# Install the fresh files, touching only those whose content changed.
for f in $(list_generated "$tmp/out"); do
	if ! cmp -s "$tmp/out/$f" "$f"; then
		mkdir -p "$(dirname "$f")"
		cp "$tmp/out/$f" "$f"
		echo "generate.sh: wrote sdk/proto/$f"
	fi
done
# Delete generated files whose .proto is gone.
for f in $(list_generated .); do
	if [ ! -e "$tmp/out/$f" ]; then
		rm -f "$f"
		echo "generate.sh: removed stale sdk/proto/$f"
	fi
done
