package tokenizer

import (
	"os"
	"path/filepath"
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
	for _, name := range []string{"qwen3", "llama3", "llama2"} {
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
