package ratelimit

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	"google.golang.org/protobuf/encoding/protowire"
)

// DefaultCompletionTokens is the completion size assumed for a request that
// sets no max_tokens (and for agent tasks), until its real usage is known.
const DefaultCompletionTokens = 512

// ConcurrencyRetryAfter is the Retry-After given when only max_concurrent
// refuses a request: when a slot frees up cannot be known in advance.
const ConcurrencyRetryAfter = time.Second

// Limiter enforces per-tenant quotas. It is safe for concurrent use.
type Limiter struct {
	tenants           map[string]*bucket // immutable after New
	now               func() time.Time
	defaultCompletion int64
}

// Limiter is the router's tenant quota hook.
var _ router.Limiter = (*Limiter)(nil)

// Option adjusts a Limiter.
type Option func(*Limiter)

// WithClock sets the clock (default time.Now); tests use a fake one.
func WithClock(now func() time.Time) Option {
	return func(l *Limiter) {
		if now != nil {
			l.now = now
		}
	}
}

// WithDefaultCompletionTokens sets the completion size assumed when a
// request names no max_tokens. Default DefaultCompletionTokens.
func WithDefaultCompletionTokens(n int64) Option {
	return func(l *Limiter) {
		if n > 0 {
			l.defaultCompletion = n
		}
	}
}

// bucket is one tenant's quota state.
type bucket struct {
	tenant string
	limits config.RateLimit

	mu       sync.Mutex
	last     time.Time // when req and tok were last refilled
	req      float64   // requests available, ≤ RequestsPerMinute
	tok      float64   // tokens available, ≤ TokensPerMinute; negative after overuse
	inFlight int
}

// New returns a Limiter for cfg's tenants. Tenants without a rate_limit
// (all zero) are not limited.
func New(cfg *config.Config, opts ...Option) *Limiter {
	l := &Limiter{tenants: map[string]*bucket{}, now: time.Now, defaultCompletion: DefaultCompletionTokens}
	for _, o := range opts {
		o(l)
	}
	now := l.now()
	for _, t := range cfg.Tenants {
		rl := t.RateLimit
		if rl.RequestsPerMinute <= 0 && rl.TokensPerMinute <= 0 && rl.MaxConcurrent <= 0 {
			continue
		}
		l.tenants[t.Name] = &bucket{tenant: t.Name, limits: rl, last: now,
			req: float64(max(rl.RequestsPerMinute, 0)), tok: float64(max(rl.TokensPerMinute, 0))}
	}
	return l
}

func noRelease(int64) {}

// perNS converts a per-minute quota to a per-nanosecond refill rate.
func perNS(perMinute int) float64 { return float64(perMinute) / float64(time.Minute) }

// refill adds what accrued since b.last. Called with b.mu held.
func (b *bucket) refill(now time.Time) {
	el := now.Sub(b.last)
	if el <= 0 {
		return
	}
	b.last = now
	if n := b.limits.RequestsPerMinute; n > 0 {
		b.req = math.Min(float64(n), b.req+float64(el)*perNS(n))
	}
	if n := b.limits.TokensPerMinute; n > 0 {
		b.tok = math.Min(float64(n), b.tok+float64(el)*perNS(n))
	}
}

// Which limits refused a request.
const (
	overConcurrent = 1 << iota
	overRequests
	overTokens
)

// Admit implements router.Limiter. It charges one request and the
// request's estimated tokens to the tenant in TENANT_ID, or refuses with a
// RATE_LIMITED *mux.Error naming every exhausted limit, with RetryAfterMS
// the time until all of them would admit it. A refused request is not
// charged. A tenant without limits (or not configured: policy denies those
// first) is always admitted.
//
// release must be called once when the request ends with the tokens it
// really used (0 when unknown: the estimate stands); it frees the
// concurrency slot and refunds or charges the difference. Calls after the
// first do nothing.
func (l *Limiter) Admit(ctx context.Context, f *dbe.Frame) (func(usedTokens int64), error) {
	step := IsAgentStep(ctx)
	tv, _ := f.Get(dbe.TLVTenantID)
	b := l.tenants[string(tv)]
	if b == nil {
		return noRelease, nil
	}
	var est int64
	if b.limits.TokensPerMinute > 0 {
		est = EstimateTokens(f, l.defaultCompletion)
	}
	now := l.now()

	b.mu.Lock()
	b.refill(now)
	var over int
	var wait time.Duration
	if n := b.limits.MaxConcurrent; n > 0 && b.inFlight >= n && !step {
		over |= overConcurrent
		wait = ConcurrencyRetryAfter
	}
	if n := b.limits.RequestsPerMinute; n > 0 && b.req < 1 {
		over |= overRequests
		wait = max(wait, time.Duration(math.Ceil((1-b.req)/perNS(n))))
	}
	// An estimate above the whole bucket needs a full bucket, not more: the
	// request is admitted at the tenant's average rate, and the bucket
	// goes negative.
	need := float64(est)
	if n := b.limits.TokensPerMinute; n > 0 {
		need = math.Min(need, float64(n))
		if b.tok < need {
			over |= overTokens
			wait = max(wait, time.Duration(math.Ceil((need-b.tok)/perNS(n))))
		}
	}
	if over != 0 {
		b.mu.Unlock()
		return nil, b.refusal(over, wait)
	}
	if !step {
		b.inFlight++
	}
	if b.limits.RequestsPerMinute > 0 {
		b.req--
	}
	if n := b.limits.TokensPerMinute; n > 0 {
		// A debt is capped at one minute's quota here too, so that one
		// request with an absurd estimate that then fails cannot lock its
		// tenant out for longer than a minute.
		b.tok = math.Max(-float64(n), b.tok-float64(est))
	}
	b.mu.Unlock()

	var done atomic.Bool
	return func(used int64) {
		if !done.CompareAndSwap(false, true) {
			return
		}
		now := l.now()
		b.mu.Lock()
		b.refill(now)
		if !step {
			b.inFlight--
		}
		if n := b.limits.TokensPerMinute; n > 0 && used > 0 {
			// Reconcile; a debt is capped at one minute's quota.
			b.tok = math.Max(-float64(n), math.Min(float64(n), b.tok+float64(est-used)))
		}
		b.mu.Unlock()
	}, nil
}

func (b *bucket) refusal(over int, wait time.Duration) *mux.Error {
	var why []string
	if over&overConcurrent != 0 {
		why = append(why, fmt.Sprintf("max_concurrent (%d) reached", b.limits.MaxConcurrent))
	}
	if over&overRequests != 0 {
		why = append(why, fmt.Sprintf("requests_per_minute (%d) exhausted", b.limits.RequestsPerMinute))
	}
	if over&overTokens != 0 {
		why = append(why, fmt.Sprintf("tokens_per_minute (%d) exhausted", b.limits.TokensPerMinute))
	}
	ms := (wait + time.Millisecond - 1) / time.Millisecond
	ms = max(ms, 1)
	return &mux.Error{Code: dbe.CodeRateLimited, RetryAfterMS: uint32(min(int64(ms), math.MaxUint32)),
		Message: fmt.Sprintf("rate limit for tenant %q: %s", b.tenant, strings.Join(why, "; "))}
}

// Quota is the state of one per-minute limit.
type Quota struct {
	// Limit is the quota per minute; 0 means unlimited (the other fields
	// are then zero).
	Limit int64
	// Remaining is what could be used right now (never negative).
	Remaining int64
	// Reset is how long until the quota is back to Limit if nothing more
	// is used.
	Reset time.Duration
}

// Info is a tenant's quota state, for x-ratelimit-* headers.
type Info struct {
	// Requests is the requests_per_minute quota.
	Requests Quota
	// Tokens is the tokens_per_minute quota.
	Tokens Quota
	// MaxConcurrent is the max_concurrent limit; 0 means unlimited.
	MaxConcurrent int64
	// InFlight is how many of the tenant's requests are running.
	InFlight int64
}

// State returns tenant's quota state now. An unknown or unlimited tenant
// gets the zero Info.
func (l *Limiter) State(tenant string) Info {
	b := l.tenants[tenant]
	if b == nil {
		return Info{}
	}
	now := l.now()
	b.mu.Lock()
	b.refill(now)
	req, tok, inFlight := b.req, b.tok, b.inFlight
	b.mu.Unlock()
	quota := func(limit int, level float64) Quota {
		if limit <= 0 {
			return Quota{}
		}
		return Quota{Limit: int64(limit), Remaining: int64(math.Max(0, math.Floor(level))),
			Reset: time.Duration(math.Ceil((float64(limit) - level) / perNS(limit)))}
	}
	return Info{Requests: quota(b.limits.RequestsPerMinute, req), Tokens: quota(b.limits.TokensPerMinute, tok),
		MaxConcurrent: int64(max(b.limits.MaxConcurrent, 0)), InFlight: int64(inFlight)}
}

// SetHeaders sets the OpenAI-style headers x-ratelimit-limit-requests,
// x-ratelimit-remaining-requests, x-ratelimit-reset-requests and the
// -tokens trio for each limited quota. Resets are Go durations rounded up
// to the millisecond ("1s", "6m0s", "20ms"), as OpenAI writes them.
// Retry-After on a 429 comes from the refusal's RetryAfterMS, not from here.
func (i Info) SetHeaders(h http.Header) {
	for _, q := range []struct {
		kind string
		q    Quota
	}{{"requests", i.Requests}, {"tokens", i.Tokens}} {
		if q.q.Limit == 0 {
			continue
		}
		h.Set("x-ratelimit-limit-"+q.kind, strconv.FormatInt(q.q.Limit, 10))
		h.Set("x-ratelimit-remaining-"+q.kind, strconv.FormatInt(q.q.Remaining, 10))
		reset := (q.q.Reset + time.Millisecond - 1).Truncate(time.Millisecond) // never earlier than true
		h.Set("x-ratelimit-reset-"+q.kind, reset.String())
	}
}

// EstimateTokens estimates the tokens a request frame will use before it
// runs: for L7_CHAT_REQ, a quarter of the bytes of its messages, prompt and
// tools (rounded up) plus max_tokens × n (defaultCompletion × n when
// max_tokens is 0); for L7_EMBED_REQ, which generates nothing, a quarter of
// its payload; for any other frame, a quarter of its payload plus
// defaultCompletion. A payload that does not parse is estimated by its
// size.
func EstimateTokens(f *dbe.Frame, defaultCompletion int64) int64 {
	if f.Type == dbe.MsgEmbedReq {
		return (int64(len(f.Payload)) + 3) / 4
	}
	if f.Type != dbe.MsgChatReq {
		return (int64(len(f.Payload))+3)/4 + defaultCompletion
	}
	var promptBytes, maxTokens, n int64
	b := f.Payload
	for len(b) > 0 {
		num, typ, m := protowire.ConsumeTag(b)
		if m < 0 {
			return (int64(len(f.Payload))+3)/4 + defaultCompletion
		}
		b = b[m:]
		switch {
		case typ == protowire.BytesType && (num == 2 || num == 3 || num == 19):
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return (int64(len(f.Payload))+3)/4 + defaultCompletion
			}
			promptBytes += int64(len(v))
			b = b[m:]
			continue
		case typ == protowire.VarintType && (num == 10 || num == 16):
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return (int64(len(f.Payload))+3)/4 + defaultCompletion
			}
			if num == 10 {
				maxTokens = int64(int32(v))
			} else {
				n = int64(int32(v))
			}
			b = b[m:]
			continue
		}
		m = protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return (int64(len(f.Payload))+3)/4 + defaultCompletion
		}
		b = b[m:]
	}
	if maxTokens <= 0 {
		maxTokens = defaultCompletion
	}
	n = min(max(n, 1), 128)
	return (promptBytes+3)/4 + maxTokens*n
}

type agentStepKey struct{}

// AgentStep marks ctx as an agent task's LLM step's (host/agentcall sets
// it): the task already holds one of its tenant's max_concurrent slots, so
// its steps take none (otherwise a tenant with max_concurrent = 1 could
// start a task that can never make a step). They still count against
// requests_per_minute and tokens_per_minute.
func AgentStep(ctx context.Context) context.Context {
	return context.WithValue(ctx, agentStepKey{}, true)
}

// IsAgentStep reports whether ctx is an agent step's (AgentStep).
func IsAgentStep(ctx context.Context) bool {
	v, _ := ctx.Value(agentStepKey{}).(bool)
	return v
}
