package routersock

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/host/router/routertest"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	"github.com/dsmil/l7/sdk/session"
)

func startEndpoint(t testing.TB, r *router.Router) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "router.sock")
	ep := &Endpoint{Router: r, Path: path}
	if err := ep.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() {
		defer close(served)
		ep.Serve(ctx)
	}()
	// Serve returns first (the cancel closes its listener), then Close
	// ends the connections: the two never run at once (-race found the
	// cleanup racing a Serve that had just started).
	t.Cleanup(func() {
		cancel()
		<-served
		ep.Close()
	})
	return path
}

// dialClient connects a mux.Client to the endpoint.
func dialClient(t testing.TB, path string) (*mux.Client, *session.Session) {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	s := session.New(session.NewPlainChannel(c, 0, session.Peer{}), nil)
	cl := mux.NewClient(s)
	s.SetHandler(func(f *dbe.Frame, _ error) { cl.Dispatch(f) })
	go func() { <-s.Done(); cl.Close(s.Err()) }()
	t.Cleanup(func() { s.Close() })
	return cl, s
}

func TestEndpoint(t *testing.T) {
	w := routertest.NewWorker(t, "echo", routertest.EchoHandler)
	r := routertest.NewRouter(t, routertest.Registry{"echo": {w}}, router.Config{})
	path := startEndpoint(t, r)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode %v %v", fi.Mode(), err)
	}
	cl, _ := dialClient(t, path)
	var got []byte
	err := cl.Call(context.Background(), routertest.ChatReq("echo"), func(f *dbe.Frame) error {
		got = append(got, f.Payload...)
		return nil
	})
	if err != nil || string(got) != "hello!" {
		t.Fatalf("%v %q", err, got)
	}
	// HEALTH answers with the router's status.
	var st *dbe.Frame
	if err := cl.Call(context.Background(), &dbe.Frame{Type: dbe.MsgHealth}, func(f *dbe.Frame) error { st = f; return nil }); err != nil || st.Type != dbe.MsgModelStatus {
		t.Fatalf("health: %v %v", st, err)
	}
	// A policy denial arrives as an ERROR.
	req := routertest.ChatReq("echo")
	req.SetClassification(dbe.Exec)
	err = cl.Call(context.Background(), req, func(*dbe.Frame) error { return nil })
	if mux.CodeOf(err) != dbe.CodePolicyDenied {
		t.Fatalf("exec: %v", err)
	}
}

// TestEndpointMalformed: a frame with a bad body gets an ERROR and the
// connection goes on; garbage closes that connection only.
func TestEndpointMalformed(t *testing.T) {
	w := routertest.NewWorker(t, "echo", routertest.EchoHandler)
	r := routertest.NewRouter(t, routertest.Registry{"echo": {w}}, router.Config{})
	path := startEndpoint(t, r)
	good, _ := dialClient(t, path)

	raw, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	bad, _ := (&dbe.Frame{Type: dbe.MsgChatReq, CorrelationID: 9, TLVs: []dbe.TLV{{Type: dbe.TLVTenantID, Value: []byte("T")}}}).MarshalBinary()
	bad[dbe.HeaderSize] = 0xC0 // unknown critical TLV 0xC001
	if _, err := raw.Write(bad); err != nil {
		t.Fatal(err)
	}
	_ = raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	rd := dbe.NewReader(raw, 0)
	f, err := rd.ReadFrame()
	if err != nil || f.Type != dbe.MsgError || f.CorrelationID != 9 || mux.ParseError(f).Code != dbe.CodeMalformedFrame {
		t.Fatalf("reply to a malformed frame: %v %v", f, err)
	}
	// The same connection still serves.
	req := routertest.ChatReq("echo")
	req.CorrelationID = 10
	b, _ := req.MarshalBinary()
	raw.Write(b)
	for {
		f, err = rd.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if f.Flags&dbe.FlagEndStream != 0 {
			break
		}
	}
	if f.CorrelationID != 10 || f.Type != dbe.MsgChatChunk {
		t.Fatalf("after the malformed frame: %v", f)
	}
	// Garbage: the router closes this connection...
	raw.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	if _, err := io.ReadAll(raw); err != nil {
		t.Fatalf("read to close: %v", err)
	}
	// ...and keeps serving everyone else.
	if err := good.Call(context.Background(), routertest.ChatReq("echo"), func(*dbe.Frame) error { return nil }); err != nil {
		t.Fatalf("other client after garbage: %v", err)
	}
}

func TestEndpointRefusesLiveSocket(t *testing.T) {
	r := routertest.NewRouter(t, routertest.Registry{}, router.Config{})
	path := startEndpoint(t, r)
	if err := (&Endpoint{Router: r, Path: path}).Listen(); err == nil {
		t.Fatal("took over a live socket")
	}
	nf := filepath.Join(t.TempDir(), "file")
	os.WriteFile(nf, nil, 0o600)
	if err := (&Endpoint{Router: r, Path: nf}).Listen(); err == nil {
		t.Fatal("replaced a regular file")
	}
}

// TestEndpointSlowReader: a client that stops reading its responses is cut
// off; the worker and every other client go on (the worker's read loop
// never waits for one client).
func TestEndpointSlowReader(t *testing.T) {
	big := make([]byte, 32<<10)
	w := routertest.NewWorker(t, "echo", mux.HandlerFunc(func(ctx context.Context, req *dbe.Frame, rw *mux.ResponseWriter) {
		if string(req.Payload) == "flood" {
			for range 400 { // 12.5 MiB: more than a writer's pending limit
				if ctx.Err() != nil {
					return
				}
				_ = rw.Send(&dbe.Frame{Type: dbe.MsgChatChunk, Payload: big})
			}
		}
		_ = rw.Send(&dbe.Frame{Type: dbe.MsgChatChunk, Flags: dbe.FlagEndStream})
	}))
	r := routertest.NewRouter(t, routertest.Registry{"echo": {w}}, router.Config{RequestTimeout: 5 * time.Second})
	path := startEndpoint(t, r)
	good, _ := dialClient(t, path)

	slow, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	flood := routertest.ChatReq("echo")
	flood.Payload = []byte("flood")
	flood.CorrelationID = 1
	b, _ := flood.MarshalBinary()
	if _, err := slow.Write(b); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // let the flood fill the buffers
	for i := range 20 {
		// The deadline bounds a hang (a router that blocked every client on
		// the one that does not read would never answer), not speed: the
		// good client's answers share the worker's connection with the
		// flood's frames until the slow client is hung up on, and under
		// -race on a loaded CI machine that took more than 3 s once.
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		err := good.Call(ctx, routertest.ChatReq("echo"), func(*dbe.Frame) error { return nil })
		cancel()
		if err != nil {
			t.Fatalf("call %d while another client is not reading: %v", i, err)
		}
	}
	// The router hung up on the client that does not read.
	slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, slow); err != nil {
		t.Fatalf("the slow client's connection was not closed: %v", err)
	}
}

// TestEndpointCancelAnswered: a CANCEL ends the request with ERROR
// CANCELLED, as docs/dbe.md §8 promises.
func TestEndpointCancelAnswered(t *testing.T) {
	w := routertest.NewWorker(t, "slow", routertest.Hang(nil))
	r := routertest.NewRouter(t, routertest.Registry{"slow": {w}}, router.Config{})
	path := startEndpoint(t, r)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := routertest.ChatReq("slow")
	req.CorrelationID = 5
	b, _ := req.MarshalBinary()
	c.Write(b)
	time.Sleep(50 * time.Millisecond)
	cb, _ := (&dbe.Frame{Type: dbe.MsgCancel, CorrelationID: 5}).MarshalBinary()
	c.Write(cb)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := dbe.NewReader(c, 0).ReadFrame()
	if err != nil || f.Type != dbe.MsgError || f.CorrelationID != 5 || f.Flags&dbe.FlagEndStream == 0 ||
		mux.ParseError(f).Code != dbe.CodeCancelled {
		t.Fatalf("after CANCEL: %v %v", f, err)
	}
	// Correlation id 0 is the connection's, never a request's.
	req0 := routertest.ChatReq("slow")
	b0, _ := req0.MarshalBinary()
	c.Write(b0)
	f, err = dbe.NewReader(c, 0).ReadFrame()
	if err != nil || f.Type != dbe.MsgError || mux.ParseError(f).Code != dbe.CodeInvalidRequest {
		t.Fatalf("request on correlation id 0: %v %v", f, err)
	}
}

// TestEndpointMaxInFlight: a connection with MaxInFlight requests in
// flight gets OVERLOADED for the next one at once (nothing reaches the
// worker), another connection is not affected, and the connection is
// served again once a request ends.
func TestEndpointMaxInFlight(t *testing.T) {
	release := make(chan struct{})
	w := routertest.NewWorker(t, "slow", mux.HandlerFunc(func(ctx context.Context, req *dbe.Frame, rw *mux.ResponseWriter) {
		select {
		case <-release:
		case <-ctx.Done():
			return
		}
		_ = rw.Send(&dbe.Frame{Type: dbe.MsgChatResp, Flags: dbe.FlagEndStream, Payload: []byte("done")})
	}))
	obs := &routertest.Observer{}
	r := routertest.NewRouter(t, routertest.Registry{"slow": {w}}, router.Config{Observer: obs})
	path := filepath.Join(t.TempDir(), "router.sock")
	ep := &Endpoint{Router: r, Path: path, MaxInFlight: 2}
	if err := ep.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go ep.Serve(ctx)
	t.Cleanup(func() { cancel(); ep.Close() })

	cl, _ := dialClient(t, path)
	done := make(chan error, 2)
	for range 2 {
		go func() {
			done <- cl.Call(context.Background(), routertest.ChatReq("slow"), func(*dbe.Frame) error { return nil })
		}()
	}
	for deadline := time.Now().Add(5 * time.Second); w.Calls.Load() < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the worker got %d requests, want 2", w.Calls.Load())
		}
	}
	err := cl.Call(context.Background(), routertest.ChatReq("slow"), func(*dbe.Frame) error { return nil })
	var e *mux.Error
	if !errors.As(err, &e) || e.Code != dbe.CodeOverloaded || e.RetryAfterMS <= 0 || !strings.Contains(e.Message, "max_in_flight_per_connection") {
		t.Fatalf("third request on a connection capped at 2: %v", err)
	}
	if n := w.Calls.Load(); n != 2 {
		t.Fatalf("the refused request reached the worker (%d calls)", n)
	}
	// The refusal is counted as a request that ended OVERLOADED.
	if _, done := obs.Seen(); len(done) != 1 || done[0] != (routertest.Finished{Profile: "slow", Code: dbe.CodeOverloaded}) {
		t.Fatalf("observer records %+v, want one OVERLOADED request for profile slow", done)
	}
	// Another connection has its own allowance.
	other, _ := dialClient(t, path)
	go func() {
		done <- other.Call(context.Background(), routertest.ChatReq("slow"), func(*dbe.Frame) error { return nil })
	}()
	for deadline := time.Now().Add(5 * time.Second); w.Calls.Load() < 3; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a second connection was refused by the first one's cap")
		}
	}
	close(release)
	for range 3 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	// Once its requests ended, the first connection is served again.
	if err := cl.Call(context.Background(), routertest.ChatReq("slow"), func(*dbe.Frame) error { return nil }); err != nil {
		t.Fatalf("after the requests ended: %v", err)
	}
}
