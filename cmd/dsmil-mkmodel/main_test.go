package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if code := run([]string{"-out", dir, "-dtype", "int8", "-layers", "1", "-arch", "llama", "-tie", "false"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "model_int8.onnx") {
		t.Errorf("output: %s", out.String())
	}
	for _, f := range []string{"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "onnx/model_int8.onnx"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	for _, args := range [][]string{{}, {"-out", dir, "-preset", "nope"}, {"-out", dir, "-dtype", "fp8"}, {"-out", dir, "-tie", "maybe"}} {
		errb.Reset()
		if code := run(args, &out, &errb); code == 0 {
			t.Errorf("%v: exit 0", args)
		}
	}
	errb.Reset()
	out.Reset()
	clip := filepath.Join(dir, "clip")
	if code := run([]string{"-out", clip, "-preset", "tiny-clip", "-layers", "1"}, &out, &errb); code != 0 {
		t.Fatalf("tiny-clip: exit %d: %s", code, errb.String())
	}
	for _, f := range []string{"preprocessor_config.json", "onnx/text_model.onnx", "onnx/vision_model.onnx"} {
		if _, err := os.Stat(filepath.Join(clip, f)); err != nil {
			t.Error(err)
		}
	}
	if !strings.Contains(out.String(), "text 1 layers") {
		t.Errorf("output: %s", out.String())
	}
}
