package router

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dsmil/l7/host/claims"
	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/policy"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/identity"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"google.golang.org/protobuf/proto"
)

// The real engine is what host/server passes as Config.Policy: it must
// offer the dry run.
var _ PolicyChecker = (*policy.Engine)(nil)

// checkHCL is the configuration the dry-run tests load the real policy
// engine from.
const checkHCL = `
plugin "echo" {
  path      = "bin/dsmil-echo"
  device_id = 47
  profiles  = ["echo"]
}

model "dsmil-echo" { profile = "echo" }

tenant "T" {
  api_key_sha256 = ["0000000000000000000000000000000000000000000000000000000000000001"]
  compartments   = ["SOC", "CRYPTO"]
  classification = "SECRET"
  roe            = "SOC_ASSIST"
  models         = ["*"]
}

tenant "OTHER" {
  api_key_sha256 = ["0000000000000000000000000000000000000000000000000000000000000002"]
  compartments   = ["SOC"]
  classification = "UNCLAS"
  roe            = "ANALYSIS_ONLY"
  models         = ["*"]
}

policy "crypto-requires-secret" {
  effect   = "deny"
  priority = 100
  when     = contains(request.compartments, "CRYPTO") && request.classification == "UNCLAS"
  reason   = "DENIED: CRYPTO compartment requests must be classified SECRET or above"
}
`

func loadEngine(t testing.TB) *policy.Engine {
	t.Helper()
	cfg, diags := config.Parse("check.hcl", []byte(checkHCL), config.WithGetenv(func(string) string { return "" }))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	eng, diags := policy.New(cfg, nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return eng
}

// policyCheck is an L7_POLICY_CHECK from tenant T that its grant allows.
func policyCheck(op string) *dbe.Frame {
	f := &dbe.Frame{Type: dbe.MsgPolicyCheck}
	f.SetTenantID("T")
	f.SetCompartmentMask(dbe.CompartmentSOC)
	f.SetClassification(dbe.Secret)
	f.SetROELevel(dbe.SOCAssist)
	f.SetProfile("echo")
	f.SetRequestID(testReqID)
	f.Payload, _ = proto.Marshal(&l7v1.L7PolicyCheck{Operation: op, Model: "dsmil-echo"})
	return f
}

// policyResult checks f is an L7_POLICY_RESULT with END_STREAM and returns
// its payload.
func policyResult(t *testing.T, f *dbe.Frame) *l7v1.L7PolicyResult {
	t.Helper()
	if f == nil || f.Type != dbe.MsgPolicyResult || f.Flags&dbe.FlagEndStream == 0 {
		if f != nil && f.Type == dbe.MsgError {
			t.Fatalf("got ERROR %v, want L7_POLICY_RESULT", mux.ParseError(f))
		}
		t.Fatalf("got %v, want L7_POLICY_RESULT with END_STREAM", f)
	}
	var res l7v1.L7PolicyResult
	if err := proto.Unmarshal(f.Payload, &res); err != nil {
		t.Fatal(err)
	}
	return &res
}

// TestPolicyCheckEndpoint sends dry runs over the router's Unix socket to a
// router with the real policy engine: each is answered by the router on
// the request's correlation id with its REQUEST_ID, denials are results,
// and no worker, quota or observer sees them.
func TestPolicyCheckEndpoint(t *testing.T) {
	w := newWorker(t, "echo#0", echoHandler)
	lim, obs := &recLimiter{}, &recObserver{}
	r := newRouter(t, registry{"echo": {w}}, Config{Policy: loadEngine(t), Limiter: lim, Observer: obs})
	path := startEndpoint(t, r)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rd := dbe.NewReader(c, 0)
	corr := uint64(100)
	send := func(t *testing.T, f *dbe.Frame) *dbe.Frame {
		t.Helper()
		corr++
		f.CorrelationID = corr
		b, err := f.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := rd.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if got.CorrelationID != corr {
			t.Fatalf("answer on correlation id %d, want %d", got.CorrelationID, corr)
		}
		return got
	}

	cases := []struct {
		name   string
		f      *dbe.Frame
		allow  bool
		rule   string
		reason string
		trail  []string // a prefix of the trail, or its last step when last is set
		last   bool
	}{
		{"allow", policyCheck("chat"), true, policy.RuleGrant, `allowed: within tenant "T"'s grant`,
			[]string{"builtin.grant: allow"}, true},
		{"empty operation is chat", policyCheck(""), true, policy.RuleGrant, "", nil, false},
		{"deny by rule", func() *dbe.Frame {
			f := policyCheck("chat")
			f.SetCompartmentMask(dbe.CompartmentCRYPTO)
			f.SetClassification(dbe.Unclas)
			return f
		}(), false, "crypto-requires-secret", "DENIED: CRYPTO compartment requests must be classified SECRET or above",
			[]string{"crypto-requires-secret: deny"}, true},
		{"deny by built-in", policyCheck("completion"), false, policy.RuleOperation,
			"DENIED: ROE SOC_ASSIST does not allow completions", nil, false},
		{"kinetic", func() *dbe.Frame {
			f := policyCheck("chat")
			f.SetCompartmentMask(dbe.CompartmentSOC | dbe.CompartmentKINETIC)
			return f
		}(), false, policy.RuleKinetic, "DENIED: KINETIC compartment not allowed in Layer 7",
			[]string{"builtin.kinetic: deny"}, false},
		{"exec", func() *dbe.Frame {
			f := policyCheck("chat")
			f.SetClassification(dbe.Exec)
			return f
		}(), false, policy.RuleExec, "DENIED: EXEC classification requires Layer 9 authorization",
			[]string{"builtin.kinetic: pass", "builtin.exec: deny"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := send(t, tc.f)
			res := policyResult(t, f)
			if id, ok := f.RequestID(); !ok || id != testReqID {
				t.Fatal("REQUEST_ID not echoed")
			}
			if res.Allow != tc.allow || res.Rule != tc.rule || (tc.reason != "" && res.Reason != tc.reason) {
				t.Fatalf("got allow=%v rule=%q reason=%q, want %v %q %q", res.Allow, res.Rule, res.Reason, tc.allow, tc.rule, tc.reason)
			}
			switch {
			case tc.last && (len(res.Trail) == 0 || res.Trail[len(res.Trail)-1] != tc.trail[0]):
				t.Fatalf("trail %q does not end with %q", res.Trail, tc.trail[0])
			case !tc.last && tc.trail != nil && !slices.Equal(res.Trail, tc.trail):
				t.Fatalf("trail %q, want %q", res.Trail, tc.trail)
			case len(res.Trail) == 0:
				t.Fatal("no trail")
			}
		})
	}

	t.Run("hard rules as the engine reports them", func(t *testing.T) {
		// The router applies KINETIC and EXEC itself, before the engine:
		// its result must be the engine's, trail included.
		eng := loadEngine(t)
		for _, mod := range []func(*dbe.Frame){
			func(f *dbe.Frame) { f.SetCompartmentMask(dbe.CompartmentKINETIC) },
			func(f *dbe.Frame) { f.SetClassification(dbe.Exec) },
		} {
			f := policyCheck("chat")
			mod(f)
			want, err := eng.Check(context.Background(), f)
			if err != nil {
				t.Fatal(err)
			}
			if got := policyResult(t, send(t, f)); !proto.Equal(got, want) {
				t.Fatalf("router %v, engine %v", got, want)
			}
		}
	})
	t.Run("no REQUEST_ID", func(t *testing.T) {
		f := policyCheck("chat")
		f.Del(dbe.TLVRequestID)
		got := send(t, f)
		if res := policyResult(t, got); !res.Allow {
			t.Fatalf("denied: %v", res)
		}
		if _, ok := got.Get(dbe.TLVRequestID); ok {
			t.Fatal("REQUEST_ID invented")
		}
	})
	for _, tlv := range []dbe.TLVType{dbe.TLVTenantID, dbe.TLVCompartmentMask, dbe.TLVClassification, dbe.TLVROELevel, dbe.TLVProfile} {
		t.Run("missing "+tlv.String(), func(t *testing.T) {
			f := policyCheck("chat")
			f.Del(tlv)
			got := send(t, f)
			if got.Type != dbe.MsgError || got.Flags&dbe.FlagEndStream == 0 {
				t.Fatalf("got %v, want ERROR", got)
			}
			if e := mux.ParseError(got); e.Code != dbe.CodeInvalidRequest || !strings.Contains(e.Message, tlv.String()) {
				t.Fatalf("got %v, want INVALID_REQUEST naming %s", e, tlv)
			}
			if id, _ := got.RequestID(); id != testReqID {
				t.Fatal("ERROR without REQUEST_ID")
			}
		})
	}
	t.Run("undecodable payload", func(t *testing.T) {
		f := policyCheck("chat")
		f.Payload = []byte{0x32, 0x05, 'c'} // field 6, length 5, 1 byte
		if e := mux.ParseError(send(t, f)); e.Code != dbe.CodeInvalidRequest {
			t.Fatalf("got %v", e)
		}
	})

	// The connection still routes real requests, and only they reach the
	// worker and the hooks.
	req := chatReq("echo")
	req.SetTenantID("T")
	req.SetClassification(dbe.Secret)
	req.SetROELevel(dbe.SOCAssist)
	req.Payload, _ = proto.Marshal(&l7v1.L7ChatRequest{Model: "dsmil-echo"})
	f := send(t, req)
	if f.Type == dbe.MsgError {
		t.Fatalf("chat request: %v", mux.ParseError(f))
	}
	for f.Flags&dbe.FlagEndStream == 0 {
		if f, err = rd.ReadFrame(); err != nil {
			t.Fatal(err)
		}
	}
	if n := w.calls.Load(); n != 1 {
		t.Fatalf("the worker got %d frames, want only the chat request", n)
	}
	lim.mu.Lock()
	admitted := lim.admitted
	lim.mu.Unlock()
	obs.mu.Lock()
	started := obs.started
	obs.mu.Unlock()
	if admitted != 1 || started != 1 {
		t.Fatalf("limiter admitted %d, observer saw %d requests; want only the chat request", admitted, started)
	}
	// The router settles its books just after the final frame leaves.
	for deadline := time.Now().Add(5 * time.Second); r.Stats().InFlight != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", r.Stats())
		}
	}
	if st := r.Stats(); st.Served != 1 {
		t.Fatalf("stats %+v, want the chat request served", st)
	}
}

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
	w := newWorker(t, "echo#0", echoHandler)
	r := newRouter(t, registry{"echo": {w}}, Config{Claims: v, Policy: loadEngine(t)})

	kinetic := func() *dbe.Frame {
		f := policyCheck("chat")
		f.SetCompartmentMask(dbe.CompartmentKINETIC)
		return f
	}
	for _, tc := range []struct {
		name  string
		f     *dbe.Frame
		token []byte
		param string
	}{
		{"missing", policyCheck("chat"), nil, "missing"},
		{"foreign tenant", policyCheck("chat"), tokOther, "foreign_tenant"},
		{"invalid", policyCheck("chat"), []byte("not a token"), "invalid"},
		{"missing, kinetic", kinetic(), nil, "missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.token != nil {
				tc.f.SetClaimToken(tc.token)
			}
			var c collector
			err := r.Route(context.Background(), tc.f, c.out)
			e := errCode(t, &c)
			if e.Code != dbe.CodeClaimTokenInvalid || e.Param != tc.param || mux.CodeOf(err) != dbe.CodeClaimTokenInvalid {
				t.Fatalf("got %v (param %q), want CLAIM_TOKEN_INVALID %q", e, e.Param, tc.param)
			}
			// The chat request gets the same answer.
			chat := chatReq("echo")
			chat.SetTenantID("T")
			if tc.token != nil {
				chat.SetClaimToken(tc.token)
			}
			if tc.name != "missing, kinetic" { // a chat meets the hard rules first
				var cc collector
				_ = r.Route(context.Background(), chat, cc.out)
				if ce := errCode(t, &cc); ce.Code != e.Code || ce.Param != e.Param {
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
		}{{policyCheck("chat"), true, policy.RuleGrant}, {kinetic(), false, policy.RuleKinetic}} {
			tc.f.SetClaimToken(tokT)
			var c collector
			if err := r.Route(context.Background(), tc.f, c.out); err != nil {
				t.Fatal(err)
			}
			if res := policyResult(t, c.last()); res.Allow != tc.allow || res.Rule != tc.rule {
				t.Fatalf("result %v, want allow=%v rule %s", res, tc.allow, tc.rule)
			}
		}
	})
	if n := w.calls.Load(); n != 0 {
		t.Fatalf("a worker got %d frames", n)
	}
}

// TestPolicyCheckWithoutEngine: with no policy engine the dry run reports
// what the router does (allow, except the hard denials) and says why; a
// policy without a dry run refuses L7_POLICY_CHECK rather than guess.
func TestPolicyCheckWithoutEngine(t *testing.T) {
	w := newWorker(t, "echo#0", echoHandler)
	r := newRouter(t, registry{"echo": {w}}, Config{})
	var c collector
	if err := r.Route(context.Background(), policyCheck("chat"), c.out); err != nil {
		t.Fatal(err)
	}
	res := policyResult(t, c.last())
	if !res.Allow || res.Rule != RuleNoPolicy || !strings.Contains(res.Reason, "no policy engine") {
		t.Fatalf("result %v", res)
	}
	f := policyCheck("chat")
	f.SetClassification(dbe.Exec)
	var c2 collector
	if err := r.Route(context.Background(), f, c2.out); err != nil {
		t.Fatal(err)
	}
	if res := policyResult(t, c2.last()); res.Allow || res.Rule != policy.RuleExec {
		t.Fatalf("EXEC: %v", res)
	}
	// Forward answers at once too.
	var c3 collector
	r.Forward(context.Background(), policyCheck("chat"), func(f *dbe.Frame, _ proto.Message) { _ = c3.out(f) })
	if res := policyResult(t, c3.last()); !res.Allow {
		t.Fatalf("Forward: %v", res)
	}

	r2 := newRouter(t, registry{"echo": {w}}, Config{Policy: denyAll{}})
	var c4 collector
	err := r2.Route(context.Background(), policyCheck("chat"), c4.out)
	if e := errCode(t, &c4); e.Code != dbe.CodeUnknownMsgType || mux.CodeOf(err) != dbe.CodeUnknownMsgType {
		t.Fatalf("policy without a dry run: %v", e)
	}
	if n := w.calls.Load(); n != 0 {
		t.Fatalf("a worker got %d frames", n)
	}
}
