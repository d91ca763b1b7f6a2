package engine

import (
	"container/list"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"sync/atomic"

	"github.com/dsmil/l7/plugins/internal/llm/model"
)

// DefaultPrefixBlock is the prefix cache's block size in tokens.
const DefaultPrefixBlock = 32

// PrefixCache keeps the KV cache of computed prompt prefixes for reuse,
// as vLLM's automatic prefix caching does: a prompt is cut into blocks of
// Block tokens, and block i is keyed by a hash of the tenant, block i−1's
// key and block i's token ids, so a key names the tenant and every token
// before the block's end. A request reuses the longest run of cached
// blocks at the start of its prompt (at least one token is always
// prefilled, for its logits) and, after its prefill, stores the blocks of
// its prompt that were not cached. Blocks are evicted least recently used
// first when their bytes would exceed the capacity. One cache serves one
// engine, hence one model; tenants never share a block (the tenant is in
// every key). It is safe for concurrent use.
type PrefixCache struct {
	// Block is the block size in tokens.
	Block int

	capacity int64
	mu       sync.Mutex
	blocks   map[[32]byte]*list.Element // of *prefixBlock
	lru      list.List                  // most recently used first
	bytes    int64

	hits, misses, cachedTokens, evictions atomic.Int64
}

type prefixBlock struct {
	key [32]byte
	// kv is the block's keys and values, [cache tensor][kv head][Block
	// tokens][head_dim].
	kv []byte
}

// NewPrefixCache returns an empty cache of capacity bytes, with blocks of
// block tokens (0: DefaultPrefixBlock).
func NewPrefixCache(capacity int64, block int) *PrefixCache {
	if block <= 0 {
		block = DefaultPrefixBlock
	}
	return &PrefixCache{Block: block, capacity: capacity, blocks: map[[32]byte]*list.Element{}}
}

// PrefixStats are a prefix cache's counters.
type PrefixStats struct {
	// Hits and Misses count requests that reused at least one block and
	// those that reused none; CachedTokens the prompt tokens reused;
	// Evictions the blocks evicted.
	Hits, Misses, CachedTokens, Evictions int64
	// Blocks and Bytes are what the cache holds; Capacity its limit.
	Blocks          int
	Bytes, Capacity int64
}

// Stats returns the cache's counters.
func (c *PrefixCache) Stats() PrefixStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return PrefixStats{Hits: c.hits.Load(), Misses: c.misses.Load(), CachedTokens: c.cachedTokens.Load(),
		Evictions: c.evictions.Load(), Blocks: len(c.blocks), Bytes: c.bytes, Capacity: c.capacity}
}

// keys are the keys of the prompt's first n full blocks.
func (c *PrefixCache) keys(tenant string, prompt []int, n int) [][32]byte {
	h := sha256.New()
	var prev [32]byte
	var tb [8]byte
	out := make([][32]byte, n)
	for i := range n {
		h.Reset()
		binary.LittleEndian.PutUint64(tb[:], uint64(len(tenant)))
		h.Write(tb[:])
		h.Write([]byte(tenant))
		h.Write(prev[:])
		for _, id := range prompt[i*c.Block : (i+1)*c.Block] {
			binary.LittleEndian.PutUint64(tb[:], uint64(id))
			h.Write(tb[:])
		}
		h.Sum(prev[:0])
		out[i] = prev
	}
	return out
}

// lookup returns the cached blocks at the start of prompt, at most
// (len(prompt) − 1) / Block of them, and the keys of all its full blocks.
func (c *PrefixCache) lookup(tenant string, prompt []int) ([]*prefixBlock, [][32]byte) {
	keys := c.keys(tenant, prompt, len(prompt)/c.Block)
	limit := (len(prompt) - 1) / c.Block
	c.mu.Lock()
	defer c.mu.Unlock()
	var got []*prefixBlock
	for _, k := range keys[:limit] {
		e, ok := c.blocks[k]
		if !ok {
			break
		}
		c.lru.MoveToFront(e)
		got = append(got, e.Value.(*prefixBlock))
	}
	if len(got) > 0 {
		c.hits.Add(1)
		c.cachedTokens.Add(int64(len(got) * c.Block))
	} else {
		c.misses.Add(1)
	}
	return got, keys
}

// insert stores the blocks of seq's cache (a prefilled prompt whose full
// blocks have the keys keys) from block from on, that are not cached yet,
// evicting least recently used blocks as needed.
func (c *PrefixCache) insert(m *model.Model, seq *model.Sequence, keys [][32]byte, from int) {
	size := int64(c.Block) * m.KVBytesPerToken()
	if size > c.capacity {
		return
	}
	cfg := m.Config
	hb := cfg.HeadDim * m.KVElem.Size()
	for i := from; i < len(keys); i++ {
		c.mu.Lock()
		if e, ok := c.blocks[keys[i]]; ok {
			c.lru.MoveToFront(e)
			c.mu.Unlock()
			continue
		}
		c.mu.Unlock()
		kv := make([]byte, size)
		off := 0
		for j := range 2 * cfg.Layers {
			for h := range cfg.KVHeads {
				off += copy(kv[off:off+c.Block*hb], seq.KVHeadBytes(j, h, i*c.Block, (i+1)*c.Block))
			}
		}
		c.mu.Lock()
		if _, ok := c.blocks[keys[i]]; !ok {
			for c.bytes+size > c.capacity && c.lru.Len() > 0 {
				old := c.lru.Remove(c.lru.Back()).(*prefixBlock)
				delete(c.blocks, old.key)
				c.bytes -= int64(len(old.kv))
				c.evictions.Add(1)
			}
			c.blocks[keys[i]] = c.lru.PushFront(&prefixBlock{key: keys[i], kv: kv})
			c.bytes += size
		}
		c.mu.Unlock()
	}
}

// load fills seq (empty) with the blocks' keys and values.
func (c *PrefixCache) load(m *model.Model, seq *model.Sequence, blocks []*prefixBlock) error {
	cfg := m.Config
	hb := cfg.HeadDim * m.KVElem.Size()
	bb := c.Block * hb // one head's share of a block
	return seq.LoadKV(len(blocks)*c.Block, func(j, h int, dst []byte) {
		src := (j*cfg.KVHeads + h) * bb
		for i, b := range blocks {
			copy(dst[i*bb:(i+1)*bb], b.kv[src:src+bb])
		}
	})
}
