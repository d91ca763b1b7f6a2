#!/usr/bin/env python3
"""Classify perf samples in a stripped libonnxruntime.so by the kernels' instructions.

The library has no symbols, so functions are its .eh_frame FDE ranges
(readelf --debug-dump=frames); each range is classed by the instructions
objdump finds in it: "amx" (tdpbusd/tdpbf16ps: AMX tile multiply),
"avx512-vnni" (vpdpbusd[s] on zmm), "avx-vnni/ymm", "avx2 u8s8" (vpmaddubsw),
"fp32 fma zmm"/"fp32 fma ymm" (vfmadd231ps), else "other".

usage: perf record -o perf.data -F 999 -g -- CMD ...
       perf script -i perf.data -F ip,dso > samples.txt   (or let this script run it)
       kernels.py LIBONNXRUNTIME PERF.DATA
"""
import bisect, collections, re, subprocess, sys

lib, data = sys.argv[1], sys.argv[2]
fdes = []
for m in re.finditer(r"pc=([0-9a-f]+)\.\.([0-9a-f]+)",
                     subprocess.run(["readelf", "--debug-dump=frames", lib], capture_output=True, text=True).stdout):
    fdes.append((int(m.group(1), 16), int(m.group(2), 16)))
fdes.sort()
starts = [a for a, _ in fdes]
insn = re.compile(r"^\s+([0-9a-f]+):\s+(tdpbusd|tdpbssd|tdpbsud|tdpbuud|tdpbf16ps|vpdpbusds?|vpmaddubsw|vfmadd231ps)\s+(.*)$")
classes = collections.defaultdict(set)
dis = subprocess.Popen(["objdump", "-d", "--no-show-raw-insn", lib], stdout=subprocess.PIPE, text=True)
for line in dis.stdout:
    m = insn.match(line)
    if not m:
        continue
    addr, op, args = int(m.group(1), 16), m.group(2), m.group(3)
    i = bisect.bisect_right(starts, addr) - 1
    if i < 0 or addr >= fdes[i][1]:
        continue
    if op.startswith("tdp"):
        c = "amx"
    elif op.startswith("vpdpbusd"):
        c = "avx512-vnni" if "zmm" in args else "avx-vnni/ymm"
    elif op == "vpmaddubsw":
        c = "u8s8 vpmaddubsw " + ("zmm" if "zmm" in args else "ymm")
    else:
        c = "fp32 fma " + ("zmm" if "zmm" in args else "ymm/xmm")
    classes[i].add(c)
rank = ["amx", "avx512-vnni", "avx-vnni/ymm", "u8s8 vpmaddubsw zmm", "u8s8 vpmaddubsw ymm", "fp32 fma zmm", "fp32 fma ymm/xmm"]

def cls(i):
    for r in rank:
        if r in classes.get(i, ()):
            return r
    return "other"

out = subprocess.run(["perf", "script", "-i", data, "-F", "ip,dso", "--show-mmap-events"], capture_output=True, text=True).stdout
maps = []  # (start, end, pgoff) of the library's executable mappings: file address = ip - start + pgoff
for m in re.finditer(r"\[0x([0-9a-f]+)\(0x([0-9a-f]+)\) @ 0x([0-9a-f]+) .*\]: r-xp \S*libonnxruntime", out):
    a, n, off = int(m.group(1), 16), int(m.group(2), 16), int(m.group(3), 16)
    maps.append((a, a + n, off))
count, total, inlib = collections.Counter(), 0, 0
fn = collections.Counter()
for line in out.splitlines():
    p = line.split()
    if len(p) < 2 or "PERF_RECORD" in line:
        continue
    total += 1
    if "libonnxruntime" not in p[1]:
        count["outside libonnxruntime: " + p[1].strip("()").split("/")[-1]] += 1
        continue
    inlib += 1
    ip = int(p[0], 16)
    for a, e, off in maps:
        if a <= ip < e:
            ip = ip - a + off
            break
    i = bisect.bisect_right(starts, ip) - 1
    if i < 0 or ip >= fdes[i][1]:
        count["libonnxruntime: no FDE"] += 1
        continue
    count["libonnxruntime: " + cls(i)] += 1
    fn[(fdes[i][0], cls(i))] += 1
print(f"{total} samples, {inlib} in libonnxruntime")
for k, v in count.most_common(12):
    print(f"  {100 * v / total:5.1f} %  {k}")
print("hottest functions (FDE start, class):")
for (a, c), v in fn.most_common(8):
    print(f"  {100 * v / total:5.1f} %  0x{a:x}  {c}")
