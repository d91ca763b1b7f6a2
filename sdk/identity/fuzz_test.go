package identity

import (
	"bytes"
	"testing"
	"time"
)

// FuzzParse: the bundle and claim token parsers never panic, and whatever
// they accept re-encodes to the same bytes (the encodings are canonical).
func FuzzParse(f *testing.F) {
	root, k := seedKey(f, 50), seedKey(f, 51)
	f.Add(signedBundle(f, root, k, "shim", "shim", t0, t0.Add(time.Hour)).Marshal())
	f.Add(mint(f, k, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		if bd, err := ParseBundle(b); err == nil && !bytes.Equal(bd.Marshal(), b) {
			t.Fatal("bundle does not round-trip")
		}
		if tok, err := ParseClaimToken(b); err == nil && !bytes.Equal(tok.Marshal(), b) {
			t.Fatal("claim token does not round-trip")
		}
	})
}
