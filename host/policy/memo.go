package policy

import (
	"sync"

	"github.com/dsmil/l7/sdk/dbe"
)

// maxMemo bounds the verdict memo; when it is full it is emptied.
const maxMemo = 1 << 16

// memoKey is every attribute a custom rule can see. The tenant's own
// attributes are fixed per grant.
type memoKey struct {
	g       *grant
	profile string
	model   string
	op      string
	mask    dbe.Compartment
	class   dbe.Classification
	roe     dbe.ROELevel
	dst     int16
}

// memo caches custom-rule verdicts by request attributes.
type memo struct {
	mu sync.RWMutex
	m  map[memoKey]verdict
}

func (m *memo) get(k memoKey) (verdict, bool) {
	m.mu.RLock()
	v, ok := m.m[k]
	m.mu.RUnlock()
	return v, ok
}

func (m *memo) put(k memoKey, v verdict) {
	m.mu.Lock()
	if m.m == nil || len(m.m) >= maxMemo {
		m.m = make(map[memoKey]verdict)
	}
	m.m[k] = v
	m.mu.Unlock()
}
