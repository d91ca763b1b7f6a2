package echo_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dsmil/l7/plugins/echo/internal/echo"
	"github.com/dsmil/l7/sdk"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"github.com/dsmil/l7/sdk/sdktest"
	"google.golang.org/protobuf/proto"
)

func TestConformance(t *testing.T) {
	long := strings.Repeat("many words to echo back ", 500) // 2000 words, 2 ms each
	sdktest.Run(t, echo.New(), &sdk.Config{
		Name: "echo", DeviceID: 47, Profiles: []string{"echo", "llm-test"},
		Settings: map[string]any{"delay": "2ms"},
	}, sdktest.WithCancelRequest(&l7v1.L7ChatRequest{
		Messages: []*l7v1.Message{{Role: "user", Content: long}},
	}))
}

func TestConformanceNoDelayChunked(t *testing.T) {
	sdktest.Run(t, echo.New(), &sdk.Config{
		Name: "echo-chunked", DeviceID: 12, Profiles: []string{"echo"},
		Settings: map[string]any{"chunk_size": float64(3), "prefix": "» "},
	}, sdktest.SkipCancel())
}

func TestAnswer(t *testing.T) {
	const reply = "echo: the quick brown fox jumps"
	stop, length := l7v1.FinishReason_FINISH_REASON_STOP, l7v1.FinishReason_FINISH_REASON_LENGTH
	for _, tc := range []struct {
		name       string
		max        int
		stop       []string
		want       string
		wantFinish l7v1.FinishReason
	}{
		{"whole", 0, nil, reply, stop},
		{"max above length", 6, nil, reply, stop},
		{"max_tokens", 3, nil, "echo: the quick", length},
		{"max_tokens 1", 1, nil, "echo:", length},
		{"stop", 0, []string{"brown"}, "echo: the quick ", stop},
		{"earliest stop wins", 0, []string{"fox", " the"}, "echo:", stop},
		{"empty stop ignored", 0, []string{""}, reply, stop},
		{"stop absent", 0, []string{"cat"}, reply, stop},
		{"stop within max", 4, []string{"quick"}, "echo: the ", stop},
		{"stop beyond max", 3, []string{"fox"}, "echo: the quick", length},
		{"stop straddling max", 3, []string{"quick brown"}, "echo: the quick", length},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, finish := echo.Answer(reply, tc.max, tc.stop)
			if got != tc.want || finish != tc.wantFinish {
				t.Fatalf("Answer(%q, %d, %q) = %q, %v; want %q, %v", reply, tc.max, tc.stop, got, finish, tc.want, tc.wantFinish)
			}
		})
	}
}

func TestConfigureRejects(t *testing.T) {
	for _, tc := range []struct {
		setting string
		value   any
	}{
		{"delay", "soon"},
		{"delay", "-1s"},
		{"delay", float64(5)},
		{"configure_delay", "later"},
		{"configure_delay", "-5s"},
		{"configure_delay", true},
		{"chunk_size", float64(-1)},
		{"chunk_size", 1.5},
		{"chunk_size", "3"},
		{"fail_after", float64(-2)},
		{"prefix", true},
		{"colour", "blue"},
	} {
		t.Run(tc.setting, func(t *testing.T) {
			err := echo.New().Configure(context.Background(), &sdk.Config{Settings: map[string]any{tc.setting: tc.value}})
			var e *mux.Error
			if !errors.As(err, &e) || e.Code != dbe.CodeInvalidRequest || e.Param != tc.setting {
				t.Fatalf("%s = %#v: err %v, want INVALID_REQUEST naming the setting", tc.setting, tc.value, err)
			}
		})
	}
}

func TestInfoFollowsConfigure(t *testing.T) {
	w := echo.New()
	ctx := context.Background()
	info, _ := w.Info(ctx)
	if info.DeviceID != echo.DefaultDeviceID || len(info.Profiles) != 0 || info.Validate() != nil {
		t.Fatalf("before Configure: %+v (%v)", info, info.Validate())
	}
	if err := w.Configure(ctx, &sdk.Config{DeviceID: 9, Profiles: []string{"a", "b"}, MemoryBudget: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	info, _ = w.Info(ctx)
	if info.DeviceID != 9 || strings.Join(info.Profiles, ",") != "a,b" || info.MemoryBudget != 1<<20 {
		t.Fatalf("after Configure: %+v", info)
	}
}

// conn connects an echo configured with settings.
func conn(t *testing.T, settings map[string]any) *sdktest.Conn {
	t.Helper()
	c := sdktest.Connect(t, echo.New())
	if err := c.Control.Configure(context.Background(), &sdk.Config{Name: "echo", DeviceID: 47, Profiles: []string{"echo"}, Settings: settings}); err != nil {
		t.Fatal(err)
	}
	return c
}

func userSays(text string) *l7v1.L7ChatRequest {
	return &l7v1.L7ChatRequest{Messages: []*l7v1.Message{{Role: "user", Content: text}}}
}

// stream sends p as a streamed request and returns the deltas and the last
// chunk.
func stream(t *testing.T, c *sdktest.Conn, p *l7v1.L7ChatRequest) ([]string, *l7v1.L7ChatChunk, error) {
	t.Helper()
	p.Stream, p.IncludeUsage = true, true
	f, _ := sdktest.ChatFrame("echo", p)
	frames, err := sdktest.Call(context.Background(), c.Client, f)
	var deltas []string
	last := &l7v1.L7ChatChunk{}
	for _, fr := range frames {
		last = &l7v1.L7ChatChunk{}
		if err := proto.Unmarshal(fr.Payload, last); err != nil {
			t.Fatal(err)
		}
		if last.GetDelta() != "" {
			deltas = append(deltas, last.GetDelta())
		}
	}
	return deltas, last, err
}

func TestChunking(t *testing.T) {
	for _, tc := range []struct {
		name     string
		settings map[string]any
		want     []string
	}{
		{"words", nil, []string{"echo:", " héllo", "  big", " world "}},
		{"runes", map[string]any{"chunk_size": float64(4)}, []string{"echo", ": hé", "llo ", " big", " wor", "ld "}},
		{"prefix", map[string]any{"prefix": ">"}, []string{">héllo", "  big", " world "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			deltas, last, err := stream(t, conn(t, tc.settings), userSays("héllo  big world "))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(deltas, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("deltas %q, want %q", deltas, tc.want)
			}
			if last.GetFinishReason() != l7v1.FinishReason_FINISH_REASON_STOP {
				t.Fatalf("finish %v", last.GetFinishReason())
			}
		})
	}
}

func TestUsageAndLimits(t *testing.T) {
	c := conn(t, nil)
	p := &l7v1.L7ChatRequest{
		Messages: []*l7v1.Message{
			{Role: "system", Content: "be brief"},
			{Role: "user", Content: "one two three four five"},
			{Role: "assistant", Content: "ok"},
		},
		MaxTokens: 3,
	}
	deltas, last, err := stream(t, c, p)
	if err != nil {
		t.Fatal(err)
	}
	// The last user message is answered even when it is not the last message.
	if got := strings.Join(deltas, ""); got != "echo: one two" {
		t.Fatalf("answer %q", got)
	}
	u := last.GetUsage()
	if last.GetFinishReason() != l7v1.FinishReason_FINISH_REASON_LENGTH || u.GetPromptTokens() != 8 || u.GetCompletionTokens() != 3 || u.GetTotalTokens() != 11 {
		t.Fatalf("finish %v usage %v", last.GetFinishReason(), u)
	}

	p = userSays("stop here STOP not this")
	p.Stop = []string{"STOP"}
	deltas, last, err = stream(t, c, p)
	if err != nil || strings.Join(deltas, "") != "echo: stop here " || last.GetFinishReason() != l7v1.FinishReason_FINISH_REASON_STOP {
		t.Fatalf("%q %v %v", deltas, last.GetFinishReason(), err)
	}
}

func TestPrompt(t *testing.T) {
	c := conn(t, nil)
	f, _ := sdktest.ChatFrame("echo", &l7v1.L7ChatRequest{Prompt: "Once upon a time"})
	frames, err := sdktest.Call(context.Background(), c.Client, f)
	if err != nil {
		t.Fatal(err)
	}
	var resp l7v1.L7ChatResponse
	if err := proto.Unmarshal(frames[0].Payload, &resp); err != nil {
		t.Fatal(err)
	}
	if ch := resp.GetChoices()[0]; ch.GetText() != "echo: Once upon a time" || resp.GetUsage().GetPromptTokens() != 4 || resp.GetModel() != echo.Model {
		t.Fatalf("%v", &resp)
	}
}

func TestDelay(t *testing.T) {
	c := conn(t, map[string]any{"delay": "20ms"})
	start := time.Now()
	deltas, _, err := stream(t, c, userSays("a b c"))
	if err != nil || len(deltas) != 4 {
		t.Fatalf("%q %v", deltas, err)
	}
	if d := time.Since(start); d < 80*time.Millisecond {
		t.Fatalf("4 deltas with a 20ms delay took %v", d)
	}
}

// TestConfigureDelay: configure_delay holds Configure back, and a deadline
// on Configure ends the wait at once.
func TestConfigureDelay(t *testing.T) {
	w := echo.New()
	start := time.Now()
	if err := w.Configure(context.Background(), &sdk.Config{Settings: map[string]any{"configure_delay": "50ms"}}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("Configure with a 50ms delay took %v", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start = time.Now()
	if err := echo.New().Configure(ctx, &sdk.Config{Settings: map[string]any{"configure_delay": "1h"}}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the context's deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Configure kept waiting %v past its deadline", d)
	}
}

func TestFailAfter(t *testing.T) {
	for _, n := range []int{0, 2, 10} {
		c := conn(t, map[string]any{"fail_after": float64(n)})
		deltas, _, err := stream(t, c, userSays("a b c d"))
		var e *mux.Error
		if !errors.As(err, &e) || e.Code != dbe.CodeWorkerFailed || len(deltas) != min(n, 5) {
			t.Fatalf("fail_after %d: %d deltas, err %v", n, len(deltas), err)
		}
	}
}

// TestCancelDuringDelay: a CANCEL that arrives while echo sleeps before a
// delta stops it at once.
func TestCancelDuringDelay(t *testing.T) {
	c := conn(t, map[string]any{"delay": "1h"})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	p := userSays("never sent")
	p.Stream = true
	f, _ := sdktest.ChatFrame("echo", p)
	if _, err := sdktest.Call(ctx, c.Client, f); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
	deadline := time.Now().Add(sdktest.CancelWithin)
	for c.Server.InFlight() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("echo still sleeping after CANCEL")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRefusesStructured: echo cannot constrain its output, so a JSON
// response_format or tools it may call are a 400 naming the model; tools
// with tool_choice "none" are answered as plain chat.
func TestRefusesStructured(t *testing.T) {
	c := conn(t, nil)
	tools := []*l7v1.Tool{{Type: "function", Function: &l7v1.FunctionDef{Name: "f"}}}
	for param, p := range map[string]*l7v1.L7ChatRequest{
		"response_format": {ResponseFormat: &l7v1.ResponseFormat{Type: "json_object"}},
		"tools":           {Tools: tools},
	} {
		p.Model = "dsmil-echo"
		p.Messages = []*l7v1.Message{{Role: "user", Content: "hi"}}
		_, _, err := stream(t, c, p)
		var e *mux.Error
		if !errors.As(err, &e) || e.Code != dbe.CodeInvalidRequest || e.Param != param || !strings.Contains(e.Message, `"dsmil-echo"`) {
			t.Errorf("%s: %v", param, err)
		}
	}
	p := userSays("plain")
	p.Tools, p.ToolChoice = tools, &l7v1.ToolChoice{Mode: l7v1.ToolChoiceMode_TOOL_CHOICE_MODE_NONE}
	if deltas, _, err := stream(t, c, p); err != nil || strings.Join(deltas, "") != "echo: plain" {
		t.Fatalf("tool_choice none: %q %v", deltas, err)
	}
}
