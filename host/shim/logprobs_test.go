package shim

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/dsmil/l7/host/config"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
)

// lpFixture: "é" split over two tokens ("\xc3", "\xa9" with U+FFFD texts),
// then " ok" whose runner-up has a log probability of -Inf.
func lpFixture() []*l7v1.TokenLogprob {
	return []*l7v1.TokenLogprob{
		{Token: "\uFFFD", Logprob: -0.5, Bytes: []byte{0xc3}, TopLogprobs: []*l7v1.TopLogprob{
			{Token: "\uFFFD", Logprob: -0.5, Bytes: []byte{0xc3}}, {Token: "a", Logprob: -1.25, Bytes: []byte("a")}}},
		{Token: "\uFFFD", Logprob: -0.125, Bytes: []byte{0xa9}},
		{Token: " ok", Logprob: -2, Bytes: []byte(" ok"), TopLogprobs: []*l7v1.TopLogprob{
			{Token: "x", Logprob: -1, Bytes: []byte("x")}, {Token: "y", Logprob: float32(math.Inf(-1)), Bytes: []byte("y")}}},
	}
}

func marshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestLogprobsJSON: chat's logprobs.content (bytes as integer arrays,
// top_logprobs always an array, -Inf as -9999) and completions' parallel
// arrays (top_logprobs maps with the sampled token, text_offset in
// characters), whole and streamed; null when the request did not ask.
func TestLogprobsJSON(t *testing.T) {
	model := &config.Model{ID: "m"}
	chat := &chatCall{endpoint: chatEndpoint, model: model, params: &l7v1.L7ChatRequest{Logprobs: true, TopLogprobs: 2}}
	text := &chatCall{endpoint: textEndpoint, model: model, params: &l7v1.L7ChatRequest{Logprobs: true, TopLogprobs: 2}}
	resp := &l7v1.L7ChatResponse{Choices: []*l7v1.Choice{{Message: &l7v1.Message{Content: "é ok"}, Text: "é ok", Logprobs: lpFixture()}}}

	wantChat := `{"content":[` +
		`{"token":"\ufffd","logprob":-0.5,"bytes":[195],"top_logprobs":[{"token":"\ufffd","logprob":-0.5,"bytes":[195]},{"token":"a","logprob":-1.25,"bytes":[97]}]},` +
		`{"token":"\ufffd","logprob":-0.125,"bytes":[169],"top_logprobs":[]},` +
		`{"token":" ok","logprob":-2,"bytes":[32,111,107],"top_logprobs":[{"token":"x","logprob":-1,"bytes":[120]},{"token":"y","logprob":-9999,"bytes":[121]}]}` +
		`],"refusal":null}`
	// encoding/json writes U+FFFD as itself.
	wantChat = strings.ReplaceAll(wantChat, `\ufffd`, "\uFFFD")
	if got := marshal(t, wholeResponse(chat, [16]byte{}, 0, resp).Choices[0].Logprobs); got != wantChat {
		t.Errorf("chat:\n got %s\nwant %s", got, wantChat)
	}
	wantText := `{"tokens":["\ufffd","\ufffd"," ok"],"token_logprobs":[-0.5,-0.125,-2],` +
		`"top_logprobs":[{"a":-1.25,"\ufffd":-0.5},{"\ufffd":-0.125},{" ok":-2,"x":-1,"y":-9999}],"text_offset":[0,1,2]}`
	wantText = strings.ReplaceAll(wantText, `\ufffd`, "\uFFFD")
	if got := marshal(t, wholeResponse(text, [16]byte{}, 0, resp).Choices[0].Logprobs); got != wantText {
		t.Errorf("completions:\n got %s\nwant %s", got, wantText)
	}
	none := &chatCall{endpoint: chatEndpoint, model: model, params: &l7v1.L7ChatRequest{}}
	if got := marshal(t, wholeResponse(none, [16]byte{}, 0, resp).Choices[0]); !json.Valid([]byte(got)) || !strings.Contains(got, `"logprobs":null`) {
		t.Errorf("without logprobs: %s", got)
	}

	// Streamed: each chunk carries its tokens; text_offset runs on across
	// chunks; a chunk with log probabilities and no text still goes out.
	lps := lpFixture()
	for _, call := range []*chatCall{chat, text} {
		st := &streamer{call: call, roleSent: map[int32]bool{}, finished: map[int32]bool{}, offset: map[int32]int{}}
		a := st.chunks(&l7v1.L7ChatChunk{Delta: "é", Logprobs: lps[:2]})
		b := st.chunks(&l7v1.L7ChatChunk{Logprobs: lps[2:]})
		if len(a) != 1 || len(b) != 1 {
			t.Fatalf("endpoint %d: %d and %d chunks", call.endpoint, len(a), len(b))
		}
		got := marshal(t, b[0].Choices[0].Logprobs)
		want := `{"content":[{"token":" ok","logprob":-2,"bytes":[32,111,107],"top_logprobs":[{"token":"x","logprob":-1,"bytes":[120]},{"token":"y","logprob":-9999,"bytes":[121]}]}],"refusal":null}`
		if call.endpoint == textEndpoint {
			want = `{"tokens":[" ok"],"token_logprobs":[-2],"top_logprobs":[{" ok":-2,"x":-1,"y":-9999}],"text_offset":[2]}`
		}
		if got != want {
			t.Errorf("endpoint %d, second chunk:\n got %s\nwant %s", call.endpoint, got, want)
		}
		if fin := st.chunks(&l7v1.L7ChatChunk{FinishReason: l7v1.FinishReason_FINISH_REASON_STOP}); fin[0].Choices[0].Logprobs != nil {
			t.Errorf("endpoint %d: the finish chunk has logprobs %v", call.endpoint, fin[0].Choices[0].Logprobs)
		}
	}
}
