package identity

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// seedKey is a deterministic key for tests: seed = b repeated.
func seedKey(t testing.TB, b byte) *PrivateKey {
	t.Helper()
	k, err := NewKeyFromSeed(bytes.Repeat([]byte{b}, SeedSize))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func signedBundle(t testing.TB, root, k *PrivateKey, name, role string, from, to time.Time) *Bundle {
	t.Helper()
	b := &Bundle{Name: name, Role: role, PublicKey: k.Public(), NotBefore: from, Expiry: to}
	if err := b.Sign(root); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestKeys(t *testing.T) {
	k := seedKey(t, 1)
	k2 := seedKey(t, 1)
	if !k.Public().Equal(k2.Public()) || k.Public().KeyID() != k2.Public().KeyID() {
		t.Fatal("same seed, different keys")
	}
	if len(k.Public().Bytes()) != PublicKeySize {
		t.Fatalf("public key %d bytes", len(k.Public().Bytes()))
	}
	sig, err := k.Sign("ctx-a", []byte("msg"))
	if err != nil || len(sig) != SignatureSize {
		t.Fatalf("sign: %v, %d bytes", err, len(sig))
	}
	if !k.Public().Verify("ctx-a", []byte("msg"), sig) {
		t.Fatal("signature does not verify")
	}
	for _, c := range []struct{ ctx, msg string }{{"ctx-b", "msg"}, {"ctx-a", "msh"}} {
		if k.Public().Verify(c.ctx, []byte(c.msg), sig) {
			t.Fatalf("verified under %q %q", c.ctx, c.msg)
		}
	}
	if seedKey(t, 2).Public().Verify("ctx-a", []byte("msg"), sig) {
		t.Fatal("another key verified the signature")
	}
	if d1, d2 := k.SignDeterministic("c", []byte("m")), k.SignDeterministic("c", []byte("m")); !bytes.Equal(d1, d2) {
		t.Fatal("deterministic signatures differ")
	}
	id, err := ParseKeyID(k.Public().KeyID().String())
	if err != nil || id != k.Public().KeyID() {
		t.Fatalf("key id round trip: %v", err)
	}
	if _, err := NewKeyFromSeed([]byte("short")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short seed: %v", err)
	}
	if _, err := ParsePublicKey(make([]byte, 10)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short public key: %v", err)
	}
}

func TestPEM(t *testing.T) {
	k := seedKey(t, 3)
	got, err := ParsePrivateKey(MarshalPrivateKey(k))
	if err != nil || !got.Public().Equal(k.Public()) {
		t.Fatalf("private round trip: %v", err)
	}
	pub, err := ParsePublicKeyPEM(MarshalPublicKey(k.Public()))
	if err != nil || !pub.Equal(k.Public()) {
		t.Fatalf("public round trip: %v", err)
	}
	wrongID := strings.Replace(string(MarshalPublicKey(k.Public())), "Key-Id: ", "Key-Id: 00", 1)
	if _, err := ParsePublicKeyPEM([]byte(wrongID)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("mismatched Key-Id header: %v", err)
	}
	if _, err := ParsePrivateKey(MarshalPublicKey(k.Public())); !errors.Is(err, ErrMalformed) {
		t.Fatalf("public key parsed as private: %v", err)
	}
	two := append(MarshalPublicKey(k.Public()), MarshalPublicKey(k.Public())...)
	if _, err := ParsePublicKeyPEM(two); !errors.Is(err, ErrMalformed) {
		t.Fatalf("two blocks: %v", err)
	}
}

// TestPrivateKeyFile: written 0600, never over an existing file, and a key
// readable by group or others is refused.
func TestPrivateKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.key")
	k := seedKey(t, 4)
	if err := WritePrivateKeyFile(path, k); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	if err := WritePrivateKeyFile(path, k); err == nil {
		t.Fatal("overwrote an existing key")
	}
	got, err := LoadPrivateKeyFile(path)
	if err != nil || !got.Public().Equal(k.Public()) {
		t.Fatalf("load: %v", err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660, 0o644, 0o610} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadPrivateKeyFile(path)
		if !errors.Is(err, ErrKeyPermissions) || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("mode %04o: %v", mode, err)
		}
	}
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPrivateKeyFile(path); err != nil {
		t.Fatalf("mode 0400: %v", err)
	}
	pubPath := filepath.Join(dir, "a.pub")
	if err := WritePublicKeyFile(pubPath, k.Public()); err != nil {
		t.Fatal(err)
	}
	if p, err := LoadPublicKeyFile(pubPath); err != nil || !p.Equal(k.Public()) {
		t.Fatalf("public file: %v", err)
	}
	if _, err := LoadPrivateKeyFile(pubPath); err == nil {
		t.Fatal("loaded a public key file as a private key")
	}
}

func TestBundle(t *testing.T) {
	root, other, k := seedKey(t, 10), seedKey(t, 11), seedKey(t, 12)
	roots := []*PublicKey{root.Public()}
	b := signedBundle(t, root, k, "shim", "shim", t0, t0.Add(720*time.Hour))
	parsed, err := ParseBundle(b.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(parsed.Marshal(), b.Marshal()) || parsed.Name != "shim" || parsed.Issuer != root.Public().KeyID() {
		t.Fatalf("round trip: %+v", parsed)
	}
	if err := VerifyBundle(parsed, roots, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// Impersonation: another key signs a bundle claiming the root as issuer.
	forged := &Bundle{Name: "shim", Role: "shim", PublicKey: k.Public(), NotBefore: t0, Expiry: t0.Add(time.Hour)}
	if err := forged.Sign(other); err != nil {
		t.Fatal(err)
	}
	forged.Issuer = root.Public().KeyID()
	tampered := *b
	tampered.Role = "host"
	cases := []struct {
		name  string
		b     *Bundle
		roots []*PublicKey
		now   time.Time
		want  error
	}{
		{"wrong root", b, []*PublicKey{other.Public()}, t0.Add(time.Hour), ErrUnknownIssuer},
		{"no roots", b, nil, t0.Add(time.Hour), ErrUnknownIssuer},
		{"forged issuer", forged, roots, t0.Add(time.Minute), ErrBadSignature},
		{"tampered role", &tampered, roots, t0.Add(time.Hour), ErrBadSignature},
		{"expired", b, roots, t0.Add(720 * time.Hour), ErrExpired},
		{"not yet valid", b, roots, t0.Add(-time.Second), ErrNotYetValid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := VerifyBundle(c.b, c.roots, c.now); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	enc := b.Marshal()
	for _, bad := range [][]byte{nil, enc[:len(enc)-1], append(append([]byte(nil), enc...), 0), append([]byte("XIB1"), enc[4:]...)} {
		if _, err := ParseBundle(bad); !errors.Is(err, ErrMalformed) {
			t.Fatalf("parsed a malformed bundle (%d bytes): %v", len(bad), err)
		}
	}
	for _, f := range []func(*Bundle){
		func(b *Bundle) { b.Name = "" },
		func(b *Bundle) { b.Name = "has space" },
		func(b *Bundle) { b.Role = "Host" },
		func(b *Bundle) { b.Expiry = b.NotBefore },
	} {
		bb := &Bundle{Name: "n", Role: "r", PublicKey: k.Public(), NotBefore: t0, Expiry: t0.Add(time.Hour)}
		f(bb)
		if err := bb.Sign(root); !errors.Is(err, ErrMalformed) {
			t.Fatalf("signed an invalid bundle %+v: %v", bb, err)
		}
	}
	pemB, err := ParseBundlePEM(MarshalBundlePEM(b))
	if err != nil || !bytes.Equal(pemB.Marshal(), enc) {
		t.Fatalf("PEM round trip: %v", err)
	}
}

func TestHandoff(t *testing.T) {
	root, host := seedKey(t, 20), seedKey(t, 21)
	id, err := Issue(host, "echo", "plugin", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyBundle(id.Bundle, []*PublicKey{host.Public()}, time.Now()); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteHandoff(&b, id, []*PublicKey{root.Public(), host.Public()}); err != nil {
		t.Fatal(err)
	}
	enc := b.Bytes()
	got, roots, err := ReadHandoff(bytes.NewReader(enc))
	if err != nil || len(roots) != 2 || !roots[1].Equal(host.Public()) || !got.Key.Public().Equal(id.Key.Public()) || got.Bundle.Name != "echo" {
		t.Fatalf("ReadHandoff: %v %d", err, len(roots))
	}
	if err := WriteHandoff(&b, id, nil); !errors.Is(err, ErrHandoff) {
		t.Fatalf("a handoff without roots: %v", err)
	}
	keyBlock := enc[:bytes.Index(enc, []byte("-----BEGIN "+PEMBundle))]
	for name, in := range map[string][]byte{
		"empty":          nil,
		"no roots":       enc[:bytes.Index(enc, []byte("-----BEGIN "+PEMPublicKey))],
		"bundle first":   append(bytes.Clone(enc[len(keyBlock):]), keyBlock...),
		"trailing bytes": append(bytes.Clone(enc), "junk"...),
		"oversized":      bytes.Repeat([]byte("\n"), MaxHandoff+1),
		"not PEM":        []byte("DSMIL_PLUGIN_IDENTITY=abcd"),
		"bad base64":     bytes.Replace(bytes.Clone(enc), []byte("\n\n"), []byte("\n\n!!"), 1),
	} {
		if _, _, err := ReadHandoff(bytes.NewReader(in)); !errors.Is(err, ErrHandoff) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Another key with the same bundle fails the identity check.
	other := &Identity{Key: seedKey(t, 22), Bundle: id.Bundle}
	if err := other.Check(); err == nil {
		t.Fatal("a bundle for another key passed Check")
	}
	var ob bytes.Buffer
	ob.Write(MarshalPrivateKey(other.Key))
	ob.Write(enc[len(keyBlock):])
	if _, _, err := ReadHandoff(&ob); !errors.Is(err, ErrHandoff) {
		t.Fatalf("a key that is not the bundle's: %v", err)
	}
}
