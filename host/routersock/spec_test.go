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
	"github.com/dsmil/l7/sdk/mux"
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

// TestEndpointReceiverRules: a request on correlation id 0 (HEALTH
// included) is refused on id 0 and not acted on; CLOSE on any id is the
// connection's and unanswered; END_STREAM on a request is ignored; the
// L7_MODEL_STATUS answering HEALTH ends its response.
func TestEndpointReceiverRules(t *testing.T) {
	w := routertest.NewWorker(t, "echo", routertest.EchoHandler)
	r := routertest.NewRouter(t, routertest.Registry{"echo": {w}}, router.Config{})
	path := startEndpoint(t, r)
	c, rd := rawConn(t, path)
	next := func() *dbe.Frame {
		t.Helper()
		f, err := rd.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	for _, req := range []*dbe.Frame{routertest.ChatReq("echo"), {Type: dbe.MsgHealth}} {
		req.CorrelationID = 0
		send(t, c, req)
		if f := next(); f.Type != dbe.MsgError || f.CorrelationID != 0 || f.Flags&dbe.FlagEndStream == 0 ||
			mux.ParseError(f).Code != dbe.CodeInvalidRequest {
			t.Fatalf("%s on id 0 answered %v %v", req.Type, f, mux.ParseError(f))
		}
	}
	if n := w.Calls.Load(); n != 0 {
		t.Fatalf("a request on id 0 reached the worker (%d calls)", n)
	}
	// CLOSE on a non-zero id, and an ERROR: no answer, and the connection
	// goes on.
	send(t, c, &dbe.Frame{Type: dbe.MsgClose, CorrelationID: 5})
	send(t, c, mux.ErrorFrame(4, nil, mux.Errorf(dbe.CodeInternal, "stray")))
	send(t, c, mux.ErrorFrame(0, nil, mux.Errorf(dbe.CodeInternal, "stray")))
	// END_STREAM on a request: ignored, the request is served.
	req := routertest.ChatReq("echo")
	req.CorrelationID, req.Flags = 6, dbe.FlagEndStream
	send(t, c, req)
	var f *dbe.Frame
	for f = next(); f.Flags&dbe.FlagEndStream == 0; f = next() {
	}
	if f.CorrelationID != 6 || f.Type != dbe.MsgChatChunk {
		t.Fatalf("the request with END_STREAM ended with %v %v", f, mux.ParseError(f))
	}
	send(t, c, &dbe.Frame{Type: dbe.MsgHealth, CorrelationID: 7})
	if f := next(); f.Type != dbe.MsgModelStatus || f.CorrelationID != 7 || f.Flags != dbe.FlagEndStream {
		t.Fatalf("HEALTH answered %v", f)
	}
}
