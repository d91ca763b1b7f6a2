package ort

import (
	"strings"

	"golang.org/x/sys/cpu"
)

// CPUFeatures are the x86 features ONNX Runtime's MLAS kernels pick their
// code paths by. Each is true only when both the CPU and the OS support it.
type CPUFeatures struct {
	AVX2       bool // fp32 GEMM (AVX2/FMA kernels)
	AVX512F    bool // fp32 GEMM (AVX-512 kernels)
	AVX512BW   bool // int8 paths on AVX-512
	AVX512VNNI bool // int8 dot products (MatMulNBits accuracy_level 4)
	AVXVNNI    bool // int8 dot products on 256-bit vectors
	AVX512BF16 bool
	AMXTile    bool // Advanced Matrix Extensions
	AMXInt8    bool // AMX int8 GEMM
	AMXBF16    bool
}

// DetectCPU reads the running CPU's features.
func DetectCPU() CPUFeatures {
	return CPUFeatures{
		AVX2:       cpu.X86.HasAVX2,
		AVX512F:    cpu.X86.HasAVX512F,
		AVX512BW:   cpu.X86.HasAVX512BW,
		AVX512VNNI: cpu.X86.HasAVX512VNNI,
		AVXVNNI:    cpu.X86.HasAVXVNNI,
		AVX512BF16: cpu.X86.HasAVX512BF16,
		AMXTile:    cpu.X86.HasAMXTile,
		AMXInt8:    cpu.X86.HasAMXInt8,
		AMXBF16:    cpu.X86.HasAMXBF16,
	}
}

// List names the features present, lowercase, in a fixed order.
func (f CPUFeatures) List() []string {
	var out []string
	for _, x := range []struct {
		ok   bool
		name string
	}{
		{f.AVX2, "avx2"}, {f.AVX512F, "avx512f"}, {f.AVX512BW, "avx512bw"},
		{f.AVX512VNNI, "avx512vnni"}, {f.AVXVNNI, "avxvnni"}, {f.AVX512BF16, "avx512bf16"},
		{f.AMXTile, "amx-tile"}, {f.AMXInt8, "amx-int8"}, {f.AMXBF16, "amx-bf16"},
	} {
		if x.ok {
			out = append(out, x.name)
		}
	}
	return out
}

// String is List joined by spaces, or "baseline" when none is present.
func (f CPUFeatures) String() string {
	if l := f.List(); len(l) > 0 {
		return strings.Join(l, " ")
	}
	return "baseline"
}
