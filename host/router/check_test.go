package router_test

import (
	"context"
	"strings"
	"testing"

	"github.com/dsmil/l7/host/claims"
	"github.com/dsmil/l7/host/policy"
	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/host/router/routertest"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/identity"
	"github.com/dsmil/l7/sdk/mux"
	"google.golang.org/protobuf/proto"
)

// TestPolicyCheckClaims: with claims configured, a dry run needs the
// tenant's valid claim token, exactly as a chat request does, and the claim
// is checked before anything else is revealed (even the hard rules).
func TestPolicyCheckClaims(t *testing.T) {
	minterKey, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	v, err := claims.NewVerifier(claims.VerifierConfig{Issuers: []*identity.PublicKey{minterKey.Public()}, Audience: "dsmil-router"})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := identity.NewMinter(identity.MinterConfig{Key: minterKey, Audience: "dsmil-router"})
	tokT, _ := m.Token("T", "c", nil)
	tokOther, _ := m.Token("OTHER", "c", nil)
	w := routertest.NewWorker(t, "echo#0", routertest.EchoHandler)
	r := routertest.NewRouter(t, routertest.Registry{"echo": {w}}, router.Config{Claims: v, Policy: routertest.LoadEngine(t)})

	kinetic := func() *dbe.Frame {
		f := routertest.PolicyCheck("chat")
		f.SetCompartmentMask(dbe.CompartmentKINETIC)
		return f
	}
	for _, tc := range []struct {
		name  string
		f     *dbe.Frame
		token []byte
		param string
	}{
		{"missing", routertest.PolicyCheck("chat"), nil, "missing"},
		{"foreign tenant", routertest.PolicyCheck("chat"), tokOther, "foreign_tenant"},
		{"invalid", routertest.PolicyCheck("chat"), []byte("not a token"), "invalid"},
		{"missing, kinetic", kinetic(), nil, "missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.token != nil {
				tc.f.SetClaimToken(tc.token)
			}
			var c routertest.Collector
			err := r.Route(context.Background(), tc.f, c.Out)
			e := routertest.ErrCode(t, &c)
			if e.Code != dbe.CodeClaimTokenInvalid || e.Param != tc.param || mux.CodeOf(err) != dbe.CodeClaimTokenInvalid {
				t.Fatalf("got %v (param %q), want CLAIM_TOKEN_INVALID %q", e, e.Param, tc.param)
			}
			// The chat request gets the same answer.
			chat := routertest.ChatReq("echo")
			chat.SetTenantID("T")
			if tc.token != nil {
				chat.SetClaimToken(tc.token)
			}
			if tc.name != "missing, kinetic" { // a chat meets the hard rules first
				var cc routertest.Collector
				_ = r.Route(context.Background(), chat, cc.Out)
				if ce := routertest.ErrCode(t, &cc); ce.Code != e.Code || ce.Param != e.Param {
					t.Fatalf("chat got %v, the dry run %v", ce, e)
				}
			}
		})
	}
	t.Run("valid", func(t *testing.T) {
		for _, tc := range []struct {
			f     *dbe.Frame
			allow bool
			rule  string
		}{{routertest.PolicyCheck("chat"), true, policy.RuleGrant}, {kinetic(), false, policy.RuleKinetic}} {
			tc.f.SetClaimToken(tokT)
			var c routertest.Collector
			if err := r.Route(context.Background(), tc.f, c.Out); err != nil {
				t.Fatal(err)
			}
			if res := routertest.PolicyResult(t, c.Last()); res.Allow != tc.allow || res.Rule != tc.rule {
				t.Fatalf("result %v, want allow=%v rule %s", res, tc.allow, tc.rule)
			}
		}
	})
	if n := w.Calls.Load(); n != 0 {
		t.Fatalf("a worker got %d frames", n)
	}
}

// TestPolicyCheckWithoutEngine: with no policy engine the dry run reports
// what the router does (allow, except the hard denials) and says why; a
// policy without a dry run refuses L7_POLICY_CHECK rather than guess.
func TestPolicyCheckWithoutEngine(t *testing.T) {
	w := routertest.NewWorker(t, "echo#0", routertest.EchoHandler)
	r := routertest.NewRouter(t, routertest.Registry{"echo": {w}}, router.Config{})
	var c routertest.Collector
	if err := r.Route(context.Background(), routertest.PolicyCheck("chat"), c.Out); err != nil {
		t.Fatal(err)
	}
	res := routertest.PolicyResult(t, c.Last())
	if !res.Allow || res.Rule != router.RuleNoPolicy || !strings.Contains(res.Reason, "no policy engine") {
		t.Fatalf("result %v", res)
	}
	f := routertest.PolicyCheck("chat")
	f.SetClassification(dbe.Exec)
	var c2 routertest.Collector
	if err := r.Route(context.Background(), f, c2.Out); err != nil {
		t.Fatal(err)
	}
	if res := routertest.PolicyResult(t, c2.Last()); res.Allow || res.Rule != policy.RuleExec {
		t.Fatalf("EXEC: %v", res)
	}
	// Forward answers at once too.
	var c3 routertest.Collector
	r.Forward(context.Background(), routertest.PolicyCheck("chat"), func(f *dbe.Frame, _ proto.Message) { _ = c3.Out(f) })
	if res := routertest.PolicyResult(t, c3.Last()); !res.Allow {
		t.Fatalf("Forward: %v", res)
	}

	r2 := routertest.NewRouter(t, routertest.Registry{"echo": {w}}, router.Config{Policy: denyAll{}})
	var c4 routertest.Collector
	err := r2.Route(context.Background(), routertest.PolicyCheck("chat"), c4.Out)
	if e := routertest.ErrCode(t, &c4); e.Code != dbe.CodeUnknownMsgType || mux.CodeOf(err) != dbe.CodeUnknownMsgType {
		t.Fatalf("policy without a dry run: %v", e)
	}
	if n := w.Calls.Load(); n != 0 {
		t.Fatalf("a worker got %d frames", n)
	}
}
