package model

import (
	"context"
	"errors"
	"testing"

	"github.com/dsmil/l7/internal/mkmodel"
)

// refRun is one sequence run alone: its prompt, the tokens then fed one
// by one (greedy from its own logits), and the logits of every step
// (prefill's last row first).
type refRun struct {
	prompt []int64
	fed    []int64
	logits [][]float32
}

func runAlone(t *testing.T, m *Model, prompt []int64, steps int) *refRun {
	t.Helper()
	seq, err := m.NewSequence(0)
	if err != nil {
		t.Fatal(err)
	}
	defer seq.Close()
	v := m.Vocab()
	out, err := seq.Step(context.Background(), prompt)
	if err != nil {
		t.Fatal(err)
	}
	r := &refRun{prompt: prompt}
	row := append([]float32(nil), out[(len(prompt)-1)*v:]...)
	r.logits = append(r.logits, row)
	for i := 0; i < steps; i++ {
		next := int64(argmax(row))
		r.fed = append(r.fed, next)
		out, err := seq.Step(context.Background(), []int64{next})
		if err != nil {
			t.Fatal(err)
		}
		row = append([]float32(nil), out...)
		r.logits = append(r.logits, row)
	}
	return r
}

func testPrompt(n, salt int) []int64 {
	p := make([]int64, n)
	for i := range p {
		p[i] = int64((i*37+salt*101)%500 + 1)
	}
	return p
}

// TestBatchMatchesAlone: sequences of different lengths stepped together
// in one Batch (right-padded, each row at its own length, sharing one
// KV buffer per layer that GroupQueryAttention updates in place) get the
// same logits as each run alone — while rows join and leave mid-stream
// and the buffers grow and shrink.
func TestBatchMatchesAlone(t *testing.T) {
	initORT(t)
	for _, tc := range []struct {
		name string
		edit func(*mkmodel.Spec)
		tol  float64
	}{
		{"qwen2-fp32-tied", nil, 1e-4},
		{"llama-fp32-untied", func(s *mkmodel.Spec) { s.Arch, s.TieEmbeddings, s.KVHeads = mkmodel.ArchLlama, false, 4 }, 1e-4},
		{"qwen2-int4-b32-acc4", func(s *mkmodel.Spec) { s.DType = mkmodel.Int4 }, 1e-3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := tiny(t, tc.name, tc.edit)
			m, err := Open(res.Dir, testOptions)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if !m.CanBatch() {
				t.Fatalf("CanBatch = false; ops %v", m.Graph.Ops)
			}
			const steps = 40
			// Lengths chosen so that rows cross the 16/32/64 capacities at
			// different steps.
			lens := []int{5, 30, 13, 60}
			joinAt := []int{0, 0, 3, 7}      // batch step at which each joins
			leaveAt := []int{25, 40, 12, 40} // ... and after which it leaves
			refs := make([]*refRun, len(lens))
			for i, n := range lens {
				refs[i] = runAlone(t, m, testPrompt(n, i), steps)
			}

			b, err := m.NewBatch()
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			v := m.Vocab()
			rowOf := map[int]int{}         // sequence → row
			seqOf := []int{}               // row → sequence
			done := make([]int, len(lens)) // tokens fed in the batch
			var worst float64
			compared := 0
			for step := 0; ; step++ {
				for i := range lens {
					if joinAt[i] != step {
						continue
					}
					s, err := m.NewSequence(0)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := s.Step(context.Background(), refs[i].prompt); err != nil {
						t.Fatal(err)
					}
					r, err := b.Join(s)
					if err != nil {
						t.Fatal(err)
					}
					if s.Len() != 0 {
						t.Fatalf("joined sequence keeps %d tokens", s.Len())
					}
					s.Close()
					if r != len(seqOf) || b.Len(r) != lens[i] {
						t.Fatalf("join: row %d (want %d), Len %d (want %d)", r, len(seqOf), b.Len(r), lens[i])
					}
					rowOf[i] = r
					seqOf = append(seqOf, i)
				}
				if b.Size() == 0 {
					break
				}
				tokens := make([]int64, b.Size())
				for r, i := range seqOf {
					tokens[r] = refs[i].fed[done[i]]
				}
				out, err := b.Step(context.Background(), tokens)
				if err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
				if len(out) != b.Size()*v {
					t.Fatalf("step %d: %d logits for %d rows", step, len(out), b.Size())
				}
				for r, i := range seqOf {
					done[i]++
					d := maxAbsDiff(out[r*v:(r+1)*v], refs[i].logits[done[i]])
					worst = max(worst, d)
					compared++
					if d > tc.tol {
						t.Fatalf("step %d, sequence %d (row %d of %d, %d tokens): max |Δlogit| = %.3g vs alone",
							step, i, r, b.Size(), b.Len(r), d)
					}
					if b.Len(r) != lens[i]+done[i] {
						t.Fatalf("row %d Len %d, want %d", r, b.Len(r), lens[i]+done[i])
					}
				}
				// Leave, highest row first so the others' rows stay valid.
				for r := len(seqOf) - 1; r >= 0; r-- {
					i := seqOf[r]
					if done[i] < leaveAt[i] {
						continue
					}
					b.Leave(r)
					last := len(seqOf) - 1
					seqOf[r] = seqOf[last]
					seqOf = seqOf[:last]
					delete(rowOf, i)
				}
			}
			for i := range lens {
				if done[i] != leaveAt[i] {
					t.Errorf("sequence %d fed %d tokens, want %d", i, done[i], leaveAt[i])
				}
			}
			if b.KVBytes() != 0 {
				t.Errorf("empty batch holds %d bytes", b.KVBytes())
			}
			t.Logf("%d rows compared, max |Δlogit| %.3g", compared, worst)
		})
	}
}

// TestBatchLimits: a row at its limit fails the whole step with
// ErrContextFull and changes nothing; a wrong token count and bad ids are
// refused; a cancelled step leaves the lengths.
func TestBatchLimits(t *testing.T) {
	initORT(t)
	res := tiny(t, "qwen2-fp32-tied", nil)
	m, err := Open(res.Dir, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	b, err := m.NewBatch()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	for i, maxLen := range []int{8, 0} {
		s, err := m.NewSequence(maxLen)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Step(ctx, testPrompt(7, i)); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Join(s); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	if _, err := b.Step(ctx, []int64{1}); err == nil {
		t.Fatal("Step with 1 token for 2 rows succeeded")
	}
	if _, err := b.Step(ctx, []int64{1, int64(m.Vocab())}); err == nil {
		t.Fatal("Step with an id outside the vocabulary succeeded")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.Step(cctx, []int64{1, 2}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Step: %v", err)
	}
	if _, err := b.Step(ctx, []int64{1, 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Step(ctx, []int64{1, 2}); !errors.Is(err, ErrContextFull) {
		t.Fatalf("Step past row 0's limit: %v", err)
	}
	if b.Len(0) != 8 || b.Len(1) != 8 {
		t.Fatalf("lengths %d, %d after a refused step, want 8, 8", b.Len(0), b.Len(1))
	}
	b.Leave(0)
	if b.Size() != 1 || b.MaxLen(0) != m.MaxSequence {
		t.Fatalf("after Leave(0): size %d, row 0 limit %d", b.Size(), b.MaxLen(0))
	}
	if _, err := b.Step(ctx, []int64{3}); err != nil {
		t.Fatal(err)
	}
}
