package sdktest

import (
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	"github.com/dsmil/l7/sdk/session"
)

// PlainPair connects a mux.Client to a mux.Server running h over a real
// Unix socket with plain (unauthenticated, unsealed) frames: for tests of
// multiplexing and routing, not of the handshake. The client's end is
// named clientName, the server's serverName. Everything is closed when the
// test ends.
func PlainPair(t testing.TB, h mux.Handler, clientName, serverName string) (*mux.Client, *mux.Server, *session.Session, *session.Session) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pair.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvCh := make(chan session.Channel, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvCh <- nil
			return
		}
		srvCh <- session.NewPlainChannel(c, 0, session.Peer{Name: clientName})
	}()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	cs := session.New(session.NewPlainChannel(c, 0, session.Peer{Name: serverName}), nil)
	client := mux.NewClient(cs)
	cs.SetHandler(func(f *dbe.Frame, _ error) { client.Dispatch(f) })
	go func() { <-cs.Done(); client.Close(cs.Err()) }()
	ss := session.New(<-srvCh, nil)
	server := mux.NewServer(ss, h)
	ss.SetHandler(server.Dispatch)
	t.Cleanup(func() { cs.Close(); ss.Close(); server.Close(time.Second) })
	return client, server, cs, ss
}
