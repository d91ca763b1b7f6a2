package engine

import (
	"strings"
	"testing"
)

// prefixEngines are the tiny model with a prefix cache of capacity bytes
// (blocks of 8 tokens) and without one.
func prefixEngines(t *testing.T, capacity int64) (*Engine, *Engine) {
	t.Helper()
	initORT(t)
	var es [2]*Engine
	for i := range es {
		e, err := Load(tiny(t).Dir, testOptions)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		e.PrefillChunk = 16
		es[i] = e
	}
	es[0].Prefix = NewPrefixCache(capacity, 8)
	return es[0], es[1]
}

func joined(pieces []string) string { return strings.Join(pieces, "") }

// TestPrefixCacheGreedySame: requests sharing a system prompt reuse its
// blocks (cached_tokens as many as whole blocks before the last token)
// and give exactly the greedy tokens of the same requests without a
// cache, batched and unbatched.
func TestPrefixCacheGreedySame(t *testing.T) {
	for _, unbatched := range []bool{false, true} {
		e, ref := prefixEngines(t, 1<<30)
		e.Unbatched, ref.Unbatched = unbatched, unbatched
		system := longPrompt(e, 100, 1)
		for i, q := range [][]int{longPrompt(e, 7, 2), longPrompt(e, 13, 3), longPrompt(e, 7, 2)} {
			prompt := append(append([]int(nil), system...), q...)
			req := &Request{Prompt: prompt, MaxTokens: 16, IgnoreEOS: true, Tenant: "A"}
			got, res := run(t, e, req)
			want, _ := run(t, ref, &Request{Prompt: prompt, MaxTokens: 16, IgnoreEOS: true})
			if joined(got) != joined(want) {
				t.Errorf("unbatched %v, request %d: with the cache %q, without %q", unbatched, i, joined(got), joined(want))
			}
			wantCached := 0
			switch i {
			case 1:
				wantCached = 96 // the system prompt's whole blocks
			case 2:
				wantCached = (len(prompt) - 1) / 8 * 8 // all of the first request's blocks
			}
			if res.CachedTokens != wantCached {
				t.Errorf("unbatched %v, request %d: %d cached tokens, want %d", unbatched, i, res.CachedTokens, wantCached)
			}
		}
		st := e.Prefix.Stats()
		if st.Hits != 2 || st.Misses != 1 || st.CachedTokens != int64(96+(107-1)/8*8) {
			t.Errorf("stats %+v", st)
		}
	}
}

// TestPrefixCacheTenants: tenant B never gets a hit on tenant A's prefix,
// then hits its own.
func TestPrefixCacheTenants(t *testing.T) {
	e, _ := prefixEngines(t, 1<<30)
	prompt := longPrompt(e, 90, 4)
	for _, c := range []struct {
		tenant string
		want   int
	}{{"A", 0}, {"A", 88}, {"B", 0}, {"B", 88}, {"", 0}} {
		_, res := run(t, e, &Request{Prompt: prompt, MaxTokens: 2, IgnoreEOS: true, Tenant: c.tenant})
		if res.CachedTokens != c.want {
			t.Errorf("tenant %q: %d cached tokens, want %d", c.tenant, res.CachedTokens, c.want)
		}
	}
}

// TestPrefixCacheLRU: the cache never holds more than its capacity and
// evicts the least recently used blocks first.
func TestPrefixCacheLRU(t *testing.T) {
	probe, _ := prefixEngines(t, 1<<30)
	block := int64(8) * probe.Model.KVBytesPerToken()
	e, _ := prefixEngines(t, 4*block)                  // four blocks
	a, b := longPrompt(e, 17, 5), longPrompt(e, 17, 6) // two blocks each
	for _, p := range [][]int{a, b, a} {
		run(t, e, &Request{Prompt: p, MaxTokens: 1, Tenant: "T"})
	}
	c := longPrompt(e, 17, 7) // evicts b's blocks, the least recently used
	run(t, e, &Request{Prompt: c, MaxTokens: 1, Tenant: "T"})
	if st := e.Prefix.Stats(); st.Bytes > 4*block || st.Blocks != 4 || st.Evictions != 2 {
		t.Fatalf("stats %+v (block %d bytes)", st, block)
	}
	for _, x := range []struct {
		name   string
		prompt []int
		want   int
	}{{"a", a, 16}, {"c", c, 16}, {"b", b, 0}} {
		_, res := run(t, e, &Request{Prompt: x.prompt, MaxTokens: 1, Tenant: "T"})
		if res.CachedTokens != x.want {
			t.Errorf("%s: %d cached tokens, want %d", x.name, res.CachedTokens, x.want)
		}
	}
}
