package policy

import (
	"errors"
	"fmt"

	"github.com/dsmil/l7/sdk/dbe"
	"google.golang.org/protobuf/encoding/protowire"
)

// Operations a request can ask for.
const (
	OpChat       = "chat"       // L7_CHAT_REQ with messages
	OpCompletion = "completion" // L7_CHAT_REQ with a raw prompt (legacy /v1/completions)
	OpAgent      = "agent"      // L7_AGENT_TASK
	OpEmbed      = "embeddings" // L7_EMBED_REQ
)

// Request is what a decision is made on: the security TLVs of a frame plus
// what little of its payload policy needs. It never holds prompt text.
type Request struct {
	// Tenant is TENANT_ID.
	Tenant string
	// Profile is L7_PROFILE.
	Profile string
	// Model is the model id the client named in the payload ("" if none).
	// It is client-asserted: the engine checks it against the tenant's
	// models and the profile when it names a configured model.
	Model string
	// Operation is OpChat, OpCompletion or OpAgent.
	Operation string
	// Compartments is COMPARTMENT_MASK.
	Compartments dbe.Compartment
	// Classification is CLASSIFICATION.
	Classification dbe.Classification
	// ROE is ROE_LEVEL.
	ROE dbe.ROELevel
	// DeviceDst is DEVICE_ID_DST, or -1 when the frame has none.
	DeviceDst int
	// ID is REQUEST_ID (zero when absent), for the decision log.
	ID [16]byte
}

// ErrBadRequest is wrapped by RequestFromFrame when a frame cannot be
// judged: wrong message type, missing TLV or undecodable payload.
var ErrBadRequest = errors.New("policy: request cannot be evaluated")

// RequestFromFrame extracts the Request from an L7_CHAT_REQ, L7_AGENT_TASK
// or L7_POLICY_CHECK frame. For chat requests it reads only two payload
// fields, without decoding the message: model (field 1) and whether prompt
// (field 3) is non-empty, which makes the operation "completion" rather than
// "chat". For policy checks the operation (default "chat" when empty) and
// the model come from the L7PolicyCheck payload and everything else from
// the TLVs; the payload's copies of the TLVs (tenant_id, compartment_mask,
// classification, roe_level, l7_profile, request_id) and client_id are
// ignored.
func RequestFromFrame(f *dbe.Frame) (Request, error) {
	return requestFromFrame(f, func(b []byte) string { return string(b) })
}

// requestFromFrame is RequestFromFrame with str turning TLV and payload
// bytes into strings (the engine interns known names).
func requestFromFrame(f *dbe.Frame, str func([]byte) string) (Request, error) {
	r := Request{DeviceDst: -1}
	switch f.Type {
	case dbe.MsgChatReq, dbe.MsgAgentTask, dbe.MsgPolicyCheck, dbe.MsgEmbedReq:
	default:
		return r, fmt.Errorf("%w: message type %s", ErrBadRequest, f.Type)
	}
	if err := dbe.CheckRequired(f); err != nil {
		return r, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	var ok bool
	v, _ := f.Get(dbe.TLVTenantID)
	r.Tenant = str(v)
	v, _ = f.Get(dbe.TLVProfile)
	r.Profile = str(v)
	if r.Compartments, ok = f.CompartmentMask(); !ok {
		return r, fmt.Errorf("%w: invalid COMPARTMENT_MASK", ErrBadRequest)
	}
	if r.Classification, ok = f.Classification(); !ok {
		return r, fmt.Errorf("%w: invalid CLASSIFICATION", ErrBadRequest)
	}
	if r.ROE, ok = f.ROELevel(); !ok {
		return r, fmt.Errorf("%w: invalid ROE_LEVEL", ErrBadRequest)
	}
	if d, ok := f.DeviceIDDst(); ok {
		r.DeviceDst = int(d)
	}
	r.ID, _ = f.RequestID()

	var err error
	switch f.Type {
	case dbe.MsgAgentTask:
		r.Operation = OpAgent
	case dbe.MsgEmbedReq:
		r.Operation = OpEmbed
		err = scan(f.Payload, func(num protowire.Number, v []byte) {
			if num == 1 {
				r.Model = str(v)
			}
		})
	case dbe.MsgChatReq:
		r.Operation = OpChat
		err = scan(f.Payload, func(num protowire.Number, v []byte) {
			switch num {
			case 1:
				r.Model = str(v)
			case 3:
				if len(v) > 0 {
					r.Operation = OpCompletion
				}
			}
		})
	case dbe.MsgPolicyCheck:
		err = scan(f.Payload, func(num protowire.Number, v []byte) {
			switch num {
			case 6:
				r.Operation = str(v)
			case 9:
				r.Model = str(v)
			}
		})
		if r.Operation == "" {
			r.Operation = OpChat // no operation asks about a chat, as `policy test` does
		}
	}
	if err != nil {
		return r, fmt.Errorf("%w: %s payload: %v", ErrBadRequest, f.Type, err)
	}
	return r, nil
}

// scan walks the top-level fields of a protobuf message and calls fn with
// the value of each length-delimited one; other fields are skipped. The
// last occurrence of a field wins, as in protobuf.
func scan(b []byte, fn func(protowire.Number, []byte)) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return protowire.ParseError(m)
			}
			fn(num, v)
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return protowire.ParseError(m)
		}
		b = b[m:]
	}
	return nil
}
