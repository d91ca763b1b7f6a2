package identity

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
)

// Claim verification errors. VerifyClaim reports each of them (and the
// token errors above) as a *mux.Error with code CLAIM_TOKEN_INVALID.
var (
	ErrNoToken = errors.New("identity: no claim token")
	// ErrUnknownReference: a claim reference to no token in the cache.
	ErrUnknownReference = errors.New("identity: unknown claim token reference")
	ErrTenantMismatch   = errors.New("identity: claim token is for another tenant")
	ErrAudience         = errors.New("identity: claim token is for another audience")
	ErrLifetime         = errors.New("identity: claim token lifetime too long")
	ErrRevoked          = errors.New("identity: claim token revoked")
	ErrPresenter        = errors.New("identity: claim token presented by a party that did not mint it")
	// ErrIssuerScope: a token minted by an issuer for a tenant outside the
	// tenants that issuer may mint for.
	ErrIssuerScope = errors.New("identity: claim token minted for a tenant its issuer may not mint for")
)

type presenterKey struct{}

// WithPresenter returns ctx carrying the key id of the authenticated peer
// that sent the request (the channel's peer). A ClaimVerifier then accepts
// only tokens that peer minted, so a token lifted from one connection is
// useless on another.
func WithPresenter(ctx context.Context, id KeyID) context.Context {
	return context.WithValue(ctx, presenterKey{}, id)
}

// PresenterFrom returns the key id WithPresenter stored.
func PresenterFrom(ctx context.Context) (KeyID, bool) {
	id, ok := ctx.Value(presenterKey{}).(KeyID)
	return id, ok
}

// ClaimVerifierConfig configures a ClaimVerifier.
type ClaimVerifierConfig struct {
	// Issuers are the keys that may mint tokens (the shim's). Required.
	Issuers []*PublicKey
	// IssuerTenants restricts issuers to the tenants listed for their key:
	// a token an issuer mints for another tenant is refused with
	// ErrIssuerScope. Issuers without an entry may mint for any tenant.
	IssuerTenants map[KeyID][]string
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

// ClaimVerifier checks L7_CLAIM_TOKENs. A token's signature is verified
// once (≈30 µs); after that it is found in a bounded, expiry-aware cache
// keyed by the token's bytes, and a request costs a map lookup, a time
// comparison and a tenant comparison. It implements the router's
// ClaimVerifier hook (host/router.ClaimVerifier).
type ClaimVerifier struct {
	cfg     ClaimVerifierConfig
	issuers map[KeyID]*PublicKey
	scopes  map[KeyID]map[string]bool // IssuerTenants as sets

	mu      sync.RWMutex
	cache   map[cacheKey]*claimEntry
	revoked map[[16]byte]int64 // session id → unix seconds after which it is moot

	hits, misses atomic.Uint64
}

// cacheKey is the first 64 bytes of a token's signature: ML-DSA-87's
// commitment hash c̃, a SHAKE-256 digest over the signer's key and the
// token's content. It is unique per genuine token; an entry also holds the
// whole token, compared on every hit, so a forged token that copies a
// genuine signature finds nothing.
type cacheKey [64]byte

type claimEntry struct {
	raw      []byte
	tok      *ClaimToken
	from, to int64 // unix nanoseconds: valid when from ≤ now < to (skew included)
}

func keyOf(token []byte) (k cacheKey, ok bool) {
	if len(token) < 2+SignatureSize {
		return k, false
	}
	copy(k[:], token[len(token)-SignatureSize:])
	return k, true
}

// NewClaimVerifier returns a verifier.
func NewClaimVerifier(cfg ClaimVerifierConfig) (*ClaimVerifier, error) {
	if len(cfg.Issuers) == 0 {
		return nil, errors.New("identity: claim verifier without issuer keys")
	}
	if err := checkPrintable("audience", cfg.Audience, 64); err != nil {
		return nil, err
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
	v := &ClaimVerifier{
		cfg: cfg, issuers: make(map[KeyID]*PublicKey, len(cfg.Issuers)),
		cache: make(map[cacheKey]*claimEntry), revoked: make(map[[16]byte]int64),
	}
	for _, k := range cfg.Issuers {
		v.issuers[k.KeyID()] = k
	}
	if len(cfg.IssuerTenants) > 0 {
		v.scopes = make(map[KeyID]map[string]bool, len(cfg.IssuerTenants))
		for id, tenants := range cfg.IssuerTenants {
			if v.issuers[id] == nil {
				return nil, fmt.Errorf("identity: tenants given for %s, which is not an issuer", id)
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
// the presenter in ctx, when WithPresenter set one). Any failure is a
// *mux.Error with code CLAIM_TOKEN_INVALID whose Param is a stable reason
// (see Reason), so that the shim can answer 401 or 403 without matching
// strings.
func (v *ClaimVerifier) VerifyClaim(ctx context.Context, f *dbe.Frame) error {
	tok, _ := f.Get(dbe.TLVClaimToken)
	tenant, _ := f.Get(dbe.TLVTenantID)
	if _, err := v.Check(ctx, tenant, tok); err != nil {
		return &mux.Error{Code: dbe.CodeClaimTokenInvalid, Message: err.Error(), Param: Reason(err)}
	}
	return nil
}

// Reason names why a claim check failed: "missing", "expired",
// "not_yet_valid", "foreign_tenant", "audience", "revoked", "presenter",
// "untrusted_minter", "issuer_scope", "unknown_reference", or "invalid" (malformed, bad signature, too long a
// lifetime, anything else).
func Reason(err error) string {
	for _, r := range []struct {
		err  error
		name string
	}{
		{ErrNoToken, "missing"}, {ErrExpired, "expired"}, {ErrNotYetValid, "not_yet_valid"},
		{ErrTenantMismatch, "foreign_tenant"}, {ErrAudience, "audience"}, {ErrRevoked, "revoked"},
		{ErrPresenter, "presenter"}, {ErrUnknownIssuer, "untrusted_minter"}, {ErrIssuerScope, "issuer_scope"}, {ErrUnknownReference, "unknown_reference"},
	} {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	return "invalid"
}

// Check verifies token for tenant and returns its claims, which the caller
// must not modify. Errors wrap the package's sentinels.
func (v *ClaimVerifier) Check(ctx context.Context, tenant, token []byte) (*ClaimToken, error) {
	if len(token) == 0 {
		return nil, ErrNoToken
	}
	now := v.cfg.Now().UnixNano()
	var e *claimEntry
	if ref, ok := parseReference(token); ok {
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
	if k, ok := keyOf(token); ok {
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
func (v *ClaimVerifier) checkEntry(ctx context.Context, e *claimEntry, tenant []byte, now int64) (*ClaimToken, error) {
	switch {
	case now < e.from:
		return nil, fmt.Errorf("%w: token valid from %s", ErrNotYetValid, e.tok.IssuedAt.Format(time.RFC3339))
	case now >= e.to:
		return nil, fmt.Errorf("%w: token expired at %s", ErrExpired, e.tok.ExpiresAt.Format(time.RFC3339))
	case string(tenant) != e.tok.TenantID:
		return nil, fmt.Errorf("%w: token for %q, frame for %q", ErrTenantMismatch, e.tok.TenantID, tenant)
	}
	if p, ok := PresenterFrom(ctx); ok && p != e.tok.KeyID {
		return nil, fmt.Errorf("%w: minted by %s, presented by %s", ErrPresenter, e.tok.KeyID, p)
	}
	return e.tok, nil
}

// verify is the cold path: parse, check the signature and the fields that
// do not depend on the request, and cache the result.
func (v *ClaimVerifier) verify(token []byte, now int64) (*claimEntry, error) {
	t, err := ParseClaimToken(token)
	if err != nil {
		return nil, err
	}
	iss := v.issuers[t.KeyID]
	if iss == nil {
		return nil, fmt.Errorf("%w: token minted by %s", ErrUnknownIssuer, t.KeyID)
	}
	tbs := token[:len(token)-2-SignatureSize] // the encoding is canonical
	if !iss.Verify(ContextClaim, tbs, t.Signature) {
		return nil, fmt.Errorf("%w: claim token", ErrBadSignature)
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
	k, _ := keyOf(token)
	v.cache[k] = e
	return e, nil
}

// evict makes room: expired entries first, then arbitrary ones (an eighth
// of the cache, so that eviction is amortized). Called with mu held.
func (v *ClaimVerifier) evict(now int64) {
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
func (v *ClaimVerifier) Revoke(sessionID [16]byte) {
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

// ClaimStats are a verifier's cache counters.
type ClaimStats struct {
	Hits, Misses uint64
	Cached       int
}

// Stats returns the cache counters.
func (v *ClaimVerifier) Stats() ClaimStats {
	v.mu.RLock()
	n := len(v.cache)
	v.mu.RUnlock()
	return ClaimStats{Hits: v.hits.Load(), Misses: v.misses.Load(), Cached: n}
}

// MinterConfig configures a Minter.
type MinterConfig struct {
	// Key is the minter's identity key (the shim's). Required.
	Key *PrivateKey
	// Audience is the verifier the tokens are for. Required.
	Audience string
	// TTL is each token's lifetime. Default 1 h.
	TTL time.Duration
	// RenewBefore: a token with less than this left is replaced by a fresh
	// one. Default TTL/4; it should exceed the time a request may take.
	RenewBefore time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Minter mints one claim token per tenant session — per (tenant, client)
// — and hands out the same token until it nears expiry, so that an
// ML-DSA-87 signature (≈130 µs) is paid once per session, not per request.
type Minter struct {
	cfg MinterConfig

	mu    sync.Mutex
	slots map[[2]string]*mintSlot
}

type mintSlot struct {
	mu      sync.Mutex
	tok     []byte
	claims  *ClaimToken
	renewAt time.Time
}

// NewMinter returns a minter.
func NewMinter(cfg MinterConfig) (*Minter, error) {
	if cfg.Key == nil {
		return nil, errors.New("identity: minter without a key")
	}
	if err := checkPrintable("audience", cfg.Audience, 64); err != nil {
		return nil, err
	}
	if cfg.TTL <= 0 {
		cfg.TTL = time.Hour
	}
	if cfg.RenewBefore <= 0 || cfg.RenewBefore >= cfg.TTL {
		cfg.RenewBefore = cfg.TTL / 4
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Minter{cfg: cfg, slots: make(map[[2]string]*mintSlot)}, nil
}

// Token returns the current token of the session of client in tenant,
// minting one when there is none, it nears expiry, or roles changed. The
// returned bytes are shared: do not modify them.
func (m *Minter) Token(tenant, client string, roles []string) ([]byte, error) {
	key := [2]string{tenant, client}
	m.mu.Lock()
	s := m.slots[key]
	if s == nil {
		m.sweep()
		s = &mintSlot{}
		m.slots[key] = s
	}
	m.mu.Unlock()

	s.mu.Lock()
	defer s.mu.Unlock()
	now := m.cfg.Now()
	if s.tok != nil && now.Before(s.renewAt) && slices.Equal(s.claims.Roles, roles) {
		return s.tok, nil
	}
	t := &ClaimToken{
		TenantID: tenant, ClientID: client, Roles: slices.Clone(roles),
		IssuedAt: now, ExpiresAt: now.Add(m.cfg.TTL), Audience: m.cfg.Audience,
	}
	if _, err := rand.Read(t.SessionID[:]); err != nil {
		return nil, err
	}
	tok, err := t.Sign(m.cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("identity: mint token for %q: %w", tenant, err)
	}
	s.tok, s.claims, s.renewAt = tok, t, t.ExpiresAt.Add(-m.cfg.RenewBefore)
	return tok, nil
}

// End forgets the session of client in tenant and returns its session id,
// for ClaimVerifier.Revoke.
func (m *Minter) End(tenant, client string) (sessionID [16]byte, ok bool) {
	m.mu.Lock()
	s := m.slots[[2]string{tenant, client}]
	delete(m.slots, [2]string{tenant, client})
	m.mu.Unlock()
	if s == nil {
		return sessionID, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.claims == nil {
		return sessionID, false
	}
	return s.claims.SessionID, true
}

// sweep drops sessions whose token has expired. Called with mu held.
func (m *Minter) sweep() {
	if len(m.slots) < 1024 {
		return
	}
	now := m.cfg.Now()
	for k, s := range m.slots {
		if s.mu.TryLock() {
			if s.claims != nil && !now.Before(s.claims.ExpiresAt) {
				delete(m.slots, k)
			}
			s.mu.Unlock()
		}
	}
}

// String describes the verifier for logs.
func (v *ClaimVerifier) String() string {
	ids := make([]string, 0, len(v.issuers))
	for id := range v.issuers {
		ids = append(ids, id.String())
	}
	slices.Sort(ids)
	return fmt.Sprintf("claim verifier (audience %q, issuers %s)", v.cfg.Audience, strings.Join(ids, ","))
}

// A claim reference is the L7_CLAIM_TOKEN value "DCR1" followed by the
// 64-byte cache key of a full token (the first 64 bytes of its signature):
// docs/dbe.md §4. After one request with the full token (≈4.7 KB), a client
// sends 68 bytes instead; the router accepts a reference only to a token
// it has verified, that has not expired, and — on a sealed session — that
// the same peer minted.
const referenceMagic = "DCR1"

// ReferenceSize is the size of a claim reference.
const ReferenceSize = len(referenceMagic) + len(cacheKey{})

// ClaimReference returns the reference to a full claim token, or nil if
// token is too short to be one.
func ClaimReference(token []byte) []byte {
	k, ok := keyOf(token)
	if !ok {
		return nil
	}
	return append([]byte(referenceMagic), k[:]...)
}

func parseReference(b []byte) (cacheKey, bool) {
	var k cacheKey
	if len(b) != ReferenceSize || string(b[:len(referenceMagic)]) != referenceMagic {
		return k, false
	}
	copy(k[:], b[len(referenceMagic):])
	return k, true
}
