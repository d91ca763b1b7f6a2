package engine

import "strings"

// stopper finds stop sequences in streamed text. Text that could be the
// beginning of a stop sequence is held back until the next piece shows
// whether it is; a stop sequence and everything after it is never
// released.
type stopper struct {
	stops   []string
	pending string // held back: a suffix that is a prefix of a stop sequence
}

func newStopper(stops []string) *stopper {
	s := &stopper{}
	for _, st := range stops {
		if st != "" {
			s.stops = append(s.stops, st)
		}
	}
	return s
}

// push adds the next piece of text. It returns the text that may be
// emitted now and whether a stop sequence was completed; then the text is
// everything before the earliest stop sequence and generation ends.
func (s *stopper) push(text string) (out string, stopped bool) {
	if len(s.stops) == 0 {
		return text, false
	}
	p := s.pending + text
	cut := -1
	for _, st := range s.stops {
		if i := strings.Index(p, st); i >= 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	if cut >= 0 {
		s.pending = ""
		return p[:cut], true
	}
	hold := 0
	for _, st := range s.stops {
		for k := min(len(st)-1, len(p)); k > hold; k-- {
			if strings.HasSuffix(p, st[:k]) {
				hold = k
				break
			}
		}
	}
	s.pending = p[len(p)-hold:]
	return p[:len(p)-hold], false
}

// flush releases what is held back, at the end of generation.
func (s *stopper) flush() string {
	p := s.pending
	s.pending = ""
	return p
}
