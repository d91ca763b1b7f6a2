package claims

import (
	"context"
	"testing"
	"time"

	"github.com/dsmil/l7/sdk/identity"
)

// BenchmarkVerifyHot is the per-request cost once a session's token has
// been verified, with 1,024 sessions cached and the real clock: the goal is
// ≤ 1 µs.
func BenchmarkVerifyHot(b *testing.B) {
	shim := newKey(b)
	v := newVerifier(b, &clock{}, shim.Public())
	v.cfg.Now = time.Now
	tok := issue(b, shim, spec{issued: time.Now()})
	for i := range 1023 { // other sessions' entries: a real hash table, not a one-entry map
		var k identity.ClaimKey
		k[0], k[1], k[2] = byte(i), byte(i>>8), 0xee
		v.cache[k] = &claimEntry{}
	}
	f := chatFrame("SOC_TEAM_ALPHA", tok)
	f.SetCompartmentMask(1)
	f.SetClassification(1)
	f.SetROELevel(1)
	f.SetProfile("llm-7b-amx")
	f.SetRequestID([16]byte{9})
	ctx := context.Background()
	if err := v.VerifyClaim(ctx, f); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := v.VerifyClaim(ctx, f); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkVerifyCold is the cost of a token seen for the first time: parse
// and one ML-DSA-87 verification.
func BenchmarkVerifyCold(b *testing.B) {
	shim := newKey(b)
	v := newVerifier(b, at(t0.Add(time.Minute)), shim.Public())
	f := chatFrame("SOC_TEAM_ALPHA", issue(b, shim, spec{}))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		v.mu.Lock()
		clear(v.cache)
		v.mu.Unlock()
		if err := v.VerifyClaim(ctx, f); err != nil {
			b.Fatal(err)
		}
	}
}
