package ctc

import (
	"errors"
	"math"
	"testing"
)

func TestDecode(t *testing.T) {
	cs, err := LoadCharset([]byte("a\r\nb\nc\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cs.Classes() != 5 { // blank a b c space
		t.Fatalf("classes %d", cs.Classes())
	}
	// steps: a a blank a space b b c -> "aa bc" with repeats merged
	ids := []int{1, 1, 0, 1, 4, 2, 2, 3}
	probs := make([]float32, len(ids)*5)
	for t, id := range ids {
		for c := 0; c < 5; c++ {
			probs[t*5+c] = 0.05
		}
		probs[t*5+id] = 0.8
	}
	probs[1*5+1] = 0.6 // the merged repeat's probability is not counted
	r, err := cs.Decode(probs, len(ids))
	if err != nil {
		t.Fatal(err)
	}
	if r.Text != "aa bc" || math.Abs(r.Confidence-0.8) > 1e-6 {
		t.Errorf("got %+v", r)
	}
	if r, _ := cs.Decode(make([]float32, 10), 2); r.Text != "" || r.Confidence != 0 {
		t.Errorf("all blank: %+v", r)
	}
	if _, err := cs.Decode(probs, 3); err == nil {
		t.Error("wrong shape accepted")
	}
	if _, err := LoadCharset(nil); !errors.Is(err, ErrDictionary) {
		t.Errorf("empty dictionary: %v", err)
	}
}
