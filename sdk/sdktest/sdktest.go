package sdktest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dsmil/l7/sdk"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"google.golang.org/protobuf/proto"
)

// CancelWithin is how soon after CANCEL a workload must stop.
const CancelWithin = time.Second

// DefaultProfile is the profile requests use when neither the Config nor
// the workload's Info names one.
const DefaultProfile = "sdktest"

// Option changes what Run checks.
type Option func(*options)

type options struct {
	nondeterministic bool
	skipCancel       bool
	req              *l7v1.L7ChatRequest
	cancelReq        *l7v1.L7ChatRequest
}

// Nondeterministic skips the check that a streamed answer equals the
// non-streamed answer to the same request, for workloads that sample.
func Nondeterministic() Option { return func(o *options) { o.nondeterministic = true } }

// WithRequest sets the chat request the chat checks send; Run sets its
// stream and include_usage fields per check. The default asks for a short
// greeting with max_tokens 64.
func WithRequest(req *l7v1.L7ChatRequest) Option { return func(o *options) { o.req = req } }

// WithCancelRequest sets the request of the cancellation check. It should
// keep the workload generating for well over a second, so that the CANCEL
// sent after the first chunk arrives mid-stream; when the stream ends
// normally first, the check is inconclusive and says so in the log.
func WithCancelRequest(req *l7v1.L7ChatRequest) Option { return func(o *options) { o.cancelReq = req } }

// SkipCancel skips the cancellation check.
func SkipCancel() Option { return func(o *options) { o.skipCancel = true } }

// Run checks that w behaves as a DSMIL L7 plugin, through the real SDK data
// path and Control service (see Connect): Info is well-formed, Configure
// accepts cfg, Health and Status are sane, HEALTH frames are answered with
// L7_MODEL_STATUS, and an unknown message type with UNKNOWN_MSG_TYPE. If w
// is an sdk.Chatter it also checks a non-streamed chat (L7_CHAT_RESP with
// content and usage), a legacy prompt, a streamed chat (chunks carrying
// REQUEST_ID, role on the first, finish_reason and usage on the last only,
// the same text as the non-streamed answer) and that CANCEL mid-stream
// stops the workload within CancelWithin; if it is not, it checks that chat
// requests are refused with UNKNOWN_MSG_TYPE. A nil cfg configures the
// device and profiles of w's Info.
func Run(t *testing.T, w sdk.Workload, cfg *sdk.Config, opts ...Option) {
	t.Helper()
	o := options{}
	for _, opt := range opts {
		opt(&o)
	}
	if o.req == nil {
		o.req = &l7v1.L7ChatRequest{
			Messages: []*l7v1.Message{
				{Role: "system", Content: "You are being tested by the DSMIL L7 conformance harness."},
				{Role: "user", Content: "Say hello to the conformance harness."},
			},
			MaxTokens: 64,
		}
	}
	if o.cancelReq == nil {
		o.cancelReq = &l7v1.L7ChatRequest{
			Messages:  []*l7v1.Message{{Role: "user", Content: "Count from one to two thousand, in words."}},
			MaxTokens: 8192,
		}
	}
	c := Connect(t, w)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r := &runner{c: c, o: o, w: w}
	_, r.chatter = w.(sdk.Chatter)
	_, r.reporter = w.(sdk.StatusReporter)

	if !t.Run("Info", func(t *testing.T) { r.info(ctx, t) }) {
		return
	}
	if cfg == nil {
		cfg = &sdk.Config{Name: r.infoV.Name, DeviceID: r.infoV.DeviceID, Profiles: r.infoV.Profiles}
	}
	r.cfg = cfg
	r.profile = DefaultProfile
	switch {
	case len(cfg.Profiles) > 0:
		r.profile = cfg.Profiles[0]
	case len(r.infoV.Profiles) > 0:
		r.profile = r.infoV.Profiles[0]
	}
	if !t.Run("Configure", func(t *testing.T) {
		if err := c.Control.Configure(ctx, cfg); err != nil {
			t.Fatalf("Configure(%+v): %v", cfg, err)
		}
	}) {
		return
	}
	t.Run("Health", func(t *testing.T) {
		if err := c.Control.Health(ctx); err != nil {
			t.Fatalf("Health: %v", err)
		}
	})
	t.Run("Status", func(t *testing.T) {
		st, err := c.Control.Status(ctx)
		if err != nil {
			t.Fatalf("Status: %v", err)
		}
		r.checkStatus(t, st)
	})
	t.Run("HealthFrame", func(t *testing.T) { r.healthFrame(ctx, t) })
	t.Run("UnknownMsgType", func(t *testing.T) {
		_, err := Call(ctx, c.Client, &dbe.Frame{Type: dbe.MsgType(0x9e)})
		if got := mux.CodeOf(err); got != dbe.CodeUnknownMsgType {
			t.Fatalf("frame of type 0x9e: got %v (%v), want ERROR UNKNOWN_MSG_TYPE", got, err)
		}
	})
	if !r.chatter {
		t.Run("ChatRefused", func(t *testing.T) {
			f, _ := ChatFrame(r.profile, o.req)
			_, err := Call(ctx, c.Client, f)
			if got := mux.CodeOf(err); got != dbe.CodeUnknownMsgType {
				t.Fatalf("L7_CHAT_REQ to a workload without chat: got %v (%v), want ERROR UNKNOWN_MSG_TYPE", got, err)
			}
		})
		return
	}
	var text string
	var usage *l7v1.Usage
	t.Run("Chat", func(t *testing.T) { text, usage = r.chat(ctx, t) })
	t.Run("Prompt", func(t *testing.T) { r.prompt(ctx, t) })
	t.Run("Stream", func(t *testing.T) { r.stream(ctx, t, text, usage) })
	if !o.skipCancel {
		t.Run("Cancel", func(t *testing.T) { r.cancel(ctx, t) })
	}
	t.Run("TokensCounted", func(t *testing.T) {
		st, err := c.Control.Status(ctx)
		if err != nil {
			t.Fatalf("Status: %v", err)
		}
		r.checkStatus(t, st)
		if !r.reporter && st.GetTokensGeneratedTotal() < uint64(r.tokens) {
			t.Errorf("tokens_generated_total = %d, but responses reported %d completion tokens", st.GetTokensGeneratedTotal(), r.tokens)
		}
	})
}

type runner struct {
	c        *Conn
	o        options
	w        sdk.Workload
	chatter  bool
	reporter bool
	infoV    *sdk.PluginInfo
	cfg      *sdk.Config
	profile  string
	tokens   uint32 // completion tokens reported so far
}

func (r *runner) info(ctx context.Context, t *testing.T) {
	info, err := r.c.Control.Info(ctx)
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	if err := info.Validate(); err != nil {
		t.Fatal(err)
	}
	if r.chatter != info.Has(sdk.CapChat) {
		t.Fatalf("the workload implements sdk.Chatter: %v, but declares capability %q: %v", r.chatter, sdk.CapChat, info.Has(sdk.CapChat))
	}
	r.infoV = info
}

func (r *runner) checkStatus(t *testing.T, st *l7v1.L7ModelStatus) {
	t.Helper()
	if st.GetPlugin() != r.infoV.Name {
		t.Errorf("status plugin = %q, want %q", st.GetPlugin(), r.infoV.Name)
	}
	if !st.GetHealthy() {
		t.Errorf("status unhealthy: %s", st.GetHealthMessage())
	}
	if l := st.GetLoad(); !(l >= 0 && l <= 1) {
		t.Errorf("status load = %v, want 0-1", l)
	}
	if st.GetDeviceId() != uint32(r.cfg.DeviceID) {
		t.Errorf("status device_id = %d, want the configured %d", st.GetDeviceId(), r.cfg.DeviceID)
	}
}

func (r *runner) healthFrame(ctx context.Context, t *testing.T) {
	frames, err := Call(ctx, r.c.Client, &dbe.Frame{Type: dbe.MsgHealth})
	if err != nil {
		t.Fatalf("HEALTH: %v", err)
	}
	if len(frames) != 1 || frames[0].Type != dbe.MsgModelStatus || frames[0].Flags&dbe.FlagEndStream == 0 {
		t.Fatalf("HEALTH answered with %s, want one L7_MODEL_STATUS with END_STREAM", describe(frames))
	}
	var st l7v1.L7ModelStatus
	if err := proto.Unmarshal(frames[0].Payload, &st); err != nil {
		t.Fatalf("L7_MODEL_STATUS payload: %v", err)
	}
	r.checkStatus(t, &st)
}

// request returns a copy of the configured request for one check.
func (r *runner) request(stream bool) *l7v1.L7ChatRequest {
	p := proto.CloneOf(r.o.req)
	p.Stream, p.IncludeUsage = stream, stream
	return p
}

// send sends p and checks REQUEST_ID on every response frame.
func (r *runner) send(ctx context.Context, t *testing.T, p *l7v1.L7ChatRequest) []*dbe.Frame {
	t.Helper()
	f, id := ChatFrame(r.profile, p)
	frames, err := Call(ctx, r.c.Client, f)
	if err != nil {
		t.Fatalf("L7_CHAT_REQ: %v", err)
	}
	for i, fr := range frames {
		if got, ok := fr.RequestID(); !ok || got != id {
			t.Errorf("frame %d (%s) carries REQUEST_ID %x, want %x", i, fr.Type, got, id)
		}
	}
	return frames
}

func (r *runner) chat(ctx context.Context, t *testing.T) (string, *l7v1.Usage) {
	frames := r.send(ctx, t, r.request(false))
	resp := r.response(t, frames)
	ch := resp.GetChoices()[0]
	if ch.GetMessage().GetRole() != "assistant" || ch.GetMessage().GetContent() == "" || ch.GetText() != "" {
		t.Errorf("choice = %v, want an assistant message with content", ch)
	}
	return ch.GetMessage().GetContent(), resp.GetUsage()
}

func (r *runner) prompt(ctx context.Context, t *testing.T) {
	p := r.request(false)
	var sb strings.Builder
	for _, m := range p.GetMessages() {
		sb.WriteString(m.GetContent())
		sb.WriteString("\n")
	}
	p.Messages, p.Prompt = nil, sb.String()
	resp := r.response(t, r.send(ctx, t, p))
	if ch := resp.GetChoices()[0]; ch.GetText() == "" || ch.GetMessage() != nil {
		t.Errorf("choice to a prompt = %v, want text and no message", ch)
	}
}

// response checks a non-streamed answer and decodes it.
func (r *runner) response(t *testing.T, frames []*dbe.Frame) *l7v1.L7ChatResponse {
	t.Helper()
	if len(frames) != 1 || frames[0].Type != dbe.MsgChatResp || frames[0].Flags&dbe.FlagEndStream == 0 {
		t.Fatalf("non-streamed chat answered with %s, want one L7_CHAT_RESP with END_STREAM", describe(frames))
	}
	var resp l7v1.L7ChatResponse
	if err := proto.Unmarshal(frames[0].Payload, &resp); err != nil {
		t.Fatalf("L7_CHAT_RESP payload: %v", err)
	}
	if len(resp.GetChoices()) != 1 {
		t.Fatalf("%d choices, want 1", len(resp.GetChoices()))
	}
	if resp.GetId() == "" {
		t.Error("response without id")
	}
	if fr := resp.GetChoices()[0].GetFinishReason(); fr == l7v1.FinishReason_FINISH_REASON_UNSPECIFIED {
		t.Error("response without finish_reason")
	}
	r.checkUsage(t, resp.GetUsage())
	if resp.GetDeviceId() != uint32(r.cfg.DeviceID) {
		t.Errorf("device_id = %d, want the configured %d", resp.GetDeviceId(), r.cfg.DeviceID)
	}
	if resp.GetL7Profile() != r.profile {
		t.Errorf("l7_profile = %q, want %q", resp.GetL7Profile(), r.profile)
	}
	return &resp
}

func (r *runner) checkUsage(t *testing.T, u *l7v1.Usage) {
	t.Helper()
	switch {
	case u == nil:
		t.Error("no usage")
	case u.GetCompletionTokens() == 0:
		t.Errorf("usage %v: no completion tokens", u)
	case u.GetTotalTokens() != u.GetPromptTokens()+u.GetCompletionTokens():
		t.Errorf("usage %v: total is not prompt + completion", u)
	default:
		r.tokens += u.GetCompletionTokens()
	}
}

func (r *runner) stream(ctx context.Context, t *testing.T, want string, wantUsage *l7v1.Usage) {
	frames := r.send(ctx, t, r.request(true))
	if len(frames) == 0 {
		t.Fatal("empty stream")
	}
	var sb strings.Builder
	var id string
	for i, f := range frames {
		last := i == len(frames)-1
		if f.Type != dbe.MsgChatChunk {
			t.Fatalf("stream frame %d is %s, want L7_CHAT_CHUNK", i, f.Type)
		}
		if (f.Flags&dbe.FlagEndStream != 0) != last {
			t.Errorf("chunk %d of %d: END_STREAM = %v", i, len(frames), !last)
		}
		var ch l7v1.L7ChatChunk
		if err := proto.Unmarshal(f.Payload, &ch); err != nil {
			t.Fatalf("chunk %d payload: %v", i, err)
		}
		if i == 0 {
			id = ch.GetId()
			if ch.GetRole() != "assistant" {
				t.Errorf("first chunk role = %q, want assistant", ch.GetRole())
			}
		}
		if ch.GetId() == "" || ch.GetId() != id {
			t.Errorf("chunk %d id = %q, want %q on every chunk", i, ch.GetId(), id)
		}
		if ch.GetIndex() != 0 {
			t.Errorf("chunk %d index = %d", i, ch.GetIndex())
		}
		if fr := ch.GetFinishReason(); (fr != l7v1.FinishReason_FINISH_REASON_UNSPECIFIED) != last {
			t.Errorf("chunk %d of %d: finish_reason %v (only the last chunk has one)", i, len(frames), fr)
		}
		if last {
			r.checkUsage(t, ch.GetUsage())
		} else if ch.GetUsage() != nil {
			t.Errorf("chunk %d carries usage; only the last may", i)
		}
		sb.WriteString(ch.GetDelta())
	}
	if sb.Len() == 0 {
		t.Error("streamed answer is empty")
	}
	if r.o.nondeterministic {
		return
	}
	if sb.String() != want {
		t.Errorf("streamed answer differs from the non-streamed one:\nstream: %q\nsingle: %q", sb.String(), want)
	}
	var last l7v1.L7ChatChunk
	_ = proto.Unmarshal(frames[len(frames)-1].Payload, &last)
	if wantUsage != nil && last.GetUsage().GetCompletionTokens() != wantUsage.GetCompletionTokens() {
		t.Errorf("streamed usage %v differs from non-streamed %v", last.GetUsage(), wantUsage)
	}
}

func (r *runner) cancel(ctx context.Context, t *testing.T) {
	p := proto.CloneOf(r.o.cancelReq)
	p.Stream = true
	f, _ := ChatFrame(r.profile, p)
	var cancelled time.Time
	chunks := 0
	err := r.c.Client.Call(ctx, f, func(fr *dbe.Frame) error {
		chunks++
		if cancelled.IsZero() {
			cancelled = time.Now()
			return r.c.Session.Send(&dbe.Frame{Type: dbe.MsgCancel, CorrelationID: fr.CorrelationID})
		}
		return nil
	})
	ended := time.Since(cancelled)
	var e *mux.Error
	switch {
	case cancelled.IsZero():
		t.Fatalf("no chunk before the end of the stream: %v", err)
	case err == nil && ended <= CancelWithin:
		t.Logf("inconclusive: the stream ended normally %v after CANCEL (%d chunks); "+
			"give Run a slower request with WithCancelRequest", ended, chunks)
	case err == nil:
		t.Errorf("the stream went on for %v after CANCEL (%d chunks), want at most %v", ended, chunks, CancelWithin)
	case !errors.As(err, &e) || e.Code != dbe.CodeCancelled:
		t.Errorf("cancelled stream ended with %v (%v), want ERROR CANCELLED", mux.CodeOf(err), err)
	case ended > CancelWithin:
		t.Errorf("ERROR CANCELLED came %v after CANCEL, want at most %v", ended, CancelWithin)
	}
	deadline := time.Now().Add(CancelWithin)
	for r.c.Server.InFlight() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the workload's Chat is still running %v after CANCEL", time.Since(cancelled))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// describe lists frame types for failure messages.
func describe(frames []*dbe.Frame) string {
	if len(frames) == 0 {
		return "no frames"
	}
	s := make([]string, len(frames))
	for i, f := range frames {
		s[i] = f.Type.String()
		if f.Flags&dbe.FlagEndStream != 0 {
			s[i] += "(END_STREAM)"
		}
	}
	return strings.Join(s, ", ")
}
