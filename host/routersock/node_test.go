package routersock

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
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

// TestNodePeer: a peer with role "node" (a router host) gets this host's
// instances before each HEALTH answer and is cut off when it falls silent
// for NodeIdleTimeout; a "client" peer gets neither.
func TestNodePeer(t *testing.T) {
	root, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	roots := []*identity.PublicKey{root.Public()}
	sid, _ := identity.Issue(root, "node-b", "host", time.Now(), time.Hour)
	r := routertest.NewRouter(t, routertest.Registry{}, router.Config{})
	path := filepath.Join(t.TempDir(), "x.sock")
	ep := &Endpoint{Router: r, Path: path, NodeIdleTimeout: 300 * time.Millisecond,
		Handshaker: &session.PQ{Auth: session.Auth{Identity: sid, Roots: roots, PeerRoles: []string{"node", "client"}}},
		Instances: func() []*l7v1.L7ModelStatus {
			return []*l7v1.L7ModelStatus{{Plugin: "echo#0", Healthy: true}, {Plugin: "echo#1"}}
		}}
	if err := ep.Listen(); err != nil {
		t.Fatal(err)
	}
	go ep.Serve(context.Background())
	t.Cleanup(func() { ep.Close() })
	dial := func(role string) {
		cid, _ := identity.Issue(root, "peer", role, time.Now(), time.Hour)
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		ch, err := (&session.PQ{Auth: session.Auth{Identity: cid, Roots: roots}}).Client(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		if err := ch.WriteFrame(&dbe.Frame{Type: dbe.MsgHealth, CorrelationID: 1}); err != nil {
			t.Fatal(err)
		}
		var got []string
		for {
			f, err := ch.ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			var st l7v1.L7ModelStatus
			proto.Unmarshal(f.Payload, &st)
			if f.CorrelationID == 1 {
				if st.GetPlugin() != "router" || f.Flags&dbe.FlagEndStream == 0 {
					t.Fatalf("HEALTH answer %v %v", f, &st)
				}
				break
			}
			got = append(got, st.GetPlugin())
		}
		want := 0
		if role == "node" {
			want = 2
		}
		if len(got) != want || (want == 2 && (got[0] != "echo#0" || got[1] != "echo#1")) {
			t.Fatalf("%s peer: instance reports %v", role, got)
		}
		// Silent from now on: a node peer is cut off, a client is not.
		start := time.Now()
		f, err := ch.ReadFrame()
		if err == nil && f.Type != dbe.MsgClose {
			t.Fatalf("silent node peer: got %v", f)
		}
		if took := time.Since(start); took < 250*time.Millisecond || took > 2*time.Second {
			t.Fatalf("silent node peer cut off after %v, want about 300ms", took)
		}
	}
	dial("node")
	done := make(chan struct{})
	go func() {
		defer close(done)
		cid, _ := identity.Issue(root, "peer", "client", time.Now(), time.Hour)
		c, _ := net.Dial("unix", path)
		defer c.Close()
		ch, err := (&session.PQ{Auth: session.Auth{Identity: cid, Roots: roots}}).Client(context.Background(), c)
		if err != nil {
			t.Error(err)
			return
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := ch.ReadFrame(); err == nil {
			t.Error("a frame from nowhere")
		} else if !errors.Is(err, os.ErrDeadlineExceeded) {
			// The connection must still be open after 3× the idle timeout.
			t.Errorf("a silent client was cut off: %v", err)
		}
	}()
	<-done
}
