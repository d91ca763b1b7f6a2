package sdktest

import (
	"context"
	"crypto/rand"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dsmil/l7/sdk"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/identity"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"github.com/dsmil/l7/sdk/session"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// HostName is the name the harness's host end announces in the handshake.
const HostName = "sdktest-host"

// Conn is an in-process connection to a workload, as the host sees it: a
// real Unix socket carrying one authenticated DBE session with the SDK's
// data path and Control service on the plugin end.
type Conn struct {
	// Client sends data-path requests (L7_CHAT_REQ, HEALTH, ...).
	Client *mux.Client

	// Control is the Control service client.
	Control *sdk.ControlClient

	// Session is the host end of the session.
	Session *session.Session

	// Server is the plugin end: the SDK serving the workload.
	Server *sdk.Server
}

// Pair connects w to a host end as dsmil-host would, minus the process:
// the SDK serves w's Control service and data path on a gRPC server whose
// connections are DBE sessions (the PQ handshake and sealed frames, with
// fresh identities issued as dsmil-host issues them),
// and the host end dials it over a Unix socket. Everything is torn down
// when the test ends, including a call to w's Close if it is an sdk.Closer.
func Pair(t testing.TB, w sdk.Workload) (*mux.Client, *sdk.ControlClient) {
	t.Helper()
	c := Connect(t, w)
	return c.Client, c.Control
}

// Connect is Pair returning every part of the connection.
func Connect(t testing.TB, w sdk.Workload) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Identities as dsmil-host makes them: an operator root vouches for
	// the host; the host issues the plugin's identity at spawn.
	root, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	hostID, err := identity.Issue(root, HostName, "host", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir(): a Unix socket path must stay under ~100 bytes.
	dir, err := os.MkdirTemp("", "sdktest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "p.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}

	name := "plugin"
	if info, err := w.Info(ctx); err == nil && info != nil && info.Name != "" && len(info.Name) <= 255 {
		name = info.Name
	}
	pluginID, err := identity.Issue(hostID.Key, name, sdk.PluginRole, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	logs := &testLog{t: t}
	srv := sdk.NewServer(w, hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Warn, Output: logs}))
	g := grpc.NewServer(grpc.Creds(&session.Credentials{
		Handshaker: &session.PQ{Auth: session.Auth{Identity: pluginID, Roots: []*identity.PublicKey{root.Public()},
			PeerName: HostName, PeerRoles: []string{"host"}}},
		OnSession: srv.Attach,
	}))
	srv.Register(g)
	go func() { _ = g.Serve(ln) }()

	conns := make(chan *Conn, 1)
	cc, err := grpc.NewClient("passthrough:///"+path,
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", addr)
		}),
		grpc.WithTransportCredentials(&session.Credentials{
			Handshaker: &session.PQ{Auth: session.Auth{Identity: hostID, Roots: []*identity.PublicKey{hostID.Key.Public()},
				PeerName: name, PeerRoles: []string{sdk.PluginRole}}},
			OnSession: func(s *session.Session) {
				client := mux.NewClient(s)
				s.SetHandler(func(f *dbe.Frame, _ error) { client.Dispatch(f) })
				go func() { <-s.Done(); client.Close(s.Err()) }()
				select {
				case conns <- &Conn{Client: client, Session: s}:
				default: // a reconnection: the test keeps the first session
				}
			},
		}))
	if err != nil {
		g.Stop()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = cc.Close()
		g.Stop()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("closing the workload: %v", err)
		}
	})
	t.Cleanup(logs.stop) // runs first: no logging into a finished test
	cc.Connect()
	select {
	case c := <-conns:
		c.Control = sdk.NewControlClient(cc)
		c.Server = srv
		return c
	case <-ctx.Done():
		t.Fatal("sdktest: no session within 10s")
		return nil
	}
}

// ChatFrame builds an L7_CHAT_REQ frame for p with every TLV a chat
// request requires (tenant "SDKTEST", compartment SOC, UNCLAS,
// ANALYSIS_ONLY, profile) and a fresh random REQUEST_ID, which it returns.
func ChatFrame(profile string, p *l7v1.L7ChatRequest) (*dbe.Frame, [16]byte) {
	return requestFrame(dbe.MsgChatReq, profile, p)
}

// EmbedFrame builds an L7_EMBED_REQ frame for p with the TLVs of ChatFrame
// and a fresh random REQUEST_ID, which it returns.
func EmbedFrame(profile string, p *l7v1.L7EmbedRequest) (*dbe.Frame, [16]byte) {
	return requestFrame(dbe.MsgEmbedReq, profile, p)
}

func requestFrame(typ dbe.MsgType, profile string, p proto.Message) (*dbe.Frame, [16]byte) {
	b, err := proto.Marshal(p)
	if err != nil {
		panic("sdktest: marshal " + typ.String() + ": " + err.Error())
	}
	f := &dbe.Frame{Type: typ, Payload: b}
	f.SetTenantID("SDKTEST")
	f.SetCompartmentMask(dbe.CompartmentSOC)
	f.SetClassification(dbe.Unclas)
	f.SetROELevel(dbe.AnalysisOnly)
	f.SetProfile(profile)
	var id [16]byte
	_, _ = rand.Read(id[:])
	id[6] = id[6]&0x0f | 0x40 // UUIDv4
	id[8] = id[8]&0x3f | 0x80
	f.SetRequestID(id)
	return f, id
}

// Call sends req and collects every response frame up to END_STREAM. An
// ERROR response is returned as a *mux.Error.
func Call(ctx context.Context, c *mux.Client, req *dbe.Frame) ([]*dbe.Frame, error) {
	var frames []*dbe.Frame
	err := c.Call(ctx, req, func(f *dbe.Frame) error {
		frames = append(frames, f)
		return nil
	})
	return frames, err
}

// testLog writes the plugin's logs to the test log until stop.
type testLog struct {
	mu      sync.Mutex
	t       testing.TB
	stopped bool
}

var _ io.Writer = (*testLog)(nil)

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped {
		l.t.Logf("plugin: %s", p)
	}
	return len(p), nil
}

func (l *testLog) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
}
