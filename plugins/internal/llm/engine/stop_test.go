package engine

import (
	"strings"
	"testing"
)

func TestStopper(t *testing.T) {
	for _, tc := range []struct {
		name    string
		stops   []string
		pieces  []string
		want    []string // what push returns for each piece (then flush, if not stopped)
		stopped bool
	}{
		{"no stops", nil, []string{"ab", "c"}, []string{"ab", "c", ""}, false},
		{"empty stop ignored", []string{""}, []string{"ab"}, []string{"ab", ""}, false},
		{"within one piece", []string{"STOP"}, []string{"abSTOPcd"}, []string{"ab"}, true},
		{"across pieces", []string{"STOP"}, []string{"abST", "OPcd"}, []string{"ab", ""}, true},
		{"across three pieces", []string{"STOP"}, []string{"xS", "T", "OP"}, []string{"x", "", ""}, true},
		{"false start released", []string{"STOP"}, []string{"abST", "ART"}, []string{"ab", "START", ""}, false},
		{"held back until the end", []string{"STOP"}, []string{"abST"}, []string{"ab", "ST"}, false},
		{"earliest of several", []string{"cd", "b"}, []string{"abcd"}, []string{"a"}, true},
		{"overlapping prefix restarts", []string{"aab"}, []string{"a", "a", "a", "b", "z"}, []string{"", "", "a", ""}, true},
		{"stop at the very start", []string{"<"}, []string{"<x"}, []string{""}, true},
		{"unicode", []string{"é!"}, []string{"caf", "é", "!x"}, []string{"caf", "", ""}, true},
		{"longest held prefix of any stop", []string{"abc", "bcd"}, []string{"xab", "cz"}, []string{"x", ""}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStopper(tc.stops)
			var got []string
			stopped := false
			for _, p := range tc.pieces {
				out, st := s.push(p)
				got = append(got, out)
				if st {
					stopped = true
					break
				}
			}
			if !stopped {
				got = append(got, s.flush())
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") || stopped != tc.stopped {
				t.Fatalf("got %q stopped=%v, want %q stopped=%v", got, stopped, tc.want, tc.stopped)
			}
		})
	}
}

// FuzzStopper: whatever the pieces, the released text is the text up to
// the first piece that completes a stop sequence, cut before the earliest
// stop sequence in it.
func FuzzStopper(f *testing.F) {
	f.Add("abSTOPcd", "STOP", "END", 3)
	f.Add("aaab", "aab", "b", 1)
	f.Fuzz(func(t *testing.T, text, stop1, stop2 string, size int) {
		if size <= 0 || size > 16 {
			size = 1
		}
		s := newStopper([]string{stop1, stop2})
		var out strings.Builder
		stopped := false
		for i := 0; i < len(text) && !stopped; i += size {
			piece, st := s.push(text[i:min(i+size, len(text))])
			out.WriteString(piece)
			stopped = st
		}
		if !stopped {
			out.WriteString(s.flush())
		}
		want, cut := text, -1
		for end := min(size, len(text)); cut < 0; end = min(end+size, len(text)) {
			for _, st := range []string{stop1, stop2} {
				if i := strings.Index(text[:end], st); st != "" && i >= 0 && (cut < 0 || i < cut) {
					cut = i
				}
			}
			if cut >= 0 {
				want = text[:cut]
			}
			if end == len(text) {
				break
			}
		}
		if out.String() != want || stopped != (cut >= 0) {
			t.Fatalf("text %q stops %q %q by %d: got %q (stopped %v), want %q", text, stop1, stop2, size, out.String(), stopped, want)
		}
	})
}
