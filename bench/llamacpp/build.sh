#!/bin/sh
# bench/llamacpp/build.sh: build llama.cpp from source in a scratch
# directory — pp (pp.cpp) and batched (batched.cpp) in two variants — and
# write random-weight Qwen2.5-0.5B-shaped GGUFs, Q4_0 and Q8_0. run.sh and
# bench/llm -llamacpp use what it leaves in WORKDIR:
#
#   WORKDIR/build-{stock,amx}/{pp,batched}   WORKDIR/{q4_0,q8_0}.gguf
#
# llama.cpp's GitHub snapshot is too big for this environment, so the
# sources come from the Go module proxy: github.com/ollama/ollama's module
# vendors ggml (ml/backend/ggml/ggml) and llama.cpp's src/ and include/
# (llama/llama.cpp). Nothing is vendored into this repository. Two builds:
#
#   stock   — as vendored, plus the GCC 12 fix below; its AMX buffer takes
#             only weights whose K is a multiple of 2048 (PR 16315's
#             check), so Qwen2.5-0.5B (K = 896, 4864) runs the AVX-512
#             repack kernels;
#   amx     — the same with that check relaxed to K % 32, which puts the
#             Q4_0/Q8_0 weights in the AMX buffer (as llama.cpp versions
#             before the check did: the issue's figures).
#
# Both carry a compiler barrier after ggml_tile_config_init fills the tile
# configuration (GCC 12.2 drops those stores; tilezero then dies of
# SIGILL).
#
#   sh bench/llamacpp/build.sh [WORKDIR]   (default /tmp/dsmil-llamacpp; JOBS=N for make -j, default nproc)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=${1:-/tmp/dsmil-llamacpp}
jobs=${JOBS:-$(nproc)}
version=v0.17.4
mkdir -p "$work"
cd "$work"
if [ ! -d src ]; then
	dir=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/ollama/ollama@$version" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
	mkdir -p src/stock
	cp -r "$dir/ml/backend/ggml/ggml" src/stock/ggml
	mkdir -p src/stock/llama
	cp -r "$dir/llama/llama.cpp/src" "$dir/llama/llama.cpp/include" src/stock/llama/
	chmod -R u+w src
	python3 - src/stock/ggml/src/ggml-cpu/amx/mmq.cpp <<'PY'
import sys
p = sys.argv[1]; s = open(p).read()
old = "        TC_CONFIG_TILE(TMM7, 16, 64);\n        _tile_loadconfig(&tc);"
assert old in s, "ggml_tile_config_init changed"
s = s.replace(old, "        TC_CONFIG_TILE(TMM7, 16, 64);\n        __asm__ __volatile__(\"\" : : \"r\"(&tc) : \"memory\"); // GCC 12 drops the stores above\n        _tile_loadconfig(&tc);")
open(p, "w").write(s)
PY
	cp -r src/stock src/amx
	python3 - src/amx/ggml/src/ggml-cpu/amx/amx.cpp <<'PY'
import sys
p = sys.argv[1]; s = open(p).read()
old = "op->src[0]->ne[0] % (TILE_K * 2 * 32) == 0 &&"
assert old in s, "AMX supports_op changed"
open(p, "w").write(s.replace(old, "op->src[0]->ne[0] % TILE_K == 0 &&"))
PY
fi
for b in stock amx; do
	for f in CMakeLists.txt pp.cpp batched.cpp; do
		cmp -s "$here/$f" "src/$b/$f" || cp "$here/$f" "src/$b/"
	done
	[ -f "build-$b/Makefile" ] || cmake -S "src/$b" -B "build-$b" >"build-$b.log" 2>&1
	# make rebuilds only what changed (a new pp.cpp or batched.cpp relinks against the built libraries).
	make -C "build-$b" -j"$jobs" pp batched >>"build-$b.log" 2>&1 || { tail -20 "build-$b.log" >&2; exit 1; }
done
for t in q4_0 q8_0; do
	[ -f "$t.gguf" ] || (cd "$repo" && go run ./bench/llamacpp/gguf -type "$t" -out "$work/$t.gguf")
done
