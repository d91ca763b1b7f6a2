package session

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
)

// unixPair returns both ends of a real Unix-socket connection.
func unixPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// bothEnds runs a server's and a client's handshake at once, 10 seconds
// at most, and returns the client's and the server's channel and error.
// The channels close when the test ends.
func bothEnds(t *testing.T, server, client func(context.Context) (Channel, error)) (Channel, Channel, error, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type res struct {
		ch  Channel
		err error
	}
	srv := make(chan res, 1)
	go func() {
		ch, err := server(ctx)
		srv <- res{ch, err}
	}()
	cch, cerr := client(ctx)
	r := <-srv
	t.Cleanup(func() {
		if cch != nil {
			cch.Close()
		}
		if r.ch != nil {
			r.ch.Close()
		}
	})
	return cch, r.ch, cerr, r.err
}

// handshake connects a PQ client and server over a Unix socket.
func handshake(t *testing.T) (Channel, Channel, error, error) {
	t.Helper()
	p := newPKI(t)
	return pqHandshake(t, p.client(), p.server(), nil, nil)
}

// TestSessionTunnelAndFrames: tunnel bytes and request frames share one
// session without mixing.
func TestSessionTunnelAndFrames(t *testing.T) {
	cch, sch, cerr, serr := handshake(t)
	if cerr != nil || serr != nil {
		t.Fatal(cerr, serr)
	}
	got := make(chan *dbe.Frame, 10)
	cs := New(cch, nil)
	ss := New(sch, func(f *dbe.Frame, bad error) { got <- f })
	defer cs.Close()
	defer ss.Close()
	tunnelThenFrame(t, cs, ss, got, 1000000) // 1 MB, several tunnel frames
	if _, err := ss.Tunnel().Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("tunnel read after close: %v", err)
	}
}

// tunnelThenFrame writes n bytes into cs's tunnel and then sends a HEALTH
// frame; it checks that ss's tunnel reads those bytes whole and that got,
// which ss's handler feeds, receives the frame. Then it closes cs and waits
// for ss to see the close.
func tunnelThenFrame(t *testing.T, cs, ss *Session, got <-chan *dbe.Frame, n int) {
	t.Helper()
	payload := bytes.Repeat([]byte("0123456789"), n/10)
	go func() {
		_, _ = cs.Tunnel().Write(payload)
		_ = cs.Send(&dbe.Frame{Type: dbe.MsgHealth, CorrelationID: 77})
	}()
	buf := make([]byte, len(payload))
	if _, err := io.ReadFull(ss.Tunnel(), buf); err != nil || !bytes.Equal(buf, payload) {
		t.Fatalf("tunnel: %v", err)
	}
	select {
	case f := <-got:
		if f.CorrelationID != 77 {
			t.Fatalf("frame %v", f)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no frame")
	}
	cs.Close()
	select {
	case <-ss.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("server session did not see the close")
	}
}

func TestTunnelReadDeadline(t *testing.T) {
	cch, _, cerr, serr := handshake(t)
	if cerr != nil || serr != nil {
		t.Fatal(cerr, serr)
	}
	s := New(cch, nil)
	defer s.Close()
	_ = s.Tunnel().SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := s.Tunnel().Read(make([]byte, 1))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("err %v", err)
	}
}

// grpcHealthOverDBE runs a real gRPC server and client over Credentials
// with the given handshakers, makes n health calls, and returns the bytes
// each direction put on the Unix socket and the security level the server
// saw in the calls' AuthInfo.
func grpcHealthOverDBE(t *testing.T, server, client Handshaker, n int) (c2s, s2c []byte, level credentials.SecurityLevel) {
	t.Helper()
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, "g.sock"))
	if err != nil {
		t.Fatal(err)
	}
	var levelMu sync.Mutex
	level = -1
	srv := grpc.NewServer(grpc.Creds(&Credentials{Handshaker: server}),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if p, ok := peer.FromContext(ctx); ok {
				if ai, ok := p.AuthInfo.(AuthInfo); ok {
					levelMu.Lock()
					level = ai.SecurityLevel
					levelMu.Unlock()
				}
			}
			return h(ctx, req)
		}))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(ln)
	defer srv.Stop()

	var tapC2S, tapS2C bytes.Buffer
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, "unix", addr)
		if err != nil {
			return nil, err
		}
		return &tapConn{Conn: c, w: &tapC2S, r: &tapS2C}, nil
	}
	cc, err := grpc.NewClient("passthrough:///"+filepath.Join(dir, "g.sock"),
		grpc.WithContextDialer(dial), grpc.WithTransportCredentials(&Credentials{Handshaker: client}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range n {
		resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health: %v %v", resp, err)
		}
	}
	cc.Close()
	time.Sleep(50 * time.Millisecond)
	tapMu.Lock()
	defer tapMu.Unlock()
	levelMu.Lock()
	defer levelMu.Unlock()
	return bytes.Clone(tapC2S.Bytes()), bytes.Clone(tapS2C.Bytes()), level
}

// plainHandshaker frames a connection without authenticating anyone: the
// credentials below must then tell gRPC that nothing is protected.
type plainHandshaker struct{}

func (plainHandshaker) Client(_ context.Context, c net.Conn) (Channel, error) {
	return NewPlainChannel(c, 0, Peer{Name: "server"}), nil
}

func (plainHandshaker) Server(_ context.Context, c net.Conn) (Channel, error) {
	return NewPlainChannel(c, 0, Peer{Name: "client"}), nil
}

// TestGRPCOverDBE runs a real gRPC server and client over Credentials and
// checks that every byte on the socket is DBE frames.
func TestGRPCOverDBE(t *testing.T) {
	c2s, s2c, level := grpcHealthOverDBE(t, plainHandshaker{}, plainHandshaker{}, 20)
	if level != credentials.NoSecurity {
		t.Fatalf("plain session reported %v to gRPC, want NoSecurity", level)
	}
	for name, b := range map[string][]byte{"client→server": c2s, "server→client": s2c} {
		n, err := countFrames(b)
		if err != nil || n < 3 {
			t.Fatalf("%s: %d frames, %v", name, n, err)
		}
	}
}

// countFrames checks that b is a whole number of DBE frames.
func countFrames(b []byte) (int, error) {
	rd := dbe.NewReader(bytes.NewReader(b), 0)
	n := 0
	for {
		_, err := rd.ReadFrame()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
	}
}

type tapConn struct {
	net.Conn
	w, r *bytes.Buffer
}

var tapMu sync.Mutex

func (c *tapConn) Write(p []byte) (int, error) {
	tapMu.Lock()
	c.w.Write(p)
	tapMu.Unlock()
	return c.Conn.Write(p)
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	tapMu.Lock()
	c.r.Write(p[:n])
	tapMu.Unlock()
	return n, err
}
