// Command gguf writes a random-weight GGUF of the Qwen2.5-0.5B shape (24
// layers, hidden 896, 14/2 heads, intermediate 4864, vocab 151 936, tied
// embeddings) in Q4_0 or Q8_0, for llama.cpp's prompt-processing speed to
// be measured beside bench/llm's ONNX model of the same shape (issue 18).
// No model hub is needed: the weights are random (scales kept small and
// finite) and the vocabulary is the 256 byte tokens of GPT-2's byte-level
// BPE followed by placeholder tokens, with no merges.
//
//	go run ./bench/llamacpp/gguf -type q4_0 -out /tmp/qwen2.5-0.5b-q4_0.gguf
package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
)

const (
	layers = 24
	hidden = 896
	heads  = 14
	kvH    = 2
	headD  = 64
	inter  = 4864
	vocab  = 151936
	align  = 32
)

// GGUF value types and ggml tensor types.
const (
	tUint32  = 4
	tInt32   = 5
	tFloat32 = 6
	tString  = 8
	tArray   = 9

	ggmlF32  = 0
	ggmlQ4_0 = 2
	ggmlQ8_0 = 8
)

type kv struct {
	key string
	val any // uint32, float32, string, []string, []int32
}

type tensor struct {
	name string
	dims []uint64 // ne0 first (the input dimension)
	typ  uint32
}

func (t tensor) bytes() uint64 {
	n := uint64(1)
	for _, d := range t.dims {
		n *= d
	}
	switch t.typ {
	case ggmlQ4_0:
		return n / 32 * 18
	case ggmlQ8_0:
		return n / 32 * 34
	}
	return 4 * n
}

// byteTokens are GPT-2's byte-level BPE byte tokens, in byte order.
func byteTokens() []string {
	var bs []int
	for b := '!'; b <= '~'; b++ {
		bs = append(bs, int(b))
	}
	for b := 0xA1; b <= 0xAC; b++ {
		bs = append(bs, b)
	}
	for b := 0xAE; b <= 0xFF; b++ {
		bs = append(bs, b)
	}
	m := map[int]rune{}
	for _, b := range bs {
		m[b] = rune(b)
	}
	n := 0
	out := make([]string, 256)
	for b := 0; b < 256; b++ {
		r, ok := m[b]
		if !ok {
			r = rune(256 + n)
			n++
		}
		out[b] = string(r)
	}
	return out
}

func f16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int((b>>23)&0xff) - 127 + 15
	frac := uint16((b >> 13) & 0x3ff)
	if exp <= 0 || exp >= 31 {
		panic("f16: out of the normal range")
	}
	return sign | uint16(exp)<<10 | frac
}

type writer struct {
	w   *bufio.Writer
	err error
}

func (w *writer) put(v any) {
	if w.err == nil {
		w.err = binary.Write(w.w, binary.LittleEndian, v)
	}
}

func (w *writer) str(s string) {
	w.put(uint64(len(s)))
	if w.err == nil {
		_, w.err = w.w.WriteString(s)
	}
}

func main() {
	typ := flag.String("type", "q4_0", "q4_0 or q8_0")
	out := flag.String("out", "", "output file")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "usage: gguf -type q4_0|q8_0 -out FILE")
		os.Exit(2)
	}
	var wt, fileType uint32
	var scale float32
	switch *typ {
	case "q4_0":
		wt, fileType, scale = ggmlQ4_0, 2, 0.02/8
	case "q8_0":
		wt, fileType, scale = ggmlQ8_0, 7, 0.02/127
	default:
		fmt.Fprintln(os.Stderr, "-type q4_0 or q8_0")
		os.Exit(2)
	}
	tokens := byteTokens()
	for i := len(tokens); i < vocab; i++ {
		tokens = append(tokens, "tok"+strconv.Itoa(i))
	}
	types := make([]int32, vocab)
	for i := range types {
		types[i] = 1
	}
	kvs := []kv{
		{"general.architecture", "qwen2"},
		{"general.name", "dsmil-random-qwen2.5-0.5b"},
		{"general.file_type", fileType},
		{"general.alignment", uint32(align)},
		{"qwen2.block_count", uint32(layers)},
		{"qwen2.context_length", uint32(32768)},
		{"qwen2.embedding_length", uint32(hidden)},
		{"qwen2.feed_forward_length", uint32(inter)},
		{"qwen2.attention.head_count", uint32(heads)},
		{"qwen2.attention.head_count_kv", uint32(kvH)},
		{"qwen2.rope.freq_base", float32(1e6)},
		{"qwen2.attention.layer_norm_rms_epsilon", float32(1e-6)},
		{"tokenizer.ggml.model", "gpt2"},
		{"tokenizer.ggml.pre", "qwen2"},
		{"tokenizer.ggml.tokens", tokens},
		{"tokenizer.ggml.token_type", types},
		{"tokenizer.ggml.merges", []string{}},
		{"tokenizer.ggml.eos_token_id", uint32(vocab - 1)},
		{"tokenizer.ggml.bos_token_id", uint32(vocab - 2)},
		{"tokenizer.ggml.padding_token_id", uint32(vocab - 1)},
	}
	ts := []tensor{{"token_embd.weight", []uint64{hidden, vocab}, wt}, {"output_norm.weight", []uint64{hidden}, ggmlF32}}
	for l := 0; l < layers; l++ {
		p := fmt.Sprintf("blk.%d.", l)
		ts = append(ts,
			tensor{p + "attn_norm.weight", []uint64{hidden}, ggmlF32},
			tensor{p + "attn_q.weight", []uint64{hidden, heads * headD}, wt},
			tensor{p + "attn_q.bias", []uint64{heads * headD}, ggmlF32},
			tensor{p + "attn_k.weight", []uint64{hidden, kvH * headD}, wt},
			tensor{p + "attn_k.bias", []uint64{kvH * headD}, ggmlF32},
			tensor{p + "attn_v.weight", []uint64{hidden, kvH * headD}, wt},
			tensor{p + "attn_v.bias", []uint64{kvH * headD}, ggmlF32},
			tensor{p + "attn_output.weight", []uint64{heads * headD, hidden}, wt},
			tensor{p + "ffn_norm.weight", []uint64{hidden}, ggmlF32},
			tensor{p + "ffn_gate.weight", []uint64{hidden, inter}, wt},
			tensor{p + "ffn_up.weight", []uint64{hidden, inter}, wt},
			tensor{p + "ffn_down.weight", []uint64{inter, hidden}, wt},
		)
	}
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	w := &writer{w: bufio.NewWriterSize(f, 1<<20)}
	w.put([]byte("GGUF"))
	w.put(uint32(3))
	w.put(uint64(len(ts)))
	w.put(uint64(len(kvs)))
	for _, e := range kvs {
		w.str(e.key)
		switch v := e.val.(type) {
		case uint32:
			w.put(uint32(tUint32))
			w.put(v)
		case float32:
			w.put(uint32(tFloat32))
			w.put(v)
		case string:
			w.put(uint32(tString))
			w.str(v)
		case []string:
			w.put(uint32(tArray))
			w.put(uint32(tString))
			w.put(uint64(len(v)))
			for _, s := range v {
				w.str(s)
			}
		case []int32:
			w.put(uint32(tArray))
			w.put(uint32(tInt32))
			w.put(uint64(len(v)))
			w.put(v)
		}
	}
	var off uint64
	for _, t := range ts {
		w.str(t.name)
		w.put(uint32(len(t.dims)))
		w.put(t.dims)
		w.put(t.typ)
		w.put(off)
		off += (t.bytes() + align - 1) / align * align
	}
	if w.err == nil {
		w.err = w.w.Flush()
	}
	pos, _ := f.Seek(0, 1)
	pad := make([]byte, (align-pos%align)%align)
	w.put(pad)
	rng := rand.New(rand.NewPCG(18, 5))
	d := f16(scale)
	for _, t := range ts {
		n := t.bytes()
		buf := make([]byte, (n+align-1)/align*align)
		switch t.typ {
		case ggmlF32:
			for i := uint64(0); i < n/4; i++ {
				v := float32(0)
				if t.name[len(t.name)-6:] == "weight" { // norms
					v = 1
				}
				binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
			}
		default:
			for i := 0; i+8 <= int(n); i += 8 {
				binary.LittleEndian.PutUint64(buf[i:], rng.Uint64())
			}
			bs := uint64(18)
			if t.typ == ggmlQ8_0 {
				bs = 34
			}
			for b := uint64(0); b < n/bs; b++ {
				binary.LittleEndian.PutUint16(buf[b*bs:], d)
			}
		}
		w.put(buf)
	}
	if w.err == nil {
		w.err = w.w.Flush()
	}
	if w.err == nil {
		w.err = f.Close()
	}
	if w.err != nil {
		fmt.Fprintln(os.Stderr, w.err)
		os.Exit(1)
	}
	st, _ := os.Stat(*out)
	fmt.Printf("wrote %s: %s, %d tensors, %.0f MB\n", *out, *typ, len(ts), float64(st.Size())/1e6)
}
