package identity

import "testing"

// BenchmarkMinterToken is the shim's per-request cost of a session token.
func BenchmarkMinterToken(b *testing.B) {
	m, err := NewMinter(MinterConfig{Key: seedKey(b, 42), Audience: "dsmil-router"})
	if err != nil {
		b.Fatal(err)
	}
	roles := []string{"chat"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Token("SOC_TEAM_ALPHA", "c", roles); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	k := seedKey(b, 43)
	msg := make([]byte, 48)
	for b.Loop() {
		_, _ = k.Sign(ContextClaim, msg)
	}
}

func BenchmarkVerify(b *testing.B) {
	k := seedKey(b, 44)
	msg := make([]byte, 48)
	sig, _ := k.Sign(ContextClaim, msg)
	for b.Loop() {
		if !k.Public().Verify(ContextClaim, msg, sig) {
			b.Fatal("bad")
		}
	}
}
