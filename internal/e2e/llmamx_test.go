package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dsmil/l7/internal/mkmodel"
	"github.com/dsmil/l7/internal/testutil"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"google.golang.org/protobuf/proto"
)

// testAPIKey is the tenant's API key in TestLLMAMX.
const testAPIKey = "llm-amx-test-key"

// ortLibEnv is the variable through which the llm-amx plugin finds ONNX
// Runtime (pass_env hands it over).
const ortLibEnv = "DSMIL_ORT_LIB"

// testLogitBias sends /v1/completions through the shim with logit_bias
// +100 on the token "a" and expects greedy decoding to produce only it.
func testLogitBias(t *testing.T, base string) {
	t.Helper()
	// mkmodel's tokenizer is deterministic: the one it wrote into the model.
	tok := mkmodel.NewTokenizer()
	id, ok := tok.Vocab["a"]
	if !ok {
		t.Fatal(`the tiny tokenizer has no token "a"`)
	}
	// complete posts a /v1/completions body with the given max_tokens and
	// logit_bias and returns the status and body.
	complete := func(maxTokens int, bias string) (int, []byte) {
		body := fmt.Sprintf(`{"model": %q, "prompt": "Hello", "max_tokens": %d, "temperature": 0, "logit_bias": %s}`, tinyModelID, maxTokens, bias)
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testAPIKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	post := func(bias string) (text, finish string) {
		status, b := complete(4, bias)
		if status != http.StatusOK {
			t.Fatalf("logit_bias %s: HTTP %d: %s", bias, status, b)
		}
		var out struct {
			Choices []struct {
				Text         string `json:"text"`
				FinishReason string `json:"finish_reason"`
			} `json:"choices"`
		}
		if err := json.Unmarshal(b, &out); err != nil || len(out.Choices) != 1 {
			t.Fatalf("response %s: %v", b, err)
		}
		return out.Choices[0].Text, out.Choices[0].FinishReason
	}
	plain, _ := post("null")
	forced, finish := post(fmt.Sprintf(`{"%d": 100}`, id))
	if forced != "aaaa" || finish != "length" {
		t.Fatalf(`logit_bias {"%d": 100} (the token "a"): text %q, finish %q; want "aaaa", "length" (without it: %q)`, id, forced, finish, plain)
	}
	if plain == forced {
		t.Fatalf("the unbiased answer is %q too: the test cannot tell the bias worked", plain)
	}
	// An id outside the model's vocabulary is the plugin's 400.
	status, b := complete(2, fmt.Sprintf(`{"%d": 5}`, tok.Size()+1000))
	if status != http.StatusBadRequest || !strings.Contains(string(b), `"param":"logit_bias"`) {
		t.Fatalf("out-of-vocabulary logit_bias: HTTP %d: %s", status, b)
	}
}

// pluginBin, npuBin and embedBin are the real dsmil-llm-amx, dsmil-llm-npu
// and dsmil-embed, built once for these tests.
var pluginBin, npuBin, embedBin string

func TestMain(m *testing.M) {
	testutil.RunWithBinaries(m, []testutil.Binary{
		{Path: &pluginBin, Name: "dsmil-llm-amx", Pkg: "github.com/dsmil/l7/plugins/llm-amx"},
		{Path: &npuBin, Name: "dsmil-llm-npu", Pkg: "github.com/dsmil/l7/plugins/llm-npu"},
		{Path: &embedBin, Name: "dsmil-embed", Pkg: "github.com/dsmil/l7/plugins/embed"},
	})
}

func chatFrame(p *l7v1.L7ChatRequest) *dbe.Frame {
	f := &dbe.Frame{Type: dbe.MsgChatReq}
	f.SetTenantID("T")
	f.SetCompartmentMask(dbe.CompartmentSOC)
	f.SetClassification(dbe.Unclas)
	f.SetROELevel(dbe.AnalysisOnly)
	f.SetProfile(tinyProfile)
	f.SetRequestID([16]byte{4, 7})
	f.Payload, _ = proto.Marshal(p)
	return f
}

// TestLLMAMX spawns the built llm-amx plugin under the plugin manager, as
// dsmil-host does, with a tiny model, and chats with it through the
// router: a streamed answer, a refused request, and PluginInfo as the host
// sees it.
func TestLLMAMX(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns the plugin")
	}
	p := startPlane(t, 1024, `
  health_interval = "200ms"
  parallelism     = 2
  queue           = 4
  kv_budget       = "256KiB" # 256 tokens of the tiny model`)
	r, logs, ctx := p.r, p.logs, context.Background()

	// A streamed, greedy chat.
	var text strings.Builder
	var last l7v1.L7ChatChunk
	chunks := 0
	q := &l7v1.L7ChatRequest{Model: tinyModelID, Stream: true, IncludeUsage: true, MaxTokens: 12,
		Temperature: proto.Float32(0),
		Messages:    []*l7v1.Message{{Role: "user", Content: "Hello, plane."}}}
	err := r.Route(ctx, chatFrame(q), func(f *dbe.Frame) error {
		if f.Type != dbe.MsgChatChunk {
			return fmt.Errorf("frame %s", f.Type)
		}
		last.Reset()
		if err := proto.Unmarshal(f.Payload, &last); err != nil {
			return err
		}
		text.WriteString(last.GetDelta())
		chunks++
		return nil
	})
	if err != nil {
		t.Fatalf("chat: %v\n%s", err, logs.String())
	}
	u := last.GetUsage()
	if chunks < 2 || u.GetPromptTokens() == 0 || u.GetCompletionTokens() == 0 || u.GetCompletionTokens() > 12 ||
		last.GetFinishReason() == l7v1.FinishReason_FINISH_REASON_UNSPECIFIED {
		t.Fatalf("%d chunks, text %q, last chunk %v", chunks, text.String(), &last)
	}
	t.Logf("answer %q (%d chunks, %v, usage %v)", text.String(), chunks, last.GetFinishReason(), u)

	// logit_bias from an OpenAI request reaches the sampler: through the
	// shim over real HTTP, +100 on one token forces it at every step.
	testLogitBias(t, p.serveShim(t))

	// A request over the KV budget is refused across the process
	// boundary with the field to change.
	q.MaxTokens = 1000
	err = r.Route(ctx, chatFrame(q), func(*dbe.Frame) error { return nil })
	var e *mux.Error
	if !errors.As(err, &e) || e.Code != dbe.CodeInvalidRequest || e.Param != "max_tokens" {
		t.Fatalf("over budget: %v", err)
	}

	// The plugin logged one line for the request, and its CPU features.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "completion_tokens") {
		if time.Now().After(deadline) {
			t.Fatalf("no request log line:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "cpu_features") {
		t.Errorf("no CPU features in the log:\n%s", logs.String())
	}
}
