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

// TestPrefillFrom: -prefill-from writes <file>_prefill.onnx next to the
// model file, and says precisely what is wrong with a directory without
// it or a file that is not a model.
func TestPrefillFrom(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if code := run([]string{"-out", dir, "-dtype", "int4", "-layers", "1"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	out.Reset()
	if code := run([]string{"-prefill-from", dir, "-file", "onnx/model_q4.onnx"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "onnx", "model_q4_prefill.onnx")); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "7 linears in int8") {
		t.Errorf("output: %s", out.String())
	}
	if err := os.WriteFile(filepath.Join(dir, "onnx", "bad.onnx"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-prefill-from", dir}, "has no onnx/model.onnx; choose one of its models with -file: onnx/bad.onnx, onnx/model_q4.onnx"},
		{[]string{"-prefill-from", t.TempDir()}, "it has no onnx/*.onnx"},
		{[]string{"-prefill-from", filepath.Join(dir, "config.json")}, "not a directory"},
		{[]string{"-prefill-from", dir, "-file", "onnx/model_q4_prefill.onnx"}, "not a prefill graph"},
		{[]string{"-prefill-from", dir, "-file", "onnx/bad.onnx"}, "not an ONNX model"},
	} {
		errb.Reset()
		if code := run(tc.args, &out, &errb); code == 0 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, %q; want %q", tc.args, code, errb.String(), tc.want)
		}
	}
}
