package e2e

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"
)

// TestLLMAMXChoices: n > 1 through the real shim and the real llm-amx:
// n choices with their indices, seeded, each as the same request gives
// alone with seed + i; streamed, the same texts by index with one finish
// chunk each; usage counts every choice's tokens.
func TestLLMAMXChoices(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns the plugin")
	}
	p := startPlane(t, 1024, `
  parallelism = 4
  kv_budget   = "1MiB"
  ignore_eos  = true`)
	base := p.serveShim(t)
	body := func(n, seed int, extra string) string {
		b, _ := json.Marshal(map[string]any{"model": tinyModelID, "temperature": 1, "seed": seed, "max_tokens": 8, "n": n,
			"messages": []map[string]string{{"role": "user", "content": "Three takes, please."}}})
		return strings.TrimSuffix(string(b), "}") + extra + "}"
	}
	type choice struct {
		Index        int `json:"index"`
		Message      struct{ Content string }
		FinishReason string `json:"finish_reason"`
	}
	var whole struct {
		Choices []choice `json:"choices"`
		Usage   struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	alone := func(seed int) string {
		if err := json.Unmarshal(postShim(t, base, "/v1/chat/completions", body(1, seed, "")), &whole); err != nil || len(whole.Choices) != 1 {
			t.Fatalf("n=1: %v %+v", err, whole)
		}
		return whole.Choices[0].Message.Content
	}
	want := []string{alone(5), alone(6), alone(7)}
	single := whole.Usage

	b := postShim(t, base, "/v1/chat/completions", body(3, 5, ""))
	if err := json.Unmarshal(b, &whole); err != nil || len(whole.Choices) != 3 {
		t.Fatalf("n=3: %v %s", err, b)
	}
	for i, c := range whole.Choices {
		if c.Index != i || c.Message.Content != want[i] || c.FinishReason != "length" {
			t.Errorf("choice %d: %+v; alone with seed %d: %q", i, c, 5+i, want[i])
		}
	}
	if whole.Usage.PromptTokens != single.PromptTokens || whole.Usage.CompletionTokens != 3*single.CompletionTokens {
		t.Errorf("usage %+v; one choice: %+v", whole.Usage, single)
	}

	// Streamed.
	texts := map[int]string{}
	finishes := map[int]int{}
	sc := bufio.NewScanner(strings.NewReader(string(postShim(t, base, "/v1/chat/completions", body(3, 5, `,"stream":true`)))))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || line == "[DONE]" {
			continue
		}
		var chunk struct {
			Choices []struct {
				Index int `json:"index"`
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(line), &chunk); err != nil {
			t.Fatalf("chunk %s: %v", line, err)
		}
		for _, c := range chunk.Choices {
			texts[c.Index] += c.Delta.Content
			if c.FinishReason != nil {
				finishes[c.Index]++
			}
		}
	}
	for i := range 3 {
		if texts[i] != want[i] || finishes[i] != 1 {
			t.Errorf("streamed choice %d: %q (%d finishes), want %q", i, texts[i], finishes[i], want[i])
		}
	}
	if len(texts) != 3 {
		t.Errorf("streamed choices %v", texts)
	}
}
