package peers

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/identity"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"github.com/dsmil/l7/sdk/session"
	"google.golang.org/protobuf/proto"
)

// fakeNode is a worker node's cross-node listener, by hand: real TCP, TLS
// and identity binding; it reports one instance, echo#0, and holds every
// request it gets without answering. silent makes it stop answering
// anything (and stop reading) while keeping its connections open: a
// half-open peer.
type fakeNode struct {
	addr   string
	silent atomic.Bool
	conns  atomic.Int32
	mu     sync.Mutex
	reqs   int
}

func newFakeNode(t *testing.T, root *identity.PrivateKey, roots []*identity.PublicKey) *fakeNode {
	t.Helper()
	id, err := identity.Issue(root, "node-b", "host", time.Now().Add(-time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := session.EphemeralCertificate("node-b")
	if err != nil {
		t.Fatal(err)
	}
	hs := &session.TLS{Auth: session.Auth{Identity: id, Roots: roots, PeerRoles: []string{"node"}}, Config: session.TLSConfig(cert, nil)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	n := &fakeNode{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				ch, err := hs.Server(context.Background(), c)
				if err != nil {
					return
				}
				n.conns.Add(1)
				s := session.New(ch, nil)
				t.Cleanup(func() { s.Close() })
				s.SetHandler(func(f *dbe.Frame, _ error) {
					for n.silent.Load() {
						time.Sleep(10 * time.Millisecond) // stops reading: half-open
					}
					switch f.Type {
					case dbe.MsgHealth:
						b, _ := proto.Marshal(&l7v1.L7ModelStatus{Plugin: "echo#0", DeviceId: 47, Profiles: []string{"echo"}, Healthy: true, HealthMessage: "running"})
						_ = s.Send(&dbe.Frame{Type: dbe.MsgModelStatus, Payload: b})
						_ = s.Send(&dbe.Frame{Type: dbe.MsgModelStatus, Flags: dbe.FlagEndStream, CorrelationID: f.CorrelationID})
					case dbe.MsgChatReq:
						n.mu.Lock()
						n.reqs++
						n.mu.Unlock()
						_ = s.Send(&dbe.Frame{Type: dbe.MsgChatChunk, CorrelationID: f.CorrelationID})
					}
				})
			}()
		}
	}()
	return n
}

// newSet is a Set with one peer, node-b at addr, over an empty local registry.
func newSet(t *testing.T, addr string, root *identity.PrivateKey, roots []*identity.PublicKey, maxInFlight int) *Set {
	t.Helper()
	nodeID, err := identity.Issue(root, "router-a", "node", time.Now().Add(-time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p := &config.Peer{Name: "node-b", Address: addr, Identity: "node-b", Profiles: []string{"echo"},
		Heartbeat: 50 * time.Millisecond, DownAfter: 300 * time.Millisecond, ReconnectBackoff: 50 * time.Millisecond,
		ReconnectMax: 200 * time.Millisecond, DialTimeout: time.Second, MaxInFlight: maxInFlight}
	s, err := New(emptyRegistry{}, Config{Peers: []*config.Peer{p}, Identity: nodeID,
		LoadRoots: func([]string) ([]*identity.PublicKey, error) { return roots, nil }})
	if err != nil {
		t.Fatal(err)
	}
	s.Start(context.Background())
	t.Cleanup(s.Close)
	return s
}

type emptyRegistry struct{}

func (emptyRegistry) Workers(string) ([]router.Worker, bool) { return nil, false }

func testRoot(t *testing.T) (*identity.PrivateKey, []*identity.PublicKey) {
	t.Helper()
	root, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return root, []*identity.PublicKey{root.Public()}
}

// remoteFor waits for the node's instance to be a healthy worker of echo.
func remoteFor(t *testing.T, s *Set) *Remote {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ws, known := s.Workers("echo")
		if !known {
			t.Fatal("echo is not known although a peer lists it")
		}
		if len(ws) == 1 && ws[0].Healthy() {
			return ws[0].(*Remote)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no healthy remote worker: %v; link %+v", ws, s.Links()[0].State())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func chat() *dbe.Frame {
	f := &dbe.Frame{Type: dbe.MsgChatReq}
	f.SetProfile("echo")
	return f
}

// TestHalfOpenPeer: a node that stops answering (and reading) mid-stream
// holds nothing: the request fails within down_after plus a tick, the
// node's instance leaves selection, and the link comes back (a new
// connection) once the node answers again.
func TestHalfOpenPeer(t *testing.T) {
	root, roots := testRoot(t)
	node := newFakeNode(t, root, roots)
	s := newSet(t, node.addr, root, roots, 16)
	r := remoteFor(t, s)
	if r.ID() != "node-b/echo#0" || r.Node() != "node-b" || r.DeviceID() != 47 {
		t.Fatalf("remote %s %s %d", r.ID(), r.Node(), r.DeviceID())
	}
	done := make(chan error, 1)
	var chunks atomic.Int32
	r.Go(chat(), 30*time.Second, func(f *dbe.Frame, err error) {
		if err != nil {
			done <- err
			return
		}
		chunks.Add(1)
		node.silent.Store(true) // after the first token: the peer goes half-open
	})
	var silentAt time.Time
	for silentAt.IsZero() {
		if node.silent.Load() {
			silentAt = time.Now()
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-done:
		if took := time.Since(silentAt); took > 600*time.Millisecond {
			t.Fatalf("failed after %v, want within down_after (300ms) and a tick", took)
		}
		if chunks.Load() != 1 {
			t.Fatalf("%d chunks", chunks.Load())
		}
		t.Logf("half-open peer: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("a request on a half-open link was never failed")
	}
	if r.Healthy() || s.Links()[0].Up() {
		t.Fatal("the node is still up after its link was cut")
	}
	var me *mux.Error
	r.Go(chat(), time.Second, func(_ *dbe.Frame, err error) {
		if !errors.As(err, &me) || me.Code != dbe.CodeNoWorkerAvailable {
			t.Errorf("a call on a down link: %v", err)
		}
	})
	node.silent.Store(false)
	deadline := time.Now().Add(5 * time.Second)
	for s.Links()[0].State().Connects < 2 || !r.Healthy() {
		if time.Now().After(deadline) {
			t.Fatalf("the link did not come back: %+v", s.Links()[0].State())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLinkCap: a link holds at most max_in_flight requests; then its
// instances count as fully loaded and a further call is OVERLOADED at once.
func TestLinkCap(t *testing.T) {
	root, roots := testRoot(t)
	node := newFakeNode(t, root, roots)
	s := newSet(t, node.addr, root, roots, 2)
	r := remoteFor(t, s)
	for range 2 {
		r.Go(chat(), 10*time.Second, func(*dbe.Frame, error) {})
	}
	if l := r.Load(); l < 1 {
		t.Fatalf("load %v with the link full", l)
	}
	got := make(chan error, 1)
	r.Go(chat(), 10*time.Second, func(_ *dbe.Frame, err error) { got <- err })
	if err := <-got; mux.CodeOf(err) != dbe.CodeOverloaded {
		t.Fatalf("third call on a link capped at 2: %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	node.mu.Lock()
	defer node.mu.Unlock()
	if node.reqs != 2 {
		t.Fatalf("the node got %d requests, want 2", node.reqs)
	}
}

// TestWrongNode: a node whose bundle carries another name than the peer
// block expects is refused, and its instances never join selection.
func TestWrongNode(t *testing.T) {
	root, roots := testRoot(t)
	node := newFakeNode(t, root, roots)
	nodeID, _ := identity.Issue(root, "router-a", "node", time.Now().Add(-time.Minute), time.Hour)
	p := &config.Peer{Name: "node-c", Address: node.addr, Identity: "node-c", Profiles: []string{"echo"},
		Heartbeat: 50 * time.Millisecond, DownAfter: 300 * time.Millisecond, ReconnectBackoff: 50 * time.Millisecond,
		ReconnectMax: 100 * time.Millisecond, DialTimeout: time.Second, MaxInFlight: 4}
	s, err := New(emptyRegistry{}, Config{Peers: []*config.Peer{p}, Identity: nodeID,
		LoadRoots: func([]string) ([]*identity.PublicKey, error) { return roots, nil }})
	if err != nil {
		t.Fatal(err)
	}
	s.Start(context.Background())
	defer s.Close()
	time.Sleep(400 * time.Millisecond)
	st := s.Links()[0].State()
	if st.Up || st.Connects != 0 || st.LastErr == "" {
		t.Fatalf("link to a node with the wrong name: %+v", st)
	}
	if ws, known := s.Workers("echo"); !known || len(ws) != 0 {
		t.Fatalf("workers %v %v", ws, known)
	}
	if _, err := New(emptyRegistry{}, Config{Peers: []*config.Peer{p}, Identity: node0(t, root)}); err == nil {
		t.Fatal("New accepted a non-node identity")
	}
}

func node0(t *testing.T, root *identity.PrivateKey) *identity.Identity {
	id, err := identity.Issue(root, "router-a", "host", time.Now().Add(-time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
