package worker

import (
	"context"
	"maps"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/dsmil/l7/internal/mkmodel"
	"github.com/dsmil/l7/internal/testutil"
	"github.com/dsmil/l7/plugins/internal/llm/llmtest"
	"github.com/dsmil/l7/sdk"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"github.com/hashicorp/go-hclog"
)

func TestMain(m *testing.M) {
	code := m.Run()
	llmtest.Cleanup()
	os.Exit(code)
}

// needORT skips the test when no ONNX Runtime is installed (make test
// always provides one).
func needORT(t testing.TB) { llmtest.Library(t) }

// tiny is the test model: the tiny preset (2 layers, hidden 64, 512
// tokens) with int4 weights and a 4096-token context, written once.
func tiny(t testing.TB) *mkmodel.Result {
	t.Helper()
	return llmtest.Tiny(t, "tiny", func(s *mkmodel.Spec) { s.Seed, s.MaxPositions, s.DType = 3, 4096, mkmodel.Int4 })
}

// baseSettings are the settings every test starts from: the tiny model on
// one ORT thread.
func baseSettings(t testing.TB, extra map[string]any) map[string]any {
	s := map[string]any{"model": tiny(t).Dir, "threads": float64(1), "model_name": "tiny-test"}
	maps.Copy(s, extra)
	return s
}

// configured returns a workload configured with baseSettings + extra, and
// its log.
func configured(t *testing.T, extra map[string]any) (*Workload, *testutil.SyncBuffer) {
	t.Helper()
	needORT(t)
	logs := &testutil.SyncBuffer{}
	w := New(testPlugin)
	cfg := &sdk.Config{Name: "llm-amx", DeviceID: 47, Profiles: []string{"llm-test"}, Settings: baseSettings(t, extra),
		Logger: hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info, JSONFormat: true})}
	if err := w.Configure(context.Background(), cfg); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	t.Cleanup(func() { w.Close(context.Background()) })
	return w, logs
}

// stream is an sdk.ToolCallStream and sdk.LogprobStream that records its
// deltas.
type stream struct {
	mu      sync.Mutex
	deltas  []string
	calls   []*l7v1.ToolCallDelta
	lps     [][]*l7v1.TokenLogprob // per SendLogprobs call
	choices map[int]*stream        // choices 1 and on, by Choice
	onDelta func(n int)            // called after each delta, unlocked
}

func (s *stream) SendToolCall(d *l7v1.ToolCallDelta) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, d)
	return nil
}

// Choice returns choice i's stream (s itself for 0).
func (s *stream) Choice(i int) sdk.Stream {
	if i == 0 {
		return s
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.choices == nil {
		s.choices = map[int]*stream{}
	}
	if s.choices[i] == nil {
		s.choices[i] = &stream{}
	}
	return s.choices[i]
}

func (s *stream) SendLogprobs(delta string, lps []*l7v1.TokenLogprob) error {
	s.mu.Lock()
	s.lps = append(s.lps, lps)
	s.mu.Unlock()
	return s.Send(delta)
}

func (s *stream) Send(delta string) error {
	if delta == "" {
		return nil
	}
	s.mu.Lock()
	s.deltas = append(s.deltas, delta)
	n := len(s.deltas)
	s.mu.Unlock()
	if s.onDelta != nil {
		s.onDelta(n)
	}
	return nil
}

func (s *stream) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.deltas, "")
}

// chat runs one request straight on the workload.
func chat(t *testing.T, w *Workload, p *l7v1.L7ChatRequest) (string, *sdk.ChatResult, error) {
	t.Helper()
	s := &stream{}
	res, err := w.Chat(context.Background(), &sdk.ChatRequest{Profile: "llm-test", Params: p}, s)
	return s.text(), res, err
}

func user(text string) *l7v1.L7ChatRequest {
	return &l7v1.L7ChatRequest{Messages: []*l7v1.Message{{Role: "user", Content: text}}}
}

func f32(v float32) *float32 { return &v }
func i64(v int64) *int64     { return &v }
func i32(v int32) *int32     { return &v }

// testPlugin is the plugin the tests configure: llm-amx's identity.
var testPlugin = Plugin{Name: "llm-amx", Version: "0.1.0", DeviceID: 47, Profile: "llm-7b-amx"}
