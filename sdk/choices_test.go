package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/dsmil/l7/sdk"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"github.com/dsmil/l7/sdk/sdktest"
	"google.golang.org/protobuf/proto"
)

// multi is a chatter that generates up to 3 choices.
type multi struct{ chatter }

func (m *multi) MaxChoices() int { return 3 }

// TestMultiChoice: a MultiChoice workload's choices become the response's
// choices (index, text, log probabilities, finish reason each), or, streamed,
// chunks with their index, the role on each choice's first, a finish chunk
// per choice and usage and END_STREAM on the last only; n above its
// MaxChoices, or n > 1 to a workload that is not MultiChoice, is a 400 on n.
func TestMultiChoice(t *testing.T) {
	w := &multi{chatter{chat: func(ctx context.Context, req *sdk.ChatRequest, out sdk.Stream) (*sdk.ChatResult, error) {
		cs := out.(sdk.ChoiceStream)
		n := int(req.Params.GetN())
		if cs.Choice(n) != nil || cs.Choice(-1) != nil {
			return nil, fmt.Errorf("Choice outside n")
		}
		for step := range 2 {
			for i := n - 1; i >= 0; i-- { // interleaved, last choice first
				if err := cs.Choice(i).(sdk.LogprobStream).SendLogprobs(fmt.Sprintf("c%d.%d ", i, step),
					[]*l7v1.TokenLogprob{{Token: fmt.Sprint(i), Logprob: -float32(i)}}); err != nil {
					return nil, err
				}
			}
		}
		return &sdk.ChatResult{Usage: &l7v1.Usage{PromptTokens: 2, CompletionTokens: uint32(4 * n)},
			Finishes: []l7v1.FinishReason{l7v1.FinishReason_FINISH_REASON_LENGTH}}, nil
	}}}
	c := connect(t, w)
	p := chatReq(false)
	p.N = 3
	f, _ := sdktest.ChatFrame("p1", p)
	frames, err := sdktest.Call(context.Background(), c.Client, f)
	if err != nil || len(frames) != 1 {
		t.Fatalf("%d frames, %v", len(frames), err)
	}
	var resp l7v1.L7ChatResponse
	_ = proto.Unmarshal(frames[0].Payload, &resp)
	if len(resp.GetChoices()) != 3 {
		t.Fatalf("response %v", &resp)
	}
	for i, ch := range resp.GetChoices() {
		want := fmt.Sprintf("c%d.0 c%d.1 ", i, i)
		fin := l7v1.FinishReason_FINISH_REASON_STOP
		if i == 0 {
			fin = l7v1.FinishReason_FINISH_REASON_LENGTH
		}
		if ch.GetIndex() != int32(i) || ch.GetMessage().GetContent() != want || ch.GetFinishReason() != fin ||
			len(ch.GetLogprobs()) != 2 || ch.GetLogprobs()[1].GetToken() != fmt.Sprint(i) {
			t.Errorf("choice %d: %v", i, ch)
		}
	}

	// Streamed.
	p = chatReq(true)
	p.N = 2
	f, _ = sdktest.ChatFrame("p1", p)
	frames, err = sdktest.Call(context.Background(), c.Client, f)
	if err != nil {
		t.Fatal(err)
	}
	texts := map[int32]string{}
	roles, finishes := map[int32]int{}, map[int32]int{}
	for k, fr := range frames {
		var ch l7v1.L7ChatChunk
		_ = proto.Unmarshal(fr.Payload, &ch)
		texts[ch.GetIndex()] += ch.GetDelta()
		if ch.GetRole() != "" {
			roles[ch.GetIndex()]++
		}
		if ch.GetFinishReason() != l7v1.FinishReason_FINISH_REASON_UNSPECIFIED {
			finishes[ch.GetIndex()]++
		}
		last := k == len(frames)-1
		if last != (fr.Flags&dbe.FlagEndStream != 0) || last != (ch.GetUsage() != nil) {
			t.Errorf("frame %d of %d: flags %v, usage %v", k, len(frames), fr.Flags, ch.GetUsage())
		}
	}
	if texts[0] != "c0.0 c0.1 " || texts[1] != "c1.0 c1.1 " || roles[0] != 1 || roles[1] != 1 || finishes[0] != 1 || finishes[1] != 1 {
		t.Fatalf("streamed: texts %q, roles %v, finishes %v", texts, roles, finishes)
	}

	// Limits.
	for _, tc := range []struct {
		w sdk.Workload
		n int32
	}{{w, 4}, {&chatter{chat: words("x")}, 2}} {
		p := chatReq(false)
		p.N = tc.n
		f, _ := sdktest.ChatFrame("p1", p)
		_, err := sdktest.Call(context.Background(), connect(t, tc.w).Client, f)
		var e *mux.Error
		if !errors.As(err, &e) || e.Code != dbe.CodeInvalidRequest || e.Param != "n" || !strings.Contains(e.Message, "n=") {
			t.Errorf("n=%d: %v", tc.n, err)
		}
	}
}
