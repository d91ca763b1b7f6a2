package worker

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/dsmil/l7/plugins/internal/llm/admission"
	"github.com/dsmil/l7/plugins/internal/llm/chattmpl"
	"github.com/dsmil/l7/plugins/internal/llm/engine"
	"github.com/dsmil/l7/plugins/internal/llm/sampler"
	"github.com/dsmil/l7/sdk"
	"github.com/dsmil/l7/sdk/dbe"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"google.golang.org/protobuf/proto"
)

// Default sampling parameters, OpenAI's: a request that sets no
// temperature samples at temperature 1 with a random seed.
const (
	DefaultTemperature = 1.0
	DefaultTopP        = 1.0
)

// Chat implements sdk.Chatter.
func (w *Workload) Chat(ctx context.Context, req *sdk.ChatRequest, out sdk.Stream) (*sdk.ChatResult, error) {
	start := time.Now()
	st := w.st.Load()
	if st == nil {
		return nil, sdk.ErrNotConfigured
	}
	if st.closed.Load() {
		return nil, errShuttingDown
	}
	p := req.Params
	if err := unsupported(p); err != nil {
		return nil, err
	}
	eng := st.eng
	tools, err := st.tools(p)
	if err != nil {
		return nil, err
	}
	promptParam := "messages"
	var prompt []int
	if p.GetPrompt() != "" {
		promptParam = "prompt"
		prompt = eng.TextPrompt(p.GetPrompt())
	} else {
		msgs, err := messages(p.GetMessages(), p.GetModel())
		if err != nil {
			return nil, err
		}
		if prompt, err = eng.ChatPrompt(msgs, tools.defs); err != nil {
			return nil, sdk.InvalidParam("messages", "the model's chat template refused the conversation: %v", err)
		}
	}
	sp, err := samplingParams(p, eng.SampleVocab())
	if err != nil {
		return nil, err
	}
	n := max(int(p.GetN()), 1)
	gens := make([]*engine.Request, n)
	for i := range gens {
		gen := &engine.Request{Prompt: prompt, Stop: p.GetStop(), Sampling: sp, IgnoreEOS: st.set.IgnoreEOS, Tenant: req.TenantID}
		// Choice i draws with seed + i: n different choices, each
		// reproducible with the request's seed.
		gen.Sampling.Seed += uint64(i)
		if gen.Constraint, err = st.constraint(p, tools); err != nil {
			return nil, err
		}
		if gen.MaxTokens, err = st.completionLimit(len(prompt), int(p.GetMaxTokens()), promptParam); err != nil {
			return nil, err
		}
		gens[i] = gen
	}

	need, err := st.need(len(prompt), gens[0].MaxTokens, n, promptParam)
	if err != nil {
		return nil, err
	}
	release, err := st.adm.Acquire(ctx, need)
	switch {
	case errors.Is(err, admission.ErrQueueFull):
		st.log.Warn("request refused: queue full", "request_id", dbe.FormatUUID(req.RequestID), "prompt_tokens", len(prompt))
		return nil, w.overloaded(st)
	case err != nil:
		st.log.Info("request ended while queued", "request_id", dbe.FormatUUID(req.RequestID), "prompt_tokens", len(prompt),
			"queue_ms", ms(time.Since(start)), "error", err)
		return nil, err
	}
	outs := make([]*choiceOut, n)
	emits := make([]func(string) error, n)
	for i := range outs {
		s := out
		if i > 0 {
			cs, ok := out.(sdk.ChoiceStream)
			if !ok || cs.Choice(i) == nil {
				release()
				return nil, sdk.Errorf(dbe.CodeInternal, "the SDK's stream has no choice %d", i)
			}
			s = cs.Choice(i)
		}
		if outs[i], err = st.choiceOut(p, tools, s, gens[i]); err != nil {
			release()
			return nil, err
		}
		emits[i] = outs[i].emit
	}
	admitted := time.Now()
	results, err := eng.GenerateN(ctx, gens, emits)
	release()
	w.observe(time.Since(admitted))
	res := *results[0]
	for _, r := range results[1:] {
		res.CompletionTokens += r.CompletionTokens
		res.KVBytes += r.KVBytes
		res.End = later(res.End, r.End)
	}
	st.logRequest(req, &res, start, admitted, err)
	if err != nil {
		return nil, err
	}
	finishes := make([]l7v1.FinishReason, n)
	for i, o := range outs {
		if finishes[i], err = o.close(results[i].Finish); err != nil {
			return nil, err
		}
	}
	return &sdk.ChatResult{
		FinishReason: finishes[0],
		Finishes:     finishes,
		Usage: &l7v1.Usage{
			PromptTokens:     uint32(res.PromptTokens),
			CompletionTokens: uint32(res.CompletionTokens),
			TotalTokens:      uint32(res.PromptTokens + res.CompletionTokens),
			CachedTokens:     proto.Uint32(uint32(res.CachedTokens)),
		},
		Model: st.set.ModelName,
	}, nil
}

// choiceOut is where one choice's text goes: its stream, through the
// tool-call parser when the model may call tools, with log probabilities
// when asked.
type choiceOut struct {
	emit  func(string) error
	calls *toolEmitter
	lps   *logprobOut
}

// choiceOut sets up out for the choice gen generates.
func (st *state) choiceOut(p *l7v1.L7ChatRequest, tools toolUse, out sdk.Stream, gen *engine.Request) (*choiceOut, error) {
	o := &choiceOut{}
	var err error
	if p.GetLogprobs() {
		if o.lps, err = newLogprobOut(out, st.eng.Tokenizer); err != nil {
			return nil, err
		}
		out = o.lps
	}
	o.emit = out.Send
	if tools.call {
		mode := p.GetToolChoice().GetMode()
		forced := mode == l7v1.ToolChoiceMode_TOOL_CHOICE_MODE_REQUIRED || mode == l7v1.ToolChoiceMode_TOOL_CHOICE_MODE_FUNCTION
		if o.calls, err = newToolEmitter(out, tools.format, forced); err != nil {
			return nil, err
		}
		o.emit = o.calls.emit
	}
	if o.lps != nil {
		gen.TopLogprobs = int(p.GetTopLogprobs())
		gen.Logprobs = func(text string, l []engine.Logprob) error {
			o.lps.add(l)
			if text == "" {
				return nil
			}
			return o.emit(text)
		}
	}
	return o, nil
}

// close ends the choice: the tool calls' finish, the log probabilities
// still held.
func (o *choiceOut) close(f engine.Finish) (l7v1.FinishReason, error) {
	finish := l7v1.FinishReason_FINISH_REASON_STOP
	if f == engine.FinishLength {
		finish = l7v1.FinishReason_FINISH_REASON_LENGTH
	}
	var err error
	if o.calls != nil {
		if finish, err = o.calls.close(finish); err != nil {
			return finish, err
		}
	}
	if o.lps != nil {
		if err := o.lps.flush(); err != nil {
			return finish, err
		}
	}
	return finish, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// completionLimit is the max_tokens a request generates with: the one it
// asked for, which must fit the context and the KV budget, or else the
// plugin's max_tokens setting, the rest of the context and what the KV
// budget allows, whichever is least.
func (st *state) completionLimit(promptLen, asked int, promptParam string) (int, error) {
	eng := st.eng
	ctxLen := eng.MaxContext()
	budgetTokens := int(min(int64(ctxLen), st.kvBudget/eng.KVBytes(1)))
	switch {
	case promptLen == 0:
		return 0, sdk.InvalidParam(promptParam, "the prompt is empty")
	case promptLen >= ctxLen:
		return 0, sdk.InvalidParam(promptParam, "the prompt has %d tokens; this model's maximum context length is %d tokens, "+
			"which must also hold the completion", promptLen, ctxLen)
	case asked > 0 && promptLen+asked > ctxLen:
		return 0, sdk.InvalidParam("max_tokens", "this model's maximum context length is %d tokens; the request has %d "+
			"prompt tokens and max_tokens %d (%d in all): lower max_tokens to at most %d",
			ctxLen, promptLen, asked, promptLen+asked, ctxLen-promptLen)
	case asked > 0 && promptLen+asked > budgetTokens:
		return 0, sdk.InvalidParam("max_tokens", "%d prompt tokens + max_tokens %d need %s of KV cache; the plugin's "+
			"kv_budget of %s holds at most %d tokens per request: lower max_tokens to at most %d",
			promptLen, asked, size(eng.KVBytes(promptLen+asked)), size(st.kvBudget), budgetTokens, max(budgetTokens-promptLen, 0))
	case asked > 0:
		return asked, nil
	case promptLen >= budgetTokens:
		return 0, sdk.InvalidParam(promptParam, "the prompt has %d tokens; the plugin's kv_budget of %s holds at most %d "+
			"tokens per request, completion included", promptLen, size(st.kvBudget), budgetTokens)
	}
	limit := budgetTokens - promptLen
	if st.set.MaxTokens > 0 {
		limit = min(limit, st.set.MaxTokens)
	}
	return limit, nil
}

// need is what a request reserves of the KV budget: the KV caches of its
// n choices and, unbatched (where prefills run side by side), its prefill
// working memory. A request that could never fit is refused.
func (st *state) need(promptLen, maxTokens, n int, promptParam string) (int64, error) {
	eng := st.eng
	need := int64(n) * eng.KVBytes(promptLen+maxTokens)
	if n > 1 && need > st.kvBudget {
		return 0, sdk.InvalidParam("n", "n=%d choices of %d prompt tokens + max_tokens %d need %s of KV cache; the plugin's "+
			"kv_budget is %s: lower n or max_tokens", n, promptLen, maxTokens, size(need), size(st.kvBudget))
	}
	if eng.Batching() {
		return need, nil
	}
	work := eng.PrefillBytes(promptLen, promptLen+maxTokens)
	if need+work > st.kvBudget {
		return 0, sdk.InvalidParam(promptParam, "the prompt's %d tokens + max_tokens %d need %s of KV cache and %s of prefill "+
			"working memory; the plugin's kv_budget is %s: shorten the prompt, lower max_tokens, or set prefill_chunk",
			promptLen, maxTokens, size(need), size(work), size(st.kvBudget))
	}
	return need + work, nil
}

// logRequest writes the one log line of a request: sizes and timings,
// never the text.
func (st *state) logRequest(req *sdk.ChatRequest, res *engine.Result, start, admitted time.Time, err error) {
	args := []any{
		"request_id", dbe.FormatUUID(req.RequestID),
		"prompt_tokens", res.PromptTokens,
		"cached_tokens", res.CachedTokens,
		"completion_tokens", res.CompletionTokens,
		"queue_ms", ms(admitted.Sub(start)),
	}
	if !res.FirstToken.IsZero() {
		args = append(args, "ttft_ms", ms(res.FirstToken.Sub(start)), "prefill_ms", ms(res.FirstToken.Sub(res.Start)))
	}
	args = append(args, "tokens_per_s", round1(res.DecodeRate()), "total_ms", ms(res.End.Sub(start)), "kv_cache", size(res.KVBytes))
	if err != nil {
		st.log.Info("request ended early", append(args, "error", err)...)
		return
	}
	st.log.Info("request", append(args, "finish", res.Finish.String())...)
}

func ms(d time.Duration) float64 { return round1(float64(d.Microseconds()) / 1e3) }

func round1(x float64) float64 { return float64(int64(x*10+0.5)) / 10 }

// Limits on stop sequences: each generated token is checked against all
// of them.
const (
	MaxStops     = 16
	MaxStopBytes = 1024
)

// unsupported refuses the request fields the worker does not implement,
// rather than ignoring them, and stop sequences beyond its limits.
func unsupported(p *l7v1.L7ChatRequest) error {
	if len(p.GetStop()) > MaxStops {
		return sdk.InvalidParam("stop", "%d stop sequences; the plugin takes at most %d", len(p.GetStop()), MaxStops)
	}
	for _, s := range p.GetStop() {
		if len(s) > MaxStopBytes {
			return sdk.InvalidParam("stop", "a stop sequence of %d bytes; the plugin takes at most %d", len(s), MaxStopBytes)
		}
	}
	return nil
}

// messages converts the conversation for the chat template; model names
// the model in the error for an image.
func messages(in []*l7v1.Message, model string) ([]chattmpl.Message, error) {
	out := make([]chattmpl.Message, len(in))
	for i, m := range in {
		text := m.GetContent()
		if len(m.GetParts()) > 0 {
			var texts []string
			for _, part := range m.GetParts() {
				t, ok := part.GetPart().(*l7v1.ContentPart_Text)
				if !ok {
					return nil, sdk.InvalidParam("messages", "message %d has an image; model %q reads text only: "+
						"give its model block an image companion (vision = ...) to have images transcribed for it", i, model)
				}
				texts = append(texts, t.Text)
			}
			text = strings.Join(texts, "\n")
		}
		out[i] = chattmpl.Message{Role: m.GetRole(), Content: text}
		if m.GetName() != "" || m.GetToolCallId() != "" || len(m.GetToolCalls()) > 0 {
			out[i].Extra = map[string]any{}
			if m.GetName() != "" {
				out[i].Extra["name"] = m.GetName()
			}
			if m.GetToolCallId() != "" {
				out[i].Extra["tool_call_id"] = m.GetToolCallId()
			}
			var calls []any
			for _, tc := range m.GetToolCalls() {
				calls = append(calls, map[string]any{"id": tc.GetId(), "type": "function",
					"function": map[string]any{"name": tc.GetName(), "arguments": tc.GetArgumentsJson()}})
			}
			if calls != nil {
				out[i].Extra["tool_calls"] = calls
			}
		}
	}
	return out, nil
}

// samplingParams reads a request's sampling fields, with OpenAI's
// defaults: temperature 1, top_p 1, no top-k, min-p or penalties, a
// random seed.
func samplingParams(p *l7v1.L7ChatRequest, vocab int) (sampler.Params, error) {
	sp := sampler.Params{Temperature: DefaultTemperature, TopP: DefaultTopP, RepetitionPenalty: 1}
	if p.Temperature != nil {
		sp.Temperature = float64(p.GetTemperature())
	}
	if p.TopP != nil {
		sp.TopP = float64(p.GetTopP())
	}
	if p.TopK != nil {
		sp.TopK = int(p.GetTopK())
	}
	if p.MinP != nil {
		sp.MinP = float64(p.GetMinP())
	}
	if p.RepetitionPenalty != nil {
		sp.RepetitionPenalty = float64(p.GetRepetitionPenalty())
	}
	if p.PresencePenalty != nil {
		sp.PresencePenalty = float64(p.GetPresencePenalty())
	}
	if p.FrequencyPenalty != nil {
		sp.FrequencyPenalty = float64(p.GetFrequencyPenalty())
	}
	if p.Seed != nil {
		sp.Seed = uint64(p.GetSeed())
	} else {
		sp.Seed = rand.Uint64()
	}
	if len(p.GetLogitBias()) > 0 {
		sp.LogitBias = make(map[int]float32, len(p.GetLogitBias()))
		for id, b := range p.GetLogitBias() {
			sp.LogitBias[int(id)] = b
		}
	}
	if err := sp.Validate(vocab); err != nil {
		var pe *sampler.ParamError
		if errors.As(err, &pe) {
			return sp, sdk.InvalidParam(pe.Param, "%s", pe.Reason)
		}
		return sp, sdk.InvalidParam("temperature", "%v", err)
	}
	return sp, nil
}

// MaxChoices implements sdk.MultiChoice: a request's choices (n) decode as
// rows of the continuous batch, so at most parallelism of them.
func (w *Workload) MaxChoices() int {
	st := w.st.Load()
	if st == nil {
		return 1
	}
	return max(st.set.Parallelism, 1)
}
