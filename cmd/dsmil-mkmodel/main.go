// Command dsmil-mkmodel writes a Llama / Qwen2-architecture decoder with
// deterministic pseudo-random weights, in the Hugging Face Optimum layout
// the llm-amx plugin loads (config.json, generation_config.json,
// tokenizer.json, tokenizer_config.json, onnx/model*.onnx), for tests,
// demos and benchmarks. The model produces gibberish at a real model's
// speed.
//
//	dsmil-mkmodel -preset tiny -dtype int4 -out run/models/tiny
//	dsmil-mkmodel -preset qwen2.5-0.5b -dtype int4 -block 128 -out /tmp/q05
//
// Presets: tiny, qwen2.5-0.5b, tinyllama-1.1b, llama-7b; flags override
// their fields. The encoder presets minilm-l6 and tiny-encoder write a
// sentence-transformers BERT encoder (onnx/model.onnx, modules.json,
// 1_Pooling) for the embed plugin instead:
//
//	dsmil-mkmodel -preset minilm-l6 -out run/models/dsmil-random-minilm-l6
//
// -dtype q8 adds onnx/model_quantized.onnx, the same weights dynamically
// quantized to int8 as sentence-transformers repositories ship them (the
// embed plugin's model_file setting runs it).
//
// The CLIP presets clip-vit-b32 and tiny-clip write a CLIP dual encoder
// (onnx/text_model.onnx, onnx/vision_model.onnx, preprocessor_config.json)
// for the embed plugin:
//
//	dsmil-mkmodel -preset clip-vit-b32 -out run/models/dsmil-random-clip-vit-b32
//
// Writing a second dtype into the same directory adds its ONNX file
// (onnx/model.onnx, model_int8.onnx, model_q4.onnx).
//
// -prefill-from converts an existing decoder instead (an Optimum or
// onnxruntime-genai export, or a generated model) and writes its prefill
// graph, onnx/model_prefill.onnx for onnx/model.onnx, for llm-amx's
// prefill_graph setting (internal/onnx/prefillgraph):
//
//	dsmil-mkmodel -prefill-from models/qwen2.5-0.5b-int4 [-file onnx/model_q4.onnx]
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dsmil/l7/internal/mkmodel"
	"github.com/dsmil/l7/internal/onnx/prefillgraph"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dsmil-mkmodel", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		preset   = fs.String("preset", "tiny", "shape preset: "+strings.Join(mkmodel.PresetNames(), ", ")+"; encoders: minilm-l6, tiny-encoder; CLIP: clip-vit-b32, tiny-clip")
		out      = fs.String("out", "", "output directory (required)")
		dtype    = fs.String("dtype", "fp32", "linear weights: fp32, int8 or int4 (MatMulNBits); encoders: fp32, or q8 to add onnx/model_quantized.onnx (dynamic int8)")
		block    = fs.Int("block", 32, "MatMulNBits block size (16, 32, 64, 128, 256)")
		accuracy = fs.Int("accuracy", 4, "MatMulNBits accuracy_level (0: fp32 compute; 4: int8 activations)")
		seed     = fs.Uint64("seed", 0, "weight seed")
		arch     = fs.String("arch", "", "override the architecture: llama or qwen2")
		layers   = fs.Int("layers", 0, "override num_hidden_layers")
		hidden   = fs.Int("hidden", 0, "override hidden_size")
		heads    = fs.Int("heads", 0, "override num_attention_heads")
		kvHeads  = fs.Int("kv-heads", 0, "override num_key_value_heads")
		headDim  = fs.Int("head-dim", 0, "override head_dim")
		inter    = fs.Int("intermediate", 0, "override intermediate_size")
		vocab    = fs.Int("vocab", 0, "override vocab_size (>= the tokenizer's 512)")
		maxPos   = fs.Int("max-positions", 0, "override max_position_embeddings")
		tie      = fs.String("tie", "", "override tie_word_embeddings: true or false")
		external = fs.Bool("external-data", false, "always write weights to an external .onnx_data file")
		combined = fs.Bool("clip-combined", false, "CLIP presets: one onnx/model.onnx with both encoders (Optimum's CLIPModel export) instead of text_model.onnx and vision_model.onnx")
		all      = fs.Bool("all-logits", false, "compute the logits of every position, as Optimum's exports do (default: the last position only)")
		from     = fs.String("prefill-from", "", "convert the decoder in this model directory: write its prefill graph next to -file (the other flags do not apply)")
		file     = fs.String("file", "onnx/model.onnx", "with -prefill-from: the model file, relative to the directory")
		prefillG = fs.Bool("prefill-graph", false, "also write <file>_prefill.onnx: the linears in int8 through ORT's u8×s8 GEMM (AMX), for llm-amx's prefill_graph setting")
	)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *from != "" && fs.NArg() == 0 {
		return convert(*from, *file, stdout, stderr)
	}
	if *out == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: dsmil-mkmodel -out DIR [-preset NAME] [-dtype fp32|int8|int4] [flags]\n       dsmil-mkmodel -prefill-from DIR [-file onnx/model.onnx]")
		fs.PrintDefaults()
		return 2
	}
	if mkmodel.IsEncoderPreset(*preset) {
		return writeEncoder(*preset, *out, *dtype, *seed, *layers, *maxPos, stdout, stderr)
	}
	if mkmodel.IsCLIPPreset(*preset) {
		return writeCLIP(*preset, *out, *seed, *layers, *combined, stdout, stderr)
	}
	s, err := mkmodel.Preset(*preset)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	s.DType, s.BlockSize, s.Seed = mkmodel.DType(*dtype), *block, *seed
	if *accuracy == 0 {
		s.NoAccuracyLevel = true
	} else {
		s.AccuracyLevel = *accuracy
	}
	for _, o := range []struct {
		dst *int
		v   int
	}{{&s.Layers, *layers}, {&s.Hidden, *hidden}, {&s.Heads, *heads}, {&s.KVHeads, *kvHeads},
		{&s.HeadDim, *headDim}, {&s.Intermediate, *inter}, {&s.Vocab, *vocab}, {&s.MaxPositions, *maxPos}} {
		if o.v != 0 {
			*o.dst = o.v
		}
	}
	if *arch != "" {
		s.Arch = mkmodel.Arch(*arch)
	}
	switch *tie {
	case "":
	case "true":
		s.TieEmbeddings = true
	case "false":
		s.TieEmbeddings = false
	default:
		fmt.Fprintln(stderr, "-tie must be true or false")
		return 2
	}
	if *external {
		s.ExternalDataThreshold = -1
	}
	s.AllLogits, s.PrefillGraph = *all, *prefillG
	start := time.Now()
	r, err := mkmodel.Write(*out, s)
	if err != nil {
		fmt.Fprintln(stderr, "dsmil-mkmodel:", err)
		return 1
	}
	sp := r.Spec
	fmt.Fprintf(stdout, "wrote %s (%s, %s, %.1fM params, %d layers, hidden %d, heads %d/%d, vocab %d) in %s\n",
		r.ONNX, sp.Name, sp.DType, float64(sp.Params())/1e6, sp.Layers, sp.Hidden, sp.Heads, sp.KVHeads, sp.Vocab,
		time.Since(start).Round(time.Millisecond))
	fmt.Fprintln(stdout, "random weights: the model produces gibberish; for tests, demos and benchmarks only")
	return 0
}

// writeEncoder writes a sentence-transformers encoder preset: fp32, and
// with -dtype q8 also onnx/model_quantized.onnx (dynamic int8); the decoder
// flags other than -seed, -layers and -max-positions do not apply.
func writeEncoder(preset, out, dtype string, seed uint64, layers, maxPos int, stdout, stderr io.Writer) int {
	s, err := mkmodel.EncoderPreset(preset)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	switch dtype {
	case "fp32":
	case "q8":
		s.Quantized = true
	default:
		fmt.Fprintf(stderr, "dsmil-mkmodel: -dtype %s: an encoder is written in fp32, or with -dtype q8 in fp32 and dynamic int8 (onnx/model_quantized.onnx)\n", dtype)
		return 2
	}
	s.Seed = seed
	if layers != 0 {
		s.Layers = layers
	}
	if maxPos != 0 {
		s.MaxPositions, s.MaxSeqLength = maxPos, min(s.MaxSeqLength, maxPos)
	}
	start := time.Now()
	r, err := mkmodel.WriteEncoder(out, s)
	if err != nil {
		fmt.Fprintln(stderr, "dsmil-mkmodel:", err)
		return 1
	}
	sp := r.Spec
	fmt.Fprintf(stdout, "wrote %s (%s encoder, fp32, %d layers, hidden %d, heads %d, %s pooling, normalize %v, max_seq_length %d) in %s\n",
		r.ONNX, sp.Name, sp.Layers, sp.Hidden, sp.Heads, sp.Pooling, sp.Normalize, sp.MaxSeqLength, time.Since(start).Round(time.Millisecond))
	if r.QuantizedONNX != "" {
		fmt.Fprintf(stdout, "wrote %s (dynamic int8: DynamicQuantizeLinear + MatMulInteger, int8 weights and embedding tables)\n", r.QuantizedONNX)
	}
	fmt.Fprintln(stdout, "random weights: the vectors mean nothing; for tests, demos and benchmarks only")
	return 0
}

// writeCLIP writes a CLIP dual encoder preset (fp32; -layers sets both
// towers' layers, the other decoder flags do not apply).
func writeCLIP(preset, out string, seed uint64, layers int, combined bool, stdout, stderr io.Writer) int {
	s, err := mkmodel.CLIPPreset(preset)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	s.Seed, s.Combined = seed, combined
	if layers != 0 {
		s.Text.Layers, s.Vision.Layers = layers, layers
	}
	start := time.Now()
	r, err := mkmodel.WriteCLIP(out, s)
	if err != nil {
		fmt.Fprintln(stderr, "dsmil-mkmodel:", err)
		return 1
	}
	sp := r.Spec
	files := r.TextONNX + " and " + r.VisionONNX
	if combined {
		files = r.TextONNX
	}
	fmt.Fprintf(stdout, "wrote %s (%s dual encoder, fp32, %.1fM params; text %d layers, hidden %d; vision %d layers, hidden %d, %dx%d images in %dx%d patches; %d-dimensional space) in %s\n",
		files, sp.Name, float64(sp.Params())/1e6, sp.Text.Layers, sp.Text.Hidden, sp.Vision.Layers, sp.Vision.Hidden,
		sp.ImageSize, sp.ImageSize, sp.PatchSize, sp.PatchSize, sp.ProjectionDim, time.Since(start).Round(time.Millisecond))
	fmt.Fprintln(stdout, "random weights: the vectors mean nothing; for tests, demos and benchmarks only")
	return 0
}

// convert writes the prefill graph of the model file file in the model
// directory dir (-prefill-from).
func convert(dir, file string, stdout, stderr io.Writer) int {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		fmt.Fprintf(stderr, "dsmil-mkmodel: -prefill-from %s: not a directory\n", dir)
		return 1
	}
	src := filepath.Join(dir, filepath.FromSlash(file))
	if _, err := os.Stat(src); err != nil {
		var have []string
		all, _ := filepath.Glob(filepath.Join(dir, "onnx", "*.onnx"))
		for _, p := range all {
			if !strings.HasSuffix(p, "_prefill.onnx") {
				rel, _ := filepath.Rel(dir, p)
				have = append(have, filepath.ToSlash(rel))
			}
		}
		msg := "it has no onnx/*.onnx"
		if len(have) > 0 {
			msg = "choose one of its models with -file: " + strings.Join(have, ", ")
		}
		fmt.Fprintf(stderr, "dsmil-mkmodel: %s has no %s; %s\n", dir, file, msg)
		return 1
	}
	if strings.HasSuffix(src, "_prefill.onnx") || !strings.HasSuffix(src, ".onnx") {
		fmt.Fprintf(stderr, "dsmil-mkmodel: -file %s: want a model's .onnx file, not a prefill graph\n", file)
		return 1
	}
	dst := strings.TrimSuffix(src, ".onnx") + "_prefill.onnx"
	start := time.Now()
	info, err := prefillgraph.File(src, dst, prefillgraph.Options{})
	if err != nil {
		fmt.Fprintln(stderr, "dsmil-mkmodel:", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s (%d linears in int8 u8×s8; LM head %s: %s; %.1f MB external data) in %s\n",
		dst, info.Linears, info.Head, info.HeadForm, float64(info.DataBytes)/1e6, time.Since(start).Round(time.Millisecond))
	for _, s := range info.Skipped {
		fmt.Fprintln(stdout, "left as it is:", s)
	}
	fmt.Fprintln(stdout, "per-tensor int8 activations: check the model's outputs with prefill_graph before relying on it")
	return 0
}
