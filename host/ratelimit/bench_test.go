package ratelimit_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/ratelimit"
	"github.com/dsmil/l7/sdk/dbe"
)

// BenchmarkAdmitRelease: one Admit plus its release, with all three limits
// set high enough never to refuse.
func BenchmarkAdmitRelease(b *testing.B) {
	const tenants = 8
	limits := map[string]config.RateLimit{"FREE": {}}
	frames := make([]*dbe.Frame, tenants)
	for i := range frames {
		name := fmt.Sprintf("T%d", i)
		limits[name] = config.RateLimit{RequestsPerMinute: 1 << 30, TokensPerMinute: 1 << 30, MaxConcurrent: 1 << 20}
		frames[i] = chatFrame(name, 200, 64)
	}
	l := ratelimit.New(cfgWith(limits))
	ctx := context.Background()
	run := func(b *testing.B, f *dbe.Frame) {
		b.ReportAllocs()
		for b.Loop() {
			rel, err := l.Admit(ctx, f)
			if err != nil {
				b.Fatal(err)
			}
			rel(100)
		}
	}
	b.Run("limited", func(b *testing.B) { run(b, frames[0]) })
	b.Run("unlimited", func(b *testing.B) { run(b, chatFrame("FREE", 200, 64)) })
	b.Run("parallel/one-tenant", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				rel, _ := l.Admit(ctx, frames[0])
				rel(100)
			}
		})
	})
	b.Run("parallel/many-tenants", func(b *testing.B) {
		b.ReportAllocs()
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			f := frames[next.Add(1)%tenants]
			for pb.Next() {
				rel, _ := l.Admit(ctx, f)
				rel(100)
			}
		})
	})
}
