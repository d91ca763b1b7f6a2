package sdk_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/dsmil/l7/sdk"
	"github.com/dsmil/l7/sdk/dbe"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"github.com/dsmil/l7/sdk/sdktest"
)

// BenchmarkStreamedChunks measures the data path per streamed chunk: the
// workload's Send, marshalling, framing, the Unix socket and the host end's
// decoding. One op is one request of 1000 chunks; ns/chunk and
// allocs/chunk are reported too.
func BenchmarkStreamedChunks(b *testing.B) {
	const perRequest = 1000
	c := sdktest.Connect(b, &chatter{chat: func(ctx context.Context, req *sdk.ChatRequest, out sdk.Stream) (*sdk.ChatResult, error) {
		for range perRequest {
			if err := out.Send(" token"); err != nil {
				return nil, err
			}
		}
		return &sdk.ChatResult{Usage: &l7v1.Usage{CompletionTokens: perRequest}}, nil
	}})
	if err := c.Control.Configure(context.Background(), cfg); err != nil {
		b.Fatal(err)
	}
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	for b.Loop() {
		f, _ := sdktest.ChatFrame("p1", chatReq(true))
		n := 0
		err := c.Client.Call(context.Background(), f, func(*dbe.Frame) error { n++; return nil })
		if err != nil || n != perRequest+1 {
			b.Fatalf("%d frames, %v", n, err)
		}
	}
	runtime.ReadMemStats(&ms1)
	chunks := float64(b.N * perRequest)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/chunks, "ns/chunk")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/chunks, "allocs/chunk")
}

// BenchmarkChatRequests measures whole non-streamed requests through the
// SDK's data path with 64 in flight: what bounds a plugin's request rate.
func BenchmarkChatRequests(b *testing.B) {
	c := sdktest.Connect(b, &chatter{chat: func(ctx context.Context, req *sdk.ChatRequest, out sdk.Stream) (*sdk.ChatResult, error) {
		if err := out.Send("pong"); err != nil {
			return nil, err
		}
		return &sdk.ChatResult{Usage: &l7v1.Usage{PromptTokens: 1, CompletionTokens: 1, TotalTokens: 2}}, nil
	}})
	if err := c.Control.Configure(context.Background(), cfg); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(32)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			f, _ := sdktest.ChatFrame("p1", chatReq(false))
			if err := c.Client.Call(context.Background(), f, func(*dbe.Frame) error { return nil }); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
