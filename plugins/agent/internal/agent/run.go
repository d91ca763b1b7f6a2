package agent

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/dsmil/l7/plugins/agent/internal/tools"
	"github.com/dsmil/l7/sdk"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
)

// preamble comes before every task type's instructions.
const preamble = `You are the DSMIL L7 agent harness. You work only through the tools offered to you; ` +
	`workspace paths are ROOT/path (list_dir with an empty path lists the roots). ` +
	`When you have what you need, answer without calling a tool.

`

// Status names, as the issue and the logs spell them.
const (
	statusCompleted = "completed"
	statusFailed    = "failed"
	statusTimeout   = "timeout"
	statusDenied    = "denied"
	statusCancelled = "cancelled"
)

var statusEnum = map[string]l7v1.AgentTaskStatus{
	statusCompleted: l7v1.AgentTaskStatus_AGENT_TASK_STATUS_SUCCEEDED,
	statusFailed:    l7v1.AgentTaskStatus_AGENT_TASK_STATUS_FAILED,
	statusTimeout:   l7v1.AgentTaskStatus_AGENT_TASK_STATUS_TIMED_OUT,
	statusDenied:    l7v1.AgentTaskStatus_AGENT_TASK_STATUS_DENIED,
	statusCancelled: l7v1.AgentTaskStatus_AGENT_TASK_STATUS_CANCELLED,
}

// RunTask runs one task to its end (see the package documentation). A task
// that cannot start (unknown task type, wrong parameters) is an error; one
// that started ends with a result whatever happens, carrying its steps,
// transcript and artifacts so far.
func (w *Workload) RunTask(ctx context.Context, task *sdk.AgentTask, progress sdk.AgentProgress) (*l7v1.L7AgentResult, error) {
	c := w.cfg.Load()
	if c == nil {
		return nil, sdk.Errorf(dbe.CodeNoWorkerAvailable, "%v", errNotConfigured)
	}
	p := task.Params
	tt, ok := c.tasks[p.GetTaskType()]
	if !ok {
		names := make([]string, 0, len(c.tasks))
		for n := range c.tasks {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, sdk.InvalidParam("task_type", "unknown task type %q (task types: %s)", p.GetTaskType(), strings.Join(names, ", "))
	}
	if err := tt.checkParams(p.GetParameters()); err != nil {
		return nil, err
	}
	instructions, err := render(tt.Instructions, p.GetParameters())
	if err != nil {
		return nil, sdk.InvalidParam("parameters", "rendering the instructions: %v", err)
	}

	// The wall-time budget: the task type's, capped by timeout_seconds
	// and by the request's own deadline.
	start := time.Now()
	deadline := start.Add(tt.WallTime)
	if s := p.GetTimeoutSeconds(); s > 0 {
		deadline = minTime(deadline, start.Add(time.Duration(s)*time.Second))
	}
	if !task.Deadline.IsZero() {
		deadline = minTime(deadline, task.Deadline)
	}
	tctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	r := &run{
		c: c, tt: tt, task: task, progress: progress, ctx: ctx, tctx: tctx,
		log: c.log.With("task_id", dbe.FormatUUID(task.RequestID), "tenant", task.TenantID, "task_type", tt.Name),
		env: &tools.Env{Workspace: c.workspace, Limits: c.limits},
		res: &l7v1.L7AgentResult{Usage: &l7v1.Usage{}},
	}
	if tt.OCRProfile != "" {
		r.env.OCR = r.ocr
	}
	if c.artifacts != "" {
		if r.env.Artifacts, err = tools.NewArtifacts(c.artifacts, task.TenantID, task.RequestID); err != nil {
			return nil, sdk.Errorf(dbe.CodeInternal, "%w", err)
		}
	}
	for _, t := range tools.Offered(tt.Tools, task.ROE, task.Compartments) {
		r.offered = append(r.offered, t.Name())
		r.tools = append(r.tools, &l7v1.Tool{Type: "function", Function: &l7v1.FunctionDef{
			Name: t.Name(), Description: t.Description(), ParametersJson: t.Parameters()}})
	}
	r.transcript = append(r.transcript,
		&l7v1.Message{Role: "system", Content: preamble + instructions},
		&l7v1.Message{Role: "user", Content: paramsMessage(p.GetParameters())})
	r.transcript = append(r.transcript, p.GetContext()...)

	status, msg, code := r.loop()
	res := r.res
	res.Status, res.ErrorMessage, res.ErrorCode = statusEnum[status], msg, l7v1.ErrorCode(code)
	res.Steps, res.Transcript = r.steps, r.transcript
	res.Usage.TotalTokens = res.Usage.PromptTokens + res.Usage.CompletionTokens
	if r.env.Artifacts != nil {
		res.Artifacts = r.env.Artifacts.List()
	}
	r.log.Info("agent task", "status", status, "steps", len(r.steps), "tokens", res.Usage.TotalTokens,
		"artifacts", len(res.Artifacts), "duration_ms", time.Since(start).Milliseconds())
	return res, nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// paramsMessage is the user turn: the task's parameters, sorted.
func paramsMessage(params map[string]string) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("Task parameters:")
	if len(keys) == 0 {
		b.WriteString(" none.")
	}
	for _, k := range keys {
		fmt.Fprintf(&b, "\n- %s: %s", k, params[k])
	}
	return b.String()
}

// run is one task in progress.
type run struct {
	c        *config
	tt       *TaskType
	task     *sdk.AgentTask
	progress sdk.AgentProgress
	log      interface {
		Info(string, ...any)
		Warn(string, ...any)
	}
	ctx  context.Context // the request's: cancelled by the client
	tctx context.Context // ctx with the task's deadline

	env        *tools.Env
	offered    []string
	tools      []*l7v1.Tool
	transcript []*l7v1.Message
	steps      []*l7v1.AgentStep
	res        *l7v1.L7AgentResult
}

// loop runs the steps and returns the task's status, and for any status
// but completed the reason and its DBE code.
func (r *run) loop() (status, msg string, code dbe.Code) {
	tt := r.tt
	for i := 1; ; i++ {
		if i > tt.MaxSteps {
			return statusFailed, fmt.Sprintf("step budget exhausted: %d steps without a final answer", tt.MaxSteps), dbe.CodeUnspecified
		}
		used := int(r.res.Usage.PromptTokens + r.res.Usage.CompletionTokens)
		if used >= tt.MaxTokens {
			return statusFailed, fmt.Sprintf("token budget exhausted: %d of %d tokens used", used, tt.MaxTokens), dbe.CodeUnspecified
		}
		step := &l7v1.AgentStep{Index: int32(i), ToolsOffered: r.offered, ToolChoice: tt.ToolChoice}
		if i == tt.MaxSteps || len(r.tools) == 0 {
			step.ToolChoice = "none" // the last step answers
		}
		stepMax := min(tt.StepMaxTokens, tt.MaxTokens-used)
		resp, err := r.llm(step, stepMax)
		if err != nil {
			status, msg, code := r.classify(err)
			step.Ended = status
			r.finishStep(step)
			return status, "LLM step " + fmt.Sprint(i) + ": " + msg, code
		}
		ch := resp.GetChoices()
		if len(ch) == 0 || ch[0].GetMessage() == nil {
			step.Ended = statusFailed
			r.finishStep(step)
			return statusFailed, fmt.Sprintf("LLM step %d: the model returned no message", i), dbe.CodeWorkerFailed
		}
		m := ch[0].GetMessage()
		step.AnswerBytes = int32(len(m.GetContent()))
		r.transcript = append(r.transcript, &l7v1.Message{Role: "assistant", Content: m.GetContent(), ToolCalls: m.GetToolCalls()})
		if len(m.GetToolCalls()) == 0 && ch[0].GetFinishReason() == l7v1.FinishReason_FINISH_REASON_LENGTH && step.ToolChoice != "none" {
			// Cut before a tool call was complete: not an answer.
			step.Ended = statusFailed
			r.finishStep(step)
			if stepMax < tt.StepMaxTokens {
				return statusFailed, fmt.Sprintf("token budget exhausted: step %d was cut at the %d tokens left of %d", i, stepMax, tt.MaxTokens), dbe.CodeUnspecified
			}
			return statusFailed, fmt.Sprintf("LLM step %d was cut at step_max_tokens (%d) before it finished a tool call", i, stepMax), dbe.CodeUnspecified
		}
		if len(m.GetToolCalls()) == 0 {
			r.res.Result = m.GetContent()
			step.Ended = "answered"
			r.finishStep(step)
			return statusCompleted, "", dbe.CodeUnspecified
		}
		for _, call := range m.GetToolCalls() {
			r.callTool(step, call)
			if r.tctx.Err() != nil {
				break
			}
		}
		if err := r.tctx.Err(); err != nil {
			status, msg, code := r.classify(err)
			step.Ended = status
			r.finishStep(step)
			return status, msg, code
		}
		r.finishStep(step)
	}
}

// llm makes one LLM step through the router.
func (r *run) llm(step *l7v1.AgentStep, maxTokens int) (*l7v1.L7ChatResponse, error) {
	req := &l7v1.L7ChatRequest{Model: r.tt.Model, Messages: r.transcript, MaxTokens: int32(maxTokens), Temperature: r.tt.Temperature}
	if len(r.tools) > 0 {
		req.Tools = r.tools
		req.ToolChoice = &l7v1.ToolChoice{Mode: toolChoiceMode[step.ToolChoice]}
	}
	t0 := time.Now()
	resp, err := r.task.Router.Chat(r.tctx, r.tt.Profile, req)
	step.LlmMs = float32(time.Since(t0).Seconds() * 1e3)
	if u := resp.GetUsage(); u != nil {
		step.PromptTokens, step.CompletionTokens = int32(u.GetPromptTokens()), int32(u.GetCompletionTokens())
		r.res.Usage.PromptTokens += u.GetPromptTokens()
		r.res.Usage.CompletionTokens += u.GetCompletionTokens()
	}
	return resp, err
}

// ocr transcribes an image for read_image: one L7_CHAT_REQ with the image
// inline (ImageData, as the shim turns a data: URL into) to the task
// type's OCR profile, through the router with the task's tenant and
// attributes like an LLM step. Its usage is not the task's (the task's
// token budget counts LLM steps); the router counts it against the
// tenant as any request.
func (r *run) ocr(ctx context.Context, image []byte, mimeType string) (string, error) {
	req := &l7v1.L7ChatRequest{Model: r.tt.OCRModel, Messages: []*l7v1.Message{{Role: "user", Parts: []*l7v1.ContentPart{
		{Part: &l7v1.ContentPart_Text{Text: "Transcribe the text in this image."}},
		{Part: &l7v1.ContentPart_ImageData{ImageData: &l7v1.ImageData{Data: image, MimeType: mimeType}}},
	}}}}
	resp, err := r.task.Router.Chat(ctx, r.tt.OCRProfile, req)
	if err != nil {
		return "", fmt.Errorf("OCR request to profile %q: %w", r.tt.OCRProfile, err)
	}
	ch := resp.GetChoices()
	if len(ch) == 0 || ch[0].GetMessage() == nil {
		return "", fmt.Errorf("OCR request to profile %q: no message in the response", r.tt.OCRProfile)
	}
	return ch[0].GetMessage().GetContent(), nil
}

var toolChoiceMode = map[string]l7v1.ToolChoiceMode{
	"auto":     l7v1.ToolChoiceMode_TOOL_CHOICE_MODE_AUTO,
	"required": l7v1.ToolChoiceMode_TOOL_CHOICE_MODE_REQUIRED,
	"none":     l7v1.ToolChoiceMode_TOOL_CHOICE_MODE_NONE,
}

// callTool runs one of the model's tool calls and appends its result (or
// its error) to the transcript as the tool's answer.
func (r *run) callTool(step *l7v1.AgentStep, call *l7v1.ToolCall) {
	tc := &l7v1.AgentToolCall{Id: call.GetId(), Tool: call.GetName(), ArgumentBytes: int32(len(call.GetArgumentsJson()))}
	t0 := time.Now()
	out, err := tools.Call(r.tctx, r.env, r.offered, r.task.ROE, r.task.Compartments, call.GetName(), []byte(call.GetArgumentsJson()))
	tc.ToolMs = float32(time.Since(t0).Seconds() * 1e3)
	switch {
	case err == nil:
		tc.Outcome = "ok"
	case errors.Is(err, tools.ErrRefused):
		tc.Outcome, tc.Detail = "refused", err.Error()
	default:
		tc.Outcome, tc.Detail = "error", err.Error()
	}
	if err != nil {
		out = fmt.Sprintf(`{"error":%q}`, err.Error())
	}
	tc.ResultBytes = int32(len(out))
	step.Calls = append(step.Calls, tc)
	r.transcript = append(r.transcript, &l7v1.Message{Role: "tool", ToolCallId: call.GetId(), Name: call.GetName(), Content: out})
	// The audit line: names, sizes, outcome and time, never contents.
	r.log.Info("agent step", "step", step.Index, "tool", tc.Tool, "argument_bytes", tc.ArgumentBytes,
		"outcome", tc.Outcome, "result_bytes", tc.ResultBytes, "duration_ms", tc.ToolMs)
}

// finishStep records a step and sends its progress frame.
func (r *run) finishStep(step *l7v1.AgentStep) {
	r.steps = append(r.steps, step)
	if err := r.progress.Step(step); err != nil && r.ctx.Err() == nil {
		r.log.Warn("sending progress", "error", err)
	}
}

// classify maps why a step failed to the task's status, message and code.
func (r *run) classify(err error) (status, msg string, code dbe.Code) {
	switch {
	case r.ctx.Err() != nil && !errors.Is(r.ctx.Err(), context.DeadlineExceeded):
		return statusCancelled, "cancelled", dbe.CodeCancelled
	case r.tctx.Err() != nil || errors.Is(err, context.DeadlineExceeded):
		return statusTimeout, "the task's time budget ran out", dbe.CodeDeadlineExceeded
	}
	code = mux.CodeOf(err)
	switch code {
	case dbe.CodePolicyDenied, dbe.CodeClaimTokenInvalid, dbe.CodeUnauthenticated:
		return statusDenied, err.Error(), code
	case dbe.CodeDeadlineExceeded:
		return statusTimeout, err.Error(), code
	case dbe.CodeCancelled:
		return statusCancelled, err.Error(), code
	}
	return statusFailed, err.Error(), code
}
