package routersock

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dsmil/l7/host/policy"
	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/host/router/routertest"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"google.golang.org/protobuf/proto"
)

// TestPolicyCheckEndpoint sends dry runs over the router's Unix socket to a
// router with the real policy engine: each is answered by the router on
// the request's correlation id with its REQUEST_ID, denials are results,
// and no worker, quota or observer sees them.
func TestPolicyCheckEndpoint(t *testing.T) {
	w := routertest.NewWorker(t, "echo#0", routertest.EchoHandler)
	lim, obs := &routertest.Limiter{}, &routertest.Observer{}
	r := routertest.NewRouter(t, routertest.Registry{"echo": {w}}, router.Config{Policy: routertest.LoadEngine(t), Limiter: lim, Observer: obs})
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
		{"allow", routertest.PolicyCheck("chat"), true, policy.RuleGrant, `allowed: within tenant "T"'s grant`,
			[]string{"builtin.grant: allow"}, true},
		{"empty operation is chat", routertest.PolicyCheck(""), true, policy.RuleGrant, "", nil, false},
		{"deny by rule", func() *dbe.Frame {
			f := routertest.PolicyCheck("chat")
			f.SetCompartmentMask(dbe.CompartmentCRYPTO)
			f.SetClassification(dbe.Unclas)
			return f
		}(), false, "crypto-requires-secret", "DENIED: CRYPTO compartment requests must be classified SECRET or above",
			[]string{"crypto-requires-secret: deny"}, true},
		{"deny by built-in", routertest.PolicyCheck("completion"), false, policy.RuleOperation,
			"DENIED: ROE SOC_ASSIST does not allow completions", nil, false},
		{"kinetic", func() *dbe.Frame {
			f := routertest.PolicyCheck("chat")
			f.SetCompartmentMask(dbe.CompartmentSOC | dbe.CompartmentKINETIC)
			return f
		}(), false, policy.RuleKinetic, "DENIED: KINETIC compartment not allowed in Layer 7",
			[]string{"builtin.kinetic: deny"}, false},
		{"exec", func() *dbe.Frame {
			f := routertest.PolicyCheck("chat")
			f.SetClassification(dbe.Exec)
			return f
		}(), false, policy.RuleExec, "DENIED: EXEC classification requires Layer 9 authorization",
			[]string{"builtin.kinetic: pass", "builtin.exec: deny"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := send(t, tc.f)
			res := routertest.PolicyResult(t, f)
			if id, ok := f.RequestID(); !ok || id != routertest.ReqID {
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
		eng := routertest.LoadEngine(t)
		for _, mod := range []func(*dbe.Frame){
			func(f *dbe.Frame) { f.SetCompartmentMask(dbe.CompartmentKINETIC) },
			func(f *dbe.Frame) { f.SetClassification(dbe.Exec) },
		} {
			f := routertest.PolicyCheck("chat")
			mod(f)
			want, err := eng.Check(context.Background(), f)
			if err != nil {
				t.Fatal(err)
			}
			if got := routertest.PolicyResult(t, send(t, f)); !proto.Equal(got, want) {
				t.Fatalf("router %v, engine %v", got, want)
			}
		}
	})
	t.Run("no REQUEST_ID", func(t *testing.T) {
		f := routertest.PolicyCheck("chat")
		f.Del(dbe.TLVRequestID)
		got := send(t, f)
		if res := routertest.PolicyResult(t, got); !res.Allow {
			t.Fatalf("denied: %v", res)
		}
		if _, ok := got.Get(dbe.TLVRequestID); ok {
			t.Fatal("REQUEST_ID invented")
		}
	})
	for _, tlv := range []dbe.TLVType{dbe.TLVTenantID, dbe.TLVCompartmentMask, dbe.TLVClassification, dbe.TLVROELevel, dbe.TLVProfile} {
		t.Run("missing "+tlv.String(), func(t *testing.T) {
			f := routertest.PolicyCheck("chat")
			f.Del(tlv)
			got := send(t, f)
			if got.Type != dbe.MsgError || got.Flags&dbe.FlagEndStream == 0 {
				t.Fatalf("got %v, want ERROR", got)
			}
			if e := mux.ParseError(got); e.Code != dbe.CodeInvalidRequest || !strings.Contains(e.Message, tlv.String()) {
				t.Fatalf("got %v, want INVALID_REQUEST naming %s", e, tlv)
			}
			if id, _ := got.RequestID(); id != routertest.ReqID {
				t.Fatal("ERROR without REQUEST_ID")
			}
		})
	}
	t.Run("undecodable payload", func(t *testing.T) {
		f := routertest.PolicyCheck("chat")
		f.Payload = []byte{0x32, 0x05, 'c'} // field 6, length 5, 1 byte
		if e := mux.ParseError(send(t, f)); e.Code != dbe.CodeInvalidRequest {
			t.Fatalf("got %v", e)
		}
	})

	// The connection still routes real requests, and only they reach the
	// worker and the hooks.
	req := routertest.ChatReq("echo")
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
	if n := w.Calls.Load(); n != 1 {
		t.Fatalf("the worker got %d frames, want only the chat request", n)
	}
	admitted, _ := lim.Seen()
	started, _ := obs.Seen()
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
