package dbe

import (
	"errors"
	"fmt"
)

// Decoding errors. Each has a stable wire-spec name (docs/dbe.md §7) that the
// test vectors use; ErrorName maps an error to it.
var (
	ErrTruncated          = errors.New("dbe: truncated frame")
	ErrTrailingBytes      = errors.New("dbe: trailing bytes after frame")
	ErrBadMagic           = errors.New("dbe: bad magic")
	ErrUnsupportedVersion = errors.New("dbe: unsupported version")
	ErrInvalidMsgType     = errors.New("dbe: invalid message type 0")
	ErrReservedFlags      = errors.New("dbe: reserved flag bits set")
	ErrReservedField      = errors.New("dbe: reserved header field not zero")
	ErrFrameTooLarge      = errors.New("dbe: frame too large")
	ErrTLVOverrun         = errors.New("dbe: TLV overruns the TLV block")
	ErrTooManyTLVs        = errors.New("dbe: too many TLVs")
	ErrInvalidTLVType     = errors.New("dbe: invalid TLV type")
	ErrUnknownCriticalTLV = errors.New("dbe: unknown critical TLV")
	ErrDuplicateTLV       = errors.New("dbe: duplicate TLV")
	ErrInvalidTLV         = errors.New("dbe: invalid TLV value")
	ErrMissingTLV         = errors.New("dbe: required TLV missing")
)

// errorNames lists the wire-spec name of every sentinel.
var errorNames = []struct {
	err  error
	name string
}{
	{ErrTruncated, "TRUNCATED"},
	{ErrTrailingBytes, "TRAILING_BYTES"},
	{ErrBadMagic, "BAD_MAGIC"},
	{ErrUnsupportedVersion, "UNSUPPORTED_VERSION"},
	{ErrInvalidMsgType, "INVALID_MSG_TYPE"},
	{ErrReservedFlags, "RESERVED_FLAGS"},
	{ErrReservedField, "RESERVED_FIELD"},
	{ErrFrameTooLarge, "FRAME_TOO_LARGE"},
	{ErrTLVOverrun, "TLV_OVERRUN"},
	{ErrTooManyTLVs, "TOO_MANY_TLVS"},
	{ErrInvalidTLVType, "INVALID_TLV_TYPE"},
	{ErrUnknownCriticalTLV, "UNKNOWN_CRITICAL_TLV"},
	{ErrDuplicateTLV, "DUPLICATE_TLV"},
	{ErrInvalidTLV, "INVALID_TLV"},
	{ErrMissingTLV, "MISSING_TLV"},
}

// ErrorName returns the wire-spec name of err's DBE sentinel ("BAD_MAGIC",
// ...), or "" if err wraps none.
func ErrorName(err error) string {
	for _, e := range errorNames {
		if errors.Is(err, e.err) {
			return e.name
		}
	}
	return ""
}

// ErrorByName returns the sentinel with the given wire-spec name.
func ErrorByName(name string) error {
	for _, e := range errorNames {
		if e.name == name {
			return e.err
		}
	}
	return nil
}

// FrameError reports a frame whose header was valid but whose body was not.
// A Reader that returns one has consumed the whole frame, so the stream is
// still in sync: the receiver may answer with an ERROR frame carrying
// Header.CorrelationID and go on reading. Any other Reader error means the
// stream can no longer be trusted and must be closed.
type FrameError struct {
	Header Header
	Err    error
}

func (e *FrameError) Error() string {
	return fmt.Sprintf("%s frame %d: %v", e.Header.Type, e.Header.CorrelationID, e.Err)
}

func (e *FrameError) Unwrap() error { return e.Err }

// Code is a DBE error code carried in ERROR and CLOSE frames (docs/dbe.md
// §6). The values equal l7v1.ErrorCode's.
type Code uint16

// Error codes.
const (
	CodeUnspecified        Code = 0
	CodeMalformedFrame     Code = 1
	CodeUnsupportedVersion Code = 2
	CodeFrameTooLarge      Code = 3
	CodeUnknownMsgType     Code = 4
	CodeInvalidRequest     Code = 5
	CodeUnauthenticated    Code = 6
	CodeClaimTokenInvalid  Code = 7
	CodePolicyDenied       Code = 8
	CodeRateLimited        Code = 9
	CodeNotFound           Code = 10
	CodeNoWorkerAvailable  Code = 11
	CodeOverloaded         Code = 12
	CodeDeadlineExceeded   Code = 13
	CodeCancelled          Code = 14
	CodeWorkerFailed       Code = 15
	CodeInternal           Code = 16
)

var codeNames = [...]string{
	"UNSPECIFIED", "MALFORMED_FRAME", "UNSUPPORTED_VERSION", "FRAME_TOO_LARGE",
	"UNKNOWN_MSG_TYPE", "INVALID_REQUEST", "UNAUTHENTICATED", "CLAIM_TOKEN_INVALID",
	"POLICY_DENIED", "RATE_LIMITED", "NOT_FOUND", "NO_WORKER_AVAILABLE",
	"OVERLOADED", "DEADLINE_EXCEEDED", "CANCELLED", "WORKER_FAILED", "INTERNAL",
}

func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("CODE_%d", uint16(c))
}

// CodeFor returns the error code a receiver sends for a decoding error.
func CodeFor(err error) Code {
	switch {
	case err == nil:
		return CodeUnspecified
	case errors.Is(err, ErrUnsupportedVersion):
		return CodeUnsupportedVersion
	case errors.Is(err, ErrFrameTooLarge):
		return CodeFrameTooLarge
	case errors.Is(err, ErrMissingTLV):
		return CodeInvalidRequest
	case ErrorName(err) != "":
		return CodeMalformedFrame
	}
	return CodeInternal
}
