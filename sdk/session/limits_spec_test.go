package session

import (
	"context"
	"errors"
	"testing"

	"github.com/dsmil/l7/sdk/dbe"
)

// TestHandshakeFrameCap (docs/dbe.md §12.4): during the handshake a
// HANDSHAKE frame is at most 65 536 bytes as a whole frame, header
// included (a payload of at most 65 512 bytes). A frame of exactly 65 536
// bytes is read (and this one then fails as a malformed ClientHello); one
// byte more is refused from its header.
func TestHandshakeFrameCap(t *testing.T) {
	p := newPKI(t)
	for _, size := range []int{65536, 65537} {
		a, b := unixPair(t)
		go func() {
			enc, _ := (&dbe.Frame{Type: dbe.MsgHandshake, Payload: make([]byte, size-dbe.HeaderSize)}).MarshalBinary()
			_, _ = a.Write(enc)
		}()
		_, err := p.server().Server(context.Background(), b)
		if !errors.Is(err, ErrAuth) || errors.Is(err, dbe.ErrFrameTooLarge) != (size > 65536) {
			t.Fatalf("a %d-byte HANDSHAKE frame: %v", size, err)
		}
	}
}
