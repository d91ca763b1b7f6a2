package multimodal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/dsmil/l7/plugins/multimodal/internal/imagefile"
	"github.com/dsmil/l7/plugins/multimodal/internal/ocr"
	"github.com/dsmil/l7/sdk"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
)

// image is one image part of a request and where it was.
type image struct {
	part  *l7v1.ContentPart
	param string // messages[i].content[j].image_url
}

// JSONLine is one line of the json_object answer.
type JSONLine struct {
	Image      int       `json:"image"`
	Text       string    `json:"text"`
	Confidence float64   `json:"confidence"`
	Box        [4][2]int `json:"box"`
}

// JSONAnswer is the json_object answer.
type JSONAnswer struct {
	Lines []JSONLine `json:"lines"`
}

// Chat implements sdk.Chatter.
func (w *Workload) Chat(ctx context.Context, req *sdk.ChatRequest, out sdk.Stream) (*sdk.ChatResult, error) {
	st := w.st.Load()
	if st == nil {
		return nil, sdk.ErrNotConfigured
	}
	p := req.Params
	images, promptWords, err := checkRequest(p, st.set)
	if err != nil {
		return nil, err
	}
	if n := st.queued.Add(1); n > int64(st.set.Parallelism+st.set.Queue) {
		st.queued.Add(-1)
		return nil, sdk.Overloaded(2*time.Second, "%s is reading %d requests and %d wait (parallelism %d, queue %d)",
			st.set.ModelName, st.set.Parallelism, st.set.Queue, st.set.Parallelism, st.set.Queue)
	}
	defer st.queued.Add(-1)
	select {
	case st.slots <- struct{}{}:
		defer func() { <-st.slots }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var all []JSONLine
	for i, im := range images {
		data, err := imageBytes(im.part, st.set.FileRoots, st.set.Limits)
		if err != nil {
			return nil, sdk.InvalidParam(im.param, "%v", err)
		}
		img, err := imagefile.Decode(data, st.set.Limits)
		if err != nil {
			return nil, sdk.InvalidParam(im.param, "image %d: %v", i+1, err)
		}
		lines, err := st.engine.Read(ctx, img.Image)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("multimodal: image %d: %w", i+1, err)
		}
		for _, l := range lines {
			all = append(all, jsonLine(i, l))
		}
	}
	// max_tokens counts words; whole lines are kept while they fit.
	finish := l7v1.FinishReason_FINISH_REASON_STOP
	if max := int(p.GetMaxTokens()); max > 0 {
		words := 0
		for k, l := range all {
			words += len(strings.Fields(l.Text))
			if words > max {
				all, finish = all[:k], l7v1.FinishReason_FINISH_REASON_LENGTH
				break
			}
		}
	}
	completion := 0
	for _, l := range all {
		completion += len(strings.Fields(l.Text))
	}
	if p.GetResponseFormat().GetType() == "json_object" {
		ans := JSONAnswer{Lines: all}
		if ans.Lines == nil {
			ans.Lines = []JSONLine{}
		}
		b, err := json.Marshal(ans)
		if err != nil {
			return nil, fmt.Errorf("multimodal: %w", err)
		}
		if err := out.Send(string(b)); err != nil {
			return nil, err
		}
	} else {
		// One delta per line; images apart by a blank line.
		for k, l := range all {
			sep := ""
			switch {
			case k == 0:
			case l.Image != all[k-1].Image:
				sep = "\n\n"
			default:
				sep = "\n"
			}
			if err := out.Send(sep + l.Text); err != nil {
				return nil, err
			}
		}
	}
	return &sdk.ChatResult{
		FinishReason: finish,
		Usage:        &l7v1.Usage{PromptTokens: uint32(promptWords), CompletionTokens: uint32(completion)},
		Model:        st.set.ModelName,
	}, nil
}

func jsonLine(image int, l ocr.Line) JSONLine {
	j := JSONLine{Image: image, Text: l.Text, Confidence: math.Round(l.Confidence*1e4) / 1e4}
	for i, p := range l.Box {
		j.Box[i] = [2]int{int(p.X), int(p.Y)}
	}
	return j
}

// errNoImage is the answer to a request without images.
var errNoImage = errors.New("no image")

// checkRequest refuses what the plugin cannot honour and collects the
// image parts of the user messages, in order. Text parts are instructions
// and are not read; their words count as prompt tokens.
func checkRequest(p *l7v1.L7ChatRequest, set *settings) ([]image, int, error) {
	model := set.ModelName
	switch {
	case p.GetPrompt() != "":
		return nil, 0, sdk.InvalidParam("prompt", "%s reads images: use /v1/chat/completions with image_url parts", model)
	case len(p.GetTools()) > 0:
		return nil, 0, sdk.InvalidParam("tools", "%s does not call tools", model)
	case len(p.GetStop()) > 0:
		return nil, 0, sdk.InvalidParam("stop", "%s does not take stop sequences: it returns the text it reads", model)
	case p.GetLogprobs():
		return nil, 0, sdk.InvalidParam("logprobs", "%s has no token log probabilities", model)
	}
	switch t := p.GetResponseFormat().GetType(); t {
	case "", "text", "json_object":
	default:
		return nil, 0, sdk.InvalidParam("response_format", "%s answers as text or json_object ({\"lines\": [...]}), not %s", model, t)
	}
	var images []image
	words := 0
	for i, m := range p.GetMessages() {
		words += len(strings.Fields(m.GetContent()))
		for j, part := range m.GetParts() {
			if t, ok := part.GetPart().(*l7v1.ContentPart_Text); ok {
				words += len(strings.Fields(t.Text))
				continue
			}
			if m.GetRole() != "user" {
				return nil, 0, sdk.InvalidParam(fmt.Sprintf("messages[%d].content[%d]", i, j), "images are read in user messages only, not %s", m.GetRole())
			}
			images = append(images, image{part: part, param: fmt.Sprintf("messages[%d].content[%d].image_url", i, j)})
		}
	}
	if len(images) == 0 {
		return nil, 0, sdk.InvalidParam("messages", "%s reads the text in images: send at least one image_url part (%v)", model, errNoImage)
	}
	if len(images) > set.MaxImages {
		return nil, 0, sdk.InvalidParam("messages", "%d images; %s reads at most %d per request", len(images), model, set.MaxImages)
	}
	return images, words, nil
}
