package identity

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Bundle errors.
var (
	// ErrUnknownIssuer reports a bundle or token signed by a key that is not
	// trusted.
	ErrUnknownIssuer = errors.New("identity: issuer is not a trusted key")
	// ErrExpired reports a bundle or token past its expiry.
	ErrExpired = errors.New("identity: expired")
	// ErrNotYetValid reports a bundle or token before its start.
	ErrNotYetValid = errors.New("identity: not yet valid")
)

// bundleMagic starts every bundle encoding.
const bundleMagic = "DIB1"

// Bundle binds a name and a role to a public key for a validity period,
// signed by an issuer (an operator root, or the host for the identities it
// issues to the plugins it spawns). Its encoding is specified in
// docs/dbe.md §12.2.
type Bundle struct {
	// Name is the party's name: 1–128 printable ASCII characters, no space
	// (e.g. "dsmil-host", "shim", "llm-amx").
	Name string
	// Role is the party's role: 1–32 characters of [a-z0-9._-]
	// ("host", "router", "shim", "plugin", "client").
	Role string
	// PublicKey is the party's ML-DSA-87 key.
	PublicKey *PublicKey
	// NotBefore and Expiry bound the validity (whole seconds, UTC):
	// NotBefore ≤ now < Expiry.
	NotBefore, Expiry time.Time
	// Issuer is the key id of the signing key; set by Sign.
	Issuer KeyID
	// Signature is the issuer's ML-DSA-87 signature of TBS under
	// ContextBundle; set by Sign.
	Signature []byte
}

// checkFields validates everything but the signature.
func (b *Bundle) checkFields() error {
	if err := checkPrintable("name", b.Name, 128); err != nil {
		return err
	}
	if err := checkRole(b.Role); err != nil {
		return err
	}
	if b.PublicKey == nil {
		return fmt.Errorf("%w: bundle without a public key", ErrMalformed)
	}
	if b.NotBefore.Unix() < 0 || !b.NotBefore.Before(b.Expiry) {
		return fmt.Errorf("%w: bundle validity %s … %s", ErrMalformed, b.NotBefore, b.Expiry)
	}
	return nil
}

func checkPrintable(what, s string, max int) error {
	if len(s) == 0 || len(s) > max {
		return fmt.Errorf("%w: %s must be 1–%d bytes", ErrMalformed, what, max)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return fmt.Errorf("%w: %s %q: only printable ASCII without spaces", ErrMalformed, what, s)
		}
	}
	return nil
}

func checkRole(s string) error {
	if len(s) == 0 || len(s) > 32 {
		return fmt.Errorf("%w: role must be 1–32 bytes", ErrMalformed)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: role %q: only [a-z0-9._-]", ErrMalformed, s)
		}
	}
	return nil
}

// TBS returns the signed part of the encoding:
//
//	"DIB1" || vec8(name) || vec8(role) || vec16(public_key) ||
//	u64(not_before) || u64(expiry) || issuer(16)
func (b *Bundle) TBS() []byte {
	out := make(builder, 0, 4+2+len(b.Name)+len(b.Role)+2+PublicKeySize+16+KeyIDSize)
	out.raw([]byte(bundleMagic))
	out.vec8([]byte(b.Name))
	out.vec8([]byte(b.Role))
	out.vec16(b.PublicKey.raw)
	out.u64(uint64(b.NotBefore.Unix()))
	out.u64(uint64(b.Expiry.Unix()))
	out.raw(b.Issuer[:])
	return out
}

// Marshal returns the bundle's encoding: TBS || vec16(signature).
func (b *Bundle) Marshal() []byte {
	out := builder(b.TBS())
	out.vec16(b.Signature)
	return out
}

// Sign checks the fields, truncates the times to whole seconds, and signs
// the bundle with issuer's key.
func (b *Bundle) Sign(issuer *PrivateKey) error {
	b.NotBefore = time.Unix(b.NotBefore.Unix(), 0).UTC()
	b.Expiry = time.Unix(b.Expiry.Unix(), 0).UTC()
	if err := b.checkFields(); err != nil {
		return err
	}
	b.Issuer = issuer.Public().KeyID()
	sig, err := issuer.Sign(ContextBundle, b.TBS())
	if err != nil {
		return err
	}
	b.Signature = sig
	return nil
}

// ParseBundle decodes a bundle's encoding. It checks the syntax, not the
// signature: see VerifyBundle.
func ParseBundle(data []byte) (*Bundle, error) {
	p := newParser(data)
	magic := p.take(len(bundleMagic))
	name, role := p.vec8(), p.vec8()
	pk := p.vec16()
	nb, exp := p.u64(), p.u64()
	issuer := p.take(KeyIDSize)
	sig := p.vec16()
	if !p.end() || string(magic) != bundleMagic {
		return nil, fmt.Errorf("%w: bundle", ErrMalformed)
	}
	if nb > math.MaxInt64 || exp > math.MaxInt64 {
		return nil, fmt.Errorf("%w: bundle time out of range", ErrMalformed)
	}
	if len(sig) != SignatureSize {
		return nil, fmt.Errorf("%w: bundle signature is %d bytes", ErrMalformed, len(sig))
	}
	key, err := ParsePublicKey(pk)
	if err != nil {
		return nil, err
	}
	b := &Bundle{
		Name: string(name), Role: string(role), PublicKey: key,
		NotBefore: time.Unix(int64(nb), 0).UTC(), Expiry: time.Unix(int64(exp), 0).UTC(),
		Signature: append([]byte(nil), sig...),
	}
	copy(b.Issuer[:], issuer)
	if err := b.checkFields(); err != nil {
		return nil, err
	}
	return b, nil
}

// VerifyBundle checks that b was signed by one of roots and is valid at
// now (NotBefore ≤ now < Expiry). The signature is checked first, so a
// time error is only ever reported for a genuine bundle.
func VerifyBundle(b *Bundle, roots []*PublicKey, now time.Time) error {
	if b == nil || b.PublicKey == nil {
		return fmt.Errorf("%w: no bundle", ErrMalformed)
	}
	if err := b.checkFields(); err != nil {
		return err
	}
	var root *PublicKey
	for _, r := range roots {
		if r != nil && r.KeyID() == b.Issuer {
			root = r
			break
		}
	}
	if root == nil {
		return fmt.Errorf("%w: bundle %q was issued by %s", ErrUnknownIssuer, b.Name, b.Issuer)
	}
	if !root.Verify(ContextBundle, b.TBS(), b.Signature) {
		return fmt.Errorf("%w: bundle %q", ErrBadSignature, b.Name)
	}
	if now.Before(b.NotBefore) {
		return fmt.Errorf("%w: bundle %q is valid from %s", ErrNotYetValid, b.Name, b.NotBefore.Format(time.RFC3339))
	}
	if !now.Before(b.Expiry) {
		return fmt.Errorf("%w: bundle %q expired at %s", ErrExpired, b.Name, b.Expiry.Format(time.RFC3339))
	}
	return nil
}

// Issue generates a key pair for name and role and a bundle for it signed
// by issuer, valid from now − 1 minute (for clock skew) for ttl. dsmil-host
// uses it to give each plugin process a fresh identity at spawn.
func Issue(issuer *PrivateKey, name, role string, now time.Time, ttl time.Duration) (*Identity, error) {
	k, err := GenerateKey()
	if err != nil {
		return nil, err
	}
	b := &Bundle{Name: name, Role: role, PublicKey: k.Public(), NotBefore: now.Add(-time.Minute), Expiry: now.Add(ttl)}
	if err := b.Sign(issuer); err != nil {
		return nil, err
	}
	return &Identity{Key: k, Bundle: b}, nil
}
