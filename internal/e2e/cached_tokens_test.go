package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// otherAPIKey is the API key of tenant "U", a second tenant of startPlane's
// dsmil.hcl.
const otherAPIKey = "llm-amx-other-tenant-key"

// usageOut is a response's usage as the OpenAI shim renders it.
type usageOut struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	PromptTokensDetails *struct {
		CachedTokens *int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
}

// cached is usage.prompt_tokens_details.cached_tokens, failing the test
// when the shim left it out.
func (u usageOut) cached(t *testing.T, what string) int {
	t.Helper()
	if u.PromptTokensDetails == nil || u.PromptTokensDetails.CachedTokens == nil {
		t.Fatalf("%s: usage %+v has no prompt_tokens_details.cached_tokens", what, u)
	}
	return *u.PromptTokensDetails.CachedTokens
}

// TestLLMAMXCachedTokens: usage.prompt_tokens_details.cached_tokens through
// the real shim and the real llm-amx. A second request sharing a long
// system prompt reuses the first's prefix-cache blocks and says so, streamed
// (include_usage) and not; another tenant's identical request reuses
// nothing.
func TestLLMAMXCachedTokens(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns the plugin")
	}
	p := startPlane(t, 1024, `
  parallelism  = 2
  kv_budget    = "2MiB"
  prefix_cache = "512KiB"`)
	base := p.serveShim(t)
	system := strings.Repeat("You are the operations assistant of the night shift; answer briefly. ", 6)

	post := func(key, user string, stream bool) usageOut {
		t.Helper()
		q := map[string]any{
			"model": tinyModelID, "max_tokens": 3, "temperature": 0, "stream": stream,
			"messages": []map[string]string{{"role": "system", "content": system}, {"role": "user", "content": user}},
		}
		if stream {
			q["stream_options"] = map[string]any{"include_usage": true}
		}
		body, _ := json.Marshal(q)
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("HTTP %d: %s", resp.StatusCode, b)
		}
		var out struct {
			Usage *usageOut `json:"usage"`
		}
		if !stream {
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Usage == nil {
				t.Fatalf("response: %v, usage %v", err, out.Usage)
			}
			return *out.Usage
		}
		var last *usageOut
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok || line == "[DONE]" {
				continue
			}
			out.Usage = nil
			if err := json.Unmarshal([]byte(line), &out); err != nil {
				t.Fatalf("chunk %s: %v", line, err)
			}
			if out.Usage != nil {
				last = out.Usage
			}
		}
		if last == nil {
			t.Fatal("stream with include_usage: no usage chunk")
		}
		return *last
	}

	first := post(testAPIKey, "Status?", false)
	if first.PromptTokens < 64 {
		t.Fatalf("the system prompt is only %d tokens: too short for two 32-token blocks", first.PromptTokens)
	}
	if c := first.cached(t, "first request"); c != 0 {
		t.Fatalf("first request: cached_tokens %d, want 0", c)
	}
	second := post(testAPIKey, "Anything new?", false)
	c2 := second.cached(t, "second request")
	if c2 < 32 || c2 >= second.PromptTokens || c2%32 != 0 {
		t.Fatalf("second request of the tenant: cached_tokens %d of %d prompt tokens; want whole 32-token blocks of the shared system prompt",
			c2, second.PromptTokens)
	}
	streamed := post(testAPIKey, "And now?", true)
	if c := streamed.cached(t, "streamed request"); c < 32 || c >= streamed.PromptTokens {
		t.Fatalf("streamed request of the tenant: cached_tokens %d of %d prompt tokens", c, streamed.PromptTokens)
	}
	other := post(otherAPIKey, "Anything new?", true)
	if c := other.cached(t, "other tenant"); c != 0 || other.PromptTokens != second.PromptTokens {
		t.Fatalf("another tenant's identical request: cached_tokens %d (prompt %d), want 0 (prompt %d)", c, other.PromptTokens, second.PromptTokens)
	}
	t.Logf("prompt %d tokens: cached %d, then %d for another tenant", second.PromptTokens, c2, other.cached(t, "other"))
}
