package multimodal

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/dsmil/l7/plugins/internal/ort"
	"github.com/dsmil/l7/plugins/multimodal/internal/ocr/corpus"
	"github.com/dsmil/l7/plugins/multimodal/internal/ocrmodels"
	"github.com/dsmil/l7/sdk"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"github.com/dsmil/l7/sdk/sdktest"
	"google.golang.org/protobuf/proto"
)

var (
	modelsOnce sync.Once
	modelsDir  string
	modelsErr  error
)

// settingsFor returns the plugin settings of a test: the real models
// (fetched when missing) on two ONNX Runtime threads, plus extra.
func settingsFor(t testing.TB, extra map[string]any) map[string]any {
	t.Helper()
	if ort.ResolveLibrary(os.Getenv) == "" {
		t.Skip("ONNX Runtime is not installed: run make ort (make test does)")
	}
	modelsOnce.Do(func() {
		var p ocrmodels.Paths
		p, modelsErr = ocrmodels.Fetch(context.Background())
		modelsDir = p.Dir
	})
	if modelsErr != nil {
		t.Fatal(modelsErr)
	}
	s := map[string]any{"models": modelsDir, "threads": float64(2)}
	for k, v := range extra {
		s[k] = v
	}
	return s
}

var (
	sharedOnce sync.Once
	shared     *Workload
	sharedErr  error
)

// configured is one workload for the tests that need no special settings,
// with file_roots = the test data directory made by fileRoot.
func configured(t *testing.T) *Workload {
	t.Helper()
	set := settingsFor(t, map[string]any{"file_roots": []any{fileRoot(t)}, "max_image_pixels": float64(4_000_000)})
	sharedOnce.Do(func() {
		shared = New()
		sharedErr = shared.Configure(context.Background(), &sdk.Config{Name: Name, DeviceID: 45, Profiles: []string{"ocr"}, Settings: set})
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

var (
	rootOnce sync.Once
	rootDir  string
)

// fileRoot is a directory holding hello.png, and a link out of it.
func fileRoot(t testing.TB) string {
	rootOnce.Do(func() {
		dir, err := os.MkdirTemp("", "multimodal-roots")
		if err != nil {
			panic(err)
		}
		rootDir = dir
		os.WriteFile(filepath.Join(dir, "hello.png"), render(t, "Hello from a file 192.168.7.21"), 0o644)
		outside := filepath.Join(os.TempDir(), "multimodal-outside.png")
		os.WriteFile(outside, render(t, "outside"), 0o644)
		os.Symlink(outside, filepath.Join(dir, "link.png"))
	})
	return rootDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if rootDir != "" {
		os.RemoveAll(rootDir)
	}
	os.Exit(code)
}

func render(t testing.TB, lines ...string) []byte {
	b, err := corpus.Render(lines, corpus.Style{Size: 28, FG: color.RGBA{0, 0, 0, 255}, BG: color.RGBA{255, 255, 255, 255}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type stream struct{ deltas []string }

func (s *stream) Send(d string) error {
	if d != "" {
		s.deltas = append(s.deltas, d)
	}
	return nil
}

func dataPart(b []byte) *l7v1.ContentPart {
	return &l7v1.ContentPart{Part: &l7v1.ContentPart_ImageData{ImageData: &l7v1.ImageData{Data: b, MimeType: "image/png"}}}
}

func urlPart(u string) *l7v1.ContentPart {
	return &l7v1.ContentPart{Part: &l7v1.ContentPart_ImageUrl{ImageUrl: &l7v1.ImageURL{Url: u}}}
}

func textPart(s string) *l7v1.ContentPart {
	return &l7v1.ContentPart{Part: &l7v1.ContentPart_Text{Text: s}}
}

func chat(t *testing.T, w *Workload, p *l7v1.L7ChatRequest) (string, *sdk.ChatResult, error) {
	t.Helper()
	var s stream
	res, err := w.Chat(context.Background(), &sdk.ChatRequest{Params: p}, &s)
	return strings.Join(s.deltas, ""), res, err
}

func user(parts ...*l7v1.ContentPart) *l7v1.L7ChatRequest {
	return &l7v1.L7ChatRequest{Model: DefaultModelName, Messages: []*l7v1.Message{{Role: "user", Parts: parts}}}
}

func TestInfo(t *testing.T) {
	info, err := New().Info(context.Background())
	if err != nil || info.Validate() != nil {
		t.Fatalf("%+v %v", info, err)
	}
	if info.DeviceID != 45 || !info.Has(sdk.CapChat) || !slices.Equal(info.Models, []string{DefaultModelName}) {
		t.Errorf("info %+v", info)
	}
	for _, name := range []string{"models", "model_name", "file_roots", "max_image_bytes", "max_image_pixels", "threads", "ort_library"} {
		if !slices.ContainsFunc(info.Settings, func(s sdk.SettingSpec) bool { return s.Name == name }) {
			t.Errorf("setting %q not reported", name)
		}
	}
}

// TestChatText reads two images, inline and from a file, as text lines.
func TestChatText(t *testing.T) {
	w := configured(t)
	p := user(textPart("Transcribe these."), dataPart(render(t, "ssh admin@10.1.2.3", "uptime 42 days, load 0.15")),
		urlPart("file://"+filepath.Join(fileRoot(t), "hello.png")))
	text, res, err := chat(t, w, p)
	if err != nil {
		t.Fatal(err)
	}
	want := "ssh admin@10.1.2.3\nuptime 42 days, load 0.15\n\nHello from a file 192.168.7.21"
	if text != want {
		t.Errorf("text %q, want %q", text, want)
	}
	if res.Usage.GetCompletionTokens() != 12 || res.Usage.GetPromptTokens() != 2 || res.Model != DefaultModelName {
		t.Errorf("result %+v", res)
	}
	// max_tokens keeps whole lines while their words fit.
	p.MaxTokens = 3
	text, res, err = chat(t, w, p)
	if err != nil || text != "ssh admin@10.1.2.3" || res.FinishReason != l7v1.FinishReason_FINISH_REASON_LENGTH {
		t.Errorf("max_tokens 3: %q %v %v", text, res, err)
	}
}

func TestChatJSON(t *testing.T) {
	w := configured(t)
	p := user(dataPart(render(t, "alpha 1.2.3.4", "beta")))
	p.ResponseFormat = &l7v1.ResponseFormat{Type: "json_object"}
	text, _, err := chat(t, w, p)
	if err != nil {
		t.Fatal(err)
	}
	var ans struct {
		Lines []struct {
			Text       string   `json:"text"`
			Confidence float64  `json:"confidence"`
			Box        [][2]int `json:"box"`
			Image      *int     `json:"image"`
		} `json:"lines"`
	}
	if err := json.Unmarshal([]byte(text), &ans); err != nil {
		t.Fatalf("%v: %s", err, text)
	}
	if len(ans.Lines) != 2 || ans.Lines[0].Text != "alpha 1.2.3.4" || ans.Lines[1].Text != "beta" {
		t.Fatalf("lines %s", text)
	}
	l := ans.Lines[0]
	if l.Confidence < 0.9 || l.Confidence > 1 || len(l.Box) != 4 || l.Image == nil || *l.Image != 0 {
		t.Errorf("line %+v", l)
	}
	// The first line's box lies above the second's.
	if !(l.Box[2][1] <= ans.Lines[1].Box[0][1]+2 && l.Box[0][0] < l.Box[1][0]) {
		t.Errorf("boxes %v %v", l.Box, ans.Lines[1].Box)
	}
	// An image with no text is an empty list, not null.
	p = user(dataPart(render(t, " ")))
	p.ResponseFormat = &l7v1.ResponseFormat{Type: "json_object"}
	if text, _, err := chat(t, w, p); err != nil || text != `{"lines":[]}` {
		t.Errorf("blank image: %q %v", text, err)
	}
}

// TestChatRefusals: every refused request is INVALID_REQUEST naming the
// field, with a message that says why.
func TestChatRefusals(t *testing.T) {
	w := configured(t)
	bomb := pngBomb(render(t, "x"), 30000, 30000)
	big := make([]byte, 21<<20)
	withJSONSchema := user(dataPart(render(t, "x")))
	withJSONSchema.ResponseFormat = &l7v1.ResponseFormat{Type: "json_schema", SchemaJson: "{}"}
	for _, tc := range []struct {
		name  string
		p     *l7v1.L7ChatRequest
		param string
		want  string
	}{
		{"no image", user(textPart("hello")), "messages", "image_url"},
		{"http", user(urlPart("https://example.com/a.png")), "messages[0].content[0].image_url", "no network egress"},
		{"ftp", user(urlPart("ftp://x/a.png")), "messages[0].content[0].image_url", "scheme"},
		{"file outside roots", user(urlPart("file:///etc/passwd")), "messages[0].content[0].image_url", "not under"},
		{"symlink out of roots", user(urlPart("file://" + filepath.Join(fileRoot(t), "link.png"))), "messages[0].content[0].image_url", "not under"},
		{"missing file", user(urlPart("file://" + filepath.Join(fileRoot(t), "none.png"))), "messages[0].content[0].image_url", "no such file"},
		{"relative file", user(urlPart("file:hello.png")), "messages[0].content[0].image_url", "file:///absolute"},
		{"not an image", user(dataPart([]byte("GIF87a? no"))), "messages[0].content[0].image_url", "corrupt image"},
		{"text bytes", user(dataPart([]byte("just text"))), "messages[0].content[0].image_url", "unsupported image format"},
		{"bomb", user(dataPart(bomb)), "messages[0].content[0].image_url", "image too large"},
		{"bytes", user(dataPart(big)), "messages[0].content[0].image_url", "bytes"},
		{"json_schema", withJSONSchema, "response_format", "json_object"},
		{"prompt", &l7v1.L7ChatRequest{Prompt: "x"}, "prompt", "image_url"},
		{"too many", user(slices.Repeat([]*l7v1.ContentPart{dataPart(render(t, "x"))}, 9)...), "messages", "at most 8"},
	} {
		_, _, err := chat(t, w, tc.p)
		var me *mux.Error
		if !errors.As(err, &me) || me.Code != dbe.CodeInvalidRequest || me.Param != tc.param || !strings.Contains(me.Message, tc.want) {
			t.Errorf("%s: %v (param %q), want INVALID_REQUEST on %s mentioning %q", tc.name, err, paramOf(err), tc.param, tc.want)
		}
	}
}

func paramOf(err error) string {
	var me *mux.Error
	if errors.As(err, &me) {
		return me.Param
	}
	return ""
}

func TestSettings(t *testing.T) {
	for _, tc := range []struct {
		set   map[string]any
		param string
	}{
		{map[string]any{"bogus": true}, "bogus"},
		{map[string]any{"threads": "two"}, "threads"},
		{map[string]any{"file_roots": "/tmp"}, "file_roots"},
		{map[string]any{"max_image_bytes": "lots"}, "max_image_bytes"},
		{map[string]any{"graph_optimization": "max"}, "graph_optimization"},
		{map[string]any{"unclip_ratio": 20.0}, "unclip_ratio"},
	} {
		_, err := parseSettings(tc.set, nil)
		if paramOf(err) != tc.param {
			t.Errorf("%v: %v, want an error on %s", tc.set, err, tc.param)
		}
	}
	s, err := parseSettings(map[string]any{"file_roots": []any{"rel"}, "max_image_bytes": "1MiB", "classify_orientation": true}, nil)
	if err != nil || !filepath.IsAbs(s.FileRoots[0]) || s.Limits.MaxBytes != 1<<20 || !s.Classify || s.ModelName != DefaultModelName {
		t.Errorf("%+v %v", s, err)
	}
	// A models directory without the files fails Configure on models.
	if _, err := os.Stat(ort.ResolveLibrary(os.Getenv)); err == nil {
		err := New().Configure(context.Background(), &sdk.Config{Name: Name, Settings: settingsFor(t, map[string]any{"models": t.TempDir()})})
		if paramOf(err) != "models" || !strings.Contains(err.Error(), "make ocr-models") {
			t.Errorf("empty models dir: %v", err)
		}
	}
}

// TestWire reads an image through the SDK's data path (sealed session,
// DBE frames), streamed and not, and checks both give the same text.
func TestWire(t *testing.T) {
	c := sdktest.Connect(t, New())
	ctx := context.Background()
	if err := c.Control.Configure(ctx, &sdk.Config{Name: Name, DeviceID: 45, Profiles: []string{"ocr"}, Settings: settingsFor(t, nil)}); err != nil {
		t.Fatal(err)
	}
	img := render(t, "line one 10.0.0.1", "line two")
	p := user(dataPart(img))
	f, _ := sdktest.ChatFrame("ocr", p)
	frames, err := sdktest.Call(ctx, c.Client, f)
	if err != nil {
		t.Fatal(err)
	}
	var resp l7v1.L7ChatResponse
	if err := proto.Unmarshal(frames[0].Payload, &resp); err != nil {
		t.Fatal(err)
	}
	want := "line one 10.0.0.1\nline two"
	if got := resp.GetChoices()[0].GetMessage().GetContent(); got != want || resp.GetDeviceId() != 45 || resp.GetModel() != DefaultModelName {
		t.Fatalf("response %q device %d model %q", got, resp.GetDeviceId(), resp.GetModel())
	}
	p.Stream = true
	f, _ = sdktest.ChatFrame("ocr", p)
	if frames, err = sdktest.Call(ctx, c.Client, f); err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	for _, fr := range frames {
		var ch l7v1.L7ChatChunk
		proto.Unmarshal(fr.Payload, &ch)
		got.WriteString(ch.GetDelta())
	}
	if got.String() != want || len(frames) < 3 {
		t.Errorf("streamed %q in %d frames", got.String(), len(frames))
	}
}

// pngBomb rewrites a PNG's IHDR to claim w×h pixels, with a valid CRC: a
// small file whose header promises a huge image.
func pngBomb(png []byte, w, h uint32) []byte {
	b := append([]byte(nil), png...)
	binary.BigEndian.PutUint32(b[16:], w)
	binary.BigEndian.PutUint32(b[20:], h)
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	return b
}

// TestQueue: beyond parallelism + queue requests, a request is refused
// with OVERLOADED and a retry hint, and admitted again once one leaves.
func TestQueue(t *testing.T) {
	w := New()
	if err := w.Configure(context.Background(), &sdk.Config{Name: Name, Settings: settingsFor(t, map[string]any{"queue": float64(0)})}); err != nil {
		t.Fatal(err)
	}
	defer w.Close(context.Background())
	st := w.st.Load()
	st.queued.Add(1) // one request reading (parallelism 1), none may wait
	p := user(dataPart(render(t, "queued")))
	_, _, err := chat(t, w, p)
	var me *mux.Error
	if !errors.As(err, &me) || me.Code != dbe.CodeOverloaded || me.RetryAfterMS == 0 {
		t.Fatalf("full: %v", err)
	}
	st.queued.Add(-1)
	if text, _, err := chat(t, w, p); err != nil || text != "queued" {
		t.Fatalf("after: %q %v", text, err)
	}
}
