package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"google.golang.org/protobuf/proto"
)

// probe serves /healthz (the process is up) and /readyz (every configured
// profile has a healthy worker).
func (s *Server) probe(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodGet) {
		return
	}
	if r.URL.Path == "/healthz" {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return
	}
	if s.cfg.Ready != nil {
		if ok, reason := s.cfg.Ready(); !ok {
			writeError(w, &apiError{status: http.StatusServiceUnavailable, typ: typeServer, code: "not_ready",
				message: "not ready: " + reason, retryAfter: defaultRetryAfter})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

type modelJSON struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
	// Accelerator is where the model runs, as its plugin reports ("cpu",
	// "cpu-amx", "npu"; Config.Accelerator), a DSMIL extension; absent
	// when no running plugin has said.
	Accelerator string `json:"accelerator,omitempty"`
}

type modelList struct {
	Object string      `json:"object"`
	Data   []modelJSON `json:"data"`
}

// listModels serves GET /v1/models: the configured models the tenant may
// use, in config order.
func (s *Server) listModels(w http.ResponseWriter, rq *request) {
	list := modelList{Object: "list", Data: []modelJSON{}}
	for _, m := range s.cfg.Models {
		if rq.tenant.AllowsModel(m.ID) {
			list.Data = append(list.Data, s.model(m.ID))
		}
	}
	writeJSON(w, http.StatusOK, list)
}

// getModel serves GET /v1/models/{id}.
func (s *Server) getModel(w http.ResponseWriter, rq *request, id string) {
	if m := s.models[id]; m == nil || !rq.tenant.AllowsModel(id) {
		writeError(w, modelNotFound(id))
		return
	}
	writeJSON(w, http.StatusOK, s.model(id))
}

func (s *Server) model(id string) modelJSON {
	m := s.models[id]
	j := modelJSON{ID: id, Object: "model", Created: s.cfg.ModelsCreated.Unix(), OwnedBy: m.OwnedBy}
	if s.cfg.Accelerator != nil {
		j.Accelerator = s.cfg.Accelerator(m.Profile)
	}
	return j
}

// complete serves POST /v1/chat/completions and /v1/completions.
func (s *Server) complete(w http.ResponseWriter, r *http.Request, rq *request, ep endpoint) {
	body, e := s.readBody(w, r)
	if e != nil {
		writeError(w, e)
		return
	}
	call, e := s.decodeRequest(body, ep, rq.tenant)
	if e != nil {
		writeError(w, e)
		return
	}
	// The request's context ends when the client goes away: the shim then
	// cancels the generation in the plugin. Its deadline is the request's
	// budget in the router.
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Shim.RequestTimeout)
	defer cancel()
	// A model with a vision companion gets its images as transcriptions.
	if call.model.Vision != "" && hasImages(call.params) {
		if derr := s.transcribeImages(ctx, rq, call); derr != nil {
			s.fail(w, rq, derr)
			return
		}
	}
	f, err := s.frame(call, rq.tenant, rq.id, rq.start)
	if err != nil {
		s.fail(w, rq, &mux.Error{Code: dbe.CodeInternal, Message: err.Error()})
		return
	}
	if call.stream {
		s.stream(ctx, w, rq, call, f)
		return
	}
	rp := s.forward(ctx, f)
	defer rp.cancel()
	ev, derr := rp.final(ctx)
	if derr == nil && ev.resp == nil {
		derr = &mux.Error{Code: dbe.CodeWorkerFailed, Message: "the worker streamed an answer to a request that did not ask for a stream"}
	}
	if derr != nil {
		s.fail(w, rq, derr)
		return
	}
	writeJSON(w, http.StatusOK, wholeResponse(call, rq.id, rq.start.Unix(), ev.resp))
}

// reply carries one request's response from the router to the request's
// goroutine, which alone writes the HTTP response: the router delivers
// each frame on its worker session's read loop (router.Router.Forward),
// where put decodes it (or takes the payload the router already decoded)
// and queues it without blocking.
type reply struct {
	ctx    context.Context
	done   <-chan struct{} // ctx.Done() until the deadline passes
	cancel func()          // ends the request in the router and the plugin
	ready  chan struct{}   // events arrived
	mu     sync.Mutex
	events []event
}

// forward hands f to the router.
func (s *Server) forward(ctx context.Context, f *dbe.Frame) *reply {
	rp := &reply{ctx: ctx, done: ctx.Done(), ready: make(chan struct{}, 1)}
	rp.cancel = s.cfg.Router.Forward(ctx, f, rp.put)
	return rp
}

func (rp *reply) put(f *dbe.Frame, payload proto.Message) {
	ev := decodeFrame(f, payload)
	rp.mu.Lock()
	rp.events = append(rp.events, ev)
	rp.mu.Unlock()
	select {
	case rp.ready <- struct{}{}:
	default:
	}
}

// wait returns the events that arrived, in order, the last of the
// response with end set (the router always ends a response with a final
// frame). It also returns when tick fires, and when the client goes away
// (gone: the request is then cancelled). The request's deadline is not
// waited for: the router made it the request's budget, so the router ends
// the request with DEADLINE_EXCEEDED when it passes.
func (rp *reply) wait(tick <-chan time.Time) (evs []event, ticked, gone bool) {
	for {
		select {
		case <-rp.ready:
			rp.mu.Lock()
			evs, rp.events = rp.events, nil
			rp.mu.Unlock()
			if len(evs) > 0 {
				return evs, false, false
			}
		case <-tick:
			return nil, true, false
		case <-rp.done:
			if errors.Is(rp.ctx.Err(), context.DeadlineExceeded) {
				rp.done = nil
				continue
			}
			rp.cancel()
			return nil, false, true
		}
	}
}

// final waits for the end of a response that is one frame (not a stream)
// and returns that frame's event: an ERROR frame, the client going away,
// or more than one frame is an error.
func (rp *reply) final(ctx context.Context) (last event, derr *mux.Error) {
	frames := 0
	for ended := false; !ended; {
		evs, _, gone := rp.wait(nil)
		if gone {
			return event{}, asDBEError(ctx.Err())
		}
		for _, ev := range evs {
			if ev.err != nil {
				derr = ev.err
			} else {
				frames++
				last = ev
			}
			ended = ended || ev.end
		}
	}
	if derr == nil && frames > 1 {
		derr = &mux.Error{Code: dbe.CodeWorkerFailed, Message: "the worker streamed an answer to a request that did not ask for a stream"}
	}
	return last, derr
}

// readBody reads the request body up to ShimConfig.MaxBodyBytes: a larger
// declared length is refused before reading, and a body that grows past
// the limit while it is read (chunked encoding) is cut off there.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *apiError) {
	limit := s.cfg.Shim.MaxBodyBytes
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, tooLarge(limit)
		}
		return nil, invalidRequest("", "invalid_body", "Reading the request body failed: %v", err)
	}
	return b, nil
}

func tooLarge(limit int64) *apiError {
	return &apiError{status: http.StatusRequestEntityTooLarge, typ: typeInvalidRequest, code: "request_too_large",
		message: fmt.Sprintf("The request body is larger than the limit of %d bytes (shim.max_body_bytes).", limit)}
}

// fail sends the HTTP error for a DBE error, logging faults inside the
// plane with the request id.
func (s *Server) fail(w http.ResponseWriter, rq *request, derr *mux.Error) {
	e := s.httpError(rq, derr)
	s.logFailure(rq, derr, e)
	writeError(w, e)
}

// httpError is fromDBE with the limiter's own x-ratelimit-* headers on a
// 429 when the host provides them.
func (s *Server) httpError(rq *request, derr *mux.Error) *apiError {
	e := fromDBE(derr, rq.tenant, rq.idStr)
	if e.rateLimit != nil && s.cfg.RateLimitHeaders != nil && rq.tenant != nil {
		tenant := rq.tenant.Name
		e.headers = func(h http.Header) { s.cfg.RateLimitHeaders(tenant, h) }
	}
	return e
}

func (s *Server) logFailure(rq *request, derr *mux.Error, e *apiError) {
	switch {
	case e.status >= http.StatusInternalServerError && e.status != http.StatusServiceUnavailable:
		s.log.Error("request failed", "request_id", rq.idStr, "status", e.status, "code", derr.Code, "error", derr.Message)
	case e.status == statusClientClosed:
		s.log.Debug("client went away", "request_id", rq.idStr)
	default:
		s.log.Debug("request refused", "request_id", rq.idStr, "status", e.status, "code", derr.Code, "error", derr.Message)
	}
}

// event is one response frame, decoded.
type event struct {
	chunk *l7v1.L7ChatChunk
	resp  *l7v1.L7ChatResponse
	embed *l7v1.L7EmbedResponse
	agent *l7v1.L7AgentResult // a progress frame's (end false) or the task's result
	err   *mux.Error
	end   bool // END_STREAM: the last frame of the response
}

// decodeFrame decodes a response frame; payload, when the router already
// decoded it, is used instead of decoding it again. The result shares
// nothing with the frame, so it may outlive the router's callback.
func decodeFrame(f *dbe.Frame, payload proto.Message) event {
	ev := event{end: f.Flags&dbe.FlagEndStream != 0}
	var err error
	switch f.Type {
	case dbe.MsgError:
		ev.err, ev.end = mux.ParseError(f), true
		return ev
	case dbe.MsgChatResp:
		ev.resp, err = payloadOf[l7v1.L7ChatResponse](f, payload)
	case dbe.MsgChatChunk:
		ev.chunk, err = payloadOf[l7v1.L7ChatChunk](f, payload)
	case dbe.MsgEmbedResp:
		ev.embed, err = payloadOf[l7v1.L7EmbedResponse](f, payload)
	case dbe.MsgAgentResult:
		ev.agent, err = payloadOf[l7v1.L7AgentResult](f, payload)
	default:
		return event{err: &mux.Error{Code: dbe.CodeWorkerFailed, Message: fmt.Sprintf("unexpected %s frame in a response", f.Type)}, end: true}
	}
	if err != nil {
		return event{err: &mux.Error{Code: dbe.CodeWorkerFailed, Message: fmt.Sprintf("unparseable %s payload: %v", f.Type, err)}, end: true}
	}
	return ev
}

// payloadOf is f's payload as a *T: decoded, the one the router already
// decoded, when it is one; else decoded here.
func payloadOf[T any, P interface {
	*T
	proto.Message
}](f *dbe.Frame, decoded proto.Message) (P, error) {
	if p, ok := decoded.(P); ok {
		return p, nil
	}
	p := P(new(T))
	return p, proto.Unmarshal(f.Payload, p)
}

// writeJSON sends v as a JSON response.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("shim: marshal %T: %v", v, err)) // a bug: recovered into a logged 500
	}
	writeJSONBody(w, status, append(b, '\n'))
}

// writeJSONBody sends b, a JSON document, as the response: sized (one
// write, no chunked framing, and the client knows how much to read).
func writeJSONBody(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
