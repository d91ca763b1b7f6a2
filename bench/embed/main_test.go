package main

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

// answer is an embeddings answer as the shim writes it (its bytes equal
// encoding/json's, host/shim TestEmbeddingsJSON): n vectors of dims floats.
func answer(t testing.TB, n, dims, tokens int) []byte {
	t.Helper()
	type item struct {
		Object    string `json:"object"`
		Index     int    `json:"index"`
		Embedding string `json:"embedding"`
	}
	var a struct {
		Object string `json:"object"`
		Data   []item `json:"data"`
		Model  string `json:"model"`
		Usage  struct {
			PromptTokens int `json:"prompt_tokens"`
			TotalTokens  int `json:"total_tokens"`
		} `json:"usage"`
	}
	a.Object, a.Model = "list", modelID
	for i := range n {
		a.Data = append(a.Data, item{"embedding", i, base64.StdEncoding.EncodeToString(make([]byte, 4*dims))})
	}
	a.Usage.PromptTokens, a.Usage.TotalTokens = tokens, tokens
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAnswerChecks: the full decode and the scan find the same vector count
// and tokens in a good answer, and both refuse a vector of the wrong
// length; the scan refuses what is not base64 and an answer without
// prompt_tokens.
func TestAnswerChecks(t *testing.T) {
	const dims = 6
	vecLen := (dims*4 + 2) / 3 * 4
	good := answer(t, 3, dims, 48)
	for name, check := range map[string]func([]byte, int) (int, int, error){"decode": decodeAnswer, "scan": scanAnswer} {
		if v, tk, err := check(good, vecLen); err != nil || v != 3 || tk != 48 {
			t.Errorf("%s: %d vectors, %d tokens, %v; want 3, 48", name, v, tk, err)
		}
		if _, _, err := check(answer(t, 3, dims+1, 48), vecLen); err == nil {
			t.Errorf("%s: vectors of %d floats passed for %d", name, dims+1, dims)
		}
		if v, _, err := check(answer(t, 0, dims, 0), vecLen); err != nil || v != 0 {
			t.Errorf("%s: no vectors: %d, %v", name, v, err)
		}
	}
	bad := []byte(strings.Replace(string(good), `"embedding":"AAAA`, `"embedding":"AA!A`, 1))
	if _, _, err := scanAnswer(bad, vecLen); err == nil {
		t.Error("scan: a vector with '!' passed")
	}
	if _, _, err := scanAnswer([]byte(strings.Replace(string(good), "prompt_tokens", "prompt", 1)), vecLen); err == nil {
		t.Error("scan: an answer without prompt_tokens passed")
	}
}

// BenchmarkAnswerChecks: what checking a 32-vector answer of 384 floats
// costs the client, decoded and scanned.
func BenchmarkAnswerChecks(b *testing.B) {
	body := answer(b, 32, 384, 512)
	vecLen := (384*4 + 2) / 3 * 4
	for name, check := range map[string]func([]byte, int) (int, int, error){"decode": decodeAnswer, "scan": scanAnswer} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if v, _, err := check(body, vecLen); err != nil || v != 32 {
					b.Fatal(v, err)
				}
			}
		})
	}
}
