#!/bin/sh
# bench/llamacpp/run.sh: build llama.cpp from source in a scratch directory
# and measure its prompt processing (llama-bench -p N -n 0's test, with
# pp.cpp on the llama.h API) on random-weight Qwen2.5-0.5B-shaped GGUFs,
# Q4_0 and Q8_0, 2 threads — the anchor of issue 18.
#
# build.sh builds llama.cpp (sources from the Go module proxy, stock and amx
# variants; see there) and writes the GGUFs into WORKDIR.
#
#   sh bench/llamacpp/run.sh [WORKDIR] [PROMPTS...]   (default /tmp/dsmil-llamacpp, 32 128 512 2048)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=${1:-/tmp/dsmil-llamacpp}
[ $# -gt 0 ] && shift
prompts=${*:-32 128 512 2048}
sh "$here/build.sh" "$work"
cd "$work"
for b in stock amx; do
	for t in q4_0 q8_0; do
		echo "== llama.cpp $b $t, 2 threads"
		# shellcheck disable=SC2086
		"build-$b/pp" "$t.gguf" 2 5 $prompts 2>"pp-$b-$t.log"
		grep -E "AMX model buffer|CPU_REPACK model buffer|system_info" "pp-$b-$t.log" | sed 's/^/   /' | cut -c1-200
	done
done
