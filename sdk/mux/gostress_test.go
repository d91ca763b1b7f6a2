package mux_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
)

func TestGoStress(t *testing.T) {
	c, _, _, _ := pair(t, mux.HandlerFunc(func(ctx context.Context, req *dbe.Frame, w *mux.ResponseWriter) {
		_ = w.Send(&dbe.Frame{Type: dbe.MsgChatResp, Flags: dbe.FlagEndStream})
	}))
	var wg sync.WaitGroup
	var mu sync.Mutex
	lost := 0
	for range 64 {
		wg.Go(func() {
			for range 500 {
				done := make(chan error, 1)
				c.Go(reqFrame(), time.Minute, func(f *dbe.Frame, err error) {
					if err != nil || f.Flags&dbe.FlagEndStream != 0 {
						done <- err
					}
				})
				select {
				case <-done:
				case <-time.After(5 * time.Second):
					mu.Lock()
					lost++
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if lost > 0 {
		t.Fatalf("%d calls lost", lost)
	}
}
