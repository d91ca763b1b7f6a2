package peers

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsmil/l7/host/agentcall"
	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/pluginmgr"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/identity"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"github.com/dsmil/l7/sdk/session"
	"google.golang.org/protobuf/proto"
)

// agentNode is a worker node by hand on a real TLS link (as fakeNode):
// it reports agent#0, hands every L7_AGENT_TASK it gets to tasks and
// holds it open until the test answers it, and can send requests back
// to the router host on the same connection (up): a node, compromised or
// not, presenting whatever claims the test gives it.
type agentNode struct {
	addr  string
	tasks chan *dbe.Frame
	mu    sync.Mutex
	s     *session.Session
	up    *mux.Client
}

func newAgentNode(t *testing.T, id *identity.Identity, roots []*identity.PublicKey) *agentNode {
	t.Helper()
	cert, err := session.EphemeralCertificate(id.Bundle.Name)
	if err != nil {
		t.Fatal(err)
	}
	hs := &session.TLS{Auth: session.Auth{Identity: id, Roots: roots, PeerRoles: []string{"node"}}, Config: session.TLSConfig(cert, nil)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	n := &agentNode{addr: ln.Addr().String(), tasks: make(chan *dbe.Frame, 8)}
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
				s := session.New(ch, nil)
				up := mux.NewClient(s)
				t.Cleanup(func() { s.Close() })
				n.mu.Lock()
				n.s, n.up = s, up
				n.mu.Unlock()
				s.SetHandler(func(f *dbe.Frame, _ error) {
					if f.Type.IsResponse() && f.CorrelationID != 0 {
						up.Dispatch(f)
						return
					}
					switch f.Type {
					case dbe.MsgHealth:
						b, _ := proto.Marshal(&l7v1.L7ModelStatus{Plugin: "agent#0", DeviceId: 48, Profiles: []string{"agent"}, Healthy: true, HealthMessage: "running"})
						_ = s.Send(&dbe.Frame{Type: dbe.MsgModelStatus, Payload: b})
						_ = s.Send(&dbe.Frame{Type: dbe.MsgModelStatus, Flags: dbe.FlagEndStream, CorrelationID: f.CorrelationID})
					case dbe.MsgAgentTask:
						n.tasks <- f
					}
				})
			}()
		}
	}()
	return n
}

// finish answers task f (its final frame).
func (n *agentNode) finish(f *dbe.Frame) {
	n.mu.Lock()
	defer n.mu.Unlock()
	_ = n.s.Send(&dbe.Frame{Type: dbe.MsgAgentResult, Flags: dbe.FlagEndStream, CorrelationID: f.CorrelationID})
}

// step sends an agent step back to the router host and returns its error.
func (n *agentNode) step(req *dbe.Frame) error {
	n.mu.Lock()
	up := n.up
	n.mu.Unlock()
	return up.CallWithin(context.Background(), 5*time.Second, req, func(*dbe.Frame) error { return nil })
}

// stepRouter is the router host's router behind host/agentcall: it
// records what it is asked to route and answers.
type stepRouter struct {
	mu     sync.Mutex
	routed []*dbe.Frame
}

func (r *stepRouter) Route(_ context.Context, req *dbe.Frame, out func(*dbe.Frame) error) error {
	r.mu.Lock()
	r.routed = append(r.routed, req)
	r.mu.Unlock()
	return out(&dbe.Frame{Type: dbe.MsgChatResp, Flags: dbe.FlagEndStream})
}

func (r *stepRouter) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.routed)
}

// TestTaskClaim: a router host forwarding an agent task to a worker node
// over a real link attaches a claim bound to the task and the node; the
// node's steps back are served with it, and refused POLICY_DENIED (rule
// builtin.delegation), never routed, without it, with it widened, expired,
// forged by the node, minted for another node, replayed for another task,
// or after the task ended.
func TestTaskClaim(t *testing.T) {
	root, roots := testRoot(t)
	nodeID, err := identity.Issue(root, "node-b", "host", time.Now().Add(-time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	n := newAgentNode(t, nodeID, roots)
	hostID, err := identity.Issue(root, "router-a", "node", time.Now().Add(-time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	minter, err := identity.NewMinter(identity.MinterConfig{Key: hostID.Key, Audience: "dsmil-router"})
	if err != nil {
		t.Fatal(err)
	}
	rt := &stepRouter{}
	steps := &agentcall.Server{Router: rt, Minter: minter}
	p := &config.Peer{Name: "node-b", Address: n.addr, Identity: "node-b", Profiles: []string{"agent"},
		Heartbeat: 50 * time.Millisecond, DownAfter: time.Second, ReconnectBackoff: 50 * time.Millisecond,
		ReconnectMax: 200 * time.Millisecond, DialTimeout: time.Second, MaxInFlight: 16}
	s, err := New(emptyRegistry{}, Config{Peers: []*config.Peer{p}, Identity: hostID, Steps: steps,
		LoadRoots: func([]string) ([]*identity.PublicKey, error) { return roots, nil }})
	if err != nil {
		t.Fatal(err)
	}
	s.Start(context.Background())
	t.Cleanup(s.Close)
	var r *Remote
	for deadline := time.Now().Add(5 * time.Second); r == nil; time.Sleep(10 * time.Millisecond) {
		if ws, _ := s.Workers("agent"); len(ws) == 1 && ws[0].Healthy() {
			r = ws[0].(*Remote)
		} else if time.Now().After(deadline) {
			t.Fatalf("no healthy remote agent: %+v", s.Links()[0].State())
		}
	}

	const soc, dev, lab = dbe.Compartment(0x01), dbe.Compartment(0x02), dbe.Compartment(0x04)
	frame := func(typ dbe.MsgType, id [16]byte, tenant string, comp dbe.Compartment, class dbe.Classification, roe dbe.ROELevel) *dbe.Frame {
		f := &dbe.Frame{Type: typ}
		f.SetTenantID(tenant)
		f.SetCompartmentMask(comp)
		f.SetClassification(class)
		f.SetROELevel(roe)
		f.SetProfile("echo")
		f.SetRequestID(id)
		f.Payload = []byte{}
		return f
	}
	id1, id2 := [16]byte{1, 1}, [16]byte{2, 2}
	ended := make(chan error, 2)
	forward := func(id [16]byte) *dbe.Frame {
		task := frame(dbe.MsgAgentTask, id, "T", soc|dev, dbe.Unclas, dbe.SOCAssist)
		task.SetProfile("agent")
		task.Set(pluginmgr.TLVTaskDelegation, []byte("a claim the client made up"))
		r.Go(task, 30*time.Second, func(f *dbe.Frame, err error) {
			if err != nil || f.Flags&dbe.FlagEndStream != 0 {
				ended <- err
			}
		})
		select {
		case f := <-n.tasks:
			return f
		case <-time.After(5 * time.Second):
			t.Fatal("the task did not reach the node")
			return nil
		}
	}
	t1, t2 := forward(id1), forward(id2)

	// The claim that came with the task: the router host's, for this node
	// and this task, until its deadline (the client's made-up one gone).
	claim1, ok := t1.Get(pluginmgr.TLVTaskDelegation)
	if !ok {
		t.Fatal("the task reached the node without a task-bound claim")
	}
	tok, err := VerifyTaskClaim(hostID.Key.Public(), claim1, "node-b", id1, time.Now())
	if err != nil {
		t.Fatalf("the task's claim: %v", err)
	}
	if tok.TenantID != "T" || tok.Audience != "dsmil-task@node-b" || tok.ExpiresAt.Before(time.Now().Add(25*time.Second)) ||
		tok.ExpiresAt.After(time.Now().Add(32*time.Second)) || strings.Join(tok.Roles, ",") != "roe:SOC_ASSIST,classification:UNCLAS,compartments:0x03" {
		t.Errorf("the task's claim: %+v", tok)
	}
	claim2, _ := t2.Get(pluginmgr.TLVTaskDelegation)

	step := func(id [16]byte, claim []byte, mod func(*dbe.Frame)) *dbe.Frame {
		f := frame(dbe.MsgChatReq, id, "T", soc, dbe.Unclas, dbe.SOCAssist)
		if claim != nil {
			f.SetClaimToken(claim)
		}
		if mod != nil {
			mod(f)
		}
		return f
	}

	// A step of task 1 with its claim: routed, with a router claim of the
	// host's for the task's tenant in place of the task-bound one.
	if err := n.step(step(id1, claim1, nil)); err != nil {
		t.Fatalf("a step with its task's claim: %v", err)
	}
	if rt.count() != 1 {
		t.Fatalf("%d steps routed, want 1", rt.count())
	}
	routed := rt.routed[0]
	rc, _ := routed.ClaimToken()
	if ct, err := identity.ParseClaimToken(rc); err != nil || ct.Audience != "dsmil-router" || ct.TenantID != "T" || ct.ClientID != "agent:node-b/agent#0" {
		t.Errorf("the routed step's claim: %+v %v", ct, err)
	}
	if d, _ := routed.DeviceIDSrc(); d != 48 {
		t.Errorf("the routed step's DEVICE_ID_SRC %d, want the node's agent's 48", d)
	}

	other, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	d1 := &pluginmgr.Delegation{RequestID: id1, TenantID: "T", Compartments: soc | dev, Classification: dbe.Unclas,
		ROE: dbe.SOCAssist, Deadline: time.Now().Add(30 * time.Second)}
	mint := func(k *identity.PrivateKey, d pluginmgr.Delegation, node string, now time.Time) []byte {
		t.Helper()
		c, err := MintTaskClaim(k, &d, node, now)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	expired := *d1
	expired.Deadline = time.Now().Add(-3 * time.Second)
	widened := *d1
	widened.Compartments |= lab
	for _, tc := range []struct {
		name string
		req  *dbe.Frame
		want string
	}{
		{"no claim", step(id1, nil, nil), "with the task's claim (none)"},
		{"a router claim, not a task's", step(id1, rc, nil), "not for worker node"},
		{"a compartment the task lacks", step(id1, claim1, func(f *dbe.Frame) { f.SetCompartmentMask(soc | lab) }), "compartments"},
		{"a higher classification", step(id1, claim1, func(f *dbe.Frame) { f.SetClassification(dbe.Secret) }), "classification"},
		{"another ROE", step(id1, claim1, func(f *dbe.Frame) { f.SetROELevel(dbe.Training) }), "ROE"},
		{"another tenant", step(id1, claim1, func(f *dbe.Frame) { f.SetTenantID("U") }), "tenant"},
		{"not a chat", func() *dbe.Frame {
			f := step(id1, claim1, nil)
			f.Type = dbe.MsgAgentTask
			return f
		}(), "L7_CHAT_REQ"},
		{"task 1's claim replayed for task 2", step(id2, claim1, nil), "the claim is task"},
		{"expired", step(id1, mint(hostID.Key, expired, "node-b", time.Now().Add(-time.Minute)), nil), "expired"},
		{"forged by the node", step(id1, mint(nodeID.Key, *d1, "node-b", time.Now()), nil), "not minted by this host"},
		{"forged by another key", step(id1, mint(other, *d1, "node-b", time.Now()), nil), "not minted by this host"},
		{"minted for another node", step(id1, mint(hostID.Key, *d1, "node-c", time.Now()), nil), "not for worker node node-b"},
		{"a claim widened by re-minting with the host's key (not the task's attributes)", step(id1, mint(hostID.Key, widened, "node-b", time.Now()), func(f *dbe.Frame) { f.SetCompartmentMask(soc | lab) }), "not its task's"},
	} {
		err := n.step(tc.req)
		var me *mux.Error
		if !errors.As(err, &me) || me.Code != dbe.CodePolicyDenied || me.Rule != pluginmgr.RuleDelegation || !strings.Contains(me.Message, tc.want) {
			t.Errorf("%s: got %v, want POLICY_DENIED (%s) saying %q", tc.name, err, pluginmgr.RuleDelegation, tc.want)
		}
	}
	if rt.count() != 1 {
		t.Errorf("%d steps routed: a refused step was routed", rt.count())
	}

	// Task 2's own claim works for task 2; once task 1 has ended, its
	// claim (still unexpired) is refused.
	if err := n.step(step(id2, claim2, nil)); err != nil {
		t.Errorf("task 2's step with its claim: %v", err)
	}
	n.finish(t1)
	if err := <-ended; err != nil {
		t.Fatal(err)
	}
	var me *mux.Error
	if err := n.step(step(id1, claim1, nil)); !errors.As(err, &me) || me.Code != dbe.CodePolicyDenied || !strings.Contains(me.Message, "no agent task") {
		t.Errorf("task 1's claim after task 1 ended: %v", err)
	}
	if rt.count() != 2 {
		t.Errorf("%d steps routed, want 2", rt.count())
	}
	n.finish(t2)
	<-ended
}
