package tokenizer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkEncode encodes a ~4 KB mixed text (prose, code, numbers, several
// scripts, emoji) and reports tokens per second. The BPE word cache is warm
// after the first iteration, as it is in a server.
func BenchmarkEncode(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "bench.txt"))
	if err != nil {
		b.Fatal(err)
	}
	text := string(data)
	for _, name := range []string{"qwen3", "llama3", "llama2", "bert-base-uncased"} {
		b.Run(name, func(b *testing.B) {
			tk := family(b, name)
			n := len(tk.Encode(text, false))
			b.SetBytes(int64(len(text)))
			b.ResetTimer()
			for b.Loop() {
				tk.Encode(text, false)
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
			b.ReportMetric(float64(n), "tokens/op")
		})
	}
}

// BenchmarkEncodeLines encodes the same text a line at a time, with the
// special tokens ([CLS] ... [SEP] for BERT): embedding requests' inputs are
// short, mostly ASCII, texts like these.
func BenchmarkEncodeLines(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "bench.txt"))
	if err != nil {
		b.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	for _, name := range []string{"bert-base-uncased", "qwen3"} {
		b.Run(name, func(b *testing.B) {
			tk := family(b, name)
			n := 0
			for _, l := range lines {
				n += len(tk.Encode(l, true))
			}
			b.ResetTimer()
			for b.Loop() {
				for _, l := range lines {
					tk.Encode(l, true)
				}
			}
			b.ReportMetric(float64(len(lines))*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
			b.ReportMetric(float64(n)/float64(len(lines)), "tokens/line")
		})
	}
}

// BenchmarkStreamDecode decodes the same text one token at a time.
func BenchmarkStreamDecode(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "bench.txt"))
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"qwen3", "llama2"} {
		b.Run(name, func(b *testing.B) {
			tk := family(b, name)
			ids := tk.Encode(string(data), false)
			b.ResetTimer()
			for b.Loop() {
				sd := tk.NewStreamDecoder()
				for _, id := range ids {
					sd.Add(id)
				}
				sd.Flush()
			}
			b.ReportMetric(float64(len(ids))*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}
