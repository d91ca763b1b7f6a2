package sdk

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"google.golang.org/protobuf/proto"
)

// roleAssistant is the role of every generated message.
const roleAssistant = "assistant"

// MaxTopLogprobs is the most top_logprobs a request may ask for (OpenAI's
// limit).
const MaxTopLogprobs = 20

// serveChat answers one L7_CHAT_REQ.
func (s *Server) serveChat(ctx context.Context, f *dbe.Frame, w *mux.ResponseWriter) {
	start := time.Now()
	cfg := s.ready(w, f, s.chat != nil, "chat")
	if cfg == nil {
		return
	}
	req, err := chatRequest(f, cfg, s.maxChoices())
	if err != nil {
		_ = w.Fail(err)
		return
	}
	out := &chatStream{
		w:       w,
		done:    ctx.Done(),
		ctx:     ctx,
		stream:  req.Params.GetStream(),
		start:   start,
		choices: make([]choiceOut, max(req.Params.GetN(), 1)),
	}
	out.chunk.Id = "chatcmpl-" + hex.EncodeToString(req.RequestID[:])
	out.chunk.DeviceId = uint32(cfg.DeviceID)
	out.frame.Type = dbe.MsgChatChunk
	out.model, out.profile = s.defaultModel(req), req.Profile

	res, err := s.runChat(ctx, req, out)
	out.finish()
	if err != nil {
		s.failRequest(ctx, w, "chat", req.RequestID, err)
		return
	}

	usage := &l7v1.Usage{}
	finish := l7v1.FinishReason_FINISH_REASON_STOP
	model := out.model
	finishes := make([]l7v1.FinishReason, len(out.choices))
	if res != nil {
		if u := res.Usage; u != nil {
			usage.PromptTokens, usage.CompletionTokens, usage.TotalTokens = u.GetPromptTokens(), u.GetCompletionTokens(), u.GetTotalTokens()
			usage.CachedTokens = u.CachedTokens
		}
		if res.FinishReason != l7v1.FinishReason_FINISH_REASON_UNSPECIFIED {
			finish = res.FinishReason
		}
		if res.Model != "" {
			model = res.Model
		}
	}
	for i := range finishes {
		finishes[i] = finish
		if res != nil && i < len(res.Finishes) && res.Finishes[i] != l7v1.FinishReason_FINISH_REASON_UNSPECIFIED {
			finishes[i] = res.Finishes[i]
		}
	}
	if usage.TotalTokens == 0 {
		usage.TotalTokens = usage.PromptTokens + usage.CompletionTokens
	}
	s.countTokens(usage.CompletionTokens)

	if out.stream {
		out.last(finishes, model, usage, req.Params.GetIncludeUsage())
		return
	}
	choices := make([]*l7v1.Choice, len(out.choices))
	for i := range out.choices {
		ch := &out.choices[i]
		choice := &l7v1.Choice{Index: int32(i), FinishReason: finishes[i], Logprobs: ch.lps}
		if req.Params.GetPrompt() != "" {
			choice.Text = ch.text.String()
		} else {
			choice.Message = &l7v1.Message{Role: roleAssistant, Content: ch.text.String(), ToolCalls: ch.calls}
		}
		choices[i] = choice
	}
	resp := &l7v1.L7ChatResponse{
		Id:          out.chunk.Id,
		Model:       model,
		Choices:     choices,
		Usage:       usage,
		DeviceId:    uint32(cfg.DeviceID),
		LatencyMs:   sinceMS(start),
		L7Profile:   req.Profile,
		CreatedUnix: start.Unix(),
	}
	b, err := proto.Marshal(resp)
	if err != nil {
		_ = w.Fail(Errorf(dbe.CodeInternal, "marshal L7ChatResponse: %w", err))
		return
	}
	_ = w.Send(&dbe.Frame{Type: dbe.MsgChatResp, Flags: dbe.FlagEndStream, Payload: b})
}

// maxChoices is the most choices (n) the workload generates per request.
func (s *Server) maxChoices() int {
	if m, ok := s.chat.(MultiChoice); ok {
		return max(m.MaxChoices(), 1)
	}
	return 1
}

// defaultModel is the model a response names unless the workload says
// otherwise: the one asked for, else the plugin's first.
func (s *Server) defaultModel(req *ChatRequest) string { return s.modelName(req.Params.GetModel()) }

// modelName is model, or the plugin's first model when model is empty.
func (s *Server) modelName(model string) string {
	if model != "" {
		return model
	}
	if info := s.info.Load(); info != nil && len(info.Models) > 0 {
		return info.Models[0]
	}
	return ""
}

// ready returns the plugin's configuration for serving request f, or nil
// after failing it: UNKNOWN_MSG_TYPE when the workload does not serve what
// (serves is false), NO_WORKER_AVAILABLE before Configure.
func (s *Server) ready(w *mux.ResponseWriter, f *dbe.Frame, serves bool, what string) *Config {
	if !serves {
		_ = w.Fail(Errorf(dbe.CodeUnknownMsgType, "plugin does not serve %s (%s)", what, f.Type))
		return nil
	}
	cfg := s.configured()
	if cfg == nil {
		_ = w.Fail(&mux.Error{Code: dbe.CodeNoWorkerAvailable, Message: ErrNotConfigured.Error()})
	}
	return cfg
}

// failRequest fails a request the workload could not serve: with the
// context's error when the request ended first, logged when the workload
// itself failed (WORKER_FAILED).
func (s *Server) failRequest(ctx context.Context, w *mux.ResponseWriter, what string, id [16]byte, err error) {
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	e := AsError(err)
	if e.Code == dbe.CodeWorkerFailed {
		s.logger.Warn(what+" failed", "request_id", dbe.FormatUUID(id), "error", err)
	}
	_ = w.Fail(e)
}

// runChat calls the workload, counting it as in flight.
func (s *Server) runChat(ctx context.Context, req *ChatRequest, out *chatStream) (*ChatResult, error) {
	s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	return s.chat.Chat(ctx, req, out)
}

// chatRequest checks an L7_CHAT_REQ frame and builds the ChatRequest.
func chatRequest(f *dbe.Frame, cfg *Config, maxChoices int) (*ChatRequest, error) {
	if err := dbe.CheckRequired(f); err != nil {
		return nil, Errorf(dbe.CodeInvalidRequest, "%w", err)
	}
	params := new(l7v1.L7ChatRequest)
	if err := proto.Unmarshal(f.Payload, params); err != nil {
		return nil, Errorf(dbe.CodeInvalidRequest, "L7ChatRequest payload: %w", err)
	}
	switch {
	case len(params.GetMessages()) == 0 && params.GetPrompt() == "":
		return nil, InvalidParam("messages", "one of messages and prompt is required")
	case len(params.GetMessages()) > 0 && params.GetPrompt() != "":
		return nil, InvalidParam("prompt", "messages and prompt are mutually exclusive")
	case params.GetN() < 0 || params.GetN() > int32(maxChoices):
		if maxChoices > 1 {
			return nil, InvalidParam("n", "n=%d: this plugin generates at most %d choices per request", params.GetN(), maxChoices)
		}
		return nil, InvalidParam("n", "n=%d: this plugin generates one choice per request", params.GetN())
	case params.GetMaxTokens() < 0:
		return nil, InvalidParam("max_tokens", "max_tokens=%d is negative", params.GetMaxTokens())
	case params.GetTopLogprobs() < 0 || params.GetTopLogprobs() > MaxTopLogprobs:
		return nil, InvalidParam("top_logprobs", "top_logprobs=%d is outside 0–%d", params.GetTopLogprobs(), MaxTopLogprobs)
	case params.GetTopLogprobs() > 0 && !params.GetLogprobs():
		return nil, InvalidParam("top_logprobs", "top_logprobs needs logprobs")
	}
	req := &ChatRequest{Params: params}
	req.RequestID, _ = f.RequestID()
	req.TenantID, _ = f.TenantID()
	req.Profile, _ = f.Profile()
	if len(cfg.Profiles) > 0 && !slices.Contains(cfg.Profiles, req.Profile) {
		return nil, Errorf(dbe.CodeNotFound, "profile %q is not served by plugin %q", req.Profile, cfg.Name)
	}
	return req, nil
}

// chatStream is the Stream of one request. When streaming, each Send
// marshals one L7ChatChunk into a buffer reused across chunks and writes it
// in a frame reused across chunks: the session encodes a frame before Send
// returns, so neither is retained. Not streaming, Send collects the text.
type chatStream struct {
	w      *mux.ResponseWriter
	ctx    context.Context
	done   <-chan struct{}
	stream bool
	start  time.Time

	// model and profile go on the first chunk.
	model, profile string

	mu      sync.Mutex
	ended   bool
	sent    int // chunks sent
	choices []choiceOut
	chunk   l7v1.L7ChatChunk
	frame   dbe.Frame
	buf     []byte
}

// choiceOut is what one choice has sent.
type choiceOut struct {
	started bool                 // a chunk of the choice was sent (streaming)
	text    strings.Builder      // the whole answer, when not streaming
	calls   []*l7v1.ToolCall     // the tool calls (their ids and types, streaming)
	lps     []*l7v1.TokenLogprob // the log probabilities, when not streaming
}

var (
	_ ToolCallStream = (*chatStream)(nil)
	_ LogprobStream  = (*chatStream)(nil)
	_ ChoiceStream   = (*chatStream)(nil)
)

// choiceStream is choice index's Stream of a request with several.
type choiceStream struct {
	c     *chatStream
	index int
}

func (s choiceStream) Send(delta string) error { return s.c.sendText(s.index, delta, nil, false) }
func (s choiceStream) SendLogprobs(delta string, lps []*l7v1.TokenLogprob) error {
	return s.c.sendText(s.index, delta, lps, true)
}
func (s choiceStream) SendToolCall(d *l7v1.ToolCallDelta) error { return s.c.sendToolCall(s.index, d) }

// Choice returns choice index's Stream; nil when the request has no such
// choice.
func (c *chatStream) Choice(index int) Stream {
	if index < 0 || index >= len(c.choices) {
		return nil
	}
	return choiceStream{c: c, index: index}
}

// ErrToolCallOrder reports a tool-call delta that does not continue the
// calls sent so far: a new call must take the next index and carry its id
// and name.
var ErrToolCallOrder = errors.New("sdk: tool-call delta out of order")

func (c *chatStream) SendToolCall(d *l7v1.ToolCallDelta) error { return c.sendToolCall(0, d) }

func (c *chatStream) sendToolCall(index int, d *l7v1.ToolCallDelta) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.usable(); err != nil {
		return err
	}
	ch := &c.choices[index]
	n := int32(len(ch.calls))
	switch {
	case d.GetIndex() == n && (d.GetId() == "" || d.GetName() == ""):
		return fmt.Errorf("%w: call %d starts without an id and a name", ErrToolCallOrder, n)
	case d.GetIndex() == n:
		typ := d.GetType()
		if typ == "" {
			typ = "function"
		}
		ch.calls = append(ch.calls, &l7v1.ToolCall{Id: d.GetId(), Type: typ, Name: d.GetName()})
	case d.GetIndex() != n-1 || d.GetId() != "" || d.GetName() != "":
		return fmt.Errorf("%w: index %d after %d calls", ErrToolCallOrder, d.GetIndex(), n)
	}
	call := ch.calls[d.GetIndex()]
	call.ArgumentsJson += d.GetArgumentsJson()
	if !c.stream {
		return nil
	}
	td := &l7v1.ToolCallDelta{Index: d.GetIndex(), Id: d.GetId(), Name: d.GetName(), ArgumentsJson: d.GetArgumentsJson()}
	if td.Id != "" {
		td.Type = call.Type
	}
	c.chunk.Delta = ""
	c.chunk.ToolCalls = []*l7v1.ToolCallDelta{td}
	err := c.sendNext(index)
	c.chunk.ToolCalls = nil
	return err
}

func (c *chatStream) Send(delta string) error { return c.sendText(0, delta, nil, false) }

func (c *chatStream) SendLogprobs(delta string, lps []*l7v1.TokenLogprob) error {
	return c.sendText(0, delta, lps, true)
}

// sendText sends choice index's next delta, with log probabilities when
// withLps (then a delta with log probabilities and no text is sent too).
func (c *chatStream) sendText(index int, delta string, lps []*l7v1.TokenLogprob, withLps bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.usable(); err != nil {
		return err
	}
	if !c.stream {
		ch := &c.choices[index]
		ch.text.WriteString(delta)
		ch.lps = append(ch.lps, lps...)
		return nil
	}
	if delta == "" && (!withLps || len(lps) == 0) {
		return nil
	}
	c.chunk.Delta, c.chunk.Logprobs = delta, lps
	err := c.sendNext(index)
	c.chunk.Logprobs = nil
	return err
}

// usable reports why the stream takes no more deltas (after Chat returned,
// or the request was cancelled), or nil. c.mu is held.
func (c *chatStream) usable() error {
	if c.ended {
		return ErrStreamDone
	}
	select {
	case <-c.done:
		return c.ctx.Err()
	default:
		return nil
	}
}

// sendNext writes the current chunk as the stream's next, of choice
// index: with the first-chunk fields when it is the first, the role on
// the choice's first. c.mu is held.
func (c *chatStream) sendNext(index int) error {
	c.chunk.Index = int32(index)
	if c.sent == 0 {
		c.firstFields(true)
	}
	if !c.choices[index].started {
		c.chunk.Role, c.choices[index].started = roleAssistant, true
	}
	err := c.send(0)
	if c.sent == 0 {
		c.firstFields(false)
	}
	c.chunk.Role = ""
	c.sent++
	return err
}

// firstFields sets or clears the fields only the first chunk carries.
func (c *chatStream) firstFields(set bool) {
	if set {
		c.chunk.CreatedUnix, c.chunk.Model, c.chunk.L7Profile = c.start.Unix(), c.model, c.profile
		return
	}
	c.chunk.CreatedUnix, c.chunk.Model, c.chunk.L7Profile = 0, "", ""
}

// send writes the current chunk.
func (c *chatStream) send(flags dbe.Flags) error {
	c.chunk.LatencyMs = sinceMS(c.start)
	b, err := proto.MarshalOptions{}.MarshalAppend(c.buf[:0], &c.chunk)
	if err != nil {
		return Errorf(dbe.CodeInternal, "marshal L7ChatChunk: %w", err)
	}
	c.buf = b
	c.frame.Flags = flags
	c.frame.Payload = b
	return c.w.Send(&c.frame)
}

// finish makes later Sends fail.
func (c *chatStream) finish() {
	c.mu.Lock()
	c.ended = true
	c.mu.Unlock()
}

// last writes the final chunk of each choice of a stream: its finish
// reason and the model that answered; the stream's last also usage when
// asked for, and END_STREAM. When no delta was sent the first is also the
// stream's first chunk.
func (c *chatStream) last(finishes []l7v1.FinishReason, model string, usage *l7v1.Usage, withUsage bool) {
	for i, finish := range finishes {
		if c.sent == 0 {
			c.firstFields(true)
		}
		c.chunk.Index = int32(i)
		c.chunk.Role = ""
		if !c.choices[i].started {
			c.chunk.Role, c.choices[i].started = roleAssistant, true
		}
		c.chunk.Delta = ""
		c.chunk.FinishReason = finish
		c.chunk.Model = model
		flags := dbe.Flags(0)
		if i == len(finishes)-1 {
			flags = dbe.FlagEndStream
			if withUsage {
				c.chunk.Usage = usage
			}
		}
		_ = c.send(flags)
		c.sent++
	}
}

func sinceMS(t time.Time) float32 { return float32(time.Since(t).Seconds() * 1e3) }

// RefuseStructured is the answer of a workload that cannot constrain its
// output to a request that asks it to: a response_format other than text,
// or tools the model must or may call (tool_choice other than "none"). The
// error is a 400 naming the parameter and the model; nil when the request
// asks for free text.
func RefuseStructured(p *l7v1.L7ChatRequest, model string) error {
	if t := p.GetResponseFormat().GetType(); t != "" && t != "text" {
		return InvalidParam("response_format", "model %q cannot constrain its output: response_format %s is not supported", model, t)
	}
	if len(p.GetTools()) > 0 && p.GetToolChoice().GetMode() != l7v1.ToolChoiceMode_TOOL_CHOICE_MODE_NONE {
		return InvalidParam("tools", "model %q cannot call tools", model)
	}
	return nil
}

// RefuseLogprobs is the answer of a workload that does not return log
// probabilities to a request that asks for them: a 400 naming logprobs (or
// top_logprobs) and the model; nil when the request does not ask.
func RefuseLogprobs(p *l7v1.L7ChatRequest, model string) error {
	switch {
	case p.GetLogprobs():
		return InvalidParam("logprobs", "model %q does not return log probabilities", model)
	case p.GetTopLogprobs() != 0:
		return InvalidParam("top_logprobs", "model %q does not return log probabilities", model)
	}
	return nil
}
