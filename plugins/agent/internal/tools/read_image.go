package tools

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"

	"github.com/dsmil/l7/sdk/dbe"
)

func init() { register(readImage{}) }

// readImage reads an image file of the workspace and has Device 45 (the
// multimodal plugin) transcribe its text: the image goes through the host's
// router as one L7_CHAT_REQ with an image part, to the task type's OCR
// profile, with the task's tenant and attributes (Env.OCR), so the router's
// claim, policy and quota checks apply to it as to an LLM step.
type readImage struct{}

func (readImage) Name() string { return "read_image" }
func (readImage) Description() string {
	return "Read the text in an image file of the read-only workspace (ROOT/path: PNG, JPEG, GIF, BMP or WebP, such as a screenshot), transcribed by OCR, one line of text per line."
}
func (readImage) Parameters() string {
	return `{"type":"object","properties":{"path":{"type":"string","maxLength":1000}},"required":["path"],"additionalProperties":false}`
}
func (readImage) MinROE() dbe.ROELevel          { return dbe.AnalysisOnly }
func (readImage) Compartments() dbe.Compartment { return 0 }

// imageTypes are the MIME types (as http.DetectContentType names them)
// read_image sends: the formats Device 45 decodes.
var imageTypes = []string{"image/png", "image/jpeg", "image/gif", "image/bmp", "image/webp"}

// errNoOCR: the task type has no OCR profile.
var errNoOCR = errors.New("read_image is not available: the task type names no ocr_profile")

func (readImage) Run(ctx context.Context, env *Env, args []byte) (string, error) {
	var a struct {
		Path string `json:"path"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return "", err
	}
	lim := env.limits()
	data, name, err := readImageFile(env, a.Path, lim.ImageBytes)
	if err != nil {
		return "", err
	}
	mime := http.DetectContentType(data)
	if !slices.Contains(imageTypes, mime) {
		return "", fmt.Errorf("%w: %q is not a PNG, JPEG, GIF, BMP or WebP image (%s)", ErrPath, a.Path, mime)
	}
	if env.OCR == nil {
		return "", errNoOCR
	}
	text, err := env.OCR(ctx, data, mime)
	if err != nil {
		return "", fmt.Errorf("transcribing %q: %w", name, err)
	}
	truncated := false
	if len(text) > lim.ReadBytes {
		text, truncated = toValidUTF8([]byte(text[:lim.ReadBytes])), true
	}
	return result(struct {
		Path      string `json:"path"`
		Size      int    `json:"size"`
		MimeType  string `json:"mime_type"`
		Text      string `json:"text"`
		Truncated bool   `json:"truncated,omitempty"`
	}{name, len(data), mime, text, truncated})
}

// readImageFile reads a whole regular file of the workspace, refusing one
// over max bytes (checked on the size and again on what is read).
func readImageFile(env *Env, p string, max int64) ([]byte, string, error) {
	f, fi, name, err := env.Workspace.openRegular(p)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	if fi.Size() > max {
		return nil, "", fmt.Errorf("%w: %q is %d bytes, over the image limit of %d", ErrLimit, p, fi.Size(), max)
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, "", pathError(p, err)
	}
	if int64(len(data)) > max {
		return nil, "", fmt.Errorf("%w: %q grew over the image limit of %d bytes", ErrLimit, p, max)
	}
	if len(data) == 0 {
		return nil, "", fmt.Errorf("%w: %q is empty", ErrPath, p)
	}
	return data, name, nil
}
