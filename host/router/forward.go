package router

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"google.golang.org/protobuf/proto"
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

// Forward serves one request frame, which it takes ownership of (it may
// change its TLVs and correlation id while forwarding), without spending a
// goroutine on it: it runs the checks and hooks at once, forwards req to
// the worker it picks and returns. It is the router's one request
// lifecycle; Route is a blocking adapter over it.
//
// ctx carries what the hooks need (such as the claim presenter); its
// deadline, if any, shortens the request's time budget, but ending ctx
// does not cancel the request: cancel does.
//
// out receives every response frame in order — possibly before Forward
// returns, otherwise from the worker session's read loop, so out must not
// block — and the last one is final: a frame with END_STREAM, the
// response's last or an ERROR frame. A worker that ends a call without a
// final frame is reported as WORKER_FAILED; that is detected here, once,
// and callers need not check for it. For a response's final frame, payload
// is its payload as the router decoded it to learn the usage
// (*l7v1.L7ChatResponse, *l7v1.L7ChatChunk, *l7v1.L7AgentResult or
// *l7v1.L7EmbedResponse), so
// that the caller need not decode it again; it is nil for every other
// frame, and when the router had no use for the usage (no Limiter, no
// Observer) or could not decode it.
//
// cancel, for a caller that went away, tells the worker and sends nothing
// more to out; the request ends as CANCELLED. An L7_AGENT_TASK is the
// exception: cancel tells the worker, and out still gets the task's final
// frame (its L7_AGENT_RESULT with status CANCELLED, or an ERROR). An L7_POLICY_CHECK is
// answered before Forward returns (see PolicyChecker); it reaches no
// worker.
func (r *Router) Forward(ctx context.Context, req *dbe.Frame, out func(f *dbe.Frame, payload proto.Message)) (cancel func()) {
	return r.forward(ctx, req, out, nil)
}

// forward is Forward; done, when not nil, is called once the request has
// ended, after out's last call, with the error it ended with (nil: served).
func (r *Router) forward(ctx context.Context, req *dbe.Frame, out func(*dbe.Frame, proto.Message), done func(error)) (cancel func()) {
	if req.Type == dbe.MsgPolicyCheck {
		// Answered at once, on the caller's goroutine: no worker, no quota.
		err := r.answerCheck(ctx, req, out)
		if done != nil {
			done(err)
		}
		return func() {}
	}
	fl := &flight{r: r, out: out, done: done, start: time.Now()}
	r.inFlight.Add(1)
	if obs := r.cfg.Observer; obs != nil {
		obs.Started()
	}
	fl.reqID, _ = req.Get(dbe.TLVRequestID)
	fl.profile, _ = req.Profile()
	if req.Type == dbe.MsgAgentTask && len(r.cfg.Agents) > 0 {
		fl.agent = agentTask(req)
	}

	release, err := r.admit(ctx, req)
	if err != nil {
		fl.finish(err)
		return func() {}
	}
	fl.release = release
	w, err := r.pick(fl.profile)
	if err != nil {
		fl.finish(err)
		return func() {}
	}
	fl.worker, fl.device = w, w.DeviceID()
	fl.timeout = r.timeout(ctx, req)
	if fl.timeout <= 0 {
		fl.finish(mux.Errorf(dbe.CodeDeadlineExceeded, "the caller's deadline passed before %s was asked", w.ID()))
		return func() {}
	}
	// The deadline travels as TIMEOUT_MS and the worker enforces it (see
	// Worker and AsyncWorker): no timer or context per request here.
	var fwd *dbe.Frame
	if _, remote := w.(RemoteWorker); remote {
		r.remoteClaim(req)
		req.Set(dbe.TLVDeviceIDDst, deviceByte[fl.device:fl.device+1])
		req.SetTimeout(fl.timeout)
		fwd = req
	} else {
		fwd = forwardFrame(req, fl.device, fl.timeout)
	}
	agent := fwd.Type == dbe.MsgAgentTask
	var stop func()
	if aw, ok := w.(AsyncWorker); ok {
		stop = aw.Go(fwd, fl.timeout, fl.deliver)
	} else {
		stop = goCall(w, fwd, fl.timeout, fl.deliver)
	}
	if agent {
		// A cancelled agent task still ends with its final frame: the
		// L7_AGENT_RESULT with status CANCELLED and the partial
		// transcript, or ERROR CANCELLED from a worker that does not
		// answer in time (pluginmgr.AgentCancelGrace).
		return stop
	}
	return func() {
		fl.gone.Store(true)
		stop()
	}
}

// flight is one request on its way through the router, from admission to
// its final frame.
type flight struct {
	r       *Router
	out     func(*dbe.Frame, proto.Message)
	done    func(error)
	start   time.Time
	reqID   []byte
	profile string
	release func(usedTokens int64)
	worker  Worker
	device  uint8
	timeout time.Duration
	gone    atomic.Bool // the caller cancelled: nothing more goes to out
	agent   *AgentTask  // an agent task, when Config.Agents observe it
	final   proto.Message

	prompt, completion int64 // the usage the final frame reported
}

// deliver takes the worker's frames, as AsyncWorker.Go delivers them.
func (fl *flight) deliver(f *dbe.Frame, err error) {
	if err != nil {
		fl.finish(workerError(fl.worker, err, fl.timeout))
		return
	}
	if f.Flags&dbe.FlagEndStream == 0 {
		if fl.agent != nil {
			fl.observeStep(f)
		}
		if !fl.gone.Load() {
			fl.out(f, nil)
		}
		return
	}
	var payload proto.Message
	if fl.release != nil || fl.r.cfg.Observer != nil || fl.agent != nil {
		payload = decodePayload(f)
		if u, ok := payload.(interface{ GetUsage() *l7v1.Usage }); ok {
			u := u.GetUsage()
			fl.prompt, fl.completion = int64(u.GetPromptTokens()), int64(u.GetCompletionTokens())
		}
	}
	fl.final = payload
	fl.end(nil, f, payload)
}

// finish ends the request with err (non-nil): see end.
func (fl *flight) finish(err error) { fl.end(err, nil, nil) }

// end ends the request: the limiter is reconciled and the counters, the
// observer and the agent's task record are told, and only then does the
// caller get the final frame (or the ERROR frame for err) unless it went
// away. So a client that has seen the end of one request and sends the
// next at once finds its concurrency slot free and the metrics counted.
func (fl *flight) end(err error, final *dbe.Frame, payload proto.Message) {
	r := fl.r
	if fl.release != nil {
		fl.release(fl.prompt + fl.completion)
	}
	if err == nil {
		r.served.Add(1)
	} else {
		r.failed.Add(1)
	}
	if obs := r.cfg.Observer; obs != nil {
		obs.Finished(fl.profile, fl.device, mux.CodeOf(err), time.Since(fl.start), fl.prompt, fl.completion)
	}
	if fl.agent != nil {
		fl.observeEnd(err)
	}
	if !fl.gone.Load() {
		if err != nil {
			fl.out(mux.ErrorFrame(0, fl.reqID, err), nil)
		} else if final != nil {
			fl.out(final, payload)
		}
	}
	r.inFlight.Add(-1)
	if fl.done != nil {
		fl.done(err)
	}
}

// goCall serves a Worker that is not an AsyncWorker: its blocking Call on a
// goroutine, delivering to fn as AsyncWorker.Go does. A Call that returns
// without a final frame is ErrNoResponse. The context also carries the
// time budget, in case the worker does not enforce TIMEOUT_MS.
func goCall(w Worker, req *dbe.Frame, timeout time.Duration, fn func(*dbe.Frame, error)) (cancel func()) {
	ctx, stop := context.WithTimeout(context.Background(), timeout)
	go func() {
		defer stop()
		ended := false
		err := w.Call(ctx, req, func(f *dbe.Frame) error {
			if !ended {
				ended = f.Flags&dbe.FlagEndStream != 0
				fn(f, nil)
			}
			return nil
		})
		if !ended {
			if err == nil {
				err = ErrNoResponse
			}
			fn(nil, err)
		}
	}()
	return stop
}

// decodePayload decodes a final response frame's payload, nil if it has
// none the router knows or it does not decode.
func decodePayload(f *dbe.Frame) proto.Message {
	var m proto.Message
	switch f.Type {
	case dbe.MsgChatResp:
		m = new(l7v1.L7ChatResponse)
	case dbe.MsgChatChunk:
		m = new(l7v1.L7ChatChunk)
	case dbe.MsgAgentResult:
		m = new(l7v1.L7AgentResult)
	case dbe.MsgEmbedResp:
		m = new(l7v1.L7EmbedResponse)
	default:
		return nil
	}
	if proto.Unmarshal(f.Payload, m) != nil {
		return nil
	}
	return m
}
