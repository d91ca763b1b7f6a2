package routersock

import (
	"context"
	"testing"

	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/host/router/routertest"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
)

func benchCalls(b *testing.B, cl *mux.Client, profile string) {
	b.SetParallelism(32) // 64 in flight on 2 cores
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := cl.Call(context.Background(), routertest.ChatReq(profile), func(*dbe.Frame) error { return nil }); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
}

// BenchmarkRouted: client → router endpoint → worker and back, 64 requests
// in flight.
func BenchmarkRouted(b *testing.B) {
	w := routertest.NewWorker(b, "echo", routertest.ReplyHandler)
	r := routertest.NewRouter(b, routertest.Registry{"echo": {w}}, router.Config{})
	cl, _ := dialClient(b, startEndpoint(b, r))
	benchCalls(b, cl, "echo")
}

// BenchmarkDirect: the same client straight to the worker, the baseline.
func BenchmarkDirect(b *testing.B) {
	w := routertest.NewWorker(b, "echo", mux.HandlerFunc(func(ctx context.Context, req *dbe.Frame, rw *mux.ResponseWriter) {
		_ = rw.Send(&dbe.Frame{Type: dbe.MsgChatResp, Flags: dbe.FlagEndStream, Payload: req.Payload})
	}))
	benchCalls(b, w.Client, "echo")
}
