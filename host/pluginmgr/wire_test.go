package pluginmgr

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/internal/testutil"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/identity"
	"github.com/dsmil/l7/sdk/session"
	"github.com/hashicorp/go-hclog"
)

type tap struct {
	net.Conn
	mu      *sync.Mutex
	out, in *bytes.Buffer
}

func (c *tap) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.out.Write(p)
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *tap) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.in.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

// wholeFrames splits b into DBE frames by their headers (sealed frames,
// whose bodies only the channel can open, included) and counts them by
// type. It fails unless b is a whole number of frames, and unless every
// frame after the handshake is sealed.
func wholeFrames(t *testing.T, b []byte) map[dbe.MsgType]int {
	t.Helper()
	n := map[dbe.MsgType]int{}
	for off := 0; off < len(b); {
		if len(b)-off < dbe.HeaderSize || b[off] != 'D' || b[off+1] != 'B' || b[off+2] != 1 {
			t.Fatalf("no DBE header at byte %d (after %v)", off, n)
		}
		typ := dbe.MsgType(b[off+3])
		flags := binary.BigEndian.Uint16(b[off+4:])
		size := dbe.HeaderSize + int(binary.BigEndian.Uint32(b[off+8:])) + int(binary.BigEndian.Uint32(b[off+12:]))
		if off+size > len(b) {
			t.Fatalf("frame at byte %d runs past the capture (after %v)", off, n)
		}
		if typ != dbe.MsgHandshake && flags&uint16(session.FlagSealed) == 0 {
			t.Fatalf("%s frame at byte %d is not sealed", typ, off)
		}
		n[typ]++
		off += size
	}
	return n
}

// TestEveryByteIsDBE captures both directions of a live plugin socket
// carrying gRPC control calls and chat requests, and checks that each
// parses as a whole number of DBE frames.
func TestEveryByteIsDBE(t *testing.T) {
	var mu sync.Mutex
	var toPlugin, fromPlugin bytes.Buffer
	p := echoPlugin(t, "echo", 1, "")
	var logs testutil.SyncBuffer
	m := New(Config{Plugins: []*config.Plugin{p}, Logger: hclog.New(&hclog.LoggerOptions{Output: &logs}),
		WrapConn: func(id string, c net.Conn) net.Conn {
			return &tap{Conn: c, mu: &mu, out: &toPlugin, in: &fromPlugin}
		}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m.Start(ctx)
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := m.WaitReady(wctx); err != nil || m.Snapshots()[0].State != StateRunning {
		t.Fatalf("%v %+v\n%s", err, m.Snapshots(), logs.String())
	}
	r, _ := router.New(router.Config{Registry: m})
	for _, stream := range []bool{false, true} {
		if err := r.Route(ctx, chat("echo", "every byte is a frame and secret", stream), func(*dbe.Frame) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond) // a few health checks
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	m.Shutdown(sctx)

	mu.Lock()
	defer mu.Unlock()
	out := wholeFrames(t, toPlugin.Bytes())
	in := wholeFrames(t, fromPlugin.Bytes())
	for _, capture := range [][]byte{toPlugin.Bytes(), fromPlugin.Bytes()} {
		if bytes.Contains(capture, []byte("secret")) {
			t.Error("prompt text visible on the plugin socket: frames are not encrypted")
		}
	}
	if out[dbe.MsgHandshake] != 2 || in[dbe.MsgHandshake] != 1 {
		t.Errorf("handshake frames: host sent %d, plugin sent %d", out[dbe.MsgHandshake], in[dbe.MsgHandshake])
	}
	if out[dbe.MsgTunnelData] == 0 || in[dbe.MsgTunnelData] == 0 {
		t.Errorf("no tunnelled gRPC: %v / %v", out, in)
	}
	if out[dbe.MsgChatReq] != 2 || in[dbe.MsgChatResp] != 1 || in[dbe.MsgChatChunk] == 0 {
		t.Errorf("data path frames: host sent %v, plugin sent %v", out, in)
	}
	t.Logf("host→plugin %d bytes %v; plugin→host %d bytes %v", toPlugin.Len(), out, fromPlugin.Len(), in)
}

// TestPluginRefusesStrangers: the live plugin socket refuses a peer that
// speaks plain HTTP/2 and one that does not hold the session key.
func TestPluginRefusesStrangers(t *testing.T) {
	var logs testutil.SyncBuffer
	m := startManager(t, &logs, echoPlugin(t, "echo", 1, ""))
	addr := m.Instances()[0].socketAddr()
	if addr == "" {
		t.Fatal("no socket address")
	}

	// Plain HTTP/2: the client preface and a SETTINGS frame.
	c, err := net.Dial("unix", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	reply, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("HTTP/2 peer: %v", err)
	}
	if f, err := dbe.Decode(reply); err != nil || f.Type != dbe.MsgClose {
		t.Fatalf("HTTP/2 peer got %q (%v), want one CLOSE frame then EOF", reply, err)
	}

	// The right protocol from a peer whose identity no trusted root signed.
	c2, err := net.Dial("unix", addr)
	if err != nil {
		t.Fatal(err)
	}
	stranger, _, err := EphemeralIdentity("dsmil-host")
	if err != nil {
		t.Fatal(err)
	}
	_, err = (&session.PQ{Auth: session.Auth{Identity: stranger, Roots: []*identity.PublicKey{stranger.Key.Public()},
		PeerName: "echo"}, Timeout: 5 * time.Second}).Client(context.Background(), c2)
	if err == nil {
		t.Fatal("a peer with an identity from another root got a session")
	}
	// The plugin keeps serving its host.
	r, _ := router.New(router.Config{Registry: m})
	if err := r.Route(context.Background(), chat("echo", "still here", false), func(*dbe.Frame) error { return nil }); err != nil {
		t.Fatalf("after strangers: %v", err)
	}
}
