package tokenizer

import "fmt"

// postProcessor adds a model's special tokens around an encoded sequence
// (Encode with addSpecial).
type postProcessor interface {
	process(ids []int) []int
}

// templatePost puts fixed ids before and after the sequence: what
// TemplateProcessing, BertProcessing and RobertaProcessing do for a single
// sequence.
type templatePost struct {
	before, after []int
}

func (p templatePost) process(ids []int) []int {
	if len(p.before) == 0 && len(p.after) == 0 {
		return ids
	}
	out := make([]int, 0, len(p.before)+len(ids)+len(p.after))
	out = append(out, p.before...)
	out = append(out, ids...)
	return append(out, p.after...)
}

type postSeq []postProcessor

func (s postSeq) process(ids []int) []int {
	for _, p := range s {
		ids = p.process(ids)
	}
	return ids
}

func buildPostProcessor(c *componentJSON, t *Tokenizer) (postProcessor, error) {
	if c == nil {
		return nil, nil
	}
	switch c.Type {
	case "ByteLevel":
		return nil, nil // only adjusts offsets
	case "Sequence":
		var seq postSeq
		for _, sub := range c.Processors {
			p, err := buildPostProcessor(sub, t)
			if err != nil {
				return nil, err
			}
			if p != nil {
				seq = append(seq, p)
			}
		}
		return seq, nil
	case "TemplateProcessing":
		var tp templatePost
		seenA := false
		for _, item := range c.Single {
			switch {
			case item.Sequence != nil:
				if item.Sequence.ID != "A" || seenA {
					return nil, fmt.Errorf("%w: TemplateProcessing single template uses sequence %q", ErrInvalid, item.Sequence.ID)
				}
				seenA = true
			case item.SpecialToken != nil:
				st, ok := c.SpecialTokens[item.SpecialToken.ID]
				if !ok {
					return nil, fmt.Errorf("%w: TemplateProcessing special token %q is not defined", ErrInvalid, item.SpecialToken.ID)
				}
				if seenA {
					tp.after = append(tp.after, st.IDs...)
				} else {
					tp.before = append(tp.before, st.IDs...)
				}
			}
		}
		return tp, nil
	case "BertProcessing", "RobertaProcessing":
		cls, err := tokenPairID(c.Cls, c.Type+".cls")
		if err != nil {
			return nil, err
		}
		sep, err := tokenPairID(c.Sep, c.Type+".sep")
		if err != nil {
			return nil, err
		}
		return templatePost{before: []int{cls}, after: []int{sep}}, nil
	}
	return nil, fmt.Errorf("%w: post-processor %q (supported: TemplateProcessing, ByteLevel, BertProcessing, RobertaProcessing, Sequence)", ErrUnsupported, c.Type)
}

// tokenPairID reads the id of a ["token", id] pair.
func tokenPairID(v []any, where string) (int, error) {
	if len(v) != 2 {
		return 0, fmt.Errorf("%w: %s is not a [token, id] pair", ErrInvalid, where)
	}
	f, ok := v[1].(float64)
	if !ok {
		return 0, fmt.Errorf("%w: %s id is not a number", ErrInvalid, where)
	}
	return int(f), nil
}
