package shim

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
)

// stream serves a request with "stream": true as server-sent events. The
// router hands the response frames, decoded, to this goroutine through a
// reply (see Server.forward), so that it alone writes the response and can
// send keep-alive comments while it waits. Response headers go out with the
// first event: an error before it is still a plain HTTP error.
func (s *Server) stream(ctx context.Context, w http.ResponseWriter, rq *request, call *chatCall, f *dbe.Frame) {
	rp := s.forward(ctx, f)
	defer rp.cancel() // a generation still running is cancelled in the plugin

	out := &sseWriter{w: w, rc: http.NewResponseController(w)}
	st := &streamer{call: call, id: responseID(call.endpoint, rq.id), created: rq.start.Unix(), roleSent: map[int32]bool{}, finished: map[int32]bool{}, offset: map[int32]int{}}
	interval := s.cfg.Shim.KeepaliveInterval
	keepalive := time.NewTimer(interval)
	defer keepalive.Stop()
	for {
		evs, tick, gone := rp.wait(keepalive.C)
		switch {
		case gone:
			s.streamError(out, rq, asDBEError(ctx.Err()))
			return
		case tick:
			if !out.comment("keep-alive") {
				return
			}
			keepalive.Reset(interval)
			continue
		}
		for _, ev := range evs {
			if ev.resp != nil {
				ev.err = &mux.Error{Code: dbe.CodeWorkerFailed, Message: "the worker sent a whole answer to a stream request"}
			}
			if ev.err != nil {
				s.streamError(out, rq, ev.err)
				return
			}
			for _, c := range st.chunks(ev.chunk) {
				if !out.data(c) {
					return
				}
			}
			if ev.end {
				for _, c := range st.end() {
					if !out.data(c) {
						return
					}
				}
				out.done()
				return
			}
		}
		keepalive.Reset(interval)
	}
}

// streamError reports an error: as the HTTP response when nothing has been
// sent yet, else as a data event carrying the error body, then [DONE].
// (When the client has gone away the writes fail quietly.)
func (s *Server) streamError(out *sseWriter, rq *request, derr *mux.Error) {
	e := s.httpError(rq, derr)
	s.logFailure(rq, derr, e)
	if !out.started {
		writeError(out.w, e)
		return
	}
	out.data(e.body())
	out.done()
}

// sseWriter writes a text/event-stream response, flushing every event.
type sseWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
	broken  bool // a write failed: the client is gone
	buf     []byte
}

func (o *sseWriter) write(b []byte) bool {
	if o.broken {
		return false
	}
	if !o.started {
		h := o.w.Header()
		h.Set("Content-Type", "text/event-stream; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		o.w.WriteHeader(http.StatusOK)
		o.started = true
	}
	if _, err := o.w.Write(b); err != nil {
		o.broken = true
		return false
	}
	if err := o.rc.Flush(); err != nil {
		o.broken = true
		return false
	}
	return true
}

// data sends v as one "data:" event.
func (o *sseWriter) data(v any) bool {
	b, err := json.Marshal(v)
	if err != nil {
		panic("shim: marshal stream event: " + err.Error()) // a bug
	}
	o.buf = append(append(append(o.buf[:0], "data: "...), b...), "\n\n"...)
	return o.write(o.buf)
}

// comment sends an SSE comment, which clients ignore: a keep-alive.
func (o *sseWriter) comment(text string) bool { return o.write([]byte(": " + text + "\n\n")) }

// done ends the stream the way OpenAI's does.
func (o *sseWriter) done() bool { return o.write([]byte("data: [DONE]\n\n")) }

// streamer turns L7ChatChunks into OpenAI chunks: the role on the first
// delta of each choice, finish_reason null until the choice's last chunk
// (a chunk of its own, with an empty delta), and with include_usage a
// final chunk with no choices and the usage.
type streamer struct {
	call     *chatCall
	id       string
	created  int64
	roleSent map[int32]bool
	finished map[int32]bool
	usage    *l7v1.Usage
	offset   map[int32]int // each choice's text so far, in characters (completions' text_offset)
}

// nullUsage is the "usage": null every chunk but the last carries when
// include_usage is set, as OpenAI sends it.
var nullUsage = json.RawMessage("null")

func (st *streamer) chunk(c choiceJSON) *completion {
	out := &completion{ID: st.id, Object: objects[st.call.endpoint].chunk, Created: st.created,
		Model: st.call.model.ID, Choices: []choiceJSON{c}}
	if st.call.includeUsage {
		out.Usage = nullUsage
	}
	return out
}

func (st *streamer) chunks(c *l7v1.L7ChatChunk) []*completion {
	var out []*completion
	idx := c.GetIndex()
	delta := c.GetDelta()
	var lps any
	if len(c.GetLogprobs()) > 0 {
		off := st.offset[idx]
		lps = toLogprobs(st.call, c.GetLogprobs(), &off)
		st.offset[idx] = off
	}
	if st.call.endpoint == chatEndpoint {
		if calls := c.GetToolCalls(); len(calls) > 0 {
			d := &deltaJSON{ToolCalls: toolCallDeltas(calls)}
			if delta != "" {
				d.Content = &delta
			}
			if !st.roleSent[idx] {
				d.Role, st.roleSent[idx] = "assistant", true
			}
			out = append(out, st.chunk(choiceJSON{Index: idx, Delta: d, Logprobs: lps}))
		} else if !st.roleSent[idx] || delta != "" || lps != nil {
			d := &deltaJSON{Content: &delta}
			if !st.roleSent[idx] {
				d.Role, st.roleSent[idx] = "assistant", true
			}
			out = append(out, st.chunk(choiceJSON{Index: idx, Delta: d, Logprobs: lps}))
		}
	} else if delta != "" || lps != nil {
		out = append(out, st.chunk(choiceJSON{Index: idx, Text: &delta, Logprobs: lps}))
	}
	if c.GetFinishReason() != l7v1.FinishReason_FINISH_REASON_UNSPECIFIED {
		last := st.finish(idx, finishReason(c.GetFinishReason()))
		last.Meta = toMetadata(c.GetDeviceId(), c.GetLatencyMs(), c.GetL7Profile(), st.call.model.Profile)
		out = append(out, last)
	}
	if c.GetUsage() != nil {
		st.usage = c.GetUsage()
	}
	return out
}

// finish is the last chunk of a choice.
func (st *streamer) finish(idx int32, reason string) *completion {
	st.finished[idx] = true
	c := choiceJSON{Index: idx, FinishReason: &reason}
	if st.call.endpoint == chatEndpoint {
		c.Delta = &deltaJSON{}
	} else {
		empty := ""
		c.Text = &empty
	}
	return st.chunk(c)
}

// end is what follows the last frame: a finish for a stream that never
// gave one, and the usage chunk.
func (st *streamer) end() []*completion {
	var out []*completion
	if len(st.finished) == 0 {
		if st.call.endpoint == chatEndpoint && !st.roleSent[0] {
			out = append(out, st.chunks(&l7v1.L7ChatChunk{})...)
		}
		out = append(out, st.finish(0, "stop"))
	}
	if st.call.includeUsage {
		u, _ := json.Marshal(toUsage(st.usage))
		out = append(out, &completion{ID: st.id, Object: objects[st.call.endpoint].chunk, Created: st.created,
			Model: st.call.model.ID, Choices: []choiceJSON{}, Usage: u})
	}
	return out
}
