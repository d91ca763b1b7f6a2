package l7v1_test

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
)

// The fixtures below set every field to a non-zero value, so that a field
// added to the schema but not to the fixtures fails TestFixturesArePopulated.

func fullUsage() *l7v1.Usage {
	return &l7v1.Usage{PromptTokens: 12, CompletionTokens: 30, TotalTokens: 42, CachedTokens: proto.Uint32(8)}
}

func fullToolCall() *l7v1.ToolCall {
	return &l7v1.ToolCall{
		Id:            "call_1",
		Type:          "function",
		Name:          "get_weather",
		ArgumentsJson: `{"city":"Oslo"}`,
	}
}

func fullMessage() *l7v1.Message {
	return &l7v1.Message{
		Role:    "assistant",
		Content: "Hello, world.",
		Parts: []*l7v1.ContentPart{
			{Part: &l7v1.ContentPart_Text{Text: "What is in this image?"}},
			{Part: &l7v1.ContentPart_ImageUrl{ImageUrl: &l7v1.ImageURL{
				Url:    "https://example.invalid/cat.png",
				Detail: "high",
			}}},
			{Part: &l7v1.ContentPart_ImageData{ImageData: &l7v1.ImageData{
				Data:     []byte{0x89, 'P', 'N', 'G', 0x00, 0xff},
				MimeType: "image/png",
				Detail:   "low",
			}}},
		},
		Name:       "alice",
		ToolCallId: "call_0",
		ToolCalls:  []*l7v1.ToolCall{fullToolCall()},
	}
}

func fullTokenLogprob() *l7v1.TokenLogprob {
	return &l7v1.TokenLogprob{
		Token:   "Hel",
		Logprob: -0.25,
		Bytes:   []byte("Hel"),
		TopLogprobs: []*l7v1.TopLogprob{
			{Token: "Hel", Logprob: -0.25, Bytes: []byte("Hel")},
			{Token: "Hi", Logprob: -1.5, Bytes: []byte("Hi")},
		},
	}
}

func fullChatRequest() *l7v1.L7ChatRequest {
	return &l7v1.L7ChatRequest{
		Model:             "llama-3-8b",
		Messages:          []*l7v1.Message{fullMessage(), fullMessage()},
		Prompt:            "Once upon a time",
		Temperature:       proto.Float32(0.7),
		TopP:              proto.Float32(0.9),
		TopK:              proto.Int32(40),
		MinP:              proto.Float32(0.05),
		Seed:              proto.Int64(-1234567890123),
		Stop:              []string{"\n\n", "END"},
		MaxTokens:         256,
		PresencePenalty:   proto.Float32(0.5),
		FrequencyPenalty:  proto.Float32(-0.5),
		RepetitionPenalty: proto.Float32(1.1),
		Stream:            true,
		IncludeUsage:      true,
		N:                 2,
		User:              "user-42",
		ResponseFormat: &l7v1.ResponseFormat{
			Type:       "json_schema",
			SchemaJson: `{"type":"object"}`,
			Name:       "answer",
			Strict:     true,
		},
		Tools: []*l7v1.Tool{{
			Type: "function",
			Function: &l7v1.FunctionDef{
				Name:           "get_weather",
				Description:    "Current weather for a city.",
				ParametersJson: `{"type":"object","properties":{"city":{"type":"string"}}}`,
				Strict:         true,
			},
		}},
		ToolChoice: &l7v1.ToolChoice{
			Mode:         l7v1.ToolChoiceMode_TOOL_CHOICE_MODE_FUNCTION,
			FunctionName: "get_weather",
		},
		LogitBias:         map[int32]float32{50256: -100, 7: 2.5},
		Logprobs:          true,
		TopLogprobs:       5,
		ParallelToolCalls: proto.Bool(false),
	}
}

func fullChatResponse() *l7v1.L7ChatResponse {
	return &l7v1.L7ChatResponse{
		Id:    "chatcmpl-abc",
		Model: "llama-3-8b",
		Choices: []*l7v1.Choice{{
			Index:        1,
			Message:      fullMessage(),
			Text:         "Once upon a time there was",
			FinishReason: l7v1.FinishReason_FINISH_REASON_TOOL_CALLS,
			Logprobs:     []*l7v1.TokenLogprob{fullTokenLogprob()},
		}},
		Usage:       fullUsage(),
		DeviceId:    3,
		LatencyMs:   123.5,
		L7Profile:   "default",
		CreatedUnix: 1767225600,
	}
}

func fullChatChunk() *l7v1.L7ChatChunk {
	return &l7v1.L7ChatChunk{
		Id:    "chatcmpl-abc",
		Model: "llama-3-8b",
		Index: 1,
		Role:  "assistant",
		Delta: "Hel",
		ToolCalls: []*l7v1.ToolCallDelta{{
			Index:         2,
			Id:            "call_1",
			Type:          "function",
			Name:          "get_weather",
			ArgumentsJson: `{"ci`,
		}},
		FinishReason: l7v1.FinishReason_FINISH_REASON_LENGTH,
		Usage:        fullUsage(),
		DeviceId:     3,
		LatencyMs:    17.25,
		CreatedUnix:  1767225600,
		Logprobs:     []*l7v1.TokenLogprob{fullTokenLogprob()},
		L7Profile:    "default",
	}
}

func fullAgentTask() *l7v1.L7AgentTask {
	return &l7v1.L7AgentTask{
		TaskType:       "summarize",
		Parameters:     map[string]string{"length": "short", "lang": "en"},
		TimeoutSeconds: 30,
		Profile:        "agents",
		Context:        []*l7v1.Message{fullMessage()},
	}
}

func fullAgentResult() *l7v1.L7AgentResult {
	return &l7v1.L7AgentResult{
		Status:       l7v1.AgentTaskStatus_AGENT_TASK_STATUS_TIMED_OUT,
		Result:       "partial summary",
		Artifacts:    []string{"file:///var/lib/l7/out/1.json", "s3://bucket/2.txt"},
		Usage:        fullUsage(),
		ErrorMessage: "timed out after 30s",
		ErrorCode:    l7v1.ErrorCode_ERROR_CODE_DEADLINE_EXCEEDED,
		Step:         fullAgentStep(),
		Steps:        []*l7v1.AgentStep{fullAgentStep()},
		Transcript:   []*l7v1.Message{fullMessage()},
	}
}

func fullAgentStep() *l7v1.AgentStep {
	return &l7v1.AgentStep{
		Index:            2,
		ToolsOffered:     []string{"read_file", "grep"},
		ToolChoice:       "required",
		LlmMs:            12.5,
		PromptTokens:     100,
		CompletionTokens: 20,
		Calls: []*l7v1.AgentToolCall{{
			Id: "call_1", Tool: "grep", ArgumentBytes: 30, Outcome: "error",
			Detail: "path escapes the workspace", ResultBytes: 40, ToolMs: 0.5,
		}},
		AnswerBytes: 7,
		Ended:       "budget",
	}
}

func fullModelStatus() *l7v1.L7ModelStatus {
	return &l7v1.L7ModelStatus{
		Plugin:               "llamacpp",
		Version:              "1.2.3",
		DeviceId:             1,
		Profiles:             []string{"default", "code"},
		Healthy:              true,
		HealthMessage:        "ok",
		Load:                 0.42,
		InFlight:             3,
		QueueDepth:           7,
		MemoryUsedBytes:      6 << 30,
		MemoryBudgetBytes:    8 << 30,
		TokensPerSecond:      55.5,
		TokensGeneratedTotal: 1 << 40,
		UptimeSeconds:        86400,
		Models:               []string{"llama-3-8b"},
	}
}

func fullPolicyCheck() *l7v1.L7PolicyCheck {
	return &l7v1.L7PolicyCheck{
		TenantId:        "tenant-a",
		CompartmentMask: 0b1011,
		Classification:  2,
		RoeLevel:        1,
		L7Profile:       "default",
		Operation:       "chat",
		ClientId:        "client-7",
		RequestId:       []byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef},
		Model:           "llama-3-8b",
	}
}

func fullPolicyResult() *l7v1.L7PolicyResult {
	return &l7v1.L7PolicyResult{
		Allow:  true,
		Rule:   "allow-default-chat",
		Reason: "tenant may chat on profile default",
		Trail:  []string{"deny-classified", "allow-default-chat"},
	}
}

func fullEmbedRequest() *l7v1.L7EmbedRequest {
	return &l7v1.L7EmbedRequest{
		Model: "dsmil-embed",
		Inputs: []*l7v1.EmbedInput{
			{Input: &l7v1.EmbedInput_Text{Text: "what is DSMIL?"}},
			{Input: &l7v1.EmbedInput_Tokens{Tokens: &l7v1.TokenIDs{Ids: []int32{101, 2054, 102}}}},
			{Input: &l7v1.EmbedInput_Image{Image: &l7v1.ImageData{Data: []byte("\x89PNG\r\n\x1a\n"), MimeType: "image/png", Detail: "auto"}}},
		},
		Dimensions: 256,
		User:       "user-42",
	}
}

func fullEmbedResponse() *l7v1.L7EmbedResponse {
	return &l7v1.L7EmbedResponse{
		Model:     "dsmil-embed",
		Data:      []*l7v1.Embedding{{Index: 1, Values: []float32{0.6, -0.8}}, {Index: 2, Values: []float32{1, 0}}}, // wire fixture: every field non-zero
		Usage:     &l7v1.Usage{PromptTokens: 9, CompletionTokens: 1, TotalTokens: 10, CachedTokens: proto.Uint32(0)},
		DeviceId:  49,
		LatencyMs: 3.5,
		L7Profile: "embed",
	}
}

func fullError() *l7v1.L7Error {
	return &l7v1.L7Error{
		Code:         l7v1.ErrorCode_ERROR_CODE_RATE_LIMITED,
		Message:      "too many requests",
		Param:        "temperature",
		RetryAfterMs: 1500,
		Rule:         "rate-limit-tenant",
	}
}

func fullClose() *l7v1.Close {
	return &l7v1.Close{Code: l7v1.ErrorCode_ERROR_CODE_OVERLOADED, Reason: "draining"}
}

// fixtures holds one fully populated value of every DBE payload message.
var fixtures = []struct {
	name string
	msg  proto.Message
}{
	{"L7ChatRequest", fullChatRequest()},
	{"L7ChatResponse", fullChatResponse()},
	{"L7ChatChunk", fullChatChunk()},
	{"L7AgentTask", fullAgentTask()},
	{"L7AgentResult", fullAgentResult()},
	{"L7ModelStatus", fullModelStatus()},
	{"L7PolicyCheck", fullPolicyCheck()},
	{"L7EmbedRequest", fullEmbedRequest()},
	{"L7EmbedResponse", fullEmbedResponse()},
	{"L7PolicyResult", fullPolicyResult()},
	{"L7Error", fullError()},
	{"Close", fullClose()},
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range fixtures {
		t.Run(tc.name, func(t *testing.T) {
			for _, deterministic := range []bool{false, true} {
				b, err := proto.MarshalOptions{Deterministic: deterministic}.Marshal(tc.msg)
				if err != nil {
					t.Fatalf("Marshal: %v", err)
				}
				got := tc.msg.ProtoReflect().New().Interface()
				if err := proto.Unmarshal(b, got); err != nil {
					t.Fatalf("Unmarshal: %v", err)
				}
				if !proto.Equal(tc.msg, got) {
					t.Errorf("round trip (deterministic=%v) changed the message:\n got %v\nwant %v",
						deterministic, got, tc.msg)
				}
				if len(got.ProtoReflect().GetUnknown()) != 0 {
					t.Errorf("round trip left unknown fields: %x", got.ProtoReflect().GetUnknown())
				}
			}
		})
	}
}

// TestFixturesArePopulated checks that the fixtures set every field of every
// (nested) message, cover every oneof case, and reach every message type in
// l7.proto, so that TestRoundTrip exercises the whole schema.
func TestFixturesArePopulated(t *testing.T) {
	seenMsgs := map[protoreflect.FullName]bool{}
	seenOneofCases := map[protoreflect.FullName]bool{}

	var walk func(path string, m protoreflect.Message)
	walk = func(path string, m protoreflect.Message) {
		md := m.Descriptor()
		seenMsgs[md.FullName()] = true
		fields := md.Fields()
		for i := 0; i < fields.Len(); i++ {
			fd := fields.Get(i)
			fpath := path + "." + string(fd.Name())
			if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
				if !m.Has(fd) {
					continue
				}
				seenOneofCases[fd.FullName()] = true
			} else if !m.Has(fd) {
				t.Errorf("%s is not populated (zero or unset)", fpath)
				continue
			}
			v := m.Get(fd)
			switch {
			case fd.IsList() && fd.Message() != nil:
				for j := 0; j < v.List().Len(); j++ {
					walk(fpath, v.List().Get(j).Message())
				}
			case fd.IsMap() && fd.MapValue().Message() != nil:
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					walk(fpath, mv.Message())
					return true
				})
			case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
				walk(fpath, v.Message())
			}
		}
	}
	for _, tc := range fixtures {
		walk(tc.name, tc.msg.ProtoReflect())
	}

	file := l7v1.File_dsmil_l7_v1_l7_proto
	msgs := file.Messages()
	for i := 0; i < msgs.Len(); i++ {
		md := msgs.Get(i)
		if !seenMsgs[md.FullName()] {
			t.Errorf("no fixture contains a %s", md.FullName())
		}
		oneofs := md.Oneofs()
		for j := 0; j < oneofs.Len(); j++ {
			od := oneofs.Get(j)
			if od.IsSynthetic() {
				continue
			}
			for k := 0; k < od.Fields().Len(); k++ {
				if fd := od.Fields().Get(k); !seenOneofCases[fd.FullName()] {
					t.Errorf("no fixture sets oneof case %s", fd.FullName())
				}
			}
		}
	}
}

// TestOptionalPresence checks that proto3 optional fields keep "unset" and
// "set to zero" apart across the wire.
func TestOptionalPresence(t *testing.T) {
	roundTrip := func(t *testing.T, m proto.Message) *l7v1.L7ChatRequest {
		t.Helper()
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		var got l7v1.L7ChatRequest
		if err := proto.Unmarshal(b, &got); err != nil {
			t.Fatalf("Unmarshal: %v", err)
		}
		return &got
	}

	t.Run("temperature", func(t *testing.T) {
		unset := roundTrip(t, &l7v1.L7ChatRequest{})
		if unset.Temperature != nil {
			t.Errorf("unset temperature came back as %v", *unset.Temperature)
		}
		zero := roundTrip(t, &l7v1.L7ChatRequest{Temperature: proto.Float32(0)})
		if zero.Temperature == nil {
			t.Fatal("temperature 0 came back unset")
		}
		if *zero.Temperature != 0 {
			t.Errorf("temperature 0 came back as %v", *zero.Temperature)
		}
		if unset.GetTemperature() != 0 || zero.GetTemperature() != 0 {
			t.Error("GetTemperature should return 0 for both unset and 0")
		}
	})

	t.Run("seed", func(t *testing.T) {
		if got := roundTrip(t, &l7v1.L7ChatRequest{}); got.Seed != nil {
			t.Errorf("unset seed came back as %v", *got.Seed)
		}
		if got := roundTrip(t, &l7v1.L7ChatRequest{Seed: proto.Int64(0)}); got.Seed == nil || *got.Seed != 0 {
			t.Errorf("seed 0 came back as %v", got.Seed)
		}
	})

	// Every optional field of every message in the file, generically.
	msgs := l7v1.File_dsmil_l7_v1_l7_proto.Messages()
	n := 0
	for i := 0; i < msgs.Len(); i++ {
		md := msgs.Get(i)
		mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
		if err != nil {
			t.Fatalf("%s: %v", md.FullName(), err)
		}
		fields := md.Fields()
		for j := 0; j < fields.Len(); j++ {
			fd := fields.Get(j)
			if !fd.HasOptionalKeyword() {
				continue
			}
			n++
			t.Run(string(fd.FullName()), func(t *testing.T) {
				unset := mt.New()
				b, err := proto.Marshal(unset.Interface())
				if err != nil {
					t.Fatalf("Marshal: %v", err)
				}
				if len(b) != 0 {
					t.Errorf("unset message encodes to %x, want nothing", b)
				}

				zero := mt.New()
				zero.Set(fd, fd.Default()) // the kind's zero value
				b, err = proto.Marshal(zero.Interface())
				if err != nil {
					t.Fatalf("Marshal: %v", err)
				}
				if len(b) == 0 {
					t.Fatal("explicit zero encodes to nothing")
				}
				got := mt.New()
				if err := proto.Unmarshal(b, got.Interface()); err != nil {
					t.Fatalf("Unmarshal: %v", err)
				}
				if !got.Has(fd) {
					t.Error("explicit zero came back unset")
				}
				if !got.Get(fd).Equal(fd.Default()) {
					t.Errorf("explicit zero came back as %v", got.Get(fd))
				}
			})
		}
	}
	if n == 0 {
		t.Error("found no optional fields")
	}
}

// TestErrorCodeNumbers pins every ErrorCode to its number in the DBE wire
// spec (docs/dbe.md), which the dbe package's Code constants mirror. A
// renumbering, rename, removal or unreviewed addition fails here.
func TestErrorCodeNumbers(t *testing.T) {
	want := []struct {
		name string
		num  int32
		code l7v1.ErrorCode
	}{
		{"ERROR_CODE_UNSPECIFIED", 0, l7v1.ErrorCode_ERROR_CODE_UNSPECIFIED},
		{"ERROR_CODE_MALFORMED_FRAME", 1, l7v1.ErrorCode_ERROR_CODE_MALFORMED_FRAME},
		{"ERROR_CODE_UNSUPPORTED_VERSION", 2, l7v1.ErrorCode_ERROR_CODE_UNSUPPORTED_VERSION},
		{"ERROR_CODE_FRAME_TOO_LARGE", 3, l7v1.ErrorCode_ERROR_CODE_FRAME_TOO_LARGE},
		{"ERROR_CODE_UNKNOWN_MSG_TYPE", 4, l7v1.ErrorCode_ERROR_CODE_UNKNOWN_MSG_TYPE},
		{"ERROR_CODE_INVALID_REQUEST", 5, l7v1.ErrorCode_ERROR_CODE_INVALID_REQUEST},
		{"ERROR_CODE_UNAUTHENTICATED", 6, l7v1.ErrorCode_ERROR_CODE_UNAUTHENTICATED},
		{"ERROR_CODE_CLAIM_TOKEN_INVALID", 7, l7v1.ErrorCode_ERROR_CODE_CLAIM_TOKEN_INVALID},
		{"ERROR_CODE_POLICY_DENIED", 8, l7v1.ErrorCode_ERROR_CODE_POLICY_DENIED},
		{"ERROR_CODE_RATE_LIMITED", 9, l7v1.ErrorCode_ERROR_CODE_RATE_LIMITED},
		{"ERROR_CODE_NOT_FOUND", 10, l7v1.ErrorCode_ERROR_CODE_NOT_FOUND},
		{"ERROR_CODE_NO_WORKER_AVAILABLE", 11, l7v1.ErrorCode_ERROR_CODE_NO_WORKER_AVAILABLE},
		{"ERROR_CODE_OVERLOADED", 12, l7v1.ErrorCode_ERROR_CODE_OVERLOADED},
		{"ERROR_CODE_DEADLINE_EXCEEDED", 13, l7v1.ErrorCode_ERROR_CODE_DEADLINE_EXCEEDED},
		{"ERROR_CODE_CANCELLED", 14, l7v1.ErrorCode_ERROR_CODE_CANCELLED},
		{"ERROR_CODE_WORKER_FAILED", 15, l7v1.ErrorCode_ERROR_CODE_WORKER_FAILED},
		{"ERROR_CODE_INTERNAL", 16, l7v1.ErrorCode_ERROR_CODE_INTERNAL},
	}
	for _, w := range want {
		if got, ok := l7v1.ErrorCode_value[w.name]; !ok {
			t.Errorf("ErrorCode %s is missing", w.name)
		} else if got != w.num {
			t.Errorf("ErrorCode %s = %d, want %d", w.name, got, w.num)
		}
		if int32(w.code) != w.num {
			t.Errorf("Go constant for %s = %d, want %d", w.name, int32(w.code), w.num)
		}
		if got := l7v1.ErrorCode(w.num).String(); got != w.name {
			t.Errorf("ErrorCode(%d).String() = %s, want %s", w.num, got, w.name)
		}
	}
	if len(l7v1.ErrorCode_name) != len(want) {
		t.Errorf("ErrorCode has %d values, want %d; new codes must be added to docs/dbe.md, the dbe package and this test",
			len(l7v1.ErrorCode_name), len(want))
	}
}

// TestFinishReasonNumbers pins the FinishReason values.
func TestFinishReasonNumbers(t *testing.T) {
	want := map[string]int32{
		"FINISH_REASON_UNSPECIFIED":    0,
		"FINISH_REASON_STOP":           1,
		"FINISH_REASON_LENGTH":         2,
		"FINISH_REASON_TOOL_CALLS":     3,
		"FINISH_REASON_CONTENT_FILTER": 4,
		"FINISH_REASON_CANCELLED":      5,
		"FINISH_REASON_ERROR":          6,
	}
	for name, num := range want {
		if got, ok := l7v1.FinishReason_value[name]; !ok || got != num {
			t.Errorf("FinishReason %s = %d (present %v), want %d", name, got, ok, num)
		}
	}
	if len(l7v1.FinishReason_name) != len(want) {
		t.Errorf("FinishReason has %d values, want %d", len(l7v1.FinishReason_name), len(want))
	}
}
