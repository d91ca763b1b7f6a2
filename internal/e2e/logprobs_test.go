package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// postShim posts body to the shim's path with tenant T's key and returns
// the response body, or for a stream the data of its events.
func postShim(t *testing.T, base, path, body string) []byte {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testAPIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: HTTP %d: %s", body, resp.StatusCode, b)
	}
	return b
}

type chatLogprob struct {
	Token       string  `json:"token"`
	Logprob     float64 `json:"logprob"`
	RawBytes    []int   `json:"bytes"`
	TopLogprobs []struct {
		Token   string  `json:"token"`
		Logprob float64 `json:"logprob"`
		Bytes   []int   `json:"bytes"`
	} `json:"top_logprobs"`
}

// TestLLMAMXLogprobs: logprobs through the real shim and the real llm-amx.
// Greedy, each token is the first of its top_logprobs, which are sorted;
// one entry per generated token, whose bytes make up the text; streamed,
// the chunks' entries are the same as the whole answer's; completions'
// logprobs has its parallel arrays.
func TestLLMAMXLogprobs(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns the plugin")
	}
	p := startPlane(t, 1024, `
  parallelism = 2
  kv_budget   = "1MiB"`)
	base := p.serveShim(t)
	const q = `{"model": "` + tinyModelID + `", "temperature": 0, "max_tokens": 10, "logprobs": true, "top_logprobs": 3,
	  "messages": [{"role": "user", "content": "Report the radio log."}]`

	var whole struct {
		Choices []struct {
			Message  struct{ Content string } `json:"message"`
			Logprobs *struct {
				Content []chatLogprob `json:"content"`
			} `json:"logprobs"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	b := postShim(t, base, "/v1/chat/completions", q+"}")
	if err := json.Unmarshal(b, &whole); err != nil || len(whole.Choices) != 1 || whole.Choices[0].Logprobs == nil {
		t.Fatalf("response %s: %v", b, err)
	}
	c := whole.Choices[0]
	lps := c.Logprobs.Content
	n := whole.Usage.CompletionTokens
	if len(lps) != n && !(len(lps) == n-1 && c.FinishReason == "stop") {
		t.Fatalf("%d logprobs for %d tokens (%s): %s", len(lps), n, c.FinishReason, b)
	}
	var text []byte
	for i, lp := range lps {
		if len(lp.TopLogprobs) != 3 || lp.TopLogprobs[0].Token != lp.Token || lp.TopLogprobs[0].Logprob != lp.Logprob {
			t.Fatalf("token %d %+v: greedy, but not the most likely", i, lp)
		}
		if lp.TopLogprobs[1].Logprob > lp.TopLogprobs[0].Logprob || lp.TopLogprobs[2].Logprob > lp.TopLogprobs[1].Logprob || lp.Logprob > 0 {
			t.Fatalf("token %d: top_logprobs not sorted: %+v", i, lp.TopLogprobs)
		}
		for _, x := range lp.RawBytes {
			text = append(text, byte(x))
		}
	}
	if string([]rune(string(text))) != c.Message.Content {
		t.Fatalf("the tokens' bytes %q; the text %q", text, c.Message.Content)
	}

	// Streamed: the same entries, spread over the chunks.
	var streamed []chatLogprob
	sc := bufio.NewScanner(strings.NewReader(string(postShim(t, base, "/v1/chat/completions", q+`, "stream": true}`))))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || line == "[DONE]" {
			continue
		}
		var chunk struct {
			Choices []struct {
				Logprobs *struct {
					Content []chatLogprob `json:"content"`
				} `json:"logprobs"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(line), &chunk); err != nil {
			t.Fatalf("chunk %s: %v", line, err)
		}
		for _, ch := range chunk.Choices {
			if ch.Logprobs != nil {
				streamed = append(streamed, ch.Logprobs.Content...)
			}
		}
	}
	ws, _ := json.Marshal(lps)
	ss, _ := json.Marshal(streamed)
	if string(ws) != string(ss) {
		t.Fatalf("streamed logprobs\n%s\nnot the whole answer's\n%s", ss, ws)
	}

	// Completions: logprobs 2 → parallel arrays, top maps of up to 3.
	var comp struct {
		Choices []struct {
			Text     string `json:"text"`
			Logprobs *struct {
				Tokens        []string             `json:"tokens"`
				TokenLogprobs []float64            `json:"token_logprobs"`
				TopLogprobs   []map[string]float64 `json:"top_logprobs"`
				TextOffset    []int                `json:"text_offset"`
			} `json:"logprobs"`
		} `json:"choices"`
	}
	b = postShim(t, base, "/v1/completions", `{"model": "`+tinyModelID+`", "prompt": "Hello", "temperature": 0, "max_tokens": 6, "logprobs": 2}`)
	if err := json.Unmarshal(b, &comp); err != nil || len(comp.Choices) != 1 || comp.Choices[0].Logprobs == nil {
		t.Fatalf("completion %s: %v", b, err)
	}
	l := comp.Choices[0].Logprobs
	if len(l.Tokens) == 0 || len(l.TokenLogprobs) != len(l.Tokens) || len(l.TopLogprobs) != len(l.Tokens) || len(l.TextOffset) != len(l.Tokens) || l.TextOffset[0] != 0 {
		t.Fatalf("completion logprobs %s", b)
	}
	for i, tok := range l.Tokens {
		if got, ok := l.TopLogprobs[i][tok]; !ok || got != l.TokenLogprobs[i] || len(l.TopLogprobs[i]) > 3 {
			t.Fatalf("position %d: token %q (%v), top %v", i, tok, l.TokenLogprobs[i], l.TopLogprobs[i])
		}
		for _, x := range l.TopLogprobs[i] {
			if x > l.TokenLogprobs[i] {
				t.Fatalf("position %d: greedy token %q (%v) below an alternative: %v", i, tok, l.TokenLogprobs[i], l.TopLogprobs[i])
			}
		}
	}
	t.Logf("%q: %d tokens; completion %q", c.Message.Content, len(lps), comp.Choices[0].Text)
}
