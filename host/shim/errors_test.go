package shim

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsmil/l7/internal/testutil"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	"github.com/hashicorp/go-hclog"
)

// TestDBEErrorMapping covers every DBE error code (docs/dbe.md §6), both
// for a plain request and for a stream that fails before its first chunk.
func TestDBEErrorMapping(t *testing.T) {
	for _, tc := range []struct {
		err       mux.Error
		status    int
		typ, code string
		param     string
		hdr       map[string]string
	}{
		{mux.Error{Code: dbe.CodeUnspecified}, 500, "server_error", "internal_error", "", nil},
		{mux.Error{Code: dbe.CodeMalformedFrame}, 500, "server_error", "internal_error", "", nil},
		{mux.Error{Code: dbe.CodeUnsupportedVersion}, 500, "server_error", "internal_error", "", nil},
		{mux.Error{Code: dbe.CodeFrameTooLarge}, 413, "invalid_request_error", "request_too_large", "", nil},
		{mux.Error{Code: dbe.CodeUnknownMsgType}, 500, "server_error", "internal_error", "", nil},
		{mux.Error{Code: dbe.CodeInvalidRequest, Param: "temperature"}, 400, "invalid_request_error", "invalid_request", "temperature", nil},
		{mux.Error{Code: dbe.CodeUnauthenticated}, 401, "authentication_error", "unauthenticated", "", nil},
		{mux.Error{Code: dbe.CodeClaimTokenInvalid}, 401, "authentication_error", "invalid_claim_token", "", nil},
		{mux.Error{Code: dbe.CodeClaimTokenInvalid, Param: "expired"}, 401, "authentication_error", "invalid_claim_token", "", nil},
		{mux.Error{Code: dbe.CodeClaimTokenInvalid, Param: "foreign_tenant"}, 403, "permission_error", "claim_not_yours", "", nil},
		{mux.Error{Code: dbe.CodeClaimTokenInvalid, Param: "presenter"}, 403, "permission_error", "claim_not_yours", "", nil},
		{mux.Error{Code: dbe.CodeClaimTokenInvalid, Param: "issuer_scope"}, 403, "permission_error", "claim_not_yours", "", nil},
		{mux.Error{Code: dbe.CodePolicyDenied, Rule: "r1"}, 403, "permission_error", "policy_denied", "", nil},
		{mux.Error{Code: dbe.CodeRateLimited, RetryAfterMS: 250, Param: "tokens"}, 429, "rate_limit_error", "rate_limit_exceeded", "",
			map[string]string{"Retry-After": "1", "Retry-After-Ms": "250", "X-Ratelimit-Limit-Requests": "600", "X-Ratelimit-Limit-Tokens": "",
				"X-Ratelimit-Remaining-Tokens": "0", "X-Ratelimit-Reset-Tokens": "250ms", "X-Ratelimit-Reset-Requests": ""}},
		{mux.Error{Code: dbe.CodeRateLimited}, 429, "rate_limit_error", "rate_limit_exceeded", "",
			map[string]string{"Retry-After": "1", "X-Ratelimit-Reset-Tokens": "1s", "X-Ratelimit-Reset-Requests": "1s", "X-Ratelimit-Remaining-Requests": ""}},
		{mux.Error{Code: dbe.CodeNotFound}, 404, "invalid_request_error", "model_not_found", "model", nil},
		{mux.Error{Code: dbe.CodeNoWorkerAvailable, RetryAfterMS: 2500}, 503, "server_error", "no_worker_available", "",
			map[string]string{"Retry-After": "3", "Retry-After-Ms": "2500"}},
		{mux.Error{Code: dbe.CodeOverloaded, RetryAfterMS: 100}, 503, "server_error", "overloaded", "", map[string]string{"Retry-After": "1"}},
		{mux.Error{Code: dbe.CodeDeadlineExceeded}, 504, "timeout_error", "deadline_exceeded", "", nil},
		{mux.Error{Code: dbe.CodeCancelled}, 499, "invalid_request_error", "cancelled", "", nil},
		{mux.Error{Code: dbe.CodeWorkerFailed}, 502, "server_error", "worker_failed", "", nil},
		{mux.Error{Code: dbe.CodeInternal}, 500, "server_error", "internal_error", "", nil},
		{mux.Error{Code: 99}, 500, "server_error", "internal_error", "", nil},
	} {
		t.Run(tc.err.Code.String(), func(t *testing.T) {
			var logs testutil.SyncBuffer
			tc.err.Message = "detail of " + tc.err.Code.String()
			_, base := startShim(t, func(c *Config) {
				c.Router = failWith(&tc.err)
				c.Logger = hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info})
			})
			for _, stream := range []string{"false", "true"} {
				resp, body := call(t, "POST", base+"/v1/chat/completions", keyT,
					`{"model":"dsmil-echo","stream":`+stream+`,"messages":[{"role":"user","content":"hi"}]}`)
				e := apiErr(t, resp, body)
				if resp.StatusCode != tc.status || e.Type != tc.typ || str(e.Code) != tc.code || (tc.param != "" && str(e.Param) != tc.param) {
					t.Fatalf("stream=%s: %d %s", stream, resp.StatusCode, body)
				}
				for k, v := range tc.hdr {
					if got := resp.Header.Get(k); got != v {
						t.Errorf("stream=%s: %s %q, want %q", stream, k, got, v)
					}
				}
				id := resp.Header.Get("X-Request-Id")
				switch tc.status {
				case 500:
					// Internals stay in the log, under the request id.
					if strings.Contains(e.Message, "detail of") || !strings.Contains(e.Message, id) ||
						!strings.Contains(logs.String(), "request_id="+id) || !strings.Contains(logs.String(), "detail of") {
						t.Fatalf("500 not logged with its request id %s: %s\n%s", id, body, logs.String())
					}
				case 403:
					want := tc.err.Message
					if tc.err.Code == dbe.CodePolicyDenied {
						want = "detail of POLICY_DENIED (rule r1)"
					}
					if e.Message != want {
						t.Fatalf("%s", body)
					}
				default:
					if e.Message != tc.err.Message {
						t.Fatalf("message: %s", body)
					}
				}
			}
		})
	}
}

// TestRateLimitHeadersHook: with the host's hook, a 429 carries the
// limiter's own x-ratelimit-* state.
func TestRateLimitHeadersHook(t *testing.T) {
	var got atomic.Value
	_, base := startShim(t, func(c *Config) {
		c.Router = failWith(&mux.Error{Code: dbe.CodeRateLimited, RetryAfterMS: 1200, Message: "slow down"})
		c.RateLimitHeaders = func(tenant string, h http.Header) {
			got.Store(tenant)
			h.Set("X-Ratelimit-Remaining-Requests", "0")
			h.Set("X-Ratelimit-Reset-Requests", "1.2s")
		}
	})
	for _, stream := range []string{"false", "true"} {
		resp, body := call(t, "POST", base+"/v1/chat/completions", keyT,
			`{"model":"dsmil-echo","stream":`+stream+`,"messages":[{"role":"user","content":"hi"}]}`)
		h := resp.Header
		if resp.StatusCode != 429 || got.Load() != "T" || h.Get("Retry-After") != "2" || h.Get("Retry-After-Ms") != "1200" ||
			h.Get("X-Ratelimit-Remaining-Requests") != "0" || h.Get("X-Ratelimit-Reset-Requests") != "1.2s" ||
			h.Get("X-Ratelimit-Limit-Requests") != "" || h.Get("X-Ratelimit-Reset-Tokens") != "" {
			t.Fatalf("stream=%s: %d %v %s", stream, resp.StatusCode, h, body)
		}
	}
}

func TestFormatReset(t *testing.T) {
	for d, want := range map[string]string{"0s": "0s", "20ms": "20ms", "1.5s": "1.5s", "6m0s": "6m0s", "1m30.25s": "1m30.25s"} {
		dur, _ := time.ParseDuration(d)
		if got := formatReset(dur); got != want {
			t.Errorf("%s: %q", d, got)
		}
	}
}
