package shim

import (
	"math"
	"unicode/utf8"

	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
)

// Log probabilities in OpenAI's shapes.

// minLogprob stands for a log probability of -Inf, which JSON cannot
// carry (OpenAI's and vLLM's value).
const minLogprob = -9999.0

func logprobValue(x float32) float32 {
	if math.IsNaN(float64(x)) || x < minLogprob {
		return minLogprob
	}
	return x
}

// chatLogprobs is a chat choice's (or chunk's) logprobs.
type chatLogprobs struct {
	Content []tokenLogprobJSON `json:"content"`
	Refusal *string            `json:"refusal"` // always null
}

type tokenLogprobJSON struct {
	Token       string           `json:"token"`
	Logprob     float32          `json:"logprob"`
	Bytes       []int            `json:"bytes"`
	TopLogprobs []topLogprobJSON `json:"top_logprobs"`
}

type topLogprobJSON struct {
	Token   string  `json:"token"`
	Logprob float32 `json:"logprob"`
	Bytes   []int   `json:"bytes"`
}

// textLogprobs is a completion choice's (or chunk's) logprobs: parallel
// arrays, top_logprobs a map from token to logprob holding the sampled
// token and the requested alternatives (so up to logprobs+1 entries, as
// OpenAI's), text_offset each token's offset in the completion text, in
// characters (Unicode code points, as vLLM's).
type textLogprobs struct {
	Tokens        []string             `json:"tokens"`
	TokenLogprobs []float32            `json:"token_logprobs"`
	TopLogprobs   []map[string]float32 `json:"top_logprobs"`
	TextOffset    []int                `json:"text_offset"`
}

func byteList(b []byte) []int {
	out := make([]int, len(b))
	for i, c := range b {
		out[i] = int(c)
	}
	return out
}

// toLogprobs is lps in the endpoint's shape; offset is the completion
// text's length in characters before them, advanced past them. nil (JSON
// null) when the request did not ask for log probabilities.
func toLogprobs(call *chatCall, lps []*l7v1.TokenLogprob, offset *int) any {
	if !call.params.GetLogprobs() {
		return nil
	}
	if call.endpoint == chatEndpoint {
		out := &chatLogprobs{Content: make([]tokenLogprobJSON, len(lps))}
		for i, lp := range lps {
			t := tokenLogprobJSON{Token: lp.GetToken(), Logprob: logprobValue(lp.GetLogprob()), Bytes: byteList(lp.GetBytes()),
				TopLogprobs: make([]topLogprobJSON, len(lp.GetTopLogprobs()))}
			for j, top := range lp.GetTopLogprobs() {
				t.TopLogprobs[j] = topLogprobJSON{Token: top.GetToken(), Logprob: logprobValue(top.GetLogprob()), Bytes: byteList(top.GetBytes())}
			}
			out.Content[i] = t
		}
		return out
	}
	out := &textLogprobs{Tokens: make([]string, len(lps)), TokenLogprobs: make([]float32, len(lps)),
		TopLogprobs: make([]map[string]float32, len(lps)), TextOffset: make([]int, len(lps))}
	for i, lp := range lps {
		out.Tokens[i], out.TokenLogprobs[i] = lp.GetToken(), logprobValue(lp.GetLogprob())
		top := make(map[string]float32, len(lp.GetTopLogprobs())+1)
		for _, t := range lp.GetTopLogprobs() {
			if _, dup := top[t.GetToken()]; !dup {
				top[t.GetToken()] = logprobValue(t.GetLogprob())
			}
		}
		top[lp.GetToken()] = out.TokenLogprobs[i]
		out.TopLogprobs[i] = top
		out.TextOffset[i] = *offset
		*offset += utf8.RuneCountInString(lp.GetToken())
	}
	return out
}
