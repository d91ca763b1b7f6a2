#!/bin/sh
# fetch.sh provisions the ONNX Runtime shared library the llm-amx plugin
# loads, and prints its path on stdout (progress goes to stderr).
#
# Neither Debian nor the onnxruntime_go module ships libonnxruntime for
# Linux; the npm package onnxruntime-node does (MIT licensed), inside its
# tarball, so `npm pack` fetches it without running any install script.
# The tarball is checked against its pinned npm integrity (SHA-512), only
# the library is extracted, and the library is checked against a pinned
# SHA-256. The result is cached:
#
#   ${DSMIL_ORT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dsmil/ort}/1.30.0/libonnxruntime.so.1
#
# A second run finds the cached library, re-checks its SHA-256 and touches
# no network. The plugin finds the library through DSMIL_ORT_LIB, then
# dsmil.hcl's onnxruntime { library = ... }, then this cache path
# (plugins/internal/ort).
#
# Usage: sh plugins/llm-amx/ort/fetch.sh      (make ort)
set -eu

VERSION=1.30.0
PACKAGE=onnxruntime-node@$VERSION
# npm integrity of onnxruntime-node-1.30.0.tgz:
#   sha512-twhs1C2C/BFkz1yc5OY0KIU2GUq6DURO7hD4bx5Q2Qy3nAMJwRXW8xU3NVczE29VA9lolLOYepoD8fjTGOfIqw==
# which is this SHA-512 in hex:
TGZ_SHA512=b7086cd42d82fc1164cf5c9ce4e634288536194aba0d444eee10f86f1e50d90cb79c0309c115d6f31537355733136f5503d96894b3987a9a03f1f8d318e7c8ab

case "$(uname -s)/$(uname -m)" in
Linux/x86_64 | Linux/amd64)
	MEMBER=package/bin/napi-v6/linux/x64/libonnxruntime.so.1
	LIB_SHA256=ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23
	;;
Linux/aarch64 | Linux/arm64)
	MEMBER=package/bin/napi-v6/linux/arm64/libonnxruntime.so.1
	LIB_SHA256=1f549d46250b005580b597f4164984aaf75b3bcb9f3aeb07c7f8a8fe60b23c76
	;;
*)
	echo "fetch.sh: no pinned ONNX Runtime build for $(uname -s)/$(uname -m);" \
		"set DSMIL_ORT_LIB to a libonnxruntime >= 1.24" >&2
	exit 1
	;;
esac

base=${DSMIL_ORT_CACHE:-${XDG_CACHE_HOME:-${HOME:?HOME is not set}/.cache}/dsmil/ort}
dir=$base/$VERSION
lib=$dir/libonnxruntime.so.1

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

if [ -f "$lib" ]; then
	if [ "$(sha256_of "$lib")" = "$LIB_SHA256" ]; then
		echo "$lib"
		exit 0
	fi
	echo "fetch.sh: $lib has the wrong SHA-256; fetching it again" >&2
	rm -f "$lib"
fi

if ! command -v npm >/dev/null 2>&1; then
	echo "fetch.sh: npm is needed to fetch $PACKAGE (apt-get install npm)," \
		"or set DSMIL_ORT_LIB to a libonnxruntime >= 1.24" >&2
	exit 1
fi

mkdir -p "$dir"
tmp=$(mktemp -d "$dir/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

echo "fetch.sh: npm pack $PACKAGE" >&2
(cd "$tmp" && npm pack --silent --ignore-scripts "$PACKAGE" >/dev/null)
tgz=$tmp/onnxruntime-node-$VERSION.tgz
if [ ! -f "$tgz" ]; then
	echo "fetch.sh: npm pack did not produce $(basename "$tgz")" >&2
	exit 1
fi
got=$(sha512sum "$tgz" | cut -d' ' -f1)
if [ "$got" != "$TGZ_SHA512" ]; then
	echo "fetch.sh: $PACKAGE tarball SHA-512 mismatch: got $got, want $TGZ_SHA512" >&2
	exit 1
fi

tar -xzf "$tgz" -C "$tmp" "$MEMBER"
got=$(sha256_of "$tmp/$MEMBER")
if [ "$got" != "$LIB_SHA256" ]; then
	echo "fetch.sh: $MEMBER SHA-256 mismatch: got $got, want $LIB_SHA256" >&2
	exit 1
fi
chmod 0644 "$tmp/$MEMBER"
# Same directory, so the rename is atomic: a concurrent run sees either no
# library or the whole verified one.
mv -f "$tmp/$MEMBER" "$lib"
echo "fetch.sh: installed ONNX Runtime $VERSION at $lib" >&2
echo "$lib"
