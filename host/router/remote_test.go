package router_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/host/router/routertest"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
)

// remote is a routertest.Worker that says it is on another node.
type remote struct{ *routertest.Worker }

func (remote) Node() string { return "node-b" }

type passClaims struct{ full []byte }

func (passClaims) VerifyClaim(context.Context, *dbe.Frame) error { return nil }
func (p passClaims) FullToken(tok []byte) []byte {
	if bytes.Equal(tok, []byte("ref")) {
		return p.full
	}
	return tok
}

// TestRemoteWorkerGetsClaim: a local worker never sees the claim token; a
// RemoteWorker gets it in full (a reference resolved), so that the worker
// node can verify it again; and the worker node's own refusals (claim,
// policy, quota) reach the caller as such, named as the node's, while a
// local worker's are its failure.
func TestRemoteWorkerGetsClaim(t *testing.T) {
	seen := make(chan []byte, 4)
	capture := func(deny dbe.Code) mux.Handler {
		return mux.HandlerFunc(func(ctx context.Context, req *dbe.Frame, w *mux.ResponseWriter) {
			tok, _ := req.Get(dbe.TLVClaimToken)
			seen <- append([]byte(nil), tok...)
			if deny != 0 {
				_ = w.Fail(&mux.Error{Code: deny, Rule: "node.rule", Message: "no"})
				return
			}
			_ = w.Send(&dbe.Frame{Type: dbe.MsgChatResp, Flags: dbe.FlagEndStream})
		})
	}
	full := bytes.Repeat([]byte{7}, 100)
	local := routertest.NewWorker(t, "echo#0", capture(0))
	far := remote{routertest.NewWorker(t, "node-b/echo#0", capture(0))}
	localDeny := routertest.NewWorker(t, "deny#0", capture(dbe.CodePolicyDenied))
	farDeny := remote{routertest.NewWorker(t, "node-b/deny#0", capture(dbe.CodePolicyDenied))}
	reg := routertest.Registry{"local": {local}, "far": {far}, "localdeny": {localDeny}, "fardeny": {farDeny}}
	r := routertest.NewRouter(t, reg, router.Config{Claims: passClaims{full: full}})
	call := func(profile string, tok []byte) error {
		req := routertest.ChatReq(profile)
		req.SetClaimToken(tok)
		var c routertest.Collector
		return r.Route(context.Background(), req, c.Out)
	}
	if err := call("local", []byte("ref")); err != nil {
		t.Fatal(err)
	}
	if got := <-seen; len(got) != 0 {
		t.Fatalf("a local worker got a claim token: %q", got)
	}
	if err := call("far", []byte("ref")); err != nil {
		t.Fatal(err)
	}
	if got := <-seen; !bytes.Equal(got, full) {
		t.Fatalf("a remote worker got %q, want the full token the reference names", got)
	}
	err := call("fardeny", []byte("tok"))
	if me, ok := err.(*mux.Error); !ok || me.Code != dbe.CodePolicyDenied || me.Rule != "node.rule" || !strings.Contains(me.Message, "worker node node-b") {
		t.Fatalf("worker node's denial: %#v", err)
	}
	<-seen
	if err := call("localdeny", []byte("tok")); mux.CodeOf(err) != dbe.CodeWorkerFailed {
		t.Fatalf("a local worker's denial: %v, want WORKER_FAILED", err)
	}
	<-seen
}
