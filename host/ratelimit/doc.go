// Package ratelimit enforces per-tenant quotas (tenant rate_limit blocks of
// dsmil.hcl): requests per minute, tokens per minute and concurrent
// requests. It implements router.Limiter.
//
// Each tenant has its own token buckets (capacity one minute's quota,
// refilled continuously at quota/60 per second) and in-flight counter,
// behind its own mutex: all three limits are checked and charged in one
// critical section, so concurrent requests cannot both pass a check that
// only one of them fits (no check-then-increment race), and one tenant's
// traffic never waits on another tenant's lock.
//
// Tokens are charged before the request runs from an estimate (prompt
// bytes / 4, plus max_tokens × n, or a default when the request sets no
// max_tokens) and reconciled when the request ends with the usage the
// worker reported. docs/policy.md describes the algorithm.
//
//	lim := ratelimit.New(cfg)
//	router.New(router.Config{Limiter: lim, ...})
//	// HTTP shim, on every response and on a 429:
//	lim.State(tenant).SetHeaders(w.Header())
package ratelimit
