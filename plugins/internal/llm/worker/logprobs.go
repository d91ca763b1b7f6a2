package worker

import (
	"strings"

	"github.com/dsmil/l7/plugins/internal/llm/engine"
	"github.com/dsmil/l7/plugins/internal/tokenizer"
	"github.com/dsmil/l7/sdk"
	"github.com/dsmil/l7/sdk/dbe"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
)

// logprobOut is the stream of a request that asked for log
// probabilities: the engine's log probabilities wait in pending and go out
// with the next text delta (through the tool-call emitter, with the next
// content delta; tokens of a tool call with the next content or at the
// end, by flush).
type logprobOut struct {
	out     sdk.LogprobStream
	tok     *tokenizer.Tokenizer
	pending []*l7v1.TokenLogprob
}

func newLogprobOut(out sdk.Stream, tok *tokenizer.Tokenizer) (*logprobOut, error) {
	lo, ok := out.(sdk.LogprobStream)
	if !ok {
		return nil, sdk.Errorf(dbe.CodeInternal, "the SDK's stream cannot carry log probabilities")
	}
	return &logprobOut{out: lo, tok: tok}, nil
}

// Send sends delta with the pending log probabilities.
func (o *logprobOut) Send(delta string) error {
	lps := o.pending
	o.pending = nil
	return o.out.SendLogprobs(delta, lps)
}

// SendToolCall passes a tool-call delta on.
func (o *logprobOut) SendToolCall(d *l7v1.ToolCallDelta) error {
	tc, ok := o.out.(sdk.ToolCallStream)
	if !ok {
		return sdk.Errorf(dbe.CodeInternal, "the SDK's stream cannot carry tool calls")
	}
	return tc.SendToolCall(d)
}

// add converts the engine's log probabilities and holds them.
func (o *logprobOut) add(lps []engine.Logprob) {
	for _, lp := range lps {
		t := &l7v1.TokenLogprob{Logprob: lp.Logprob}
		t.Token, t.Bytes = o.token(lp.ID)
		if len(lp.Top) > 0 {
			t.TopLogprobs = make([]*l7v1.TopLogprob, len(lp.Top))
			for i, tl := range lp.Top {
				top := &l7v1.TopLogprob{Logprob: tl.Logprob}
				top.Token, top.Bytes = o.token(tl.ID)
				t.TopLogprobs[i] = top
			}
		}
		o.pending = append(o.pending, t)
	}
}

// token is id's text and raw bytes: a token that is part of a multi-byte
// character has U+FFFD in its text (as vLLM's), its exact bytes in bytes.
func (o *logprobOut) token(id int) (string, []byte) {
	b, ok := o.tok.TokenBytes(id)
	if !ok {
		return "", nil
	}
	return strings.ToValidUTF8(string(b), "\uFFFD"), b
}

// flush sends what is still pending, with no text.
func (o *logprobOut) flush() error {
	if len(o.pending) == 0 {
		return nil
	}
	return o.Send("")
}
