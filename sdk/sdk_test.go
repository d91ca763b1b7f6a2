package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsmil/l7/sdk"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"github.com/dsmil/l7/sdk/sdktest"
	"google.golang.org/protobuf/proto"
)

// basic is a Workload with no optional capability.
type basic struct {
	healthErr    error
	configureErr error
}

func (b *basic) Info(context.Context) (*sdk.PluginInfo, error) {
	return &sdk.PluginInfo{Name: "basic", Version: "1.0.0", APIVersions: []uint32{sdk.APIVersion}, DeviceID: 5}, nil
}
func (b *basic) Configure(context.Context, *sdk.Config) error { return b.configureErr }
func (b *basic) Health(context.Context) error                 { return b.healthErr }

var _ sdk.Workload = (*basic)(nil)

// chatter is a Workload whose Chat is a function.
type chatter struct {
	basic
	chat func(ctx context.Context, req *sdk.ChatRequest, out sdk.Stream) (*sdk.ChatResult, error)
}

func (c *chatter) Info(ctx context.Context) (*sdk.PluginInfo, error) {
	i, _ := c.basic.Info(ctx)
	i.Name, i.Capabilities, i.Models = "chatter", []sdk.Capability{sdk.CapChat, sdk.CapStream}, []string{"m1"}
	return i, nil
}

func (c *chatter) Chat(ctx context.Context, req *sdk.ChatRequest, out sdk.Stream) (*sdk.ChatResult, error) {
	return c.chat(ctx, req, out)
}

var _ sdk.Chatter = (*chatter)(nil)

// words answers with its words, one delta each, and counts them.
func words(text string) func(context.Context, *sdk.ChatRequest, sdk.Stream) (*sdk.ChatResult, error) {
	return func(ctx context.Context, req *sdk.ChatRequest, out sdk.Stream) (*sdk.ChatResult, error) {
		w := strings.Fields(text)
		for i, x := range w {
			if i > 0 {
				x = " " + x
			}
			if err := out.Send(x); err != nil {
				return nil, err
			}
		}
		return &sdk.ChatResult{Usage: &l7v1.Usage{PromptTokens: 1, CompletionTokens: uint32(len(w))}}, nil
	}
}

func TestConformanceChatter(t *testing.T) {
	sdktest.Run(t, &chatter{chat: words("hello conformance harness")}, nil, sdktest.SkipCancel())
}

func TestConformanceBasic(t *testing.T) {
	sdktest.Run(t, &basic{}, nil)
}

var cfg = &sdk.Config{Name: "t", DeviceID: 7, Profiles: []string{"p1"}}

func connect(t *testing.T, w sdk.Workload) *sdktest.Conn {
	t.Helper()
	c := sdktest.Connect(t, w)
	if err := c.Control.Configure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	return c
}

func chatReq(stream bool) *l7v1.L7ChatRequest {
	return &l7v1.L7ChatRequest{Messages: []*l7v1.Message{{Role: "user", Content: "hi"}}, Stream: stream, IncludeUsage: stream}
}

func TestChatBeforeConfigure(t *testing.T) {
	c := sdktest.Connect(t, &chatter{chat: words("x")})
	f, _ := sdktest.ChatFrame("p1", chatReq(false))
	_, err := sdktest.Call(context.Background(), c.Client, f)
	if mux.CodeOf(err) != dbe.CodeNoWorkerAvailable {
		t.Fatalf("err %v", err)
	}
	if err := c.Control.Health(context.Background()); !errors.Is(err, sdk.ErrUnhealthy) {
		t.Fatalf("health before configure: %v", err)
	}
}

func TestRequestValidation(t *testing.T) {
	c := connect(t, &chatter{chat: words("x")})
	good := func() *dbe.Frame { f, _ := sdktest.ChatFrame("p1", chatReq(false)); return f }
	for _, tc := range []struct {
		name      string
		frame     func() *dbe.Frame
		code      dbe.Code
		wantParam string
	}{
		{"missing tenant", func() *dbe.Frame { f := good(); f.Del(dbe.TLVTenantID); return f }, dbe.CodeInvalidRequest, ""},
		{"bad payload", func() *dbe.Frame { f := good(); f.Payload = []byte{0xff, 0xff}; return f }, dbe.CodeInvalidRequest, ""},
		{"no messages", func() *dbe.Frame { f, _ := sdktest.ChatFrame("p1", &l7v1.L7ChatRequest{}); return f }, dbe.CodeInvalidRequest, "messages"},
		{"messages and prompt", func() *dbe.Frame {
			p := chatReq(false)
			p.Prompt = "x"
			f, _ := sdktest.ChatFrame("p1", p)
			return f
		}, dbe.CodeInvalidRequest, "prompt"},
		{"n=2", func() *dbe.Frame {
			p := chatReq(false)
			p.N = 2
			f, _ := sdktest.ChatFrame("p1", p)
			return f
		}, dbe.CodeInvalidRequest, "n"},
		{"foreign profile", func() *dbe.Frame { f, _ := sdktest.ChatFrame("p2", chatReq(false)); return f }, dbe.CodeNotFound, ""},
		{"response type", func() *dbe.Frame { f := good(); f.Type = dbe.MsgChatChunk; return f }, dbe.CodeInvalidRequest, ""},
		{"agent task", func() *dbe.Frame { f := good(); f.Type = dbe.MsgAgentTask; return f }, dbe.CodeUnknownMsgType, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.frame()
			var e *mux.Error
			err := c.Client.Call(context.Background(), f, func(*dbe.Frame) error { return nil })
			if !errors.As(err, &e) || e.Code != tc.code || e.Param != tc.wantParam {
				t.Fatalf("err %#v, want %v param %q", err, tc.code, tc.wantParam)
			}
		})
	}
}

func TestErrorMapping(t *testing.T) {
	var mode atomic.Int32
	c := connect(t, &chatter{chat: func(ctx context.Context, req *sdk.ChatRequest, out sdk.Stream) (*sdk.ChatResult, error) {
		_ = out.Send("partial")
		switch mode.Load() {
		case 0:
			return nil, sdk.Overloaded(1500*time.Millisecond, "queue full (%d)", 8)
		case 1:
			return nil, fmt.Errorf("onnx: %w", errors.New("session died"))
		case 2:
			return nil, fmt.Errorf("wrapped: %w", sdk.InvalidParam("temperature", "too hot"))
		default:
			panic("boom")
		}
	}})
	for i, want := range []struct {
		code  dbe.Code
		param string
		retry uint32
		msg   string
	}{
		{dbe.CodeOverloaded, "", 1500, "queue full (8)"},
		{dbe.CodeWorkerFailed, "", 0, "onnx: session died"},
		{dbe.CodeInvalidRequest, "temperature", 0, "too hot"},
		{dbe.CodeWorkerFailed, "", 0, "plugin failed: panic: boom"},
	} {
		mode.Store(int32(i))
		for _, stream := range []bool{false, true} {
			f, _ := sdktest.ChatFrame("p1", chatReq(stream))
			_, err := sdktest.Call(context.Background(), c.Client, f)
			var e *mux.Error
			if !errors.As(err, &e) || e.Code != want.code || e.Param != want.param || e.RetryAfterMS != want.retry || e.Message != want.msg {
				t.Errorf("mode %d stream %v: %#v", i, stream, err)
			}
		}
	}
	// The plugin survived the panic.
	if _, err := sdktest.Call(context.Background(), c.Client, &dbe.Frame{Type: dbe.MsgHealth}); err != nil {
		t.Fatal(err)
	}
}

func TestAsError(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		err  error
		code dbe.Code
	}{
		{ctx.Err(), dbe.CodeCancelled},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), dbe.CodeDeadlineExceeded},
		{sdk.Errorf(dbe.CodeNotFound, "no model %q", "m"), dbe.CodeNotFound},
		{errors.New("disk on fire"), dbe.CodeWorkerFailed},
	} {
		if got := sdk.AsError(tc.err); got.Code != tc.code {
			t.Errorf("AsError(%v) = %v, want %v", tc.err, got.Code, tc.code)
		}
	}
	if sdk.AsError(nil) != nil {
		t.Error("AsError(nil) != nil")
	}
}

// TestCancel: CANCEL cancels the Chat's context, and the request ends with
// ERROR CANCELLED; TIMEOUT_MS ends it with DEADLINE_EXCEEDED.
func TestCancel(t *testing.T) {
	cancelled := make(chan error, 1)
	c := connect(t, &chatter{chat: func(ctx context.Context, req *sdk.ChatRequest, out sdk.Stream) (*sdk.ChatResult, error) {
		if err := out.Send("first"); err != nil {
			return nil, err
		}
		<-ctx.Done()
		cancelled <- out.Send("late")
		return nil, errors.New("stopped") // mapped to ctx's error anyway
	}})
	f, _ := sdktest.ChatFrame("p1", chatReq(true))
	var seen int
	err := c.Client.Call(context.Background(), f, func(fr *dbe.Frame) error {
		seen++
		return c.Session.Send(&dbe.Frame{Type: dbe.MsgCancel, CorrelationID: fr.CorrelationID})
	})
	if mux.CodeOf(err) != dbe.CodeCancelled || seen != 1 {
		t.Fatalf("err %v after %d frames", err, seen)
	}
	if e := <-cancelled; !errors.Is(e, context.Canceled) {
		t.Fatalf("Send after cancel: %v", e)
	}

	f, _ = sdktest.ChatFrame("p1", chatReq(false))
	f.SetTimeout(30 * time.Millisecond)
	if _, err := sdktest.Call(context.Background(), c.Client, f); mux.CodeOf(err) != dbe.CodeDeadlineExceeded {
		t.Fatalf("timeout: %v", err)
	}
	if e := <-cancelled; !errors.Is(e, context.DeadlineExceeded) {
		t.Fatalf("Send after timeout: %v", e)
	}
}

func TestSendAfterReturn(t *testing.T) {
	kept := make(chan sdk.Stream, 1)
	c := connect(t, &chatter{chat: func(ctx context.Context, req *sdk.ChatRequest, out sdk.Stream) (*sdk.ChatResult, error) {
		kept <- out
		return nil, nil
	}})
	f, _ := sdktest.ChatFrame("p1", chatReq(true))
	frames, err := sdktest.Call(context.Background(), c.Client, f)
	if err != nil || len(frames) != 1 {
		t.Fatalf("%d frames, %v", len(frames), err)
	}
	// A nil result: STOP, zero usage, and the only chunk is also the first.
	var ch l7v1.L7ChatChunk
	_ = proto.Unmarshal(frames[0].Payload, &ch)
	if ch.GetRole() != "assistant" || ch.GetFinishReason() != l7v1.FinishReason_FINISH_REASON_STOP || ch.GetUsage() == nil || ch.GetModel() != "m1" {
		t.Fatalf("lone chunk %v", &ch)
	}
	if err := (<-kept).Send("zombie"); !errors.Is(err, sdk.ErrStreamDone) {
		t.Fatalf("Send after return: %v", err)
	}
}

func TestChunkFields(t *testing.T) {
	c := connect(t, &chatter{chat: func(ctx context.Context, req *sdk.ChatRequest, out sdk.Stream) (*sdk.ChatResult, error) {
		if req.TenantID != "SDKTEST" || req.Profile != "p1" || req.RequestID == ([16]byte{}) {
			return nil, fmt.Errorf("request %+v", req)
		}
		for _, d := range []string{"a", "b", "c"} {
			if err := out.Send(d); err != nil {
				return nil, err
			}
		}
		return &sdk.ChatResult{FinishReason: l7v1.FinishReason_FINISH_REASON_LENGTH, Model: "m2",
			Usage: &l7v1.Usage{PromptTokens: 2, CompletionTokens: 3}}, nil
	}})
	p := chatReq(true)
	p.Model = "asked"
	f, _ := sdktest.ChatFrame("p1", p)
	frames, err := sdktest.Call(context.Background(), c.Client, f)
	if err != nil || len(frames) != 4 {
		t.Fatalf("%d frames, %v", len(frames), err)
	}
	var chunks []*l7v1.L7ChatChunk
	for _, fr := range frames {
		ch := &l7v1.L7ChatChunk{}
		if err := proto.Unmarshal(fr.Payload, ch); err != nil {
			t.Fatal(err)
		}
		chunks = append(chunks, ch)
	}
	first, mid, last := chunks[0], chunks[1], chunks[3]
	if first.GetRole() != "assistant" || first.GetModel() != "asked" || first.GetL7Profile() != "p1" || first.GetCreatedUnix() == 0 || first.GetDeviceId() != 7 {
		t.Errorf("first chunk %v", first)
	}
	if mid.GetRole() != "" || mid.GetModel() != "" || mid.GetCreatedUnix() != 0 || mid.GetDelta() != "b" || mid.GetDeviceId() != 7 {
		t.Errorf("middle chunk %v", mid)
	}
	if last.GetDelta() != "" || last.GetFinishReason() != l7v1.FinishReason_FINISH_REASON_LENGTH || last.GetModel() != "m2" ||
		last.GetUsage().GetTotalTokens() != 5 || frames[3].Flags&dbe.FlagEndStream == 0 {
		t.Errorf("last chunk %v", last)
	}

	// Without include_usage the last chunk has no usage.
	p.IncludeUsage = false
	f, _ = sdktest.ChatFrame("p1", p)
	frames, _ = sdktest.Call(context.Background(), c.Client, f)
	_ = proto.Unmarshal(frames[len(frames)-1].Payload, last)
	if last.GetUsage() != nil {
		t.Errorf("usage without include_usage: %v", last.GetUsage())
	}
}

// reporter reports its own load.
type reporter struct {
	chatter
	st sdk.Status
}

func (r *reporter) Status(context.Context) (*sdk.Status, error) { s := r.st; return &s, nil }

func TestStatus(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 4)
	block := func(ctx context.Context, req *sdk.ChatRequest, out sdk.Stream) (*sdk.ChatResult, error) {
		started <- struct{}{}
		<-release
		return &sdk.ChatResult{Usage: &l7v1.Usage{CompletionTokens: 10}}, nil
	}
	c := connect(t, &chatter{chat: block})
	ctx := context.Background()
	for range 2 {
		go func() {
			f, _ := sdktest.ChatFrame("p1", chatReq(false))
			_, _ = sdktest.Call(ctx, c.Client, f)
		}()
		<-started
	}
	st, err := c.Control.Status(ctx)
	if err != nil || st.GetInFlight() != 2 || st.GetLoad() <= 0.5 || st.GetLoad() >= 1 || !st.GetHealthy() ||
		st.GetPlugin() != "chatter" || st.GetDeviceId() != 7 || strings.Join(st.GetProfiles(), ",") != "p1" {
		t.Fatalf("busy status %v, %v", st, err)
	}
	close(release)
	for c.Server.InFlight() != 0 {
		time.Sleep(time.Millisecond)
	}
	st, _ = c.Control.Status(ctx)
	if st.GetInFlight() != 0 || st.GetLoad() != 0 || st.GetTokensGeneratedTotal() != 20 || st.GetTokensPerSecond() != 2 {
		t.Fatalf("idle status %v", st)
	}

	r := &reporter{chatter: chatter{chat: words("x")}, st: sdk.Status{Load: 7, QueueDepth: 3, MemoryUsed: 1 << 30}}
	c = connect(t, r)
	st, _ = c.Control.Status(ctx)
	if st.GetLoad() != 1 || st.GetQueueDepth() != 3 || st.GetMemoryUsedBytes() != 1<<30 {
		t.Fatalf("reported status %v", st)
	}
}

func TestControlErrors(t *testing.T) {
	ctx := context.Background()
	c := sdktest.Connect(t, &basic{configureErr: sdk.InvalidParam("delay", "bad delay"), healthErr: errors.New("GPU on fire")})
	err := c.Control.Configure(ctx, cfg)
	var e *mux.Error
	if !errors.As(err, &e) || e.Code != dbe.CodeInvalidRequest || e.Param != "delay" || e.Message != "bad delay" {
		t.Fatalf("configure: %#v", err)
	}
	err = c.Control.Configure(ctx, &sdk.Config{Profiles: []string{"Bad Profile"}})
	if mux.CodeOf(err) != dbe.CodeInvalidRequest {
		t.Fatalf("bad profile: %v", err)
	}
	if err := c.Control.Configure(ctx, &sdk.Config{Settings: map[string]any{"f": func() {}}}); !errors.Is(err, sdk.ErrInvalidConfig) {
		t.Fatalf("unencodable settings: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Control.Info(cctx); !errors.Is(err, context.Canceled) || mux.CodeOf(err) != dbe.CodeCancelled {
		t.Fatalf("cancelled call: %v", err)
	}
}

func TestConfigSettingsRoundTrip(t *testing.T) {
	got := make(chan *sdk.Config, 1)
	w := &configCapture{got: got}
	c := sdktest.Connect(t, w)
	in := &sdk.Config{Name: "echo-fast", DeviceID: 103, Profiles: []string{"a", "b"}, MemoryBudget: 1 << 33, Replica: 3,
		Settings: map[string]any{"delay": "5ms", "n": 2, "on": true, "l": []string{"x"}, "m": map[string]string{"k": "v"}}}
	if err := c.Control.Configure(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	out := <-got
	if out.Name != in.Name || out.DeviceID != 103 || out.MemoryBudget != 1<<33 || out.Replica != 3 || out.Logger == nil ||
		fmt.Sprint(out.Settings) != "map[delay:5ms l:[x] m:map[k:v] n:2 on:true]" {
		t.Fatalf("%+v", out)
	}
}

type configCapture struct {
	basic
	got chan *sdk.Config
}

func (c *configCapture) Configure(_ context.Context, cfg *sdk.Config) error { c.got <- cfg; return nil }

func TestValidate(t *testing.T) {
	ok := func() *sdk.PluginInfo {
		return &sdk.PluginInfo{Name: "llm-amx", Version: "1", APIVersions: []uint32{1}, DeviceID: 47,
			Profiles: []string{"llm-7b-amx"}, Capabilities: []sdk.Capability{sdk.CapChat, sdk.CapStream},
			Settings: []sdk.SettingSpec{{Name: "model_path", Type: "string", Required: true}}}
	}
	if err := ok().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, breakIt := range map[string]func(*sdk.PluginInfo){
		"name":          func(i *sdk.PluginInfo) { i.Name = "LLM" },
		"version":       func(i *sdk.PluginInfo) { i.Version = "" },
		"api":           func(i *sdk.PluginInfo) { i.APIVersions = []uint32{2} },
		"device":        func(i *sdk.PluginInfo) { i.DeviceID = 104 },
		"profile":       func(i *sdk.PluginInfo) { i.Profiles = []string{"-x"} },
		"dup profile":   func(i *sdk.PluginInfo) { i.Profiles = []string{"x", "x"} },
		"capability":    func(i *sdk.PluginInfo) { i.Capabilities = append(i.Capabilities, "telepathy") },
		"stream only":   func(i *sdk.PluginInfo) { i.Capabilities = []sdk.Capability{sdk.CapStream} },
		"setting type":  func(i *sdk.PluginInfo) { i.Settings[0].Type = "int" },
		"setting name":  func(i *sdk.PluginInfo) { i.Settings[0].Name = "" },
		"setting twice": func(i *sdk.PluginInfo) { i.Settings = append(i.Settings, i.Settings[0]) },
	} {
		i := ok()
		breakIt(i)
		if err := i.Validate(); !errors.Is(err, sdk.ErrInvalidInfo) {
			t.Errorf("%s: Validate() = %v", name, err)
		}
	}
}

// TestToolCalls: a workload's tool-call deltas become chunk tool_calls when
// streaming (id, type and name on a call's first piece only), and the
// message's assembled tool_calls otherwise; out-of-order deltas are refused.
func TestToolCalls(t *testing.T) {
	var orderErrs []error
	c := connect(t, &chatter{chat: func(ctx context.Context, req *sdk.ChatRequest, out sdk.Stream) (*sdk.ChatResult, error) {
		tc, ok := out.(sdk.ToolCallStream)
		if !ok {
			return nil, fmt.Errorf("the SDK's stream %T is not a ToolCallStream", out)
		}
		if err := out.Send("Checking."); err != nil {
			return nil, err
		}
		orderErrs = []error{
			tc.SendToolCall(&l7v1.ToolCallDelta{Index: 1, Id: "call_x", Name: "f"}), // skips call 0
			tc.SendToolCall(&l7v1.ToolCallDelta{Index: 0, ArgumentsJson: "{"}),      // no id or name
		}
		for _, d := range []*l7v1.ToolCallDelta{
			{Index: 0, Id: "call_a", Name: "get_weather"},
			{Index: 0, ArgumentsJson: `{"city": `},
			{Index: 0, ArgumentsJson: `"Paris"}`},
			{Index: 1, Id: "call_b", Name: "noop", ArgumentsJson: `{}`},
		} {
			if err := tc.SendToolCall(d); err != nil {
				return nil, err
			}
		}
		orderErrs = append(orderErrs, tc.SendToolCall(&l7v1.ToolCallDelta{Index: 0, ArgumentsJson: "x"})) // call 0 is over
		return &sdk.ChatResult{FinishReason: l7v1.FinishReason_FINISH_REASON_TOOL_CALLS}, nil
	}})
	f, _ := sdktest.ChatFrame("p1", chatReq(false))
	frames, err := sdktest.Call(context.Background(), c.Client, f)
	if err != nil || len(frames) != 1 {
		t.Fatalf("%d frames, %v", len(frames), err)
	}
	for i, err := range orderErrs {
		if !errors.Is(err, sdk.ErrToolCallOrder) {
			t.Errorf("out-of-order delta %d: %v", i, err)
		}
	}
	var resp l7v1.L7ChatResponse
	if err := proto.Unmarshal(frames[0].Payload, &resp); err != nil {
		t.Fatal(err)
	}
	ch := resp.GetChoices()[0]
	calls := ch.GetMessage().GetToolCalls()
	if ch.GetFinishReason() != l7v1.FinishReason_FINISH_REASON_TOOL_CALLS || ch.GetMessage().GetContent() != "Checking." || len(calls) != 2 ||
		calls[0].GetId() != "call_a" || calls[0].GetType() != "function" || calls[0].GetName() != "get_weather" ||
		calls[0].GetArgumentsJson() != `{"city": "Paris"}` || calls[1].GetName() != "noop" || calls[1].GetArgumentsJson() != "{}" {
		t.Fatalf("response %v", &resp)
	}

	f, _ = sdktest.ChatFrame("p1", chatReq(true))
	if frames, err = sdktest.Call(context.Background(), c.Client, f); err != nil || len(frames) != 6 {
		t.Fatalf("stream: %d frames, %v", len(frames), err)
	}
	var deltas []*l7v1.ToolCallDelta
	for _, fr := range frames[1:5] {
		ch := &l7v1.L7ChatChunk{}
		if err := proto.Unmarshal(fr.Payload, ch); err != nil || len(ch.GetToolCalls()) != 1 || ch.GetDelta() != "" {
			t.Fatalf("chunk %v, %v", ch, err)
		}
		deltas = append(deltas, ch.GetToolCalls()[0])
	}
	if d := deltas[0]; d.GetId() != "call_a" || d.GetType() != "function" || d.GetName() != "get_weather" || d.GetArgumentsJson() != "" {
		t.Errorf("first delta %v", d)
	}
	if d := deltas[1]; d.GetId() != "" || d.GetType() != "" || d.GetName() != "" || d.GetArgumentsJson() != `{"city": ` {
		t.Errorf("argument delta %v", d)
	}
	if d := deltas[3]; d.GetIndex() != 1 || d.GetId() != "call_b" || d.GetArgumentsJson() != "{}" {
		t.Errorf("second call %v", d)
	}
}
