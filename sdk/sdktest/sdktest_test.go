package sdktest_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsmil/l7/sdk"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"github.com/dsmil/l7/sdk/sdktest"
)

// good is a minimal conforming chat workload; the bad ones below break it
// in one way each.
type good struct {
	info func(*sdk.PluginInfo)
	chat func(ctx context.Context, req *sdk.ChatRequest, out sdk.Stream) (*sdk.ChatResult, error)
}

func (g *good) Info(context.Context) (*sdk.PluginInfo, error) {
	i := &sdk.PluginInfo{Name: "good", Version: "1", APIVersions: []uint32{1}, DeviceID: 47,
		Profiles: []string{"good"}, Capabilities: []sdk.Capability{sdk.CapChat, sdk.CapStream}}
	if g.info != nil {
		g.info(i)
	}
	return i, nil
}
func (g *good) Configure(context.Context, *sdk.Config) error { return nil }
func (g *good) Health(context.Context) error                 { return nil }
func (g *good) Chat(ctx context.Context, req *sdk.ChatRequest, out sdk.Stream) (*sdk.ChatResult, error) {
	if g.chat != nil {
		return g.chat(ctx, req, out)
	}
	return say(ctx, out, "a", " conforming", " answer")
}

func say(ctx context.Context, out sdk.Stream, deltas ...string) (*sdk.ChatResult, error) {
	for _, d := range deltas {
		if err := out.Send(d); err != nil {
			return nil, err
		}
	}
	return &sdk.ChatResult{Usage: &l7v1.Usage{PromptTokens: 3, CompletionTokens: uint32(len(deltas))}}, nil
}

var (
	_ sdk.Workload = (*good)(nil)
	_ sdk.Chatter  = (*good)(nil)
)

var calls atomic.Int32

var bad = map[string]sdk.Workload{
	"good":         &good{},
	"invalid info": &good{info: func(i *sdk.PluginInfo) { i.Version = "" }},
	"undeclared chat": &good{info: func(i *sdk.PluginInfo) {
		i.Capabilities = nil
	}},
	"stream differs": &good{chat: func(ctx context.Context, req *sdk.ChatRequest, out sdk.Stream) (*sdk.ChatResult, error) {
		return say(ctx, out, fmt.Sprint("call ", calls.Add(1)))
	}},
	"no usage": &good{chat: func(ctx context.Context, req *sdk.ChatRequest, out sdk.Stream) (*sdk.ChatResult, error) {
		_ = out.Send("x")
		return nil, nil
	}},
	"ignores cancel": &good{chat: func(ctx context.Context, req *sdk.ChatRequest, out sdk.Stream) (*sdk.ChatResult, error) {
		if req.Params.GetMaxTokens() < 1000 { // not the cancellation check's request
			return say(ctx, out, "fine")
		}
		for range 8 {
			_ = out.Send("tick ") // errors ignored, ctx ignored
			time.Sleep(200 * time.Millisecond)
		}
		return say(context.Background(), out)
	}},
}

// TestWorkload runs Run on the workload named by SDKTEST_WORKLOAD, for
// TestHarnessCatches.
func TestWorkload(t *testing.T) {
	name := os.Getenv("SDKTEST_WORKLOAD")
	if name == "" {
		t.Skip("run by TestHarnessCatches")
	}
	sdktest.Run(t, bad[name], nil)
}

// TestHarnessCatches: Run fails each broken workload for the right reason,
// and passes the good one.
func TestHarnessCatches(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	for name, want := range map[string]string{
		"good":            "",
		"invalid info":    "version is empty",
		"undeclared chat": `declares capability "chat": false`,
		"stream differs":  "streamed answer differs",
		"no usage":        "no completion tokens",
		"ignores cancel":  "after CANCEL",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestWorkload$", "-test.v")
			cmd.Env = append(os.Environ(), "SDKTEST_WORKLOAD="+name)
			out, err := cmd.CombinedOutput()
			if want == "" {
				if err != nil {
					t.Fatalf("Run failed a conforming workload: %v\n%s", err, out)
				}
				return
			}
			if err == nil || !strings.Contains(string(out), want) {
				t.Fatalf("want a failure mentioning %q, got %v:\n%s", want, err, out)
			}
		})
	}
}

func TestPair(t *testing.T) {
	client, control := sdktest.Pair(t, &good{})
	ctx := context.Background()
	if err := control.Configure(ctx, &sdk.Config{DeviceID: 1, Profiles: []string{"good"}}); err != nil {
		t.Fatal(err)
	}
	f, _ := sdktest.ChatFrame("good", &l7v1.L7ChatRequest{Prompt: "x"})
	if frames, err := sdktest.Call(ctx, client, f); err != nil || len(frames) != 1 {
		t.Fatalf("%d frames, %v", len(frames), err)
	}
}
