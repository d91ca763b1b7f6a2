package identity

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func mint(t testing.TB, k *PrivateKey, mod func(*ClaimToken)) []byte {
	t.Helper()
	tok := &ClaimToken{
		TenantID: "SOC_TEAM_ALPHA", ClientID: "analyst-1", Roles: []string{"chat", "agent"},
		IssuedAt: t0, ExpiresAt: t0.Add(time.Hour), Audience: "dsmil-router", SessionID: [16]byte{1, 2, 3},
	}
	if mod != nil {
		mod(tok)
	}
	b, err := tok.Sign(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestClaimTokenEncoding(t *testing.T) {
	k := seedKey(t, 30)
	b := mint(t, k, nil)
	if len(b) > MaxTokenSize {
		t.Fatalf("token is %d bytes", len(b))
	}
	tok, err := ParseClaimToken(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(tok.Marshal(), b) || tok.TenantID != "SOC_TEAM_ALPHA" || len(tok.Roles) != 2 || tok.KeyID != k.Public().KeyID() {
		t.Fatalf("round trip: %+v", tok)
	}
	for _, bad := range [][]byte{b[:len(b)-1], append(append([]byte(nil), b...), 0), append([]byte("DCT2"), b[4:]...)} {
		if _, err := ParseClaimToken(bad); !errors.Is(err, ErrMalformed) {
			t.Fatalf("parsed a malformed token: %v", err)
		}
	}
	for _, f := range []func(*ClaimToken){
		func(c *ClaimToken) { c.TenantID = "" },
		func(c *ClaimToken) { c.TenantID = "A\x00B" },
		func(c *ClaimToken) { c.Audience = "" },
		func(c *ClaimToken) { c.ExpiresAt = c.IssuedAt },
		func(c *ClaimToken) { c.SessionID = [16]byte{} },
		func(c *ClaimToken) { c.Roles = make([]string, 17) },
	} {
		c := &ClaimToken{TenantID: "T", Audience: "a", IssuedAt: t0, ExpiresAt: t0.Add(time.Hour), SessionID: [16]byte{1}}
		f(c)
		if _, err := c.Sign(k); !errors.Is(err, ErrMalformed) {
			t.Fatalf("signed an invalid token %+v: %v", c, err)
		}
	}
}

func TestMinter(t *testing.T) {
	shim := seedKey(t, 34)
	clk := &clock{t: t0}
	m, err := NewMinter(MinterConfig{Key: shim, Audience: "dsmil-router", TTL: time.Hour, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	a1, err := m.Token("SOC_TEAM_ALPHA", "c1", []string{"chat"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseClaimToken(a1)
	if err != nil || c.TenantID != "SOC_TEAM_ALPHA" || c.ClientID != "c1" || c.Audience != "dsmil-router" || c.KeyID != shim.Public().KeyID() ||
		!c.IssuedAt.Equal(t0) || !c.ExpiresAt.Equal(t0.Add(time.Hour)) || !shim.Public().Verify(ContextClaim, c.TBS(), c.Signature) {
		t.Fatalf("minted %+v, %v", c, err)
	}
	clk.Add(30 * time.Minute)
	if a2, _ := m.Token("SOC_TEAM_ALPHA", "c1", []string{"chat"}); !bytes.Equal(a1, a2) {
		t.Fatal("minted a new token mid-session")
	}
	if b, _ := m.Token("DEV_TEAM", "c1", []string{"chat"}); bytes.Equal(a1, b) {
		t.Fatal("two tenants share a token")
	}
	if r, _ := m.Token("SOC_TEAM_ALPHA", "c1", []string{"chat", "agent"}); bytes.Equal(a1, r) {
		t.Fatal("roles changed, token did not")
	}
	cur, _ := m.Token("SOC_TEAM_ALPHA", "c1", []string{"chat", "agent"})
	clk.Add(46 * time.Minute) // inside the last quarter of its hour
	renewed, _ := m.Token("SOC_TEAM_ALPHA", "c1", []string{"chat", "agent"})
	if bytes.Equal(cur, renewed) {
		t.Fatal("token not renewed near expiry")
	}
	sid, ok := m.End("SOC_TEAM_ALPHA", "c1")
	rt, _ := ParseClaimToken(renewed)
	if !ok || sid != rt.SessionID {
		t.Fatalf("End: %v", ok)
	}
	// Concurrent callers of one session share one token.
	var wg sync.WaitGroup
	toks := make([][]byte, 8)
	for i := range toks {
		wg.Go(func() { toks[i], _ = m.Token("LAB", "c", nil) })
	}
	wg.Wait()
	for _, x := range toks[1:] {
		if !bytes.Equal(x, toks[0]) {
			t.Fatal("concurrent callers got different tokens")
		}
	}
}

// TestClaimReference: a reference is "DCR1" and the token's key, the first
// 64 bytes of its signature; only a reference parses as one.
func TestClaimReference(t *testing.T) {
	tok := mint(t, seedKey(t, 37), nil)
	ref := ClaimReference(tok)
	k, ok := ClaimKeyOf(tok)
	if len(ref) != ReferenceSize || ReferenceSize != 68 || !ok || string(ref[:4]) != "DCR1" ||
		!bytes.Equal(k[:], tok[len(tok)-SignatureSize:][:64]) || !bytes.Equal(ref[4:], k[:]) {
		t.Fatalf("reference %x of a %d-byte token", ref, len(tok))
	}
	if got, ok := ParseClaimReference(ref); !ok || got != k {
		t.Fatal("reference does not parse")
	}
	for _, b := range [][]byte{tok, ref[:67], append(bytes.Clone(ref), 0), append([]byte("DCR2"), ref[4:]...)} {
		if _, ok := ParseClaimReference(b); ok {
			t.Errorf("%d bytes parsed as a reference", len(b))
		}
	}
	if _, ok := ClaimKeyOf(ref); ok || ClaimReference(ref) != nil {
		t.Error("a reference has a key of its own")
	}
}
