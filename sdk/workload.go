package sdk

import (
	"context"

	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
)

// Workload is what every plugin implements. What else it can do it says by
// implementing the optional interfaces Chatter, Embedder, StatusReporter and
// Closer,
// which the SDK discovers by type assertion; a plugin never stubs out a
// capability it does not have.
//
// Methods may be called concurrently with each other and with the optional
// ones.
type Workload interface {
	// Info describes the plugin. It is called before Configure (the SDK
	// needs the name to authenticate the session) and again after it, when
	// it should reflect the configuration (device id, profiles).
	Info(ctx context.Context) (*PluginInfo, error)

	// Configure hands the plugin its configuration. It is called once
	// before the first request. An error fails the plugin's start; return
	// InvalidParam for a bad setting.
	Configure(ctx context.Context, cfg *Config) error

	// Health reports whether the plugin can serve requests: nil means
	// healthy, an error says why not.
	Health(ctx context.Context) error
}

// Chatter is implemented by workloads that answer chat requests
// (L7_CHAT_REQ). A workload that is not a Chatter answers them with
// ERROR UNKNOWN_MSG_TYPE.
type Chatter interface {
	// Chat generates the answer to req, writing each piece of generated
	// text to out as it is produced, and returns how generation ended.
	//
	// The SDK turns the deltas into L7_CHAT_CHUNK frames when the client
	// asked for a stream, or into one L7_CHAT_RESP otherwise, so Chat
	// behaves the same either way. ctx is cancelled when the client sends
	// CANCEL, when the request's TIMEOUT_MS passes or when the session
	// ends; Chat should then return promptly (with ctx.Err() or whatever it
	// has). Return Errorf / InvalidParam / Overloaded for a specific DBE
	// error code; any other error is reported as WORKER_FAILED.
	Chat(ctx context.Context, req *ChatRequest, out Stream) (*ChatResult, error)
}

// ChatRequest is one chat request as a Chatter sees it.
type ChatRequest struct {
	// RequestID is the request's REQUEST_ID, for logs.
	RequestID [16]byte

	// TenantID is the request's TENANT_ID.
	TenantID string

	// Profile is the L7 profile the request runs under (L7_PROFILE).
	Profile string

	// Params is the request payload. Exactly one of Params.Messages and
	// Params.Prompt is set; Params.N is 0 or 1. Chat must not modify it.
	Params *l7v1.L7ChatRequest
}

// Stream receives the generated text of one chat request.
type Stream interface {
	// Send emits the next piece of generated text (an empty delta is
	// ignored). It returns an error when the request is cancelled (the
	// context's error), when the session is gone, or after Chat returned
	// (ErrStreamDone); Chat should then stop. Send is safe for concurrent
	// use, but deltas are emitted in the order Send is called.
	Send(delta string) error
}

// ToolCallStream is implemented by the Stream the SDK hands to Chat: a
// workload that calls tools type-asserts it and sends each call's pieces
// (the first with index, id, type "function" and name, later ones with
// further arguments text). Streaming, they become L7_CHAT_CHUNK tool_calls;
// otherwise the SDK assembles them into the message's tool_calls. A request
// that made tool calls should return FINISH_REASON_TOOL_CALLS.
type ToolCallStream interface {
	Stream
	SendToolCall(d *l7v1.ToolCallDelta) error
}

// LogprobStream is implemented by the Stream the SDK hands to Chat: a
// workload that returns log probabilities (the request set logprobs)
// type-asserts it and sends each delta with the log probabilities of the
// tokens it covers; delta may be empty to send only log probabilities (of
// tokens whose text was held back). Streaming, they become the chunk's
// logprobs; otherwise the SDK collects them into the choice's logprobs.
// A workload that does not return them refuses requests that ask (see
// RefuseLogprobs).
type LogprobStream interface {
	Stream
	SendLogprobs(delta string, lps []*l7v1.TokenLogprob) error
}

// MultiChoice is implemented by a Chatter that generates several choices
// of one request (L7ChatRequest.n > 1), at most MaxChoices; the SDK
// refuses a larger n with INVALID_REQUEST on n, and n > 1 to a Chatter
// that does not implement it.
type MultiChoice interface {
	MaxChoices() int
}

// ChoiceStream is implemented by the Stream the SDK hands to Chat: a
// MultiChoice workload sends choice i's deltas (text, tool calls, log
// probabilities) on Choice(i), a Stream that is also a ToolCallStream and
// a LogprobStream; the Stream itself is choice 0. Choice returns nil for
// an index outside the request's n. Choices' deltas may interleave.
type ChoiceStream interface {
	Stream
	Choice(index int) Stream
}

// ChatResult says how a chat request ended.
type ChatResult struct {
	// FinishReason says why generation stopped; FINISH_REASON_UNSPECIFIED
	// is reported as FINISH_REASON_STOP.
	FinishReason l7v1.FinishReason

	// Finishes, for a request with several choices, says why each
	// stopped (by index); a choice it does not cover, or leaves
	// FINISH_REASON_UNSPECIFIED, has FinishReason.
	Finishes []l7v1.FinishReason

	// Usage counts the tokens of the request. TotalTokens is filled in when
	// zero. Nil is reported as all zeros. CompletionTokens feed the plugin's
	// token counters.
	Usage *l7v1.Usage

	// Model is the model that answered; empty means the request's model.
	Model string
}

// StatusReporter is implemented by workloads that report their own load.
// Fields left zero in the returned Status (InFlight, TokensPerSecond,
// TokensTotal) are filled from the SDK's own counters; without a
// StatusReporter all of Status comes from those counters.
type StatusReporter interface {
	Status(ctx context.Context) (*Status, error)
}

// Closer is implemented by workloads that hold resources to release when
// the plugin shuts down. Close is called once, after the data path has
// stopped; ctx bounds how long it may take.
type Closer interface {
	Close(ctx context.Context) error
}
