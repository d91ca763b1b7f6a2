package shim

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dsmil/l7/host/pluginmgr"
	"github.com/dsmil/l7/internal/testutil"
)

// These tests run through the real router to real echo plugin processes.

func TestChatCompletion(t *testing.T) {
	_, base := startShim(t, nil)
	resp, body := call(t, "POST", base+"/v1/chat/completions", keyT,
		`{"model":"dsmil-echo","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"What is DSMIL?"}],"max_tokens":100}`)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	reqID := resp.Header.Get("X-Request-Id")
	if _, ok := parseUUID(reqID); !ok {
		t.Fatalf("x-request-id %q", reqID)
	}
	wantID := "chatcmpl-" + strings.ReplaceAll(reqID, "-", "")
	created, _ := got["created"].(float64)
	meta, _ := got["dsmil_metadata"].(map[string]any)
	if got["id"] != wantID || got["object"] != "chat.completion" || got["model"] != "dsmil-echo" ||
		time.Since(time.Unix(int64(created), 0)) > time.Minute || meta == nil {
		t.Fatalf("envelope: %s", body)
	}
	wantChoices := []any{map[string]any{"index": 0.0, "finish_reason": "stop", "logprobs": nil,
		"message": map[string]any{"role": "assistant", "content": "echo: What is DSMIL?", "refusal": nil}}}
	if !reflect.DeepEqual(got["choices"], wantChoices) {
		t.Fatalf("choices: %s", body)
	}
	// echo counts words: 2 + 3 prompt, 4 completion.
	if !reflect.DeepEqual(got["usage"], map[string]any{"prompt_tokens": 5.0, "completion_tokens": 4.0, "total_tokens": 9.0}) {
		t.Fatalf("usage: %s", body)
	}
	if meta["device_id"] != 47.0 || meta["l7_profile"] != "echo" || meta["latency_ms"].(float64) <= 0 || len(meta) != 3 {
		t.Fatalf("dsmil_metadata: %s", body)
	}
	if len(got) != 7 {
		t.Fatalf("unexpected members: %s", body)
	}

	// Content parts, max_completion_tokens → finish_reason length; the
	// logit_bias map travels through the router to the plugin (echo ignores
	// it; TestLogitBias checks the payload).
	resp, body = call(t, "POST", base+"/v1/chat/completions", keyT,
		`{"model":"dsmil-echo","messages":[{"role":"user","content":[{"type":"text","text":"one two"},{"type":"text","text":"three four"}]}],"max_completion_tokens":3,"logit_bias":{"50256":-100,"7":5}}`)
	var c completion
	json.Unmarshal(body, &c)
	if resp.StatusCode != 200 || str(c.Choices[0].Message.Content) != "echo: one two" || str(c.Choices[0].FinishReason) != "length" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}

func TestTextCompletion(t *testing.T) {
	_, base := startShim(t, nil)
	for _, prompt := range []string{`"say this"`, `["say this"]`} {
		resp, body := call(t, "POST", base+"/v1/completions", keyT, `{"model":"dsmil-echo","prompt":`+prompt+`,"stop":"this","logit_bias":{"50256":-100}}`)
		var got map[string]any
		json.Unmarshal(body, &got)
		if resp.StatusCode != 200 || got["object"] != "text_completion" || !strings.HasPrefix(got["id"].(string), "cmpl-") {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		want := []any{map[string]any{"index": 0.0, "text": "echo: say ", "logprobs": nil, "finish_reason": "stop"}}
		if !reflect.DeepEqual(got["choices"], want) || got["usage"].(map[string]any)["prompt_tokens"] != 2.0 {
			t.Fatalf("%s", body)
		}
	}
	resp, body := call(t, "POST", base+"/v1/completions", keyT, `{"model":"dsmil-echo","prompt":["a","b"]}`)
	if e := apiErr(t, resp, body); resp.StatusCode != 400 || str(e.Param) != "prompt" {
		t.Fatalf("two prompts: %d %s", resp.StatusCode, body)
	}
}

// streamChunk is the part of a chunk the stream tests check.
type streamChunk struct {
	ID      string          `json:"id"`
	Object  string          `json:"object"`
	Created int64           `json:"created"`
	Model   string          `json:"model"`
	Choices []choiceJSON    `json:"choices"`
	Usage   json.RawMessage `json:"usage"`
	Error   *errorObject    `json:"error"`
}

// checkStream checks the OpenAI streaming rules over the data events (before
// [DONE]) and returns the text, the finish reason and the usage chunk.
func checkStream(t *testing.T, data []string, object string, withUsage bool) (text, finish string, usage *usageJSON) {
	t.Helper()
	if data[len(data)-1] != "[DONE]" {
		t.Fatalf("last event %q", data[len(data)-1])
	}
	data = data[:len(data)-1]
	var first streamChunk
	for i, d := range data {
		var c streamChunk
		if err := json.Unmarshal([]byte(d), &c); err != nil {
			t.Fatalf("event %d: %v: %s", i, err, d)
		}
		if i == 0 {
			first = c
		}
		if c.ID != first.ID || c.Created != first.Created || c.Object != object || c.Model != first.Model || c.ID == "" {
			t.Fatalf("event %d: id/created/object/model differ: %s", i, d)
		}
		if hasUsage := strings.Contains(d, `"usage":`); hasUsage != withUsage {
			t.Fatalf("event %d: usage member present=%v, want %v: %s", i, hasUsage, withUsage, d)
		}
		if withUsage && i == len(data)-1 {
			if len(c.Choices) != 0 || !strings.Contains(d, `"choices":[]`) {
				t.Fatalf("usage chunk has choices: %s", d)
			}
			usage = new(usageJSON)
			json.Unmarshal(c.Usage, usage)
			continue
		}
		if withUsage && string(c.Usage) != "null" {
			t.Fatalf("event %d: usage should be null: %s", i, d)
		}
		if len(c.Choices) != 1 {
			t.Fatalf("event %d: %d choices", i, len(c.Choices))
		}
		ch := c.Choices[0]
		last := i == len(data)-1 || (withUsage && i == len(data)-2)
		if (ch.FinishReason != nil) != last || !strings.Contains(d, `"finish_reason":`) {
			t.Fatalf("event %d: finish_reason must be null until the last chunk: %s", i, d)
		}
		if last {
			finish = *ch.FinishReason
		}
		if object == "chat.completion.chunk" {
			if ch.Delta == nil || (i == 0) != (ch.Delta.Role == "assistant") {
				t.Fatalf("event %d: the role belongs in the first delta only: %s", i, d)
			}
			if ch.Delta.Content != nil {
				text += *ch.Delta.Content
			}
		} else if ch.Text != nil {
			text += *ch.Text
		}
	}
	return text, finish, usage
}

func TestStreamChat(t *testing.T) {
	_, base := startShim(t, nil)
	for _, withUsage := range []bool{false, true} {
		opts := ""
		if withUsage {
			opts = `,"stream_options":{"include_usage":true}`
		}
		resp, body := call(t, "POST", base+"/v1/chat/completions", keyT,
			`{"model":"dsmil-echo","stream":true,"messages":[{"role":"user","content":"stream me please"}]`+opts+`}`)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" || resp.Header.Get("X-Request-Id") == "" {
			t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, body)
		}
		data, _ := sseEvents(t, body)
		if len(data) < 4 {
			t.Fatalf("too few chunks: %s", body)
		}
		text, finish, usage := checkStream(t, data, "chat.completion.chunk", withUsage)
		if text != "echo: stream me please" || finish != "stop" {
			t.Fatalf("text %q finish %q", text, finish)
		}
		if withUsage && (usage == nil || *usage != usageJSON{PromptTokens: 3, CompletionTokens: 4, TotalTokens: 7}) {
			t.Fatalf("usage %+v", usage)
		}
		if !strings.Contains(data[len(data)-2-b2i(withUsage)], `"dsmil_metadata":{"device_id":47,`) {
			t.Fatalf("no dsmil_metadata on the finish chunk: %s", body)
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestStreamCompletion(t *testing.T) {
	_, base := startShim(t, nil)
	resp, body := call(t, "POST", base+"/v1/completions", keyT,
		`{"model":"dsmil-echo","stream":true,"prompt":"one two three","max_tokens":3,"stream_options":{"include_usage":true}}`)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	data, _ := sseEvents(t, body)
	text, finish, usage := checkStream(t, data, "text_completion", true)
	if text != "echo: one two" || finish != "length" || usage.CompletionTokens != 3 {
		t.Fatalf("%q %q %+v", text, finish, usage)
	}
}

func TestStreamKeepAlive(t *testing.T) {
	_, base := startShim(t, func(c *Config) { c.Shim.KeepaliveInterval = 30 * time.Millisecond })
	resp, body := call(t, "POST", base+"/v1/chat/completions", keyT,
		`{"model":"dsmil-slow","stream":true,"messages":[{"role":"user","content":"a b c"}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	data, keepalives := sseEvents(t, body)
	// 100 ms before each of 4 deltas: several 30 ms keep-alives, among them
	// some before the first token.
	if keepalives < 4 || !strings.HasPrefix(string(body), ": keep-alive\n\n") {
		t.Fatalf("%d keep-alives:\n%s", keepalives, body)
	}
	if text, _, _ := checkStream(t, data, "chat.completion.chunk", false); text != "echo: a b c" {
		t.Fatalf("%q", text)
	}
}

// TestStreamErrors: an error before the first chunk is a plain HTTP error;
// one after it is a data event with the error body, then [DONE].
func TestStreamErrors(t *testing.T) {
	_, base := startShim(t, func(c *Config) { c.Shim.RequestTimeout = 450 * time.Millisecond })
	resp, body := call(t, "POST", base+"/v1/chat/completions", keyKinetic, `{"model":"dsmil-echo","stream":true,"messages":[{"role":"user","content":"x"}]}`)
	if e := apiErr(t, resp, body); resp.StatusCode != 403 || str(e.Code) != "policy_denied" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	for _, tc := range []struct{ model, code string }{
		{"dsmil-fail", "worker_failed"},     // fails after two deltas
		{"dsmil-slow", "deadline_exceeded"}, // 100 ms a delta, 450 ms budget
	} {
		resp, body = call(t, "POST", base+"/v1/chat/completions", keyT,
			`{"model":"`+tc.model+`","stream":true,"messages":[{"role":"user","content":"one two three four five"}]}`)
		data, _ := sseEvents(t, body)
		if resp.StatusCode != 200 || len(data) < 3 {
			t.Fatalf("%s: %d %s", tc.model, resp.StatusCode, body)
		}
		var last streamChunk
		json.Unmarshal([]byte(data[len(data)-2]), &last)
		if last.Error == nil || str(last.Error.Code) != tc.code || last.Error.Message == "" ||
			!strings.HasPrefix(data[len(data)-2], `{"error":{"message":`) {
			t.Fatalf("%s: no error event before [DONE]: %s", tc.model, body)
		}
		var first streamChunk
		json.Unmarshal([]byte(data[0]), &first)
		if len(first.Choices) != 1 || first.Choices[0].Delta.Role != "assistant" {
			t.Fatalf("%s: %s", tc.model, body)
		}
	}
}

// TestDisconnectCancels: a client that goes away cancels the generation in
// the plugin, streamed or not.
func TestDisconnectCancels(t *testing.T) {
	p := getPlane(t)
	_, base := startShim(t, nil)
	slowLoad := func() float64 {
		for _, s := range p.manager.Snapshots() {
			if s.Name == "slow" {
				return s.Load
			}
		}
		return -1
	}
	// 50 words at 100 ms each: 5 s of generation.
	prompt := strings.TrimSpace(strings.Repeat("word ", 50))
	for _, stream := range []bool{true, false} {
		testutil.WaitFor(t, 2*time.Second, "an idle slow plugin", func() bool { return slowLoad() == 0 && p.router.Stats().InFlight == 0 })
		ctx, cancel := context.WithCancel(context.Background())
		body := `{"model":"dsmil-slow","stream":` + map[bool]string{true: "true", false: "false"}[stream] +
			`,"messages":[{"role":"user","content":"` + prompt + `"}]}`
		req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+keyT)
		done, first := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return // the non-streamed request, cancelled
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			br.ReadString('\n')
			close(first)
			io.Copy(io.Discard, br) // until the hang-up
		}()
		// The plugin's own health report shows the request in flight ...
		testutil.WaitFor(t, 2*time.Second, "the plugin to report the request", func() bool { return slowLoad() >= 0.5 })
		if stream {
			select {
			case <-first:
			case <-time.After(2 * time.Second):
				t.Fatal("no first chunk")
			}
		}
		cancel() // hang up
		<-done
		start := time.Now()
		// ... and, once the client hangs up, nothing: well before the 5 s the
		// generation would take (health reports come every 200 ms).
		testutil.WaitFor(t, 2*time.Second, "the router to let go", func() bool { return p.router.Stats().InFlight == 0 })
		testutil.WaitFor(t, 2*time.Second, "the plugin to stop generating", func() bool { return slowLoad() == 0 })
		t.Logf("stream=%v: the plugin was idle %v after the client left", stream, time.Since(start).Round(time.Millisecond))
	}
}

// TestErrorClasses: every error class through the real router and
// plugins.
func TestErrorClasses(t *testing.T) {
	_, base := startShim(t, func(c *Config) { c.Shim.RequestTimeout = 450 * time.Millisecond })
	chat := func(model string) string {
		return `{"model":"` + model + `","messages":[{"role":"user","content":"one two three four five"}]}`
	}
	for _, tc := range []struct {
		name, key, body string
		status          int
		typ, code       string
		msg             string
		hdr             map[string]string
	}{
		{"bad json", keyT, `{"model":`, 400, "invalid_request_error", "invalid_json", "", nil},
		{"wrong key", "nope", chat("dsmil-echo"), 401, "authentication_error", "invalid_api_key", "", nil},
		{"claim", keyNoClaim, chat("dsmil-echo"), 401, "authentication_error", "invalid_claim_token", "claim token missing", nil},
		{"kinetic", keyKinetic, chat("dsmil-echo"), 403, "permission_error", "policy_denied",
			"DENIED: KINETIC compartment not allowed in Layer 7 (rule builtin.kinetic)", nil},
		{"policy", keyDenied, chat("dsmil-echo"), 403, "permission_error", "policy_denied",
			"DENIED: tenant DENIED may not use Layer 7 (rule test.deny_tenant)", nil},
		{"unknown model", keyT, chat("llama-7b-int8-amx"), 404, "invalid_request_error", "model_not_found",
			"The model `llama-7b-int8-amx` does not exist or you do not have access to it.", nil},
		{"forbidden model", keyLimited, chat("dsmil-slow"), 404, "invalid_request_error", "model_not_found", "", nil},
		{"rate limited", keyRated, chat("dsmil-echo"), 429, "rate_limit_error", "rate_limit_exceeded", "", map[string]string{
			"Retry-After": "2", "Retry-After-Ms": "1500", "X-Ratelimit-Limit-Requests": "10", "X-Ratelimit-Limit-Tokens": "1000",
			"X-Ratelimit-Remaining-Requests": "0", "X-Ratelimit-Reset-Requests": "1.5s"}},
		{"no worker", keyT, chat("dsmil-down"), 503, "server_error", "no_worker_available", "", map[string]string{"Retry-After": "1"}},
		{"deadline", keyT, chat("dsmil-slow"), 504, "timeout_error", "deadline_exceeded", "", nil},
		{"worker failed", keyT, chat("dsmil-fail"), 502, "server_error", "worker_failed", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := call(t, "POST", base+"/v1/chat/completions", tc.key, tc.body)
			e := apiErr(t, resp, body)
			if resp.StatusCode != tc.status || e.Type != tc.typ || str(e.Code) != tc.code || (tc.msg != "" && e.Message != tc.msg) {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			for k, v := range tc.hdr {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			if resp.Header.Get("X-Request-Id") == "" {
				t.Error("no x-request-id")
			}
		})
	}
}

func TestModels(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	_, base := startShim(t, func(c *Config) { c.ModelsCreated = created })
	ids := func(key string) []string {
		resp, body := call(t, "GET", base+"/v1/models", key, "")
		var l struct {
			Object string
			Data   []map[string]any
		}
		if err := json.Unmarshal(body, &l); err != nil || resp.StatusCode != 200 || l.Object != "list" {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		var out []string
		for _, m := range l.Data {
			if m["object"] != "model" || m["created"] != float64(created.Unix()) || len(m) != 4 {
				t.Fatalf("model shape: %s", body)
			}
			out = append(out, m["id"].(string))
		}
		return out
	}
	if got := ids(keyT); !reflect.DeepEqual(got, []string{"dsmil-echo", "dsmil-slow", "dsmil-fail", "dsmil-down"}) {
		t.Fatalf("T sees %v", got)
	}
	if got := ids(keyLimited); !reflect.DeepEqual(got, []string{"dsmil-echo"}) {
		t.Fatalf("LIMITED sees %v", got)
	}
	resp, body := call(t, "GET", base+"/v1/models/dsmil-slow", keyT, "")
	if resp.StatusCode != 200 || string(body) != `{"id":"dsmil-slow","object":"model","created":1767323045,"owned_by":"tests"}`+"\n" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	for _, tc := range []struct{ key, path string }{
		{keyLimited, "/v1/models/dsmil-slow"},
		{keyT, "/v1/models/llama-7b-int8-amx"},
		{keyT, "/v1/models/dsmil-echo/"},
	} {
		resp, body := call(t, "GET", base+tc.path, tc.key, "")
		if e := apiErr(t, resp, body); resp.StatusCode != 404 || str(e.Code) != "model_not_found" {
			t.Fatalf("%s: %d %s", tc.path, resp.StatusCode, body)
		}
	}
}

func TestProbes(t *testing.T) {
	var ready atomic.Bool
	_, base := startShim(t, func(c *Config) {
		c.Ready = func() (bool, string) { return ready.Load(), `no healthy worker serves profile "down"` }
	})
	resp, body := call(t, "GET", base+"/healthz", "", "")
	if resp.StatusCode != 200 || string(body) != `{"status":"ok"}`+"\n" {
		t.Fatalf("healthz: %d %s", resp.StatusCode, body)
	}
	resp, body = call(t, "GET", base+"/readyz", "", "")
	if e := apiErr(t, resp, body); resp.StatusCode != 503 || str(e.Code) != "not_ready" || !strings.Contains(e.Message, `"down"`) || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("readyz: %d %s", resp.StatusCode, body)
	}
	ready.Store(true)
	if resp, body = call(t, "GET", base+"/readyz", "", ""); resp.StatusCode != 200 || string(body) != `{"status":"ready"}`+"\n" {
		t.Fatalf("readyz: %d %s", resp.StatusCode, body)
	}
}

// TestStreamPluginKilled: kill -9 of the plugin in the middle of a stream
// gives the client an error event at once, then [DONE]; the plugin manager
// then restarts the plugin for the other tests.
func TestStreamPluginKilled(t *testing.T) {
	p := getPlane(t)
	_, base := startShim(t, nil)
	slow := func() pluginmgr.Snapshot {
		for _, s := range p.manager.Snapshots() {
			if s.Name == "slow" {
				return s
			}
		}
		t.Fatal("no slow plugin")
		return pluginmgr.Snapshot{}
	}
	pid := slow().PID
	t.Cleanup(func() {
		testutil.WaitFor(t, 10*time.Second, "the slow plugin to be restarted", func() bool { s := slow(); return s.Healthy && s.PID != pid })
	})

	prompt := strings.TrimSpace(strings.Repeat("word ", 50)) // 5 s of generation
	req, _ := http.NewRequest("POST", base+"/v1/chat/completions",
		strings.NewReader(`{"model":"dsmil-slow","stream":true,"messages":[{"role":"user","content":"`+prompt+`"}]}`))
	req.Header.Set("Authorization", "Bearer "+keyT)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "data: ") {
		t.Fatalf("first event %q: %v", line, err)
	}
	br.ReadString('\n') // the blank line that ends it
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(br)
	took := time.Since(killed)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := sseEvents(t, rest)
	if len(data) < 2 || data[len(data)-1] != "[DONE]" {
		t.Fatalf("after the kill: %s", rest)
	}
	var last streamChunk
	json.Unmarshal([]byte(data[len(data)-2]), &last)
	if last.Error == nil || str(last.Error.Code) != "worker_failed" || took > time.Second {
		t.Fatalf("after %v: %s", took, rest)
	}
	t.Logf("the error event came %v after the kill", took.Round(time.Millisecond))
}
