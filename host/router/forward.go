package router

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
)

// AsyncWorker is an optional Worker capability: a call whose response
// frames are delivered by callback (as mux.Client.Go does), so that
// forwarding costs no goroutine per request.
type AsyncWorker interface {
	Worker
	// Go forwards req with the time budget timeout and calls fn for each
	// response frame, in order, without blocking; the final call has a frame
	// with END_STREAM or an error. cancel ends the call (fn then gets
	// context.Canceled) and tells the worker.
	Go(req *dbe.Frame, timeout time.Duration, fn func(f *dbe.Frame, err error)) (cancel func())
}

// Forward is Route's event-driven twin, for connection handlers that must
// not spend a goroutine per request: it runs the checks and hooks at once
// (ctx carries what they need, such as the claim presenter; it does not
// cancel the request),
// then forwards req to an AsyncWorker and returns. out receives every
// response frame (the last with END_STREAM, or an ERROR frame) — possibly
// before Forward returns, and otherwise from the worker session's read
// loop, so out must not block. cancel, for a caller that went away, tells
// the worker and sends nothing more to out. Workers that are not
// AsyncWorkers are served by Route on a goroutine. An L7_POLICY_CHECK is
// answered before Forward returns, as Route answers it.
func (r *Router) Forward(ctx context.Context, req *dbe.Frame, out func(*dbe.Frame)) (cancel func()) {
	if req.Type == dbe.MsgPolicyCheck {
		// Answered at once, on the caller's goroutine: no worker, no quota.
		_ = r.answerCheck(ctx, req, func(f *dbe.Frame) error { out(f); return nil })
		return func() {}
	}
	r.inFlight.Add(1)
	t := &routeTrace{}
	start := time.Now()
	if r.cfg.Observer != nil {
		r.cfg.Observer.Started()
	}
	reqID, _ := req.Get(dbe.TLVRequestID)
	profile, _ := req.Profile()
	var release func(int64)
	finish := func(err error, callerGone bool) {
		if release != nil {
			release(t.prompt + t.completion)
		}
		t.code = mux.CodeOf(err)
		if err == nil {
			r.served.Add(1)
		} else {
			r.failed.Add(1)
			if !callerGone {
				out(mux.ErrorFrame(0, reqID, err))
			}
		}
		if r.cfg.Observer != nil {
			r.cfg.Observer.Finished(profile, t.device, t.code, time.Since(start), t.prompt, t.completion)
		}
		r.inFlight.Add(-1)
	}

	release, err := r.admit(ctx, req)
	if err != nil {
		finish(err, false)
		return func() {}
	}
	w, err := r.pick(profile)
	if err != nil {
		finish(err, false)
		return func() {}
	}
	t.device = w.DeviceID()
	timeout := r.timeout(req)
	fwd := forwardFrame(req, w.DeviceID(), timeout)
	aw, ok := w.(AsyncWorker)
	if !ok {
		// A worker without callbacks: its blocking Call on a goroutine.
		ctx, stop := context.WithCancel(context.Background())
		go func() {
			defer stop()
			ended := false
			err := w.Call(ctx, fwd, func(f *dbe.Frame) error {
				if f.Flags&dbe.FlagEndStream != 0 {
					ended = true
					t.recordUsage(f)
				}
				out(f)
				return nil
			})
			if err == nil && !ended {
				err = mux.Errorf(dbe.CodeWorkerFailed, "%s: %v", w.ID(), ErrNoResponse)
			}
			mapped := workerError(w, err, timeout)
			finish(mapped, ctx.Err() != nil)
		}()
		return stop
	}
	var gone atomic.Bool // the caller cancelled: nobody to tell
	stop := aw.Go(fwd, timeout, func(f *dbe.Frame, err error) {
		if err != nil {
			finish(workerError(w, err, timeout), gone.Load())
			return
		}
		if f.Flags&dbe.FlagEndStream != 0 {
			if release != nil || r.cfg.Observer != nil {
				t.recordUsage(f)
			}
			out(f)
			finish(nil, false)
			return
		}
		out(f)
	})
	return func() {
		gone.Store(true)
		stop()
	}
}
