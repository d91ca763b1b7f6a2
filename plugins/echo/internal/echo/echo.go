package echo

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/dsmil/l7/sdk"
	"github.com/dsmil/l7/sdk/dbe"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
)

// Plugin identity.
const (
	// Name is the plugin's name.
	Name = "echo"
	// Version is the plugin's version.
	Version = "0.1.0"
	// Model is the one model name echo serves.
	Model = "echo"
	// DefaultDeviceID is the device echo reports before Configure: 47, the
	// primary LLM worker.
	DefaultDeviceID = 47
	// DefaultPrefix is what every answer starts with unless the prefix
	// setting says otherwise.
	DefaultPrefix = "echo: "
)

// Workload is the echo workload. Create it with New.
type Workload struct {
	cfg atomic.Pointer[config]
}

var (
	_ sdk.Workload = (*Workload)(nil)
	_ sdk.Chatter  = (*Workload)(nil)
)

// New returns an unconfigured echo workload.
func New() *Workload { return &Workload{} }

// config is the configuration in effect.
type config struct {
	deviceID     uint8
	profiles     []string
	memoryBudget uint64
	delay        time.Duration // before each delta
	chunkSize    int           // runes per delta; 0 = one word per delta
	failAfter    int           // fail after this many deltas; -1 = never
	prefix       string
}

// settings are echo's plugin-specific settings.
var settings = []sdk.SettingSpec{
	{Name: "delay", Type: "string", Description: `Pause before each streamed delta, a Go duration such as "50ms". Default "0s".`},
	{Name: "chunk_size", Type: "number", Description: "Runes per delta; 0 (the default) sends one word, with the whitespace before it, per delta."},
	{Name: "fail_after", Type: "number", Description: "Fail every chat with WORKER_FAILED after this many deltas (for tests). Unset means never."},
	{Name: "prefix", Type: "string", Description: `Text every answer starts with. Default "echo: ".`},
	{Name: "configure_delay", Type: "string", Description: `Pause in Configure, as a model load would take, a Go duration (for tests of the host's start_timeout). Default "0s".`},
}

// Info implements sdk.Workload.
func (w *Workload) Info(context.Context) (*sdk.PluginInfo, error) {
	info := &sdk.PluginInfo{
		Name:         Name,
		Version:      Version,
		APIVersions:  []uint32{sdk.APIVersion},
		DeviceID:     DefaultDeviceID,
		Capabilities: []sdk.Capability{sdk.CapChat, sdk.CapStream, sdk.CapEmbed},
		Accelerator:  "cpu",
		Models:       []string{Model},
		Settings:     settings,
	}
	if c := w.cfg.Load(); c != nil {
		info.DeviceID, info.Profiles, info.MemoryBudget = c.deviceID, c.profiles, c.memoryBudget
	}
	return info, nil
}

// Configure implements sdk.Workload.
func (w *Workload) Configure(ctx context.Context, cfg *sdk.Config) error {
	c := &config{
		deviceID:     cfg.DeviceID,
		profiles:     cfg.Profiles,
		memoryBudget: cfg.MemoryBudget,
		failAfter:    -1,
		prefix:       DefaultPrefix,
	}
	var configureDelay time.Duration
	for name, v := range cfg.Settings {
		var err error
		switch name {
		case "delay":
			c.delay, err = settingDuration(v)
		case "configure_delay":
			configureDelay, err = settingDuration(v)
		case "chunk_size":
			c.chunkSize, err = sdk.SettingInt(v, 0)
		case "fail_after":
			c.failAfter, err = sdk.SettingInt(v, 0)
		case "prefix":
			s, ok := v.(string)
			if !ok {
				return sdk.InvalidParam(name, "prefix must be a string, not %T", v)
			}
			c.prefix = s
		default:
			return sdk.InvalidParam(name, "echo has no setting %q", name)
		}
		if err != nil {
			return sdk.InvalidParam(name, "%s: %v", name, err)
		}
	}
	if configureDelay > 0 {
		t := time.NewTimer(configureDelay)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	w.cfg.Store(c)
	return nil
}

// settingDuration reads a duration setting: a Go duration string, ≥ 0.
func settingDuration(v any) (time.Duration, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("must be a duration string, not %T", v)
	}
	d, err := time.ParseDuration(s)
	if err == nil && d < 0 {
		err = fmt.Errorf("%s is negative", s)
	}
	return d, err
}

// Health implements sdk.Workload: echo is always healthy.
func (w *Workload) Health(context.Context) error { return nil }

// Chat implements sdk.Chatter.
func (w *Workload) Chat(ctx context.Context, req *sdk.ChatRequest, out sdk.Stream) (*sdk.ChatResult, error) {
	c := w.cfg.Load()
	if c == nil {
		return nil, sdk.ErrNotConfigured
	}
	p := req.Params
	if err := sdk.RefuseStructured(p, p.GetModel()); err != nil {
		return nil, err
	}
	if err := sdk.RefuseLogprobs(p, p.GetModel()); err != nil {
		return nil, err
	}
	text, finish := Answer(c.prefix+input(p), int(p.GetMaxTokens()), p.GetStop())
	deltas := split(text, c.chunkSize)

	var timer *time.Timer
	if c.delay > 0 {
		timer = time.NewTimer(c.delay)
		defer timer.Stop()
	}
	for i, d := range deltas {
		if i == c.failAfter {
			return nil, failure(i)
		}
		if timer != nil {
			if i > 0 {
				timer.Reset(c.delay)
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-timer.C:
			}
		}
		if err := out.Send(d); err != nil {
			return nil, err
		}
	}
	if c.failAfter >= 0 {
		return nil, failure(len(deltas))
	}
	prompt := words(input(p))
	if p.GetPrompt() == "" {
		prompt = 0
		for _, m := range p.GetMessages() {
			prompt += words(content(m))
		}
	}
	completion := words(text)
	return &sdk.ChatResult{
		FinishReason: finish,
		Usage: &l7v1.Usage{
			PromptTokens:     uint32(prompt),
			CompletionTokens: uint32(completion),
			TotalTokens:      uint32(prompt + completion),
		},
		Model: Model,
	}, nil
}

func failure(n int) error {
	return sdk.Errorf(dbe.CodeWorkerFailed, "echo: failing after %d chunks as configured (fail_after)", n)
}

// input is the text echo answers: the prompt, or the last user message.
func input(p *l7v1.L7ChatRequest) string {
	if p.GetPrompt() != "" {
		return p.GetPrompt()
	}
	msgs := p.GetMessages()
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].GetRole() == "user" {
			return content(msgs[i])
		}
	}
	return ""
}

// content is a message's text: its content, or its text parts joined with
// newlines.
func content(m *l7v1.Message) string {
	if len(m.GetParts()) == 0 {
		return m.GetContent()
	}
	var texts []string
	for _, part := range m.GetParts() {
		if t, ok := part.GetPart().(*l7v1.ContentPart_Text); ok {
			texts = append(texts, t.Text)
		}
	}
	return strings.Join(texts, "\n")
}

// Answer cuts reply as a model that generates it word by word would: at the
// first stop sequence that is complete within maxTokens words (the stop
// text is not included; finish STOP), else after maxTokens words (finish
// LENGTH) when maxTokens > 0, else not at all (finish STOP).
func Answer(reply string, maxTokens int, stop []string) (string, l7v1.FinishReason) {
	limit := len(reply)
	if maxTokens > 0 {
		if ws := wordEnds(reply); len(ws) > maxTokens {
			limit = ws[maxTokens-1]
		}
	}
	cut := -1
	for _, s := range stop {
		if s == "" {
			continue
		}
		if i := strings.Index(reply, s); i >= 0 && i+len(s) <= limit && (cut < 0 || i < cut) {
			cut = i
		}
	}
	switch {
	case cut >= 0:
		return reply[:cut], l7v1.FinishReason_FINISH_REASON_STOP
	case limit < len(reply):
		return reply[:limit], l7v1.FinishReason_FINISH_REASON_LENGTH
	}
	return reply, l7v1.FinishReason_FINISH_REASON_STOP
}

// wordEnds returns the byte offset just past each word of s.
func wordEnds(s string) []int {
	var ends []int
	in := false
	for i, r := range s {
		sp := unicode.IsSpace(r)
		if in && sp {
			ends = append(ends, i)
		}
		in = !sp
	}
	if in {
		ends = append(ends, len(s))
	}
	return ends
}

// words counts the words (tokens, for echo) in s.
func words(s string) int { return len(wordEnds(s)) }

// split cuts text into deltas: runs of size runes, or with size 0 one word
// per delta, each with the whitespace before it (whitespace after the last
// word joins the last delta). The deltas concatenate to text.
func split(text string, size int) []string {
	var out []string
	if size > 0 {
		for len(text) > 0 {
			n, i := 0, 0
			for i < len(text) && n < size {
				_, w := utf8.DecodeRuneInString(text[i:])
				i += w
				n++
			}
			out = append(out, text[:i])
			text = text[i:]
		}
		return out
	}
	start := 0
	for _, end := range wordEnds(text) {
		out = append(out, text[start:end])
		start = end
	}
	if start < len(text) {
		if len(out) == 0 {
			return []string{text}
		}
		out[len(out)-1] += text[start:]
	}
	return out
}
