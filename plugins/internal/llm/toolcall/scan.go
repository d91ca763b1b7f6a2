package toolcall

import "encoding/json"

// argsScan streams one envelope: it finds the function name and the
// arguments value at the top level of the envelope's JSON object as the
// text arrives, whatever the order of the keys.
type argsScan struct {
	key   string // the arguments' key: "arguments" or "parameters"
	named bool   // the name was found and announced
	id    string
	sent  string // the arguments text released so far
}

// newArgs returns the arguments text of r (a scan of body) that arrived
// since the last call.
func (a *argsScan) newArgs(body []byte, r topScan) string {
	if r.argStart < 0 {
		return ""
	}
	end := len(body)
	if r.argEnd >= 0 {
		end = r.argEnd
	}
	cur := string(body[r.argStart:end])
	if len(cur) <= len(a.sent) || cur[:len(a.sent)] != a.sent {
		return ""
	}
	d := cur[len(a.sent):]
	a.sent = cur
	return d
}

type topScan struct {
	name             string
	named            bool
	argStart, argEnd int // -1: not seen / not complete
}

// scanTop reads the top-level object of body as far as it goes.
func scanTop(b []byte, argKey string) topScan {
	r := topScan{argStart: -1, argEnd: -1}
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return r
	}
	i++
	for {
		i = skipWS(b, i)
		if i >= len(b) || b[i] == '}' {
			return r
		}
		if b[i] == ',' {
			i++
			continue
		}
		if b[i] != '"' {
			return r
		}
		ke, ok := skipString(b, i)
		if !ok {
			return r
		}
		var key string
		if json.Unmarshal(b[i:ke], &key) != nil {
			return r
		}
		i = skipWS(b, ke)
		if i >= len(b) || b[i] != ':' {
			return r
		}
		vs := skipWS(b, i+1)
		if vs >= len(b) {
			return r
		}
		ve, complete := skipValue(b, vs)
		switch key {
		case "name":
			if complete && b[vs] == '"' && json.Unmarshal(b[vs:ve], &r.name) == nil {
				r.named = r.name != ""
			}
		case argKey:
			r.argStart = vs
			if complete {
				r.argEnd = ve
			}
		}
		if !complete {
			return r
		}
		i = ve
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the offset after the string starting at b[i] == '"'.
func skipString(b []byte, i int) (int, bool) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, true
		}
	}
	return len(b), false
}

// skipValue returns the offset after the JSON value starting at b[i], and
// whether it is complete.
func skipValue(b []byte, i int) (int, bool) {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				e, ok := skipString(b, j)
				if !ok {
					return len(b), false
				}
				j = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, true
				}
			}
		}
		return len(b), false
	}
	for j := i; j < len(b); j++ {
		switch b[j] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return j, true
		}
	}
	return len(b), false
}
