package sdk

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// This file is the one place where errors change shape: plugin errors to DBE
// codes (AsError), and DBE codes to gRPC statuses and back for the Control
// service (toStatus, fromStatus).

var (
	// ErrInvalidInfo reports a PluginInfo that fails Validate.
	ErrInvalidInfo = errors.New("sdk: invalid plugin info")

	// ErrInvalidConfig reports a Config that cannot be sent to a plugin.
	ErrInvalidConfig = errors.New("sdk: invalid plugin config")

	// ErrNotConfigured is the reason a plugin gives for refusing requests
	// and reporting unhealthy before Configure succeeded.
	ErrNotConfigured = errors.New("sdk: workload not configured")

	// ErrUnhealthy is returned by ControlClient.Health when the plugin
	// reports itself unhealthy.
	ErrUnhealthy = errors.New("sdk: plugin unhealthy")

	// ErrNotPlugin is what Serve reports when the process was not started
	// by dsmil-host (no magic cookie or no valid DSMIL_PLUGIN_KEY).
	ErrNotPlugin = errors.New("this binary is a DSMIL L7 plugin; dsmil-host starts it")

	// ErrStreamDone is returned by Stream.Send after Chat returned.
	ErrStreamDone = errors.New("sdk: chat stream already ended")

	// ErrNoServer is returned by GRPCPlugin.GRPCServer when the GRPCPlugin
	// has no Impl (it is the host-side value).
	ErrNoServer = errors.New("sdk: GRPCPlugin has no Impl")
)

// Errorf returns an error that reaches the client with DBE code code. The
// message is formatted like fmt.Errorf (so %w formats its operand), but
// only the text crosses the process boundary.
func Errorf(code dbe.Code, format string, args ...any) *mux.Error {
	return &mux.Error{Code: code, Message: fmt.Errorf(format, args...).Error()}
}

// InvalidParam returns an INVALID_REQUEST error naming the offending request
// field or setting (L7Error.param), e.g. "temperature".
func InvalidParam(param, format string, args ...any) *mux.Error {
	e := Errorf(dbe.CodeInvalidRequest, format, args...)
	e.Param = param
	return e
}

// Overloaded returns an OVERLOADED error asking the client to retry after
// retryAfter (rounded up to whole milliseconds; 0 means no hint).
func Overloaded(retryAfter time.Duration, format string, args ...any) *mux.Error {
	e := Errorf(dbe.CodeOverloaded, format, args...)
	e.RetryAfterMS = durationMS(retryAfter)
	return e
}

func durationMS(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	ms := (d + time.Millisecond - 1) / time.Millisecond
	return uint32(min(ms, 1<<32-1))
}

// AsError maps an error returned by a workload to the DBE error the client
// sees: a *mux.Error (as from Errorf) anywhere in err's chain keeps its code
// and fields; context.Canceled becomes CANCELLED and
// context.DeadlineExceeded DEADLINE_EXCEEDED; anything else is
// WORKER_FAILED with err's text. AsError(nil) is nil.
func AsError(err error) *mux.Error {
	var e *mux.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &e):
		return e
	case errors.Is(err, context.Canceled):
		return &mux.Error{Code: dbe.CodeCancelled, Message: err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return &mux.Error{Code: dbe.CodeDeadlineExceeded, Message: err.Error()}
	}
	return &mux.Error{Code: dbe.CodeWorkerFailed, Message: err.Error()}
}

// grpcCodes maps DBE codes to gRPC codes for the Control service. The
// precise DBE error travels as an L7Error status detail; the gRPC code is
// for gRPC-level tooling and for statuses without the detail.
var grpcCodes = map[dbe.Code]codes.Code{
	dbe.CodeMalformedFrame:     codes.InvalidArgument,
	dbe.CodeUnsupportedVersion: codes.Unimplemented,
	dbe.CodeFrameTooLarge:      codes.InvalidArgument,
	dbe.CodeUnknownMsgType:     codes.Unimplemented,
	dbe.CodeInvalidRequest:     codes.InvalidArgument,
	dbe.CodeUnauthenticated:    codes.Unauthenticated,
	dbe.CodeClaimTokenInvalid:  codes.Unauthenticated,
	dbe.CodePolicyDenied:       codes.PermissionDenied,
	dbe.CodeRateLimited:        codes.ResourceExhausted,
	dbe.CodeNotFound:           codes.NotFound,
	dbe.CodeNoWorkerAvailable:  codes.Unavailable,
	dbe.CodeOverloaded:         codes.ResourceExhausted,
	dbe.CodeDeadlineExceeded:   codes.DeadlineExceeded,
	dbe.CodeCancelled:          codes.Canceled,
	dbe.CodeWorkerFailed:       codes.Unknown,
	dbe.CodeInternal:           codes.Internal,
}

// dbeCodes maps gRPC codes back for statuses without an L7Error detail
// (those made by gRPC itself: a dead connection is Unavailable).
var dbeCodes = map[codes.Code]dbe.Code{
	codes.InvalidArgument:   dbe.CodeInvalidRequest,
	codes.Unimplemented:     dbe.CodeUnknownMsgType,
	codes.Unauthenticated:   dbe.CodeUnauthenticated,
	codes.PermissionDenied:  dbe.CodePolicyDenied,
	codes.ResourceExhausted: dbe.CodeOverloaded,
	codes.NotFound:          dbe.CodeNotFound,
	codes.DeadlineExceeded:  dbe.CodeDeadlineExceeded,
	codes.Canceled:          dbe.CodeCancelled,
	codes.Internal:          dbe.CodeInternal,
}

// toStatus turns a workload's error into the gRPC status a Control method
// returns, carrying the DBE error as an L7Error detail.
func toStatus(err error) error {
	e := AsError(err)
	if e == nil {
		return nil
	}
	c, ok := grpcCodes[e.Code]
	if !ok {
		c = codes.Unknown
	}
	st := status.New(c, e.Message)
	if d, derr := st.WithDetails(&l7v1.L7Error{
		Code: l7v1.ErrorCode(e.Code), Message: e.Message, Param: e.Param,
		Rule: e.Rule, RetryAfterMs: e.RetryAfterMS,
	}); derr == nil {
		st = d
	}
	return st.Err()
}

// fromStatus turns an error from a Control call into a *mux.Error: the
// L7Error detail when present, else a mapping of the gRPC code (an unknown
// code or a broken connection is WORKER_FAILED).
func fromStatus(err error) *mux.Error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return &mux.Error{Code: dbe.CodeWorkerFailed, Message: err.Error()}
	}
	for _, d := range st.Details() {
		if pe, ok := d.(*l7v1.L7Error); ok {
			return &mux.Error{Code: dbe.Code(pe.GetCode()), Message: pe.GetMessage(), Param: pe.GetParam(),
				Rule: pe.GetRule(), RetryAfterMS: pe.GetRetryAfterMs()}
		}
	}
	c, ok := dbeCodes[st.Code()]
	if !ok {
		c = dbe.CodeWorkerFailed
	}
	return &mux.Error{Code: c, Message: st.Message()}
}
