package identity

import (
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// PEM block types of the files this package reads and writes.
const (
	PEMPrivateKey = "DSMIL ML-DSA-87 PRIVATE KEY" // the 32-byte seed
	PEMPublicKey  = "DSMIL ML-DSA-87 PUBLIC KEY"  // the 2592-byte key
	PEMBundle     = "DSMIL IDENTITY BUNDLE"       // a signed bundle (§12.2)
)

// ErrKeyPermissions reports a private key file that group or others can
// read or write: it is refused, as ssh refuses such a key.
var ErrKeyPermissions = errors.New("identity: private key file is accessible by group or others")

// MarshalPrivateKey returns k as a PEM block.
func MarshalPrivateKey(k *PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{
		Type:    PEMPrivateKey,
		Headers: map[string]string{"Key-Id": k.Public().KeyID().String()},
		Bytes:   k.seed[:],
	})
}

// ParsePrivateKey decodes a PEM private key block.
func ParsePrivateKey(data []byte) (*PrivateKey, error) {
	blk, err := onePEM(data, PEMPrivateKey)
	if err != nil {
		return nil, err
	}
	k, err := NewKeyFromSeed(blk.Bytes)
	if err != nil {
		return nil, err
	}
	if err := checkKeyIDHeader(blk, k.Public()); err != nil {
		return nil, err
	}
	return k, nil
}

// MarshalPublicKey returns p as a PEM block.
func MarshalPublicKey(p *PublicKey) []byte {
	return pem.EncodeToMemory(&pem.Block{
		Type:    PEMPublicKey,
		Headers: map[string]string{"Key-Id": p.KeyID().String()},
		Bytes:   p.raw,
	})
}

// ParsePublicKeyPEM decodes a PEM public key block.
func ParsePublicKeyPEM(data []byte) (*PublicKey, error) {
	blk, err := onePEM(data, PEMPublicKey)
	if err != nil {
		return nil, err
	}
	p, err := ParsePublicKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	if err := checkKeyIDHeader(blk, p); err != nil {
		return nil, err
	}
	return p, nil
}

// MarshalBundlePEM returns b's encoding as a PEM block.
func MarshalBundlePEM(b *Bundle) []byte {
	return pem.EncodeToMemory(&pem.Block{
		Type: PEMBundle,
		Headers: map[string]string{
			"Name": b.Name, "Role": b.Role,
			"Key-Id": b.PublicKey.KeyID().String(), "Issuer": b.Issuer.String(),
			"Expiry": b.Expiry.UTC().Format("2006-01-02T15:04:05Z"),
		},
		Bytes: b.Marshal(),
	})
}

// ParseBundlePEM decodes a PEM bundle block. The headers are informative
// only: what counts is the signed encoding.
func ParseBundlePEM(data []byte) (*Bundle, error) {
	blk, err := onePEM(data, PEMBundle)
	if err != nil {
		return nil, err
	}
	return ParseBundle(blk.Bytes)
}

func onePEM(data []byte, typ string) (*pem.Block, error) {
	blk, rest := pem.Decode(data)
	if blk == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrMalformed)
	}
	if blk.Type != typ {
		return nil, fmt.Errorf("%w: PEM block is %q, want %q", ErrMalformed, blk.Type, typ)
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		return nil, fmt.Errorf("%w: data after the PEM block", ErrMalformed)
	}
	return blk, nil
}

func checkKeyIDHeader(blk *pem.Block, p *PublicKey) error {
	if h, ok := blk.Headers["Key-Id"]; ok && h != p.KeyID().String() {
		return fmt.Errorf("%w: Key-Id header %s does not match the key (%s)", ErrMalformed, h, p.KeyID())
	}
	return nil
}

// WritePrivateKeyFile writes k to a new file at path with mode 0600. It
// refuses to replace an existing file.
func WritePrivateKeyFile(path string, k *PrivateKey) error {
	return writeNew(path, MarshalPrivateKey(k), 0o600)
}

// WritePublicKeyFile writes p to a new file at path with mode 0644.
func WritePublicKeyFile(path string, p *PublicKey) error {
	return writeNew(path, MarshalPublicKey(p), 0o644)
}

// WriteBundleFile writes b to a new file at path with mode 0644.
func WriteBundleFile(path string, b *Bundle) error {
	return writeNew(path, MarshalBundlePEM(b), 0o644)
}

func writeNew(path string, data []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	err = f.Chmod(mode) // exactly mode, whatever the umask
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("identity: write %s: %w", path, err)
	}
	return nil
}

// LoadPrivateKeyFile reads a private key file. A file that group or others
// may access in any way (mode & 0077 != 0) is refused with
// ErrKeyPermissions, checked on the opened file so that it cannot change in
// between.
func LoadPrivateKeyFile(path string) (*PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("identity: private key %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; run chmod 600 %s", ErrKeyPermissions, path, perm, path)
	}
	data, err := readLimited(f, 64<<10)
	if err != nil {
		return nil, fmt.Errorf("identity: read %s: %w", path, err)
	}
	k, err := ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// LoadPublicKeyFile reads a public key file.
func LoadPublicKeyFile(path string) (*PublicKey, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	p, err := ParsePublicKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// LoadPublicKeyFiles reads several public key files (the trusted roots of
// a configuration).
func LoadPublicKeyFiles(paths ...string) ([]*PublicKey, error) {
	keys := make([]*PublicKey, 0, len(paths))
	for _, p := range paths {
		k, err := LoadPublicKeyFile(p)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// LoadBundleFile reads a bundle file. It does not verify it: see
// VerifyBundle.
func LoadBundleFile(path string) (*Bundle, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	b, err := ParseBundlePEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	defer f.Close()
	data, err := readLimited(f, 64<<10)
	if err != nil {
		return nil, fmt.Errorf("identity: read %s: %w", path, err)
	}
	return data, nil
}

func readLimited(f *os.File, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("file larger than %d bytes", limit)
	}
	return data, nil
}

// Identity is what a party holds: its private key and the bundle that
// vouches for its public key.
type Identity struct {
	Key    *PrivateKey
	Bundle *Bundle
}

// Check reports whether the bundle is for the key.
func (id *Identity) Check() error {
	if id == nil || id.Key == nil || id.Bundle == nil || id.Bundle.PublicKey == nil {
		return errors.New("identity: incomplete identity (key and bundle required)")
	}
	if !id.Key.Public().Equal(id.Bundle.PublicKey) {
		return fmt.Errorf("identity: bundle %q is for key %s, not for this key (%s)",
			id.Bundle.Name, id.Bundle.PublicKey.KeyID(), id.Key.Public().KeyID())
	}
	return nil
}

// LoadIdentity reads a private key file and a bundle file and checks that
// they belong together.
func LoadIdentity(keyPath, bundlePath string) (*Identity, error) {
	k, err := LoadPrivateKeyFile(keyPath)
	if err != nil {
		return nil, err
	}
	b, err := LoadBundleFile(bundlePath)
	if err != nil {
		return nil, err
	}
	id := &Identity{Key: k, Bundle: b}
	if err := id.Check(); err != nil {
		return nil, err
	}
	return id, nil
}
