package identity

import (
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/cloudflare/circl/sign/mldsa/mldsa87"
)

// Sizes of ML-DSA-87 keys and signatures and of key ids.
const (
	// PublicKeySize is the size of an encoded ML-DSA-87 public key.
	PublicKeySize = mldsa87.PublicKeySize // 2592
	// SignatureSize is the size of an ML-DSA-87 signature.
	SignatureSize = mldsa87.SignatureSize // 4627
	// SeedSize is the size of the seed a private key is derived from (and
	// stored as).
	SeedSize = mldsa87.SeedSize // 32
	// KeyIDSize is the size of a KeyID.
	KeyIDSize = 16
)

// Signature contexts (FIPS 204 ctx strings). Each use of a key signs under
// its own context, so a signature made for one purpose never verifies for
// another.
const (
	ContextBundle = "dsmil-bundle-v1" // identity bundles (§12.2)
	ContextClaim  = "dsmil-claim-v1"  // claim tokens (§12.3)
)

// Errors.
var (
	// ErrMalformed reports bytes that are not a valid encoding.
	ErrMalformed = errors.New("identity: malformed encoding")
	// ErrBadSignature reports a signature that does not verify.
	ErrBadSignature = errors.New("identity: bad signature")
)

// KeyID names a public key: the first 16 bytes of SHA-384 over its
// encoding.
type KeyID [KeyIDSize]byte

// String is the key id in lowercase hex.
func (id KeyID) String() string { return hex.EncodeToString(id[:]) }

// ParseKeyID parses a key id written by String.
func ParseKeyID(s string) (KeyID, error) {
	var id KeyID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != KeyIDSize {
		return id, fmt.Errorf("%w: key id %q", ErrMalformed, s)
	}
	copy(id[:], b)
	return id, nil
}

// PublicKey is an ML-DSA-87 public key, parsed once (verification with a
// parsed key costs about a quarter of parsing and verifying).
type PublicKey struct {
	pk  mldsa87.PublicKey
	raw []byte
	id  KeyID
}

// ParsePublicKey decodes a PublicKeySize-byte ML-DSA-87 public key.
func ParsePublicKey(b []byte) (*PublicKey, error) {
	if len(b) != PublicKeySize {
		return nil, fmt.Errorf("%w: public key is %d bytes, want %d", ErrMalformed, len(b), PublicKeySize)
	}
	p := &PublicKey{raw: append([]byte(nil), b...)}
	if err := p.pk.UnmarshalBinary(p.raw); err != nil {
		return nil, fmt.Errorf("%w: public key: %v", ErrMalformed, err)
	}
	p.id = keyID(p.raw)
	return p, nil
}

func keyID(raw []byte) KeyID {
	sum := sha512.Sum384(raw)
	var id KeyID
	copy(id[:], sum[:])
	return id
}

// Bytes returns the key's encoding. The caller must not modify it.
func (p *PublicKey) Bytes() []byte { return p.raw }

// KeyID returns the key's id.
func (p *PublicKey) KeyID() KeyID { return p.id }

// Equal reports whether p and q are the same key.
func (p *PublicKey) Equal(q *PublicKey) bool {
	return p != nil && q != nil && subtle.ConstantTimeCompare(p.raw, q.raw) == 1
}

// Verify reports whether sig is p's signature of msg under context.
func (p *PublicKey) Verify(context string, msg, sig []byte) bool {
	if len(sig) != SignatureSize {
		return false
	}
	return mldsa87.Verify(&p.pk, msg, []byte(context), sig)
}

// PrivateKey is an ML-DSA-87 private key, kept with the seed it was
// derived from.
type PrivateKey struct {
	seed [SeedSize]byte
	sk   *mldsa87.PrivateKey
	pub  *PublicKey
}

// GenerateKey returns a new key pair from crypto/rand.
func GenerateKey() (*PrivateKey, error) {
	var seed [SeedSize]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, err
	}
	return NewKeyFromSeed(seed[:])
}

// NewKeyFromSeed derives the key pair of a SeedSize-byte seed (FIPS 204
// ML-DSA.KeyGen_internal).
func NewKeyFromSeed(seed []byte) (*PrivateKey, error) {
	if len(seed) != SeedSize {
		return nil, fmt.Errorf("%w: seed is %d bytes, want %d", ErrMalformed, len(seed), SeedSize)
	}
	k := &PrivateKey{}
	copy(k.seed[:], seed)
	pk, sk := mldsa87.NewKeyFromSeed(&k.seed)
	k.sk = sk
	raw, _ := pk.MarshalBinary()
	k.pub = &PublicKey{pk: *pk, raw: raw, id: keyID(raw)}
	return k, nil
}

// Public returns the public key.
func (k *PrivateKey) Public() *PublicKey { return k.pub }

// Seed returns a copy of the seed (the private key's stored form).
func (k *PrivateKey) Seed() []byte { return append([]byte(nil), k.seed[:]...) }

// Sign returns the hedged (randomized) ML-DSA-87 signature of msg under
// context.
func (k *PrivateKey) Sign(context string, msg []byte) ([]byte, error) {
	sig := make([]byte, SignatureSize)
	if err := mldsa87.SignTo(k.sk, msg, []byte(context), true, sig); err != nil {
		return nil, err
	}
	return sig, nil
}

// SignDeterministic returns the deterministic ML-DSA-87 signature of msg
// under context. It exists for test vectors; use Sign otherwise.
func (k *PrivateKey) SignDeterministic(context string, msg []byte) []byte {
	sig := make([]byte, SignatureSize)
	if err := mldsa87.SignTo(k.sk, msg, []byte(context), false, sig); err != nil {
		panic(err) // only for a context longer than 255 bytes: a bug
	}
	return sig
}
