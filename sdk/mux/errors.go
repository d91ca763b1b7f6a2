package mux

import (
	"errors"
	"fmt"

	"github.com/dsmil/l7/sdk/dbe"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"google.golang.org/protobuf/proto"
)

// Error is a DBE ERROR frame's content as a Go error.
type Error struct {
	Code         dbe.Code
	Message      string
	Param        string
	Rule         string
	RetryAfterMS uint32
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "dbe: " + e.Code.String()
	}
	return fmt.Sprintf("dbe: %s: %s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code.
func Errorf(code dbe.Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the DBE code of err: an *Error's own code, CANCELLED or
// DEADLINE_EXCEEDED for context errors, a decoding error's code, INTERNAL
// otherwise.
func CodeOf(err error) dbe.Code {
	var e *Error
	switch {
	case err == nil:
		return dbe.CodeUnspecified
	case errors.As(err, &e):
		return e.Code
	case errors.Is(err, errContextCanceled):
		return dbe.CodeCancelled
	case errors.Is(err, errContextDeadline):
		return dbe.CodeDeadlineExceeded
	}
	return dbe.CodeFor(err)
}

// ErrorFrame builds the ERROR frame (END_STREAM set) that reports err for
// request corr. reqID, when non-nil, is echoed as REQUEST_ID.
func ErrorFrame(corr uint64, reqID []byte, err error) *dbe.Frame {
	pe := &l7v1.L7Error{Code: l7v1.ErrorCode(CodeOf(err)), Message: err.Error()}
	var e *Error
	if errors.As(err, &e) {
		pe.Message, pe.Param, pe.Rule, pe.RetryAfterMs = e.Message, e.Param, e.Rule, e.RetryAfterMS
	}
	b, _ := proto.Marshal(pe)
	f := &dbe.Frame{Type: dbe.MsgError, Flags: dbe.FlagEndStream, CorrelationID: corr, Payload: b}
	if len(reqID) == 16 {
		f.TLVs = []dbe.TLV{{Type: dbe.TLVRequestID, Value: reqID}}
	}
	return f
}

// ParseError turns an ERROR frame into an *Error.
func ParseError(f *dbe.Frame) *Error {
	var pe l7v1.L7Error
	if err := proto.Unmarshal(f.Payload, &pe); err != nil {
		return &Error{Code: dbe.CodeMalformedFrame, Message: "unparseable ERROR payload: " + err.Error()}
	}
	return &Error{Code: dbe.Code(pe.GetCode()), Message: pe.GetMessage(), Param: pe.GetParam(),
		Rule: pe.GetRule(), RetryAfterMS: pe.GetRetryAfterMs()}
}
