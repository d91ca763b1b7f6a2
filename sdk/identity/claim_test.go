package identity

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
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

func newVerifier(t testing.TB, c *clock, issuers ...*PublicKey) *ClaimVerifier {
	t.Helper()
	v, err := NewClaimVerifier(ClaimVerifierConfig{Issuers: issuers, Audience: "dsmil-router", Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func chatFrame(tenant string, tok []byte) *dbe.Frame {
	f := &dbe.Frame{Type: dbe.MsgChatReq, CorrelationID: 1}
	if tenant != "" {
		f.SetTenantID(tenant)
	}
	if tok != nil {
		f.SetClaimToken(tok)
	}
	return f
}

func TestClaimVerifier(t *testing.T) {
	shim, rogue := seedKey(t, 31), seedKey(t, 32)
	good := mint(t, shim, nil)
	tampered := append([]byte(nil), good...)
	tampered[10] ^= 1 // inside the tenant id: still parses
	cases := []struct {
		name      string
		tenant    string
		tok       []byte
		at        time.Duration // after t0
		presenter *KeyID
		want      error
	}{
		{"valid", "SOC_TEAM_ALPHA", good, time.Minute, nil, nil},
		{"valid within skew before issue", "SOC_TEAM_ALPHA", good, -20 * time.Second, nil, nil},
		{"valid within skew after expiry", "SOC_TEAM_ALPHA", good, time.Hour + 20*time.Second, nil, nil},
		{"missing", "SOC_TEAM_ALPHA", nil, time.Minute, nil, ErrNoToken},
		{"garbage", "SOC_TEAM_ALPHA", []byte("not a token"), time.Minute, nil, ErrMalformed},
		{"expired", "SOC_TEAM_ALPHA", good, time.Hour + time.Minute, nil, ErrExpired},
		{"from the future", "SOC_TEAM_ALPHA", good, -time.Minute, nil, ErrNotYetValid},
		{"foreign tenant", "DEV_TEAM", good, time.Minute, nil, ErrTenantMismatch},
		{"wrong audience", "SOC_TEAM_ALPHA", mint(t, shim, func(c *ClaimToken) { c.Audience = "other" }), time.Minute, nil, ErrAudience},
		{"untrusted minter", "SOC_TEAM_ALPHA", mint(t, rogue, nil), time.Minute, nil, ErrUnknownIssuer},
		{"tampered", "SOC_TEAM_ALPHA", tampered, time.Minute, nil, ErrBadSignature},
		{"lifetime too long", "SOC_TEAM_ALPHA", mint(t, shim, func(c *ClaimToken) { c.ExpiresAt = t0.Add(48 * time.Hour) }), time.Minute, nil, ErrLifetime},
		{"presented by its minter", "SOC_TEAM_ALPHA", good, time.Minute, ptr(shim.Public().KeyID()), nil},
		{"replayed by another peer", "SOC_TEAM_ALPHA", good, time.Minute, ptr(rogue.Public().KeyID()), ErrPresenter},
	}
	for _, hot := range []bool{false, true} {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				clk := &clock{t: t0.Add(c.at)}
				v := newVerifier(t, clk, shim.Public())
				if hot { // verified once while valid: the cache must not change the verdict
					clk.t = t0.Add(time.Minute)
					_, _ = v.Check(context.Background(), []byte("SOC_TEAM_ALPHA"), c.tok)
					clk.t = t0.Add(c.at)
				}
				ctx := context.Background()
				if c.presenter != nil {
					ctx = WithPresenter(ctx, *c.presenter)
				}
				_, err := v.Check(ctx, []byte(c.tenant), c.tok)
				if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
					t.Fatalf("got %v, want %v", err, c.want)
				}
				ferr := v.VerifyClaim(ctx, chatFrame(c.tenant, c.tok))
				var me *mux.Error
				if c.want == nil && ferr != nil || c.want != nil && (!errors.As(ferr, &me) || me.Code != dbe.CodeClaimTokenInvalid || me.Param != Reason(err)) {
					t.Fatalf("VerifyClaim: %v", ferr)
				}
				if c.name == "foreign tenant" && me.Param != "foreign_tenant" || c.name == "expired" && me.Param != "expired" {
					t.Fatalf("reason %q", me.Param)
				}
			})
		}
	}
}

func ptr(id KeyID) *KeyID { return &id }

// TestClaimIssuerTenants: an issuer restricted to some tenants cannot mint
// for another one (cold and cached), while an unrestricted issuer can mint
// for any; restricting a key that is not an issuer is refused.
func TestClaimIssuerTenants(t *testing.T) {
	shim, tool := seedKey(t, 35), seedKey(t, 36)
	clk := &clock{t: t0.Add(time.Minute)}
	v, err := NewClaimVerifier(ClaimVerifierConfig{Issuers: []*PublicKey{shim.Public(), tool.Public()}, Audience: "dsmil-router", Now: clk.Now,
		IssuerTenants: map[KeyID][]string{tool.Public().KeyID(): {"SOC_TEAM_ALPHA", "LAB"}}})
	if err != nil {
		t.Fatal(err)
	}
	forTenant := func(k *PrivateKey, tenant string) []byte {
		return mint(t, k, func(c *ClaimToken) { c.TenantID = tenant })
	}
	for _, c := range []struct {
		name   string
		key    *PrivateKey
		tenant string
		want   error
	}{
		{"restricted issuer, its tenant", tool, "SOC_TEAM_ALPHA", nil},
		{"restricted issuer, its other tenant", tool, "LAB", nil},
		{"restricted issuer, another tenant", tool, "DEV_TEAM", ErrIssuerScope},
		{"unrestricted issuer", shim, "DEV_TEAM", nil},
	} {
		tok := forTenant(c.key, c.tenant)
		for range 2 { // cold, then from the cache (a refused token is not cached)
			_, err := v.Check(context.Background(), []byte(c.tenant), tok)
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("%s: got %v, want %v", c.name, err, c.want)
			}
		}
		if c.want != nil {
			var me *mux.Error
			if err := v.VerifyClaim(context.Background(), chatFrame(c.tenant, tok)); !errors.As(err, &me) || me.Param != "issuer_scope" {
				t.Fatalf("%s: VerifyClaim %v", c.name, err)
			}
		}
	}
	if _, err := NewClaimVerifier(ClaimVerifierConfig{Issuers: []*PublicKey{shim.Public()}, Audience: "dsmil-router",
		IssuerTenants: map[KeyID][]string{tool.Public().KeyID(): {"LAB"}}}); err == nil {
		t.Fatal("tenants for a key that is not an issuer were accepted")
	}
}

func TestClaimVerifierCache(t *testing.T) {
	shim := seedKey(t, 33)
	clk := &clock{t: t0.Add(time.Minute)}
	v, err := NewClaimVerifier(ClaimVerifierConfig{Issuers: []*PublicKey{shim.Public()}, Audience: "dsmil-router", Now: clk.Now, CacheSize: 8})
	if err != nil {
		t.Fatal(err)
	}
	var toks [][]byte
	for i := range 20 {
		tok := mint(t, shim, func(c *ClaimToken) { c.SessionID[0] = byte(i + 1) })
		toks = append(toks, tok)
		if _, err := v.Check(context.Background(), []byte("SOC_TEAM_ALPHA"), tok); err != nil {
			t.Fatal(err)
		}
		if n := v.Stats().Cached; n > 8 {
			t.Fatalf("cache holds %d > 8", n)
		}
	}
	last := toks[len(toks)-1]
	before := v.Stats()
	for range 3 {
		if _, err := v.Check(context.Background(), []byte("SOC_TEAM_ALPHA"), last); err != nil {
			t.Fatal(err)
		}
	}
	if st := v.Stats(); st.Hits != before.Hits+3 || st.Misses != before.Misses {
		t.Fatalf("stats %+v after %+v", st, before)
	}
	// A forgery that reuses a cached token's signature (and so its cache
	// key) is not taken for it.
	forged := append([]byte(nil), last...)
	forged[8] ^= 1
	if _, err := v.Check(context.Background(), []byte("SOC_TEAM_ALPHA"), forged); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forgery with a cached signature: %v", err)
	}
	// A cached token still expires.
	clk.Add(2 * time.Hour)
	if _, err := v.Check(context.Background(), []byte("SOC_TEAM_ALPHA"), last); !errors.Is(err, ErrExpired) {
		t.Fatalf("cached token after expiry: %v", err)
	}
	// Revocation drops the cached entry and refuses the session afterwards.
	clk.t = t0.Add(time.Minute)
	tok, _ := ParseClaimToken(toks[0])
	if _, err := v.Check(context.Background(), []byte("SOC_TEAM_ALPHA"), toks[0]); err != nil {
		t.Fatal(err)
	}
	v.Revoke(tok.SessionID)
	if _, err := v.Check(context.Background(), []byte("SOC_TEAM_ALPHA"), toks[0]); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked: %v", err)
	}
}

func TestMinter(t *testing.T) {
	shim := seedKey(t, 34)
	clk := &clock{t: t0}
	m, err := NewMinter(MinterConfig{Key: shim, Audience: "dsmil-router", TTL: time.Hour, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	v := newVerifier(t, clk, shim.Public())
	a1, err := m.Token("SOC_TEAM_ALPHA", "c1", []string{"chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Check(context.Background(), []byte("SOC_TEAM_ALPHA"), a1); err != nil {
		t.Fatal(err)
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

// TestClaimReference: after the full token, a 68-byte reference stands for
// it, only for a token the verifier has checked, and only for its tenant and
// presenter.
func TestClaimReference(t *testing.T) {
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewClaimVerifier(ClaimVerifierConfig{Issuers: []*PublicKey{key.Public()}, Audience: "dsmil-router"})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := NewMinter(MinterConfig{Key: key, Audience: "dsmil-router"})
	tok, err := m.Token("SOC_TEAM_ALPHA", "tool", []string{"ANALYSIS_ONLY"})
	if err != nil {
		t.Fatal(err)
	}
	ref := ClaimReference(tok)
	if len(ref) != ReferenceSize || len(tok) < 4000 {
		t.Fatalf("reference %d bytes for a %d-byte token", len(ref), len(tok))
	}
	ctx := context.Background()
	if _, err := v.Check(ctx, []byte("SOC_TEAM_ALPHA"), ref); !errors.Is(err, ErrUnknownReference) || Reason(err) != "unknown_reference" {
		t.Fatalf("reference before the token: %v", err)
	}
	if _, err := v.Check(ctx, []byte("SOC_TEAM_ALPHA"), tok); err != nil {
		t.Fatal(err)
	}
	if c, err := v.Check(ctx, []byte("SOC_TEAM_ALPHA"), ref); err != nil || c.TenantID != "SOC_TEAM_ALPHA" {
		t.Fatalf("reference after the token: %v", err)
	}
	if _, err := v.Check(ctx, []byte("OTHER"), ref); !errors.Is(err, ErrTenantMismatch) {
		t.Fatalf("reference for another tenant: %v", err)
	}
	other, _ := GenerateKey()
	if _, err := v.Check(WithPresenter(ctx, other.Public().KeyID()), []byte("SOC_TEAM_ALPHA"), ref); !errors.Is(err, ErrPresenter) {
		t.Fatalf("reference from another peer: %v", err)
	}
	bogus := append([]byte(nil), ref...)
	bogus[10] ^= 1
	if _, err := v.Check(ctx, []byte("SOC_TEAM_ALPHA"), bogus); !errors.Is(err, ErrUnknownReference) {
		t.Fatalf("altered reference: %v", err)
	}
	// A revoked session's reference dies with its token.
	parsed, _ := ParseClaimToken(tok)
	v.Revoke(parsed.SessionID)
	if _, err := v.Check(ctx, []byte("SOC_TEAM_ALPHA"), ref); err == nil {
		t.Fatal("reference to a revoked token accepted")
	}
}
