package session

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/identity"
)

// FuzzPQHandshake feeds arbitrary bytes to the three handshake message
// parsers and to both state machines at the step that reads them. Nothing
// panics; whatever parses re-encodes to the same bytes (the encodings are
// canonical); no state machine accepts a message it cannot have been sent.
// The seeds are whole 12–14 KB messages: fuzz with -fuzzminimizetime 1x, or
// the engine spends minutes minimizing each new input.
func FuzzPQHandshake(f *testing.F) {
	p := newPKI(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := parseClientHello(b); err == nil {
			if !bytes.Equal(m.marshal(), b) {
				t.Fatalf("ClientHello does not round-trip")
			}
			// The server may answer any well-formed hello; it must not panic.
			if _, _, err := p.server().serverHello(b); err != nil && !errors.Is(err, ErrAuth) {
				t.Fatalf("server: unwrapped error %v", err)
			}
		}
		// A ServerHello or ClientFinish that parses must still be refused by
		// a handshake it was not made for (other ephemeral keys).
		if m, err := parseServerHello(b); err == nil {
			enc := appendVec16(m.marshalBody(), m.sig)
			if !bytes.Equal(append(enc, m.mac...), b) {
				t.Fatalf("ServerHello does not round-trip")
			}
			cs, _, err := p.client().newClient()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cs.serverHello(b); err == nil {
				t.Fatal("client accepted a ServerHello made for another handshake")
			}
		}
		if m, err := parseClientFinish(b); err == nil {
			enc := appendVec16(m.marshalBody(), m.sig)
			if !bytes.Equal(append(enc, m.mac...), b) {
				t.Fatalf("ClientFinish does not round-trip")
			}
			_, ch, err := p.client().newClient()
			if err != nil {
				t.Fatal(err)
			}
			ss, _, err := p.server().serverHello(ch)
			if err != nil {
				t.Fatal(err)
			}
			if err := ss.clientFinish(b); err == nil {
				t.Fatal("server accepted a ClientFinish made for another handshake")
			}
		}
	})
}

// FuzzSealedReader reads arbitrary streams through a SealedChannel (the
// receive key of the sealed-frame vector, key update every three frames, so
// the vector's four frames read back). Nothing panics or over-allocates,
// every error is final except an in-sync *dbe.FrameError, and any frame it
// returns is a valid DBE frame.
func FuzzSealedReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		sc := &streamConn{r: bytes.NewReader(b)}
		// The receive key is the sealed-frame vector's, so the seeds open.
		ch := newSealedChannel(sc, nil, testSecretA, label("traffic secret", 48), &identity.Bundle{}, 1<<20, 3, RekeyBytes)
		for range 64 {
			fr, err := ch.ReadFrame()
			var fe *dbe.FrameError
			switch {
			case err == nil:
				if _, merr := fr.MarshalBinary(); merr != nil {
					t.Fatalf("returned an invalid frame: %v", merr)
				}
				continue
			case errors.As(err, &fe):
				continue
			case err == io.EOF || errors.Is(err, ErrSealed):
				if err != io.EOF && !sc.closed {
					t.Fatal("fatal error left the connection open")
				}
				return
			default:
				t.Fatalf("unexpected error %v", err)
			}
		}
	})
}
