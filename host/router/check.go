package router

import (
	"context"

	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"google.golang.org/protobuf/proto"
)

// PolicyChecker is an optional Policy capability: the dry run behind
// L7_POLICY_CHECK. The router asks Config.Policy for it with a type
// assertion (the policy engine, *policy.Engine, implements it); a Policy
// without it cannot answer dry runs, and the router then refuses
// L7_POLICY_CHECK with UNKNOWN_MSG_TYPE rather than guess.
type PolicyChecker interface {
	// Check decides f as the policy would decide the request it describes,
	// without serving anything, and returns the decision with its trail as
	// the L7_POLICY_RESULT payload. A frame that cannot be judged
	// (undecodable payload) is an error, a *mux.Error with code
	// INVALID_REQUEST. A denial is a result, not an error.
	Check(ctx context.Context, f *dbe.Frame) (*l7v1.L7PolicyResult, error)
}

// RuleNoPolicy names the decision of a router that has no policy engine:
// everything but the hard denials (KINETIC, EXEC) is allowed.
const RuleNoPolicy = "builtin.no-policy"

// reasonNoPolicy is RuleNoPolicy's reason.
const reasonNoPolicy = "allowed: no policy engine is configured; this router denies only KINETIC and EXEC"

// answerCheck answers an L7_POLICY_CHECK (a dry-run decision) itself: it
// never reaches a worker, charges no quota and is not counted as a request
// by the Observer or the Stats. out receives one frame, the L7_POLICY_RESULT
// with END_STREAM or an ERROR, carrying the request's REQUEST_ID when it has
// one. A deny decision is a result; an error is returned (and sent) only
// when the frame cannot be judged or its claim token is refused.
func (r *Router) answerCheck(ctx context.Context, req *dbe.Frame, out func(*dbe.Frame, proto.Message)) error {
	reqID, _ := req.Get(dbe.TLVRequestID)
	res, err := r.check(ctx, req)
	if err != nil {
		out(mux.ErrorFrame(0, reqID, err), nil)
		return err
	}
	b, err := proto.Marshal(res)
	if err != nil {
		err = mux.Errorf(dbe.CodeInternal, "encoding the policy result: %v", err)
		out(mux.ErrorFrame(0, reqID, err), nil)
		return err
	}
	f := &dbe.Frame{Type: dbe.MsgPolicyResult, Flags: dbe.FlagEndStream, Payload: b}
	if len(reqID) == 16 {
		f.TLVs = []dbe.TLV{{Type: dbe.TLVRequestID, Value: append([]byte(nil), reqID...)}}
	}
	out(f, nil)
	return nil
}

// check is the dry run: the same gates as admit, in the order that keeps a
// client from learning about a tenant whose claim it does not hold —
// required TLVs, then the claim token, then the hard rules, then the policy.
// The limiter is not consulted: a dry run asks for no work.
func (r *Router) check(ctx context.Context, req *dbe.Frame) (*l7v1.L7PolicyResult, error) {
	if err := dbe.CheckRequired(req); err != nil {
		return nil, &mux.Error{Code: dbe.CodeInvalidRequest, Message: err.Error()}
	}
	if r.cfg.Claims != nil {
		if err := r.cfg.Claims.VerifyClaim(ctx, req); err != nil {
			return nil, err
		}
	}
	// The router applies the hard rules before any policy (as admit does),
	// so the dry run reports them whatever the policy would say. The trail
	// is the one the policy engine records for them.
	if rule, reason := hardRule(req); rule != "" {
		trail := []string{ruleKinetic + ": deny"}
		if rule != ruleKinetic {
			trail = []string{ruleKinetic + ": pass", rule + ": deny"}
		}
		return &l7v1.L7PolicyResult{Allow: false, Rule: rule, Reason: reason, Trail: trail}, nil
	}
	switch p := r.cfg.Policy.(type) {
	case nil:
		var m l7v1.L7PolicyCheck
		if err := proto.Unmarshal(req.Payload, &m); err != nil {
			return nil, mux.Errorf(dbe.CodeInvalidRequest, "%s payload: %v", req.Type, err)
		}
		return &l7v1.L7PolicyResult{Allow: true, Rule: RuleNoPolicy, Reason: reasonNoPolicy,
			Trail: []string{ruleKinetic + ": pass", ruleExec + ": pass", RuleNoPolicy + ": allow"}}, nil
	case PolicyChecker:
		res, err := p.Check(ctx, req)
		if err == nil && res == nil {
			err = mux.Errorf(dbe.CodeInternal, "the policy returned no decision")
		}
		return res, err
	default:
		return nil, mux.Errorf(dbe.CodeUnknownMsgType, "the configured policy cannot evaluate %s (no dry run)", req.Type)
	}
}
