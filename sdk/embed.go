package sdk

import (
	"context"
	"slices"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"google.golang.org/protobuf/proto"
)

// Embedder is implemented by workloads that answer embeddings requests
// (L7_EMBED_REQ). A workload that is not an Embedder answers them with
// ERROR UNKNOWN_MSG_TYPE.
type Embedder interface {
	// Embed returns one vector per input of req, in input order, and the
	// input tokens it read. ctx is cancelled as for Chat. Return
	// InvalidParam("input", …) for an input the model cannot take and
	// InvalidParam("dimensions", …) for a size it cannot give.
	Embed(ctx context.Context, req *EmbedRequest) (*EmbedResult, error)
}

// EmbedRequest is one embeddings request as an Embedder sees it.
type EmbedRequest struct {
	// RequestID is the request's REQUEST_ID, for logs.
	RequestID [16]byte

	// TenantID is the request's TENANT_ID.
	TenantID string

	// Profile is the L7 profile the request runs under (L7_PROFILE).
	Profile string

	// Params is the request payload: at least one input, each a text, a
	// non-empty token sequence or a non-empty image file. Embed must not
	// modify it.
	Params *l7v1.L7EmbedRequest
}

// EmbedResult is the answer to an EmbedRequest.
type EmbedResult struct {
	// Vectors holds one vector per input, in input order.
	Vectors [][]float32

	// PromptTokens counts the input tokens read, special tokens included.
	PromptTokens uint32

	// Model is the model that answered; empty means the request's model.
	Model string
}

// serveEmbed answers one L7_EMBED_REQ.
func (s *Server) serveEmbed(ctx context.Context, f *dbe.Frame, w *mux.ResponseWriter) {
	start := time.Now()
	cfg := s.ready(w, f, s.embed != nil, "embeddings")
	if cfg == nil {
		return
	}
	req, err := embedRequest(f, cfg)
	if err != nil {
		_ = w.Fail(err)
		return
	}
	s.inFlight.Add(1)
	res, err := s.embed.Embed(ctx, req)
	s.inFlight.Add(-1)
	if err == nil && (res == nil || len(res.Vectors) != len(req.Params.GetInputs())) {
		n := 0
		if res != nil {
			n = len(res.Vectors)
		}
		err = Errorf(dbe.CodeWorkerFailed, "plugin returned %d vectors for %d inputs", n, len(req.Params.GetInputs()))
	}
	if err != nil {
		s.failRequest(ctx, w, "embeddings", req.RequestID, err)
		return
	}
	model := res.Model
	if model == "" {
		model = s.modelName(req.Params.GetModel())
	}
	resp := &l7v1.L7EmbedResponse{
		Model:     model,
		Data:      make([]*l7v1.Embedding, len(res.Vectors)),
		Usage:     &l7v1.Usage{PromptTokens: res.PromptTokens, TotalTokens: res.PromptTokens},
		DeviceId:  uint32(cfg.DeviceID),
		L7Profile: req.Profile,
	}
	for i, v := range res.Vectors {
		resp.Data[i] = &l7v1.Embedding{Index: uint32(i), Values: v}
	}
	resp.LatencyMs = sinceMS(start)
	b, err := proto.Marshal(resp)
	if err != nil {
		_ = w.Fail(Errorf(dbe.CodeInternal, "marshal L7EmbedResponse: %w", err))
		return
	}
	_ = w.Send(&dbe.Frame{Type: dbe.MsgEmbedResp, Flags: dbe.FlagEndStream, Payload: b})
}

// embedRequest checks an L7_EMBED_REQ frame and builds the EmbedRequest.
func embedRequest(f *dbe.Frame, cfg *Config) (*EmbedRequest, error) {
	if err := dbe.CheckRequired(f); err != nil {
		return nil, Errorf(dbe.CodeInvalidRequest, "%w", err)
	}
	params := new(l7v1.L7EmbedRequest)
	if err := proto.Unmarshal(f.Payload, params); err != nil {
		return nil, Errorf(dbe.CodeInvalidRequest, "L7EmbedRequest payload: %w", err)
	}
	if len(params.GetInputs()) == 0 {
		return nil, InvalidParam("input", "at least one input is required")
	}
	for i, in := range params.GetInputs() {
		switch x := in.GetInput().(type) {
		case *l7v1.EmbedInput_Text:
		case *l7v1.EmbedInput_Tokens:
			if len(x.Tokens.GetIds()) == 0 {
				return nil, InvalidParam("input", "input %d is an empty token sequence", i)
			}
		case *l7v1.EmbedInput_Image:
			if len(x.Image.GetData()) == 0 {
				return nil, InvalidParam("input", "input %d is an empty image", i)
			}
		default:
			return nil, InvalidParam("input", "input %d has neither text, tokens nor an image", i)
		}
	}
	req := &EmbedRequest{Params: params}
	req.RequestID, _ = f.RequestID()
	req.TenantID, _ = f.TenantID()
	req.Profile, _ = f.Profile()
	if len(cfg.Profiles) > 0 && !slices.Contains(cfg.Profiles, req.Profile) {
		return nil, Errorf(dbe.CodeNotFound, "profile %q is not served by plugin %q", req.Profile, cfg.Name)
	}
	return req, nil
}
