package slicepool

import "testing"

// TestPool: Get gives n elements; a slice put back is given again when it
// has room (same backing array, old contents), a larger request gets a
// new slice.
func TestPool(t *testing.T) {
	var p Pool[int]
	b := p.Get(4)
	if len(*b) != 4 {
		t.Fatalf("len %d, want 4", len(*b))
	}
	(*b)[0] = 7
	p.Put(b)
	// sync.Pool may drop what it holds (a GC between Put and Get), so
	// reuse is checked only when it happened.
	if c := p.Get(3); len(*c) != 3 {
		t.Fatalf("len %d, want 3", len(*c))
	} else if c == b && (*c)[0] != 7 {
		t.Errorf("reused slice lost its contents")
	}
	if d := p.Get(100); len(*d) != 100 || cap(*d) < 100 {
		t.Fatalf("len %d cap %d, want 100", len(*d), cap(*d))
	}
}
