package corpus

import (
	"bytes"
	"image/png"
	"math"
	"testing"
)

func TestLevenshtein(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"abc", "", 3}, {"kitten", "sitting", 3}, {"INFO", "INF0", 1}, {"a b", "ab", 1}, {"日本", "日木", 1}} {
		if d := Levenshtein(tc.a, tc.b); d != tc.d {
			t.Errorf("Levenshtein(%q, %q) = %d, want %d", tc.a, tc.b, d, tc.d)
		}
	}
}

func TestScore(t *testing.T) {
	var s Score
	s.Add([]string{"abcd", "efgh"}, []string{"abcd", "efgx"})
	s.Add([]string{"ijkl"}, nil)
	// "abcd\nefgh" vs "abcd\nefgx": 1 of 9; "ijkl" vs "": 4 of 4.
	if s.Chars != 13 || s.Errors != 5 || s.Lines != 3 || s.Exact != 1 {
		t.Fatalf("%+v", s)
	}
	if math.Abs(s.CER()-5.0/13) > 1e-12 || math.Abs(s.ExactRate()-1.0/3) > 1e-12 {
		t.Errorf("CER %v exact %v", s.CER(), s.ExactRate())
	}
}

// TestGenerate: the corpus is deterministic, of the promised kinds, and
// its images decode.
func TestGenerate(t *testing.T) {
	a, err := Generate(7, 16)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Generate(7, 16)
	if len(a) != 18 { // 16 lines + 16/8 blocks
		t.Fatalf("%d samples", len(a))
	}
	kinds := map[string]int{}
	for i := range a {
		if !bytes.Equal(a[i].File, b[i].File) || a[i].Lines[0] != b[i].Lines[0] {
			t.Fatalf("sample %d differs between two runs", i)
		}
		kinds[a[i].Kind]++
		if a[i].Size < 12 || a[i].Size > 48 {
			t.Errorf("%s: size %d", a[i].Name, a[i].Size)
		}
		if !a[i].JPEG {
			if _, err := png.Decode(bytes.NewReader(a[i].File)); err != nil {
				t.Errorf("%s: %v", a[i].Name, err)
			}
		}
	}
	for _, k := range []string{"sentence", "ipv4", "hostname", "hash", "log", "block"} {
		if kinds[k] == 0 {
			t.Errorf("no %s sample", k)
		}
	}
	shot, lines, err := Screenshot(1, 1280, 720, 20)
	if err != nil || len(lines) != 20 {
		t.Fatal(err, len(lines))
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(shot))
	if err != nil || cfg.Width != 1280 || cfg.Height != 720 {
		t.Errorf("screenshot %+v %v", cfg, err)
	}
}
