package claims

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/identity"
	"github.com/dsmil/l7/sdk/mux"
)

// Claim verification errors. Verifier.VerifyClaim reports each of them (and
// the token errors of package identity) as a *mux.Error with code
// CLAIM_TOKEN_INVALID.
var (
	ErrNoToken = errors.New("claims: no claim token")
	// ErrUnknownReference: a claim reference to no token in the cache.
	ErrUnknownReference = errors.New("claims: unknown claim token reference")
	ErrTenantMismatch   = errors.New("claims: claim token is for another tenant")
	ErrAudience         = errors.New("claims: claim token is for another audience")
	ErrLifetime         = errors.New("claims: claim token lifetime too long")
	ErrRevoked          = errors.New("claims: claim token revoked")
	ErrPresenter        = errors.New("claims: claim token presented by a party that did not mint it")
	// ErrIssuerScope: a token minted by an issuer for a tenant outside the
	// tenants that issuer may mint for.
	ErrIssuerScope = errors.New("claims: claim token minted for a tenant its issuer may not mint for")
)

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	// Issuers are the keys that may mint tokens (the shim's). Required.
	Issuers []*identity.PublicKey
	// IssuerTenants restricts issuers to the tenants listed for their key:
	// a token an issuer mints for another tenant is refused with
	// ErrIssuerScope. Issuers without an entry may mint for any tenant.
	IssuerTenants map[identity.KeyID][]string
	// Audience is the audience tokens must name, e.g. "dsmil-router".
	// Required.
	Audience string
	// Skew is the clock skew tolerated at both ends of a token's validity.
	// Default 30 s.
	Skew time.Duration
	// MaxLifetime refuses tokens whose expires_at − issued_at is longer.
	// Default 24 h.
	MaxLifetime time.Duration
	// CacheSize bounds the number of verified tokens kept. Default 4096.
	CacheSize int
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Verifier checks L7_CLAIM_TOKENs. A token's signature is verified once
// (≈30 µs); after that it is found in a bounded, expiry-aware cache keyed by
// the token's identity.ClaimKey (the key a claim reference names), and a
// request costs a map lookup, a comparison of the whole token, a time
// comparison and a tenant comparison. It implements the router's
// ClaimVerifier hook (host/router.ClaimVerifier).
type Verifier struct {
	cfg     VerifierConfig
	issuers map[identity.KeyID]*identity.PublicKey
	scopes  map[identity.KeyID]map[string]bool // IssuerTenants as sets

	mu      sync.RWMutex
	cache   map[identity.ClaimKey]*claimEntry
	revoked map[[16]byte]int64 // session id → unix seconds after which it is moot

	hits, misses atomic.Uint64
}

// Verifier is the router's claim-token hook.
var _ router.ClaimVerifier = (*Verifier)(nil)

// claimEntry is a verified token. It holds the whole token, compared on
// every hit, so a forged token that copies a genuine signature (and so its
// ClaimKey) finds nothing.
type claimEntry struct {
	raw      []byte
	tok      *identity.ClaimToken
	from, to int64 // unix nanoseconds: valid when from ≤ now < to (skew included)
}

// NewVerifier returns a verifier.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if len(cfg.Issuers) == 0 {
		return nil, errors.New("claims: verifier without issuer keys")
	}
	if err := identity.CheckAudience(cfg.Audience); err != nil {
		return nil, fmt.Errorf("claims: verifier: %w", err)
	}
	if cfg.Skew <= 0 {
		cfg.Skew = 30 * time.Second
	}
	if cfg.MaxLifetime <= 0 {
		cfg.MaxLifetime = 24 * time.Hour
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 4096
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	v := &Verifier{
		cfg: cfg, issuers: make(map[identity.KeyID]*identity.PublicKey, len(cfg.Issuers)),
		cache: make(map[identity.ClaimKey]*claimEntry), revoked: make(map[[16]byte]int64),
	}
	for _, k := range cfg.Issuers {
		v.issuers[k.KeyID()] = k
	}
	if len(cfg.IssuerTenants) > 0 {
		v.scopes = make(map[identity.KeyID]map[string]bool, len(cfg.IssuerTenants))
		for id, tenants := range cfg.IssuerTenants {
			if v.issuers[id] == nil {
				return nil, fmt.Errorf("claims: tenants given for %s, which is not an issuer", id)
			}
			set := make(map[string]bool, len(tenants))
			for _, t := range tenants {
				set[t] = true
			}
			v.scopes[id] = set
		}
	}
	return v, nil
}

// VerifyClaim checks f's L7_CLAIM_TOKEN against its TENANT_ID (and against
// the presenter in ctx, when identity.WithPresenter set one). Any failure is
// a *mux.Error with code CLAIM_TOKEN_INVALID whose Param is one of
// identity's Reason constants (see Reason), so that the shim can answer 401
// or 403.
func (v *Verifier) VerifyClaim(ctx context.Context, f *dbe.Frame) error {
	tok, _ := f.Get(dbe.TLVClaimToken)
	tenant, _ := f.Get(dbe.TLVTenantID)
	if _, err := v.Check(ctx, tenant, tok); err != nil {
		return &mux.Error{Code: dbe.CodeClaimTokenInvalid, Message: err.Error(), Param: Reason(err)}
	}
	return nil
}

// Reason names why a claim check failed: the identity.Reason constant of the
// error err wraps, identity.ReasonInvalid for any other.
func Reason(err error) string {
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	return identity.ReasonInvalid
}

var reasons = []struct {
	err  error
	name string
}{
	{ErrNoToken, identity.ReasonMissing}, {identity.ErrExpired, identity.ReasonExpired},
	{identity.ErrNotYetValid, identity.ReasonNotYetValid}, {ErrTenantMismatch, identity.ReasonForeignTenant},
	{ErrAudience, identity.ReasonAudience}, {ErrRevoked, identity.ReasonRevoked}, {ErrPresenter, identity.ReasonPresenter},
	{identity.ErrUnknownIssuer, identity.ReasonUntrustedMinter}, {ErrIssuerScope, identity.ReasonIssuerScope},
	{ErrUnknownReference, identity.ReasonUnknownReference},
}

// Check verifies token for tenant and returns its claims, which the caller
// must not modify. Errors wrap this package's sentinels or identity's.
func (v *Verifier) Check(ctx context.Context, tenant, token []byte) (*identity.ClaimToken, error) {
	if len(token) == 0 {
		return nil, ErrNoToken
	}
	now := v.cfg.Now().UnixNano()
	var e *claimEntry
	if ref, ok := identity.ParseClaimReference(token); ok {
		// A reference stands for a full token this verifier checked before;
		// it carries no signature of its own, so an unknown one is refused.
		v.mu.RLock()
		e = v.cache[ref]
		v.mu.RUnlock()
		if e == nil {
			return nil, fmt.Errorf("%w: reference to a claim token this router has not verified (send the full token first)", ErrUnknownReference)
		}
		v.hits.Add(1)
		return v.checkEntry(ctx, e, tenant, now)
	}
	if k, ok := identity.ClaimKeyOf(token); ok {
		v.mu.RLock()
		e = v.cache[k]
		v.mu.RUnlock()
		if e != nil && !bytes.Equal(e.raw, token) {
			e = nil
		}
	}
	if e == nil {
		v.misses.Add(1)
		var err error
		if e, err = v.verify(token, now); err != nil {
			return nil, err
		}
	} else {
		v.hits.Add(1)
	}
	return v.checkEntry(ctx, e, tenant, now)
}

// checkEntry checks a verified token against the request.
func (v *Verifier) checkEntry(ctx context.Context, e *claimEntry, tenant []byte, now int64) (*identity.ClaimToken, error) {
	switch {
	case now < e.from:
		return nil, fmt.Errorf("%w: token valid from %s", identity.ErrNotYetValid, e.tok.IssuedAt.Format(time.RFC3339))
	case now >= e.to:
		return nil, fmt.Errorf("%w: token expired at %s", identity.ErrExpired, e.tok.ExpiresAt.Format(time.RFC3339))
	case string(tenant) != e.tok.TenantID:
		return nil, fmt.Errorf("%w: token for %q, frame for %q", ErrTenantMismatch, e.tok.TenantID, tenant)
	}
	if p, ok := identity.PresenterFrom(ctx); ok && p != e.tok.KeyID {
		return nil, fmt.Errorf("%w: minted by %s, presented by %s", ErrPresenter, e.tok.KeyID, p)
	}
	return e.tok, nil
}

// verify is the cold path: parse, check the signature and the fields that
// do not depend on the request, and cache the result.
func (v *Verifier) verify(token []byte, now int64) (*claimEntry, error) {
	t, err := identity.ParseClaimToken(token)
	if err != nil {
		return nil, err
	}
	iss := v.issuers[t.KeyID]
	if iss == nil {
		return nil, fmt.Errorf("%w: token minted by %s", identity.ErrUnknownIssuer, t.KeyID)
	}
	tbs := token[:len(token)-2-identity.SignatureSize] // the encoding is canonical
	if !iss.Verify(identity.ContextClaim, tbs, t.Signature) {
		return nil, fmt.Errorf("%w: claim token", identity.ErrBadSignature)
	}
	if t.Audience != v.cfg.Audience {
		return nil, fmt.Errorf("%w: %q, want %q", ErrAudience, t.Audience, v.cfg.Audience)
	}
	if scope, ok := v.scopes[t.KeyID]; ok && !scope[t.TenantID] {
		return nil, fmt.Errorf("%w: %s minted a token for tenant %q", ErrIssuerScope, t.KeyID, t.TenantID)
	}
	if t.ExpiresAt.Sub(t.IssuedAt) > v.cfg.MaxLifetime {
		return nil, fmt.Errorf("%w: %s > %s", ErrLifetime, t.ExpiresAt.Sub(t.IssuedAt), v.cfg.MaxLifetime)
	}
	e := &claimEntry{
		raw:  append([]byte(nil), token...),
		tok:  t,
		from: t.IssuedAt.Add(-v.cfg.Skew).UnixNano(),
		to:   t.ExpiresAt.Add(v.cfg.Skew).UnixNano(),
	}
	if now >= e.to || now < e.from {
		return e, nil // the caller reports it; not worth a cache slot
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.revoked[t.SessionID]; ok {
		return nil, fmt.Errorf("%w: session %x", ErrRevoked, t.SessionID)
	}
	if len(v.cache) >= v.cfg.CacheSize {
		v.evict(now)
	}
	k, _ := identity.ClaimKeyOf(token)
	v.cache[k] = e
	return e, nil
}

// evict makes room: expired entries first, then arbitrary ones (an eighth
// of the cache, so that eviction is amortized). Called with mu held.
func (v *Verifier) evict(now int64) {
	for k, e := range v.cache {
		if now >= e.to {
			delete(v.cache, k)
		}
	}
	for k := range v.cache {
		if len(v.cache) < v.cfg.CacheSize-v.cfg.CacheSize/8 {
			break
		}
		delete(v.cache, k)
	}
}

// Revoke refuses the tokens of a tenant session from now on (the shim
// ended it, or its key was compromised). The revocation is kept until the
// latest such token could have expired anyway.
func (v *Verifier) Revoke(sessionID [16]byte) {
	now := v.cfg.Now()
	until := now.Add(v.cfg.MaxLifetime + v.cfg.Skew).Unix()
	v.mu.Lock()
	defer v.mu.Unlock()
	for k, e := range v.cache {
		if e.tok.SessionID == sessionID {
			delete(v.cache, k)
		}
	}
	for s, u := range v.revoked {
		if now.Unix() > u {
			delete(v.revoked, s)
		}
	}
	v.revoked[sessionID] = until
}

// Stats are a verifier's cache counters.
type Stats struct {
	Hits, Misses uint64
	Cached       int
}

// Stats returns the cache counters.
func (v *Verifier) Stats() Stats {
	v.mu.RLock()
	n := len(v.cache)
	v.mu.RUnlock()
	return Stats{Hits: v.hits.Load(), Misses: v.misses.Load(), Cached: n}
}

// String describes the verifier for logs.
func (v *Verifier) String() string {
	ids := make([]string, 0, len(v.issuers))
	for id := range v.issuers {
		ids = append(ids, id.String())
	}
	slices.Sort(ids)
	return fmt.Sprintf("claim verifier (audience %q, issuers %s)", v.cfg.Audience, strings.Join(ids, ","))
}
