// Package slicepool keeps slices for reuse between calls that each need one
// for a short while: the hidden states of an ONNX Runtime run, an answer's
// body. It is sync.Pool with the length check every such user wrote.
package slicepool

import "sync"

// Pool holds slices of T. The zero Pool is ready to use.
type Pool[T any] struct{ p sync.Pool }

// Get returns a slice of n elements, reused when the pool holds one with
// room for n (its contents are then whatever they were) and new otherwise.
func (p *Pool[T]) Get(n int) *[]T {
	if b, ok := p.p.Get().(*[]T); ok && cap(*b) >= n {
		*b = (*b)[:n]
		return b
	}
	b := make([]T, n)
	return &b
}

// Put gives b back for a later Get. b must not be used after.
func (p *Pool[T]) Put(b *[]T) { p.p.Put(b) }
