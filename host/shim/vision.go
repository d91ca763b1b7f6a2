package shim

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
)

// Image transcriptions replace image parts for models with a vision
// companion (a model block's vision): each image is sent alone, as its own
// chat request of the same tenant (router, policy, claims, rate limits and
// usage as any request), to the companion, and its answer takes the image
// part's place as a text part delimited thus (n counts the request's
// images from 1):
//
//	[Image n, transcribed by <companion>]
//	<the companion's answer>
//	[End of image n]
const (
	transcriptionOpen  = "[Image %d, transcribed by %s]\n"
	transcriptionClose = "\n[End of image %d]"
)

// hasImages reports whether any message of p has an image part.
func hasImages(p *l7v1.L7ChatRequest) bool {
	for _, m := range p.GetMessages() {
		for _, part := range m.GetParts() {
			if _, ok := part.GetPart().(*l7v1.ContentPart_Text); !ok {
				return true
			}
		}
	}
	return false
}

// transcribeImages has call's images read by its model's vision companion
// and puts the transcriptions in their place. A companion's refusal of an
// image (a 400) is reported at the image's place in the request.
func (s *Server) transcribeImages(ctx context.Context, rq *request, call *chatCall) *mux.Error {
	vis := s.models[call.model.Vision]
	if vis == nil || !rq.tenant.AllowsModel(vis.ID) {
		return &mux.Error{Code: dbe.CodePolicyDenied, Param: "messages",
			Message: fmt.Sprintf("model %s reads images through %s, which this tenant may not use", call.model.ID, call.model.Vision)}
	}
	n := 0
	for i, m := range call.params.GetMessages() {
		if len(m.GetParts()) == 0 {
			continue
		}
		parts := make([]*l7v1.ContentPart, 0, len(m.Parts))
		for j, part := range m.Parts {
			if _, ok := part.GetPart().(*l7v1.ContentPart_Text); ok {
				parts = append(parts, part)
				continue
			}
			n++
			text, derr := s.transcribe(ctx, rq, vis.ID, part)
			if derr != nil {
				if derr.Param != "" && strings.HasPrefix(derr.Param, "messages[0].content[0]") {
					derr.Param = fmt.Sprintf("messages[%d].content[%d]", i, j) + strings.TrimPrefix(derr.Param, "messages[0].content[0]")
				}
				derr.Message = fmt.Sprintf("image %d (messages[%d].content[%d]), read by %s for %s: %s", n, i, j, vis.ID, call.model.ID, derr.Message)
				return derr
			}
			parts = append(parts, &l7v1.ContentPart{Part: &l7v1.ContentPart_Text{
				Text: fmt.Sprintf(transcriptionOpen, n, vis.ID) + text + fmt.Sprintf(transcriptionClose, n)}})
		}
		m.Parts = parts
	}
	return nil
}

// transcribe sends one image part to the companion model and returns its
// answer's text.
func (s *Server) transcribe(ctx context.Context, rq *request, model string, part *l7v1.ContentPart) (string, *mux.Error) {
	vis := s.models[model]
	p := &l7v1.L7ChatRequest{Model: model, Messages: []*l7v1.Message{{Role: "user", Parts: []*l7v1.ContentPart{part}}}}
	now := time.Now()
	f, err := s.requestFrame(dbe.MsgChatReq, p, vis, rq.tenant, newUUIDv7(now), now)
	if err != nil {
		return "", &mux.Error{Code: dbe.CodeInternal, Message: err.Error()}
	}
	rp := s.forward(ctx, f)
	defer rp.cancel()
	ev, derr := rp.final(ctx)
	if derr != nil {
		return "", derr
	}
	if ev.resp == nil || len(ev.resp.GetChoices()) == 0 {
		return "", &mux.Error{Code: dbe.CodeWorkerFailed, Message: "the vision companion sent no answer"}
	}
	return ev.resp.GetChoices()[0].GetMessage().GetContent(), nil
}
