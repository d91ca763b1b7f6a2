package shim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/identity"
	"github.com/dsmil/l7/sdk/mux"
)

// Errors returned by the Server's lifecycle methods.
var (
	// ErrNonLoopback is returned by Listen for an address that is not
	// loopback when ShimConfig.AllowNonLoopback is false.
	ErrNonLoopback = errors.New("shim: refusing to listen on a non-loopback address (set allow_non_loopback in dsmil.hcl to allow it)")
	// ErrNoRouter is returned by New without a Router.
	ErrNoRouter = errors.New("shim: no router")
)

// OpenAI error types (the "type" member of an error body).
const (
	typeInvalidRequest = "invalid_request_error"
	typeAuthentication = "authentication_error"
	typePermission     = "permission_error"
	typeRateLimit      = "rate_limit_error"
	typeTimeout        = "timeout_error"
	typeServer         = "server_error"
)

// apiError is one HTTP error response: the status, the OpenAI error body
// and the headers that go with it.
type apiError struct {
	status  int
	typ     string
	message string
	param   string // "" is sent as null
	code    string // "" is sent as null
	// retryAfter, when positive, is sent as Retry-After (whole seconds,
	// rounded up) and retry-after-ms.
	retryAfter time.Duration
	// rateLimit, when set, adds the x-ratelimit-* headers of a 429 derived
	// from the tenant's configured limits.
	rateLimit *rateLimitInfo
	// headers, when set, adds headers instead of rateLimit (the limiter's
	// own x-ratelimit-* state).
	headers func(http.Header)
}

// rateLimitInfo is what the x-ratelimit-* headers report.
type rateLimitInfo struct {
	limits config.RateLimit
	// exhausted names the exhausted quota ("requests" or "tokens") when the
	// limiter said so in L7Error.param; "" when unknown.
	exhausted string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.typ, e.message) }

// errorBody is the JSON of every error response and of an error sent
// mid-stream: {"error":{"message","type","param","code"}}.
type errorBody struct {
	Error errorObject `json:"error"`
}

type errorObject struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func (e *apiError) body() errorBody {
	b := errorBody{Error: errorObject{Message: e.message, Type: e.typ}}
	if e.param != "" {
		b.Error.Param = &e.param
	}
	if e.code != "" {
		b.Error.Code = &e.code
	}
	return b
}

// writeHeaders sets the headers an error response carries besides its
// content type.
func (e *apiError) writeHeaders(h http.Header) {
	if e.retryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(int64((e.retryAfter+time.Second-1)/time.Second), 10))
		h.Set("Retry-After-Ms", strconv.FormatInt(e.retryAfter.Milliseconds(), 10))
	}
	if e.headers != nil {
		e.headers(h)
		return
	}
	if rl := e.rateLimit; rl != nil {
		reset := formatReset(e.retryAfter)
		for _, q := range []struct {
			name  string
			limit int
		}{{"requests", rl.limits.RequestsPerMinute}, {"tokens", rl.limits.TokensPerMinute}} {
			if q.limit > 0 {
				h.Set("X-Ratelimit-Limit-"+q.name, strconv.Itoa(q.limit))
			}
			if rl.exhausted == "" || rl.exhausted == q.name {
				h.Set("X-Ratelimit-Reset-"+q.name, reset)
			}
			if rl.exhausted == q.name {
				h.Set("X-Ratelimit-Remaining-"+q.name, "0")
			}
		}
	}
}

// formatReset renders a wait the way OpenAI's x-ratelimit-reset-* headers
// do: "20ms", "1.5s", "6m0s".
func formatReset(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	if d < time.Second {
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	}
	return d.Round(time.Millisecond).String()
}

// writeError sends e as the response.
func writeError(w http.ResponseWriter, e *apiError) {
	h := w.Header()
	e.writeHeaders(h)
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	w.WriteHeader(e.status)
	b, _ := json.Marshal(e.body())
	_, _ = w.Write(append(b, '\n'))
}

// Constructors for the errors the shim raises itself.

func invalidRequest(param, code, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, param: param, code: code,
		message: fmt.Sprintf(format, args...)}
}

// unsupported rejects a parameter no plugin behind the shim implements.
func unsupported(param, format string, args ...any) *apiError {
	return invalidRequest(param, "unsupported_parameter", format, args...)
}

func modelNotFound(id string) *apiError {
	return &apiError{status: http.StatusNotFound, typ: typeInvalidRequest, param: "model", code: "model_not_found",
		message: fmt.Sprintf("The model `%s` does not exist or you do not have access to it.", id)}
}

func unauthenticated(code, message string) *apiError {
	return &apiError{status: http.StatusUnauthorized, typ: typeAuthentication, code: code, message: message}
}

func internalError(reqID string) *apiError {
	return &apiError{status: http.StatusInternalServerError, typ: typeServer, code: "internal_error",
		message: "The server had an error while processing your request (request id " + reqID + ")."}
}

// statusClientClosed is the de-facto status of a request whose client went
// away (docs/dbe.md §6: CANCELLED). Nobody reads it; it shows in logs.
const statusClientClosed = 499

// fromDBE maps a DBE error to its HTTP error: the one place where DBE codes
// become statuses (docs/dbe.md §6). t is the caller's tenant, for the
// x-ratelimit-* headers; reqID names the request in a 500's message.
func fromDBE(e *mux.Error, t *config.Tenant, reqID string) *apiError {
	msg := e.Message
	if msg == "" {
		msg = e.Code.String()
	}
	retry := time.Duration(e.RetryAfterMS) * time.Millisecond
	switch e.Code {
	case dbe.CodeInvalidRequest:
		return &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, param: e.Param, code: "invalid_request", message: msg}
	case dbe.CodeFrameTooLarge:
		return &apiError{status: http.StatusRequestEntityTooLarge, typ: typeInvalidRequest, code: "request_too_large", message: msg}
	case dbe.CodeUnauthenticated:
		return unauthenticated("unauthenticated", msg)
	case dbe.CodeClaimTokenInvalid:
		if e.Param == identity.ReasonForeignTenant || e.Param == identity.ReasonPresenter || e.Param == identity.ReasonIssuerScope {
			// A valid identity using a claim that is not its own: forbidden,
			// not unauthenticated (docs/dbe.md §12.3).
			return &apiError{status: http.StatusForbidden, typ: typePermission, code: "claim_not_yours", message: msg}
		}
		return unauthenticated("invalid_claim_token", msg)
	case dbe.CodePolicyDenied:
		if e.Rule != "" {
			msg += " (rule " + e.Rule + ")"
		}
		return &apiError{status: http.StatusForbidden, typ: typePermission, code: "policy_denied", message: msg}
	case dbe.CodeRateLimited:
		rl := &rateLimitInfo{}
		if t != nil {
			rl.limits = t.RateLimit
		}
		if e.Param == "requests" || e.Param == "tokens" {
			rl.exhausted = e.Param
		}
		return &apiError{status: http.StatusTooManyRequests, typ: typeRateLimit, code: "rate_limit_exceeded",
			message: msg, retryAfter: orDefault(retry), rateLimit: rl}
	case dbe.CodeNotFound:
		param := e.Param
		if param == "" {
			param = "model"
		}
		return &apiError{status: http.StatusNotFound, typ: typeInvalidRequest, param: param, code: "model_not_found", message: msg}
	case dbe.CodeNoWorkerAvailable:
		return &apiError{status: http.StatusServiceUnavailable, typ: typeServer, code: "no_worker_available",
			message: msg, retryAfter: orDefault(retry)}
	case dbe.CodeOverloaded:
		return &apiError{status: http.StatusServiceUnavailable, typ: typeServer, code: "overloaded",
			message: msg, retryAfter: orDefault(retry)}
	case dbe.CodeDeadlineExceeded:
		return &apiError{status: http.StatusGatewayTimeout, typ: typeTimeout, code: "deadline_exceeded", message: msg}
	case dbe.CodeCancelled:
		return &apiError{status: statusClientClosed, typ: typeInvalidRequest, code: "cancelled", message: msg}
	case dbe.CodeWorkerFailed:
		return &apiError{status: http.StatusBadGateway, typ: typeServer, code: "worker_failed", message: msg}
	}
	// UNSPECIFIED, MALFORMED_FRAME, UNSUPPORTED_VERSION, UNKNOWN_MSG_TYPE,
	// INTERNAL and codes this build does not know: a fault inside the plane.
	return internalError(reqID)
}

// defaultRetryAfter is the Retry-After of a 429 or 503 whose DBE error gave
// no hint.
const defaultRetryAfter = time.Second

func orDefault(d time.Duration) time.Duration {
	if d <= 0 {
		return defaultRetryAfter
	}
	return d
}

// asDBEError returns err as a *mux.Error (its code from mux.CodeOf).
func asDBEError(err error) *mux.Error {
	var e *mux.Error
	if errors.As(err, &e) {
		return e
	}
	return &mux.Error{Code: mux.CodeOf(err), Message: err.Error()}
}
