package tokenizer

import "fmt"

// postProcessor adds a model's special tokens around an encoded sequence
// (Encode with addSpecial).
type postProcessor interface {
	process(ids []int) []int
	// typeIDs appends the token type ids (segment ids) of the n ids that
	// process made of a sequence.
	typeIDs(n int, out []int) []int
}

// templatePost puts fixed ids before and after the sequence: what
// TemplateProcessing, BertProcessing and RobertaProcessing do for a single
// sequence. The token type ids are those of the template's items.
type templatePost struct {
	before, after         []int
	beforeType, afterType []int // one per id of before and after
	seqType               int
}

func (p templatePost) typeIDs(n int, out []int) []int {
	typeAt := func(types []int, i int) int {
		if i < len(types) {
			return types[i]
		}
		return 0
	}
	for i := range p.before {
		out = append(out, typeAt(p.beforeType, i))
	}
	out = appendN(out, p.seqType, n-len(p.before)-len(p.after))
	for i := range p.after {
		out = append(out, typeAt(p.afterType, i))
	}
	return out
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

// typeIDs are those of the last processor: a Sequence is a ByteLevel
// offset fix and at most one template.
func (s postSeq) typeIDs(n int, out []int) []int {
	if len(s) == 0 {
		return zeroTypes(n, out)
	}
	return s[len(s)-1].typeIDs(n, out)
}

func zeroTypes(n int, out []int) []int {
	for range n {
		out = append(out, 0)
	}
	return out
}

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
				tp.seqType = item.Sequence.TypeID
			case item.SpecialToken != nil:
				st, ok := c.SpecialTokens[item.SpecialToken.ID]
				if !ok {
					return nil, fmt.Errorf("%w: TemplateProcessing special token %q is not defined", ErrInvalid, item.SpecialToken.ID)
				}
				if seenA {
					tp.after = append(tp.after, st.IDs...)
					tp.afterType = appendN(tp.afterType, item.SpecialToken.TypeID, len(st.IDs))
				} else {
					tp.before = append(tp.before, st.IDs...)
					tp.beforeType = appendN(tp.beforeType, item.SpecialToken.TypeID, len(st.IDs))
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
		return templatePost{before: []int{cls}, after: []int{sep}, beforeType: []int{0}, afterType: []int{0}}, nil
	}
	return nil, fmt.Errorf("%w: post-processor %q (supported: TemplateProcessing, ByteLevel, BertProcessing, RobertaProcessing, Sequence)", ErrUnsupported, c.Type)
}

func appendN(out []int, v, n int) []int {
	for range n {
		out = append(out, v)
	}
	return out
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
