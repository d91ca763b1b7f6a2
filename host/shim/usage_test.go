package shim

import (
	"encoding/json"
	"testing"

	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"google.golang.org/protobuf/proto"
)

// TestUsageCachedTokens: cached_tokens reaches usage.prompt_tokens_details
// when the worker reports it (0 included) and is left out when it does not.
func TestUsageCachedTokens(t *testing.T) {
	for _, tc := range []struct {
		in   *l7v1.Usage
		want string
	}{
		{&l7v1.Usage{PromptTokens: 70, CompletionTokens: 3, CachedTokens: proto.Uint32(64)},
			`{"prompt_tokens":70,"completion_tokens":3,"total_tokens":73,"prompt_tokens_details":{"cached_tokens":64}}`},
		{&l7v1.Usage{PromptTokens: 70, CompletionTokens: 3, TotalTokens: 73, CachedTokens: proto.Uint32(0)},
			`{"prompt_tokens":70,"completion_tokens":3,"total_tokens":73,"prompt_tokens_details":{"cached_tokens":0}}`},
		{&l7v1.Usage{PromptTokens: 70, CompletionTokens: 3},
			`{"prompt_tokens":70,"completion_tokens":3,"total_tokens":73}`},
		{nil, `{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}`},
	} {
		got, _ := json.Marshal(toUsage(tc.in))
		if string(got) != tc.want {
			t.Errorf("toUsage(%v) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
