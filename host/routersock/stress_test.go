package routersock

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/host/router/routertest"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
)

// TestEndpointStress: many concurrent requests through the endpoint all
// complete (no frame is lost between the three sessions).
func TestEndpointStress(t *testing.T) {
	var handled, replied atomic.Int64
	w := routertest.NewWorker(t, "echo", mux.HandlerFunc(func(ctx context.Context, req *dbe.Frame, rw *mux.ResponseWriter) {
		handled.Add(1)
		if err := rw.Send(&dbe.Frame{Type: dbe.MsgChatResp, Flags: dbe.FlagEndStream, Payload: req.Payload}); err == nil {
			replied.Add(1)
		}
	}))
	r := routertest.NewRouter(t, routertest.Registry{"echo": {w}}, router.Config{})
	cl, _ := dialClient(t, startEndpoint(t, r))
	var done atomic.Int64
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	for range 64 {
		wg.Go(func() {
			for range 500 {
				if err := cl.Call(ctx, routertest.ChatReq("echo"), func(*dbe.Frame) error { return nil }); err != nil {
					t.Errorf("call: %v", err)
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	if done.Load() != 64*500 {
		t.Errorf("%d of %d calls completed; router %+v; worker client in flight %d; endpoint client in flight %d",
			done.Load(), 64*500, r.Stats(), w.Client.InFlight(), cl.InFlight())
		t.Logf("worker handled %d replied %d", handled.Load(), replied.Load())
	}
}
