package session

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
)

// TestTunnelRules (docs/dbe.md §8): one tunnel, TUNNEL_DATA on id 0, open
// without a message; TUNNEL_DATA on another id is not tunnel data; a
// session that carries no tunnel (DropTunnel) queues nothing; closing the
// tunnel closes the connection.
func TestTunnelRules(t *testing.T) {
	for _, drop := range []bool{false, true} {
		a, b := net.Pipe()
		got := make(chan *dbe.Frame, 10)
		cs := New(NewPlainChannel(a, 0, Peer{}), nil)
		ss := NewIdle(NewPlainChannel(b, 0, Peer{}))
		if drop {
			ss.DropTunnel()
		}
		ss.Start(func(f *dbe.Frame, _ error) { got <- f })
		go func() {
			_ = cs.Send(&dbe.Frame{Type: dbe.MsgTunnelData, CorrelationID: 3, Payload: []byte("zzz")})
			_, _ = cs.Tunnel().Write([]byte("abc"))
			_ = cs.Send(&dbe.Frame{Type: dbe.MsgHealth, CorrelationID: 9})
		}()
		for _, want := range []dbe.MsgType{dbe.MsgTunnelData, dbe.MsgHealth} {
			select {
			case f := <-got:
				if f.Type != want {
					t.Fatalf("handler got %v, want %v", f.Type, want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no frame")
			}
		}
		_ = ss.Tunnel().SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		buf := make([]byte, 10)
		n, err := ss.Tunnel().Read(buf)
		if drop {
			if n != 0 || err == nil {
				t.Fatalf("DropTunnel: the tunnel queued %q (%v)", buf[:n], err)
			}
		} else if string(buf[:n]) != "abc" || err != nil {
			t.Fatalf("tunnel read %q %v, want only id 0's bytes", buf[:n], err)
		}
		_ = cs.Tunnel().Close()
		select {
		case <-ss.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("closing the tunnel did not close the connection")
		}
		if _, err := ss.Tunnel().Read(buf); err != io.EOF {
			t.Fatalf("tunnel after close: %v", err)
		}
	}
}
