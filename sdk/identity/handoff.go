package identity

import (
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
)

// EnvPluginIdentityFD names the inherited file descriptor from which a
// plugin process reads the identity dsmil-host issued it (WriteHandoff's
// output). The value is a descriptor number, never key material: the key
// travels through a pipe that is empty and closed once the plugin has read
// it, so nothing of it stays in /proc/<pid>/environ or on disk.
const EnvPluginIdentityFD = "DSMIL_PLUGIN_IDENTITY_FD"

// MaxHandoff bounds a handoff's size (the key, the bundle and a few roots
// take about 20 KiB).
const MaxHandoff = 1 << 20

// ErrHandoff reports a missing, unreadable or malformed identity handoff.
var ErrHandoff = errors.New("identity: bad identity handoff")

// WriteHandoff writes id and the roots that vouch for its issuer to w as PEM
// blocks: the private key, the bundle, then one public key per root.
func WriteHandoff(w io.Writer, id *Identity, roots []*PublicKey) error {
	if err := id.Check(); err != nil {
		return err
	}
	if len(roots) == 0 {
		return fmt.Errorf("%w: no root key", ErrHandoff)
	}
	var b bytes.Buffer
	b.Write(MarshalPrivateKey(id.Key))
	b.Write(MarshalBundlePEM(id.Bundle))
	for _, r := range roots {
		b.Write(MarshalPublicKey(r))
	}
	_, err := w.Write(b.Bytes())
	clear(b.Bytes())
	return err
}

// ReadHandoff reads what WriteHandoff wrote, up to MaxHandoff bytes and the
// end of r. It wipes its copy of the key material before returning.
func ReadHandoff(r io.Reader) (*Identity, []*PublicKey, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxHandoff+1))
	defer clear(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrHandoff, err)
	}
	if len(data) > MaxHandoff {
		return nil, nil, fmt.Errorf("%w: larger than %d bytes", ErrHandoff, MaxHandoff)
	}
	var id Identity
	var roots []*PublicKey
	rest := data
	for n := 0; ; n++ {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		want := PEMPublicKey
		switch n {
		case 0:
			want = PEMPrivateKey
		case 1:
			want = PEMBundle
		}
		if blk.Type != want {
			return nil, nil, fmt.Errorf("%w: block %d is %q, want %q", ErrHandoff, n+1, blk.Type, want)
		}
		enc := pem.EncodeToMemory(blk)
		switch n {
		case 0:
			id.Key, err = ParsePrivateKey(enc)
		case 1:
			id.Bundle, err = ParseBundlePEM(enc)
		default:
			var p *PublicKey
			if p, err = ParsePublicKeyPEM(enc); err == nil {
				roots = append(roots, p)
			}
		}
		clear(enc)
		clear(blk.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: block %d: %w", ErrHandoff, n+1, err)
		}
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, nil, fmt.Errorf("%w: data that is not a PEM block", ErrHandoff)
	}
	if id.Key == nil || id.Bundle == nil || len(roots) == 0 {
		return nil, nil, fmt.Errorf("%w: want a private key, a bundle and at least one root key", ErrHandoff)
	}
	if err := id.Check(); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrHandoff, err)
	}
	return &id, roots, nil
}
