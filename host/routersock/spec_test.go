package routersock

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/host/router/routertest"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/identity"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"github.com/dsmil/l7/sdk/session"
	"google.golang.org/protobuf/proto"
)

// Receiver rules of docs/dbe.md §8 as the router socket applies them.

// rawConn dials the endpoint without any session layer.
func rawConn(t *testing.T, path string) (net.Conn, *dbe.Reader) {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, dbe.NewReader(c, 0)
}

func send(t *testing.T, c net.Conn, f *dbe.Frame) {
	t.Helper()
	b, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// TestPlainEndpointHandshake: a plain endpoint (no security block) expects
// no handshake; a HANDSHAKE, on any correlation id, is answered with a
// plain CLOSE UNAUTHENTICATED and the connection is closed, so that a
// DSMIL-PQ1 client fails at once instead of waiting out its timeout.
func TestPlainEndpointHandshake(t *testing.T) {
	w := routertest.NewWorker(t, "echo", routertest.EchoHandler)
	r := routertest.NewRouter(t, routertest.Registry{"echo": {w}}, router.Config{})
	path := startEndpoint(t, r)

	for _, corr := range []uint64{0, 7} {
		c, rd := rawConn(t, path)
		// A plain connection starts with an ordinary frame: no handshake.
		send(t, c, &dbe.Frame{Type: dbe.MsgHealth, CorrelationID: 1})
		if f, err := rd.ReadFrame(); err != nil || f.Type != dbe.MsgModelStatus || f.CorrelationID != 1 {
			t.Fatalf("first frame HEALTH: %v %v", f, err)
		}
		send(t, c, &dbe.Frame{Type: dbe.MsgHandshake, CorrelationID: corr, Payload: []byte{1, 1, 1}})
		f, err := rd.ReadFrame()
		if err != nil || f.Type != dbe.MsgClose || f.CorrelationID != 0 {
			t.Fatalf("answer to HANDSHAKE: %v %v", f, err)
		}
		var cl l7v1.Close
		if err := proto.Unmarshal(f.Payload, &cl); err != nil || cl.GetCode() != l7v1.ErrorCode_ERROR_CODE_UNAUTHENTICATED {
			t.Fatalf("CLOSE payload %v %v", &cl, err)
		}
		if _, err := rd.ReadFrame(); !errors.Is(err, io.EOF) {
			t.Fatalf("after the CLOSE: %v, want the connection closed", err)
		}
	}

	// A DSMIL-PQ1 client learns it from its handshake, well before the
	// handshake timeout.
	root, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	id, err := identity.Issue(root, "c", "client", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = (&session.PQ{Auth: session.Auth{Identity: id, Roots: []*identity.PublicKey{root.Public()}}, Timeout: 10 * time.Second}).
		Client(context.Background(), c)
	if !errors.Is(err, session.ErrAuth) || !strings.Contains(err.Error(), "no channel security") || time.Since(start) > 5*time.Second {
		t.Fatalf("PQ client against a plain endpoint: %v after %v", err, time.Since(start))
	}
}
