package dbe

import (
	"encoding/hex"
	"testing"

	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"google.golang.org/protobuf/proto"
)

// payloadFor returns an empty payload message for a message type, or nil
// when the payload is not protobuf (HANDSHAKE, TUNNEL_DATA) or empty.
func payloadFor(t MsgType) proto.Message {
	switch t {
	case MsgChatReq:
		return &l7v1.L7ChatRequest{}
	case MsgChatResp:
		return &l7v1.L7ChatResponse{}
	case MsgChatChunk:
		return &l7v1.L7ChatChunk{}
	case MsgAgentTask:
		return &l7v1.L7AgentTask{}
	case MsgAgentResult:
		return &l7v1.L7AgentResult{}
	case MsgModelStatus:
		return &l7v1.L7ModelStatus{}
	case MsgPolicyCheck:
		return &l7v1.L7PolicyCheck{}
	case MsgPolicyResult:
		return &l7v1.L7PolicyResult{}
	case MsgEmbedReq:
		return &l7v1.L7EmbedRequest{}
	case MsgEmbedResp:
		return &l7v1.L7EmbedResponse{}
	case MsgError:
		return &l7v1.L7Error{}
	case MsgClose:
		return &l7v1.Close{}
	}
	return nil
}

// TestVectorPayloads: every valid vector's payload is a well-formed payload
// message of its type, with no field the schema does not know.
func TestVectorPayloads(t *testing.T) {
	checked := 0
	for _, v := range loadVectors(t) {
		if !v.Valid {
			continue
		}
		b, _ := hex.DecodeString(v.Hex)
		f, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		m := payloadFor(f.Type)
		if m == nil {
			continue
		}
		if err := proto.Unmarshal(f.Payload, m); err != nil {
			t.Errorf("%s: payload is not a %T: %v", v.Name, m, err)
			continue
		}
		if u := m.ProtoReflect().GetUnknown(); len(u) > 0 {
			t.Errorf("%s: payload has unknown fields %x", v.Name, []byte(u))
		}
		checked++
	}
	if checked < 10 {
		t.Fatalf("only %d payloads checked", checked)
	}
	// And the typical chat request says what the vector's description says.
	var req l7v1.L7ChatRequest
	b, _ := hex.DecodeString(loadVectors(t)[0].Hex)
	f, _ := Decode(b)
	if err := proto.Unmarshal(f.Payload, &req); err != nil || req.GetModel() != "llama-7b-int8-amx" ||
		len(req.GetMessages()) != 1 || req.GetMessages()[0].GetContent() != "What is DSMIL?" || req.GetMaxTokens() != 100 {
		t.Fatalf("chat_req_typical payload = %v (%v)", &req, err)
	}
}

// TestCodesMatchProto: dbe.Code and l7v1.ErrorCode are one closed set.
func TestCodesMatchProto(t *testing.T) {
	if len(codeNames) != len(l7v1.ErrorCode_name) {
		t.Fatalf("%d codes here, %d in the proto", len(codeNames), len(l7v1.ErrorCode_name))
	}
	for i, n := range codeNames {
		if got := l7v1.ErrorCode_name[int32(i)]; got != "ERROR_CODE_"+n {
			t.Errorf("code %d: %s here, %s in the proto", i, n, got)
		}
	}
}
