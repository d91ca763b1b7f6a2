// Package ctc decodes a CTC text recognizer's output as PaddleOCR's
// CTCLabelDecode: the character list is "blank", then the dictionary's
// lines, then a space (use_space_char); each time step's most probable
// class is taken (argmax, the first on ties), repeats merged, blanks
// dropped, and the text's confidence is the mean probability of the steps
// kept (0 when none is).
package ctc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// ErrDictionary reports a character list that cannot be used.
var ErrDictionary = errors.New("ctc: invalid character dictionary")

// Charset maps class indices to text.
type Charset struct {
	chars []string // chars[0] is the blank
}

// LoadCharset reads a dictionary with one character per line (PaddleOCR's
// ppocr_keys_v1.txt), with "\n" or "\r\n" line ends, and appends the
// space.
func LoadCharset(dict []byte) (*Charset, error) {
	cs := &Charset{chars: []string{""}}
	sc := bufio.NewScanner(bytes.NewReader(dict))
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		cs.chars = append(cs.chars, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDictionary, err)
	}
	if len(cs.chars) == 1 {
		return nil, fmt.Errorf("%w: no characters", ErrDictionary)
	}
	cs.chars = append(cs.chars, " ")
	return cs, nil
}

// Classes is the number of classes a recognizer must output: the blank,
// the dictionary and the space.
func (cs *Charset) Classes() int { return len(cs.chars) }

// Result is one decoded text.
type Result struct {
	Text       string
	Confidence float64
}

// Decode reads one sequence of steps × classes probabilities.
func (cs *Charset) Decode(probs []float32, steps int) (Result, error) {
	n := len(cs.chars)
	if steps < 0 || len(probs) != steps*n {
		return Result{}, fmt.Errorf("ctc: %d values are not %d steps of %d classes", len(probs), steps, n)
	}
	var b strings.Builder
	var sum float64
	kept := 0
	prev := -1
	for t := 0; t < steps; t++ {
		row := probs[t*n : (t+1)*n]
		best := 0
		for c, p := range row {
			if p > row[best] {
				best = c
			}
		}
		if best != 0 && best != prev {
			b.WriteString(cs.chars[best])
			sum += float64(row[best])
			kept++
		}
		prev = best
	}
	if kept == 0 {
		return Result{}, nil
	}
	return Result{Text: b.String(), Confidence: sum / float64(kept)}, nil
}
