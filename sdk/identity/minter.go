package identity

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

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
	if err := CheckAudience(cfg.Audience); err != nil {
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
// for the router's claim verifier to revoke (host/claims).
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

type presenterKey struct{}

// WithPresenter returns ctx carrying the key id of the authenticated peer
// that sent the request (the channel's peer). The router's claim verifier
// (host/claims) then accepts only tokens that peer minted, so a token lifted
// from one connection is useless on another.
func WithPresenter(ctx context.Context, id KeyID) context.Context {
	return context.WithValue(ctx, presenterKey{}, id)
}

// PresenterFrom returns the key id WithPresenter stored.
func PresenterFrom(ctx context.Context) (KeyID, bool) {
	id, ok := ctx.Value(presenterKey{}).(KeyID)
	return id, ok
}
