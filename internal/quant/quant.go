// Package quant holds the weight quantization the model generator
// (internal/mkmodel) and the prefill-graph conversion
// (internal/onnx/prefillgraph) share, so that a converted graph's int8
// weights are byte for byte the generator's: com.microsoft MatMulNBits'
// block layout (quantize, dequantize) and the prefill graph's int8
// weights, per output channel, for ONNX Runtime's u8×s8 MatMulInteger.
package quant

import (
	"math"
	"runtime"
	"sync"
)

// Quantized is a weight matrix in MatMulNBits layout: the matrix is
// N×K (out×in, PyTorch's Linear layout), quantized along K in blocks of
// BlockSize with one float32 scale per block and a zero point per block:
// ZeroPoints, or the default (symmetric) 2^(bits-1) when it is nil.
type Quantized struct {
	N, K, Bits, BlockSize int
	// Blocks is ceil(K/BlockSize).
	Blocks int
	// Data is B: [N][Blocks][BlockSize*Bits/8] bytes; 4-bit values pack
	// two to a byte, the even element in the low nibble.
	Data []byte
	// Scales is [N][Blocks].
	Scales []float32
	// ZeroPoints, when not nil, is MatMulNBits' uint8 zero_points:
	// [N][ceil(Blocks*Bits/8)] bytes, 4-bit values packed as in Data.
	ZeroPoints []byte
}

// Quantize quantizes an N×K row-major matrix symmetrically (no
// ZeroPoints).
func Quantize(w []float32, n, k, bits, block int) *Quantized {
	blocks := (k + block - 1) / block
	blob := block * bits / 8
	q := &Quantized{N: n, K: k, Bits: bits, BlockSize: block, Blocks: blocks,
		Data: make([]byte, n*blocks*blob), Scales: make([]float32, n*blocks)}
	zp := 1 << (bits - 1)
	qmax := float32(zp - 1) // 7 or 127: symmetric around the zero point
	Parallel(n, k, func(r0, r1 int) {
		for r := r0; r < r1; r++ {
			for b := 0; b < blocks; b++ {
				lo, hi := b*block, min((b+1)*block, k)
				var amax float32
				for _, v := range w[r*k+lo : r*k+hi] {
					amax = max(amax, float32(math.Abs(float64(v))))
				}
				scale := amax / qmax
				inv := float32(0)
				if scale != 0 {
					inv = 1 / scale
				}
				q.Scales[r*blocks+b] = scale
				dst := q.Data[(r*blocks+b)*blob : (r*blocks+b+1)*blob]
				for j := 0; j < block; j++ {
					v := zp // padding past K dequantizes to 0
					if lo+j < hi {
						v = int(math.Round(float64(w[r*k+lo+j]*inv))) + zp
						v = max(0, min(v, 2*zp-1))
					}
					if bits == 8 {
						dst[j] = byte(v)
					} else if j%2 == 0 {
						dst[j/2] = byte(v)
					} else {
						dst[j/2] |= byte(v) << 4
					}
				}
			}
		}
	})
	return q
}

// zpRow is the length of one row of ZeroPoints.
func (q *Quantized) zpRow() int { return (q.Blocks*q.Bits + 7) / 8 }

// zeroPoint is row r's block b zero point.
func (q *Quantized) zeroPoint(r, b int) int {
	if q.ZeroPoints == nil {
		return 1 << (q.Bits - 1)
	}
	if q.Bits == 8 {
		return int(q.ZeroPoints[r*q.zpRow()+b])
	}
	return int(q.ZeroPoints[r*q.zpRow()+b/2]>>(4*(b%2))) & 0xf
}

// Dequantize returns the N×K float32 matrix MatMulNBits computes with:
// (q - zero point) × scale.
func (q *Quantized) Dequantize() []float32 {
	out := make([]float32, q.N*q.K)
	blob := q.BlockSize * q.Bits / 8
	for r := 0; r < q.N; r++ {
		for k := 0; k < q.K; k++ {
			b, j := k/q.BlockSize, k%q.BlockSize
			src := q.Data[(r*q.Blocks+b)*blob:]
			var v int
			if q.Bits == 8 {
				v = int(src[j])
			} else {
				v = int(src[j/2]>>(4*(j%2))) & 0xf
			}
			out[r*q.K+k] = float32(v-q.zeroPoint(r, b)) * q.Scales[r*q.Blocks+b]
		}
	}
	return out
}

// Rows is rows [r0, r1) of q, sharing its bytes.
func (q *Quantized) Rows(r0, r1 int) *Quantized {
	blob := q.BlockSize * q.Bits / 8
	s := *q
	s.N = r1 - r0
	s.Data = q.Data[r0*q.Blocks*blob : r1*q.Blocks*blob]
	s.Scales = q.Scales[r0*q.Blocks : r1*q.Blocks]
	if q.ZeroPoints != nil {
		s.ZeroPoints = q.ZeroPoints[r0*q.zpRow() : r1*q.zpRow()]
	}
	return &s
}

// S8 is a linear's weight in the prefill graph's u8×s8 form: quantized
// per output channel (symmetric, 8-bit, one block per row, as Quantize
// with bits 8 and block K) and stored transposed, [K][N] int8, the
// layout of MatMulInteger's second input; Scales are the N channels'.
type S8 struct {
	N, K   int
	Data   []byte // [K][N] int8
	Scales []float32
}

// NewS8 allocates the int8 weight of an N×K matrix, to be filled with
// SetRows.
func NewS8(n, k int) *S8 {
	return &S8{N: n, K: k, Data: make([]byte, n*k), Scales: make([]float32, n)}
}

// SetRows quantizes rows [r0, r0+len(w)/K) of the N×K matrix, w holding
// those rows (row-major), into s. Rows are quantized independently, so
// filling s in chunks gives the bytes one call on the whole matrix gives.
func (s *S8) SetRows(r0 int, w []float32) {
	rows := len(w) / s.K
	q := Quantize(w, rows, s.K, 8, s.K)
	copy(s.Scales[r0:], q.Scales)
	Parallel(s.K, rows, func(k0, k1 int) {
		for k := k0; k < k1; k++ {
			dst := s.Data[k*s.N+r0 : k*s.N+r0+rows]
			for r := range dst {
				dst[r] = q.Data[r*s.K+k] - 128
			}
		}
	})
}

// ToS8 quantizes the whole N×K matrix w (see S8).
func ToS8(w []float32, n, k int) *S8 {
	s := NewS8(n, k)
	s.SetRows(0, w)
	return s
}

// Parallel runs fn over [0, rows) in chunks, on all cores when the work is
// big enough (rows × cols) to be worth it.
func Parallel(rows, cols int, fn func(r0, r1 int)) {
	workers := runtime.GOMAXPROCS(0)
	if rows*cols < 1<<16 || workers == 1 || rows < 2 {
		fn(0, rows)
		return
	}
	chunk := (rows + workers - 1) / workers
	var wg sync.WaitGroup
	for r := 0; r < rows; r += chunk {
		wg.Go(func() { fn(r, min(r+chunk, rows)) })
	}
	wg.Wait()
}
