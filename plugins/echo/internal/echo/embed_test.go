package echo_test

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/dsmil/l7/plugins/echo/internal/echo"
	"github.com/dsmil/l7/sdk"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"github.com/dsmil/l7/sdk/sdktest"
	"google.golang.org/protobuf/proto"
)

func texts(ts ...string) []*l7v1.EmbedInput {
	out := make([]*l7v1.EmbedInput, len(ts))
	for i, t := range ts {
		out[i] = &l7v1.EmbedInput{Input: &l7v1.EmbedInput_Text{Text: t}}
	}
	return out
}

// embed sends one L7_EMBED_REQ over a real session and returns the
// response, or the ERROR as a *mux.Error.
func embed(t *testing.T, c *mux.Client, p *l7v1.L7EmbedRequest) (*l7v1.L7EmbedResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, id := sdktest.EmbedFrame("echo", p)
	frames, err := sdktest.Call(ctx, c, f)
	if err != nil {
		return nil, err
	}
	if len(frames) != 1 || frames[0].Type != dbe.MsgEmbedResp || frames[0].Flags&dbe.FlagEndStream == 0 {
		t.Fatalf("want one L7_EMBED_RESP with END_STREAM, got %d frames", len(frames))
	}
	if got, _ := frames[0].RequestID(); got != id {
		t.Errorf("REQUEST_ID %x, want %x", got, id)
	}
	resp := new(l7v1.L7EmbedResponse)
	if err := proto.Unmarshal(frames[0].Payload, resp); err != nil {
		t.Fatal(err)
	}
	return resp, nil
}

func norm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

// TestEmbed runs echo's Embed through the SDK over a real session: one unit
// vector per input in order, equal inputs equal, usage counted, dimensions
// truncating then re-normalising, and precise errors.
func TestEmbed(t *testing.T) {
	c, ctl := sdktest.Pair(t, echo.New())
	ctx := context.Background()
	if err := ctl.Configure(ctx, &sdk.Config{Name: "echo", DeviceID: 47, Profiles: []string{"echo"}}); err != nil {
		t.Fatal(err)
	}
	resp, err := embed(t, c, &l7v1.L7EmbedRequest{Model: "echo", Inputs: append(texts("a b c", "d", "a b c"),
		&l7v1.EmbedInput{Input: &l7v1.EmbedInput_Tokens{Tokens: &l7v1.TokenIDs{Ids: []int32{5, 6}}}})})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetData()) != 4 || resp.GetModel() != "echo" || resp.GetDeviceId() != 47 || resp.GetL7Profile() != "echo" {
		t.Fatalf("response %v", resp)
	}
	for i, d := range resp.GetData() {
		if d.GetIndex() != uint32(i) || len(d.GetValues()) != echo.EmbedDims || math.Abs(norm(d.GetValues())-1) > 1e-6 {
			t.Errorf("data[%d] = index %d, %d values, norm %v", i, d.GetIndex(), len(d.GetValues()), norm(d.GetValues()))
		}
	}
	if !slices.Equal(resp.Data[0].Values, resp.Data[2].Values) || slices.Equal(resp.Data[0].Values, resp.Data[1].Values) {
		t.Error("equal inputs must give equal vectors and different ones different vectors")
	}
	if u := resp.GetUsage(); u.GetPromptTokens() != 3+1+3+2 || u.GetTotalTokens() != u.GetPromptTokens() || u.GetCompletionTokens() != 0 {
		t.Errorf("usage %v", u)
	}

	short, err := embed(t, c, &l7v1.L7EmbedRequest{Inputs: texts("a b c"), Dimensions: 3})
	if err != nil {
		t.Fatal(err)
	}
	got, full := short.Data[0].Values, resp.Data[0].Values[:3]
	scale := norm(full)
	for i := range got {
		if math.Abs(float64(got[i])-float64(full[i])/scale) > 1e-6 {
			t.Fatalf("dimensions=3 gave %v, want %v re-normalised", got, full)
		}
	}

	for _, tc := range []struct {
		p     *l7v1.L7EmbedRequest
		param string
	}{
		{&l7v1.L7EmbedRequest{Inputs: texts("x"), Dimensions: echo.EmbedDims + 1}, "dimensions"},
		{&l7v1.L7EmbedRequest{}, "input"},
		{&l7v1.L7EmbedRequest{Inputs: []*l7v1.EmbedInput{{Input: &l7v1.EmbedInput_Tokens{Tokens: &l7v1.TokenIDs{}}}}}, "input"},
		{&l7v1.L7EmbedRequest{Inputs: []*l7v1.EmbedInput{{}}}, "input"},
		{&l7v1.L7EmbedRequest{Inputs: append(texts("x"), &l7v1.EmbedInput{Input: &l7v1.EmbedInput_Image{Image: &l7v1.ImageData{Data: []byte("\x89PNG")}}})}, "input"},
	} {
		_, err := embed(t, c, tc.p)
		var me *mux.Error
		if !errors.As(err, &me) || me.Code != dbe.CodeInvalidRequest || me.Param != tc.param {
			t.Errorf("%v: err = %v, want INVALID_REQUEST on %s", tc.p, err, tc.param)
		}
	}
}
