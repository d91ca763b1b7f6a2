package claims

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/identity"
	"github.com/dsmil/l7/sdk/mux"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable clock, safe for concurrent use.
type clock struct{ ns atomic.Int64 }

func at(t time.Time) *clock {
	c := &clock{}
	c.Set(t)
	return c
}

func (c *clock) Now() time.Time  { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Set(t time.Time) { c.ns.Store(t.UnixNano()) }

func newKey(tb testing.TB) *identity.PrivateKey {
	tb.Helper()
	k, err := identity.GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// spec describes a token to issue; zero fields take the defaults of issue.
type spec struct {
	tenant, client, audience string
	issued                   time.Time
	ttl                      time.Duration
}

// issue mints a token with k as the shim does (identity.Minter): for tenant
// SOC_TEAM_ALPHA, client analyst-1 and audience dsmil-router, issued at t0
// and valid for an hour, unless s says otherwise.
func issue(tb testing.TB, k *identity.PrivateKey, s spec) []byte {
	tb.Helper()
	issued := s.issued
	if issued.IsZero() {
		issued = t0
	}
	m, err := identity.NewMinter(identity.MinterConfig{Key: k, Audience: cmp.Or(s.audience, "dsmil-router"),
		TTL: cmp.Or(s.ttl, time.Hour), Now: func() time.Time { return issued }})
	if err != nil {
		tb.Fatal(err)
	}
	tok, err := m.Token(cmp.Or(s.tenant, "SOC_TEAM_ALPHA"), cmp.Or(s.client, "analyst-1"), []string{"chat"})
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func newVerifier(tb testing.TB, c *clock, issuers ...*identity.PublicKey) *Verifier {
	tb.Helper()
	v, err := NewVerifier(VerifierConfig{Issuers: issuers, Audience: "dsmil-router", Now: c.Now})
	if err != nil {
		tb.Fatal(err)
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

func TestVerifier(t *testing.T) {
	shim, rogue := newKey(t), newKey(t)
	good := issue(t, shim, spec{})
	tampered := append([]byte(nil), good...)
	tampered[10] ^= 1 // inside the tenant id: still parses
	cases := []struct {
		name      string
		tenant    string
		tok       []byte
		at        time.Duration // after t0
		presenter *identity.KeyID
		want      error
	}{
		{"valid", "SOC_TEAM_ALPHA", good, time.Minute, nil, nil},
		{"valid within skew before issue", "SOC_TEAM_ALPHA", good, -20 * time.Second, nil, nil},
		{"valid within skew after expiry", "SOC_TEAM_ALPHA", good, time.Hour + 20*time.Second, nil, nil},
		{"missing", "SOC_TEAM_ALPHA", nil, time.Minute, nil, ErrNoToken},
		{"garbage", "SOC_TEAM_ALPHA", []byte("not a token"), time.Minute, nil, identity.ErrMalformed},
		{"expired", "SOC_TEAM_ALPHA", good, time.Hour + time.Minute, nil, identity.ErrExpired},
		{"from the future", "SOC_TEAM_ALPHA", good, -time.Minute, nil, identity.ErrNotYetValid},
		{"foreign tenant", "DEV_TEAM", good, time.Minute, nil, ErrTenantMismatch},
		{"wrong audience", "SOC_TEAM_ALPHA", issue(t, shim, spec{audience: "other"}), time.Minute, nil, ErrAudience},
		{"untrusted minter", "SOC_TEAM_ALPHA", issue(t, rogue, spec{}), time.Minute, nil, identity.ErrUnknownIssuer},
		{"tampered", "SOC_TEAM_ALPHA", tampered, time.Minute, nil, identity.ErrBadSignature},
		{"lifetime too long", "SOC_TEAM_ALPHA", issue(t, shim, spec{ttl: 48 * time.Hour}), time.Minute, nil, ErrLifetime},
		{"presented by its minter", "SOC_TEAM_ALPHA", good, time.Minute, ptr(shim.Public().KeyID()), nil},
		{"replayed by another peer", "SOC_TEAM_ALPHA", good, time.Minute, ptr(rogue.Public().KeyID()), ErrPresenter},
	}
	for _, hot := range []bool{false, true} {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				clk := at(t0.Add(c.at))
				v := newVerifier(t, clk, shim.Public())
				if hot { // verified once while valid: the cache must not change the verdict
					clk.Set(t0.Add(time.Minute))
					_, _ = v.Check(context.Background(), []byte("SOC_TEAM_ALPHA"), c.tok)
					clk.Set(t0.Add(c.at))
				}
				ctx := context.Background()
				if c.presenter != nil {
					ctx = identity.WithPresenter(ctx, *c.presenter)
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
				// The spellings are the shim's contract: pin two.
				if c.name == "foreign tenant" && me.Param != "foreign_tenant" || c.name == "expired" && me.Param != "expired" {
					t.Fatalf("reason %q", me.Param)
				}
			})
		}
	}
}

func ptr(id identity.KeyID) *identity.KeyID { return &id }

// TestIssuerTenants: an issuer restricted to some tenants cannot mint for
// another one (cold and cached), while an unrestricted issuer can mint for
// any; restricting a key that is not an issuer is refused.
func TestIssuerTenants(t *testing.T) {
	shim, tool := newKey(t), newKey(t)
	v, err := NewVerifier(VerifierConfig{Issuers: []*identity.PublicKey{shim.Public(), tool.Public()}, Audience: "dsmil-router",
		Now: at(t0.Add(time.Minute)).Now, IssuerTenants: map[identity.KeyID][]string{tool.Public().KeyID(): {"SOC_TEAM_ALPHA", "LAB"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		key    *identity.PrivateKey
		tenant string
		want   error
	}{
		{"restricted issuer, its tenant", tool, "SOC_TEAM_ALPHA", nil},
		{"restricted issuer, its other tenant", tool, "LAB", nil},
		{"restricted issuer, another tenant", tool, "DEV_TEAM", ErrIssuerScope},
		{"unrestricted issuer", shim, "DEV_TEAM", nil},
	} {
		tok := issue(t, c.key, spec{tenant: c.tenant})
		for range 2 { // cold, then from the cache (a refused token is not cached)
			_, err := v.Check(context.Background(), []byte(c.tenant), tok)
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("%s: got %v, want %v", c.name, err, c.want)
			}
		}
		if c.want != nil {
			var me *mux.Error
			if err := v.VerifyClaim(context.Background(), chatFrame(c.tenant, tok)); !errors.As(err, &me) || me.Param != identity.ReasonIssuerScope {
				t.Fatalf("%s: VerifyClaim %v", c.name, err)
			}
		}
	}
	if _, err := NewVerifier(VerifierConfig{Issuers: []*identity.PublicKey{shim.Public()}, Audience: "dsmil-router",
		IssuerTenants: map[identity.KeyID][]string{tool.Public().KeyID(): {"LAB"}}}); err == nil {
		t.Fatal("tenants for a key that is not an issuer were accepted")
	}
}

func TestCache(t *testing.T) {
	shim := newKey(t)
	clk := at(t0.Add(time.Minute))
	v, err := NewVerifier(VerifierConfig{Issuers: []*identity.PublicKey{shim.Public()}, Audience: "dsmil-router", Now: clk.Now, CacheSize: 8})
	if err != nil {
		t.Fatal(err)
	}
	var toks [][]byte
	for i := range 20 {
		tok := issue(t, shim, spec{client: fmt.Sprint("client-", i)})
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
	if _, err := v.Check(context.Background(), []byte("SOC_TEAM_ALPHA"), forged); !errors.Is(err, identity.ErrBadSignature) {
		t.Fatalf("forgery with a cached signature: %v", err)
	}
	// A cached token still expires.
	clk.Set(t0.Add(2*time.Hour + time.Minute))
	if _, err := v.Check(context.Background(), []byte("SOC_TEAM_ALPHA"), last); !errors.Is(err, identity.ErrExpired) {
		t.Fatalf("cached token after expiry: %v", err)
	}
	// Revocation drops the cached entry and refuses the session afterwards.
	clk.Set(t0.Add(time.Minute))
	tok, _ := identity.ParseClaimToken(toks[0])
	if _, err := v.Check(context.Background(), []byte("SOC_TEAM_ALPHA"), toks[0]); err != nil {
		t.Fatal(err)
	}
	v.Revoke(tok.SessionID)
	if _, err := v.Check(context.Background(), []byte("SOC_TEAM_ALPHA"), toks[0]); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked: %v", err)
	}
}

// TestReference: after the full token, a 68-byte reference stands for it,
// only for a token the verifier has checked, and only for its tenant and
// presenter.
func TestReference(t *testing.T) {
	key := newKey(t)
	v, err := NewVerifier(VerifierConfig{Issuers: []*identity.PublicKey{key.Public()}, Audience: "dsmil-router"})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := identity.NewMinter(identity.MinterConfig{Key: key, Audience: "dsmil-router"})
	tok, err := m.Token("SOC_TEAM_ALPHA", "tool", []string{"ANALYSIS_ONLY"})
	if err != nil {
		t.Fatal(err)
	}
	ref := identity.ClaimReference(tok)
	ctx := context.Background()
	if _, err := v.Check(ctx, []byte("SOC_TEAM_ALPHA"), ref); !errors.Is(err, ErrUnknownReference) || Reason(err) != identity.ReasonUnknownReference {
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
	other := newKey(t)
	if _, err := v.Check(identity.WithPresenter(ctx, other.Public().KeyID()), []byte("SOC_TEAM_ALPHA"), ref); !errors.Is(err, ErrPresenter) {
		t.Fatalf("reference from another peer: %v", err)
	}
	bogus := bytes.Clone(ref)
	bogus[10] ^= 1
	if _, err := v.Check(ctx, []byte("SOC_TEAM_ALPHA"), bogus); !errors.Is(err, ErrUnknownReference) {
		t.Fatalf("altered reference: %v", err)
	}
	// A revoked session's reference dies with its token.
	parsed, _ := identity.ParseClaimToken(tok)
	v.Revoke(parsed.SessionID)
	if _, err := v.Check(ctx, []byte("SOC_TEAM_ALPHA"), ref); err == nil {
		t.Fatal("reference to a revoked token accepted")
	}
}
