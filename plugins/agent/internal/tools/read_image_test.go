package tools

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// pngBytes is a small valid PNG.
func pngBytes(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, 8, 8))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// ocrRecorder is an Env.OCR that records what it was sent and answers
// with a fixed text.
type ocrRecorder struct {
	calls int
	data  []byte
	mime  string
	text  string
	err   error
}

func (o *ocrRecorder) ocr(_ context.Context, data []byte, mime string) (string, error) {
	o.calls++
	o.data, o.mime = data, mime
	return o.text, o.err
}

// TestReadImageConfinement: read_image opens images with read_file's
// rules ('..', absolute paths outside the roots, symlinks out, FIFOs and
// devices refused, links inside followed; errors never name the host's
// directories for workspace paths), refuses files that are no
// image or over the size limit before any OCR request, and sends the
// file's bytes and detected type to Env.OCR.
func TestReadImageConfinement(t *testing.T) {
	env, root := workspace(t)
	img := pngBytes(t)
	if err := os.WriteFile(filepath.Join(root, "shot.png"), img, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(root), "outside.png"), img, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("shot.png", filepath.Join(root, "shot-link.png")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../outside.png", filepath.Join(root, "out.png")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, "pipe.png"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "empty.png"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rec := &ocrRecorder{text: "203.0.113.7 failed login"}
	env.OCR = rec.ocr

	for _, p := range []string{"logs/shot.png", "logs/shot-link.png", filepath.Join(root, "shot.png")} {
		m, err := run(t, env, "read_image", `{"path":"`+p+`"}`)
		if err != nil || m["text"] != rec.text || m["mime_type"] != "image/png" || m["size"].(float64) != float64(len(img)) || !strings.HasPrefix(m["path"].(string), "logs/shot") {
			t.Errorf("%s: %v %v", p, m, err)
		}
	}
	if rec.calls != 3 || !bytes.Equal(rec.data, img) || rec.mime != "image/png" {
		t.Errorf("OCR got %d calls, %d bytes of %q", rec.calls, len(rec.data), rec.mime)
	}

	rec.calls = 0
	for p, want := range map[string]string{
		"logs/../secret.txt":                "'..'",
		"logs/sub/../shot.png":              "'..'",
		"logs/out.png":                      "outside its workspace root",
		"logs/sub/dir-out/outside.png":      "outside its workspace root",
		filepath.Dir(root) + "/outside.png": "outside the workspace roots",
		"logs/pipe.png":                     "fifo",
		"logs/sub":                          "dir",
		"logs/app.log":                      "not a PNG",
		"logs/empty.png":                    "empty",
		"logs/missing.png":                  "does not exist",
		"nope/shot.png":                     "no workspace root",
	} {
		_, err := run(t, env, "read_image", `{"path":"`+p+`"}`)
		if !errors.Is(err, ErrPath) || !strings.Contains(err.Error(), want) || !strings.HasPrefix(p, "/") && strings.Contains(err.Error(), filepath.Dir(root)) {
			t.Errorf("%s: %v, want ErrPath saying %q", p, err, want)
		}
	}
	if rec.calls != 0 {
		t.Errorf("%d OCR requests for refused paths", rec.calls)
	}
	if _, err := run(t, env, "read_image", `{"path":"logs/shot.png","offset":1}`); !errors.Is(err, ErrArgs) {
		t.Errorf("an unknown argument: %v", err)
	}
}

// TestReadImageLimits: a file over ImageBytes is refused without an OCR
// request; a long transcription is cut at ReadBytes; no OCR (a task type
// without ocr_profile) and an OCR failure are errors naming them.
func TestReadImageLimits(t *testing.T) {
	env, root := workspace(t)
	img := pngBytes(t)
	if err := os.WriteFile(filepath.Join(root, "shot.png"), img, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, env, "read_image", `{"path":"logs/shot.png"}`); !errors.Is(err, errNoOCR) {
		t.Errorf("without OCR: %v", err)
	}
	rec := &ocrRecorder{text: strings.Repeat("x", 100)}
	env.OCR = rec.ocr
	env.Limits.ImageBytes = int64(len(img) - 1)
	if _, err := run(t, env, "read_image", `{"path":"logs/shot.png"}`); !errors.Is(err, ErrLimit) || rec.calls != 0 {
		t.Errorf("over ImageBytes: %v (%d OCR calls)", err, rec.calls)
	}
	env.Limits.ImageBytes, env.Limits.ReadBytes = 0, 10
	m, err := run(t, env, "read_image", `{"path":"logs/shot.png"}`)
	if err != nil || m["text"] != "xxxxxxxxxx" || m["truncated"] != true {
		t.Errorf("capped text: %v %v", m, err)
	}
	rec.err = errors.New("POLICY_DENIED: no")
	if _, err := run(t, env, "read_image", `{"path":"logs/shot.png"}`); !errors.Is(err, rec.err) || !strings.Contains(err.Error(), "logs/shot.png") {
		t.Errorf("OCR failure: %v", err)
	}
}

// TestReadImageDevice: a device node is refused before it is opened
// (mknod needs root: skip otherwise).
func TestReadImageDevice(t *testing.T) {
	env, root := workspace(t)
	if err := syscall.Mknod(filepath.Join(root, "null"), syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
		t.Skipf("mknod: %v", err)
	}
	env.OCR = (&ocrRecorder{}).ocr
	if _, err := run(t, env, "read_image", `{"path":"logs/null"}`); !errors.Is(err, ErrPath) || !strings.Contains(err.Error(), "device") {
		t.Fatalf("device: %v", err)
	}
}
