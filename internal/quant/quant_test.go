package quant

import (
	"math"
	"math/rand/v2"
	"testing"
)

func randMatrix(seed uint64, n, k int) []float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	w := make([]float32, n*k)
	for i := range w {
		w[i] = float32(r.NormFloat64() * 0.5)
	}
	return w
}

func TestQuantizeRoundTrip(t *testing.T) {
	for _, bits := range []int{4, 8} {
		for _, k := range []int{64, 100} { // 100: a partial last block
			w := randMatrix(1, 8, k)
			q := Quantize(w, 8, k, bits, 32)
			d := q.Dequantize()
			for r := 0; r < 8; r++ {
				for b := 0; b < q.Blocks; b++ {
					lo, hi := b*32, min(b*32+32, k)
					for i := lo; i < hi; i++ {
						// Round to nearest: error at most half a step.
						if e := math.Abs(float64(d[r*k+i] - w[r*k+i])); e > float64(q.Scales[r*q.Blocks+b])/2+1e-6 {
							t.Fatalf("bits %d k %d: |w - deq| = %g > scale/2 = %g", bits, k, e, q.Scales[r*q.Blocks+b]/2)
						}
					}
				}
			}
		}
	}
}

// TestZeroPoints: explicit zero points equal to the default give the
// default's values, and another zero point shifts them by whole steps;
// Rows views dequantize as the matching rows of the whole.
func TestZeroPoints(t *testing.T) {
	for _, bits := range []int{4, 8} {
		const n, k = 6, 96
		q := Quantize(randMatrix(2, n, k), n, k, bits, 32)
		want := q.Dequantize()
		zrow := (q.Blocks*bits + 7) / 8
		zp := make([]byte, n*zrow)
		def := byte(1 << (bits - 1))
		for r := 0; r < n; r++ {
			for b := 0; b < q.Blocks; b++ {
				if bits == 8 {
					zp[r*zrow+b] = def
				} else {
					zp[r*zrow+b/2] |= def << (4 * (b % 2))
				}
			}
		}
		q.ZeroPoints = zp
		got := q.Dequantize()
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("bits %d: explicit default zero point: %d: %v, want %v", bits, i, got[i], want[i])
			}
		}
		// Block 1 of row 2 gets zero point def-1: values one step up.
		if bits == 8 {
			zp[2*zrow+1] = def - 1
		} else {
			zp[2*zrow] = zp[2*zrow]&0x0f | (def-1)<<4
		}
		got = q.Dequantize()
		for i := range want {
			r, c := i/k, i%k
			d := float64(got[i] - want[i])
			step := float64(q.Scales[r*q.Blocks+c/32])
			if inBlock := r == 2 && c/32 == 1; (inBlock && math.Abs(d-step) > 1e-6) || (!inBlock && d != 0) {
				t.Fatalf("bits %d: zero point change: row %d col %d moved by %g (step %g)", bits, r, c, d, step)
			}
		}
		rows := q.Rows(2, 5).Dequantize()
		for i, v := range rows {
			if v != got[2*k+i] {
				t.Fatalf("bits %d: Rows(2, 5)[%d] = %v, want %v", bits, i, v, got[2*k+i])
			}
		}
	}
}

// TestS8: chunked SetRows gives ToS8's bytes; the int8 weight is the
// transposed per-row quantization, within half a step of the matrix.
func TestS8(t *testing.T) {
	const n, k = 300, 70
	w := randMatrix(3, n, k)
	whole := ToS8(w, n, k)
	chunked := NewS8(n, k)
	for r := 0; r < n; r += 64 {
		chunked.SetRows(r, w[r*k:min(r+64, n)*k])
	}
	for i := range whole.Data {
		if whole.Data[i] != chunked.Data[i] {
			t.Fatalf("chunked byte %d differs", i)
		}
	}
	for r := 0; r < n; r++ {
		if whole.Scales[r] != chunked.Scales[r] {
			t.Fatalf("chunked scale %d differs", r)
		}
		for c := 0; c < k; c++ {
			v := float32(int8(whole.Data[c*n+r])) * whole.Scales[r]
			if e := math.Abs(float64(v - w[r*k+c])); e > float64(whole.Scales[r])/2+1e-6 {
				t.Fatalf("row %d col %d: |w - deq| = %g", r, c, e)
			}
		}
	}
}
