package identity

import (
	"fmt"
	"math"
	"time"
	"unicode/utf8"
)

// claimMagic starts every claim token encoding.
const claimMagic = "DCT1"

// Claim token limits.
const (
	// MaxTokenSize bounds a token's encoding; it fits the L7_CLAIM_TOKEN
	// TLV (16 384 bytes).
	MaxTokenSize = 16384
	maxRoles     = 16
)

// ClaimToken is the content of an L7_CLAIM_TOKEN: who the request is for,
// for whom it was minted and until when, signed with ML-DSA-87 by the
// minter (the shim). It is minted once per tenant session, not per request.
// Its encoding is specified in docs/dbe.md §12.3.
type ClaimToken struct {
	// TenantID must equal the frame's TENANT_ID (same rules: 1–128 bytes of
	// UTF-8 without control characters).
	TenantID string
	// ClientID names the client within the tenant (0–128 bytes, same rules).
	ClientID string
	// Roles are the tenant's roles (0–16, each 1–64 printable ASCII).
	Roles []string
	// IssuedAt and ExpiresAt bound the token (whole seconds).
	IssuedAt, ExpiresAt time.Time
	// Audience names the verifier the token is for (1–64 printable ASCII),
	// e.g. "dsmil-router".
	Audience string
	// SessionID is random per minted token: the tenant session it serves.
	SessionID [16]byte
	// KeyID is the minter's key id; set by Sign.
	KeyID KeyID
	// Signature is the minter's ML-DSA-87 signature of TBS under
	// ContextClaim; set by Sign.
	Signature []byte
}

func checkText(what, s string, min, max int) error {
	if len(s) < min || len(s) > max || !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s must be %d–%d bytes of UTF-8", ErrMalformed, what, min, max)
	}
	for _, r := range s {
		if r < 0x20 || r >= 0x7f && r <= 0x9f {
			return fmt.Errorf("%w: %s has a control character", ErrMalformed, what)
		}
	}
	return nil
}

// CheckAudience checks that a is a well-formed ClaimToken.Audience: 1–64
// bytes of printable ASCII without spaces. Errors wrap ErrMalformed.
func CheckAudience(a string) error { return checkPrintable("audience", a, 64) }

func (t *ClaimToken) checkFields() error {
	if err := checkText("tenant_id", t.TenantID, 1, 128); err != nil {
		return err
	}
	if err := checkText("client_id", t.ClientID, 0, 128); err != nil {
		return err
	}
	if len(t.Roles) > maxRoles {
		return fmt.Errorf("%w: more than %d roles", ErrMalformed, maxRoles)
	}
	for _, r := range t.Roles {
		if err := checkPrintable("role", r, 64); err != nil {
			return err
		}
	}
	if err := CheckAudience(t.Audience); err != nil {
		return err
	}
	if t.IssuedAt.Unix() < 0 || !t.IssuedAt.Before(t.ExpiresAt) {
		return fmt.Errorf("%w: token validity %s … %s", ErrMalformed, t.IssuedAt, t.ExpiresAt)
	}
	if t.SessionID == ([16]byte{}) {
		return fmt.Errorf("%w: zero session id", ErrMalformed)
	}
	return nil
}

// TBS returns the signed part of the encoding:
//
//	"DCT1" || vec8(tenant_id) || vec8(client_id) || u8(n) || n × vec8(role) ||
//	u64(issued_at) || u64(expires_at) || vec8(audience) || session_id(16) || key_id(16)
func (t *ClaimToken) TBS() []byte {
	n := 4 + 2 + len(t.TenantID) + len(t.ClientID) + 1 + 16 + 1 + len(t.Audience) + 32
	for _, r := range t.Roles {
		n += 1 + len(r)
	}
	out := make(builder, 0, n+2+SignatureSize)
	out.raw([]byte(claimMagic))
	out.vec8([]byte(t.TenantID))
	out.vec8([]byte(t.ClientID))
	out.u8(uint8(len(t.Roles)))
	for _, r := range t.Roles {
		out.vec8([]byte(r))
	}
	out.u64(uint64(t.IssuedAt.Unix()))
	out.u64(uint64(t.ExpiresAt.Unix()))
	out.vec8([]byte(t.Audience))
	out.raw(t.SessionID[:])
	out.raw(t.KeyID[:])
	return out
}

// Marshal returns the token's encoding: TBS || vec16(signature).
func (t *ClaimToken) Marshal() []byte {
	out := builder(t.TBS())
	out.vec16(t.Signature)
	return out
}

// Sign checks the fields, truncates the times to whole seconds, sets KeyID
// and signs with the minter's key. It returns the encoding.
func (t *ClaimToken) Sign(k *PrivateKey) ([]byte, error) {
	t.IssuedAt = time.Unix(t.IssuedAt.Unix(), 0).UTC()
	t.ExpiresAt = time.Unix(t.ExpiresAt.Unix(), 0).UTC()
	if err := t.checkFields(); err != nil {
		return nil, err
	}
	t.KeyID = k.Public().KeyID()
	sig, err := k.Sign(ContextClaim, t.TBS())
	if err != nil {
		return nil, err
	}
	t.Signature = sig
	return t.Marshal(), nil
}

// ParseClaimToken decodes a token's encoding without verifying it.
func ParseClaimToken(b []byte) (*ClaimToken, error) {
	if len(b) > MaxTokenSize {
		return nil, fmt.Errorf("%w: token of %d bytes", ErrMalformed, len(b))
	}
	p := newParser(b)
	magic := p.take(len(claimMagic))
	t := &ClaimToken{TenantID: string(p.vec8()), ClientID: string(p.vec8())}
	n := int(p.u8())
	if n > maxRoles {
		return nil, fmt.Errorf("%w: token has %d roles", ErrMalformed, n)
	}
	for range n {
		t.Roles = append(t.Roles, string(p.vec8()))
	}
	iat, exp := p.u64(), p.u64()
	t.Audience = string(p.vec8())
	copy(t.SessionID[:], p.take(16))
	copy(t.KeyID[:], p.take(KeyIDSize))
	t.Signature = p.vec16()
	if !p.end() || string(magic) != claimMagic {
		return nil, fmt.Errorf("%w: claim token", ErrMalformed)
	}
	if iat > math.MaxInt64 || exp > math.MaxInt64 {
		return nil, fmt.Errorf("%w: token time out of range", ErrMalformed)
	}
	if len(t.Signature) != SignatureSize {
		return nil, fmt.Errorf("%w: token signature is %d bytes", ErrMalformed, len(t.Signature))
	}
	t.IssuedAt, t.ExpiresAt = time.Unix(int64(iat), 0).UTC(), time.Unix(int64(exp), 0).UTC()
	if err := t.checkFields(); err != nil {
		return nil, err
	}
	t.Signature = append([]byte(nil), t.Signature...)
	return t, nil
}
