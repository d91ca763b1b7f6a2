package constrain

import (
	"testing"
	"time"
)

func TestSmoke(t *testing.T) {
	t0 := time.Now()
	v := qwenVocab(t)
	t.Logf("vocab %d nodes %d in %v", v.Size(), len(v.tByte), time.Since(t0))
	g, err := CompileSchema([]byte(`{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer","minimum":0,"maximum":150}},"required":["name"]}`))
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMatcher(g, v)
	if err != nil {
		t.Fatal(err)
	}
	bits := make([]uint64, (v.Size()+63)/64)
	text := `{"name": "Bob the builder", "age": 42}`
	ids := qwenTok.Encode(text, false)
	for _, id := range ids {
		t1 := time.Now()
		m.FillMask(bits)
		n := 0
		for _, w := range bits {
			for ; w != 0; w &= w - 1 {
				n++
			}
		}
		el := time.Since(t1)
		b, _ := qwenTok.TokenBytes(id)
		if bits[id>>6]&(1<<(id&63)) == 0 {
			t.Fatalf("token %q not in mask", b)
		}
		if err := m.Advance(id); err != nil {
			t.Fatal(err)
		}
		t.Logf("%q allowed %d mask %v heads %d", b, n, el, len(m.heads))
	}
	if !m.CanEnd() {
		t.Fatal("cannot end")
	}
}
