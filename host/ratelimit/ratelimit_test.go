package ratelimit_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/ratelimit"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"google.golang.org/protobuf/proto"
)

// clock is a fake clock, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_800_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func cfgWith(limits map[string]config.RateLimit) *config.Config {
	cfg := &config.Config{}
	for name, rl := range limits {
		cfg.Tenants = append(cfg.Tenants, &config.Tenant{Name: name, RateLimit: rl})
	}
	return cfg
}

// chatFrame is an L7_CHAT_REQ for tenant with promptBytes of message
// content and max_tokens.
func chatFrame(tenant string, promptBytes int, maxTokens int32) *dbe.Frame {
	f := &dbe.Frame{Type: dbe.MsgChatReq}
	f.SetTenantID(tenant)
	req := &l7v1.L7ChatRequest{MaxTokens: maxTokens}
	if promptBytes > 0 {
		req.Prompt = strings.Repeat("x", promptBytes)
	}
	f.Payload, _ = proto.Marshal(req)
	return f
}

func refusal(t *testing.T, err error) *mux.Error {
	t.Helper()
	var me *mux.Error
	if !errors.As(err, &me) || me.Code != dbe.CodeRateLimited {
		t.Fatalf("want RATE_LIMITED, got %v", err)
	}
	return me
}

func TestRequestsPerMinute(t *testing.T) {
	clk := newClock()
	l := ratelimit.New(cfgWith(map[string]config.RateLimit{"A": {RequestsPerMinute: 5}}), ratelimit.WithClock(clk.Now))
	ctx := context.Background()
	f := chatFrame("A", 0, 0)
	for i := 0; i < 5; i++ {
		rel, err := l.Admit(ctx, f)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		rel(10)
	}
	_, err := l.Admit(ctx, f)
	me := refusal(t, err)
	if me.RetryAfterMS != 12000 || !strings.Contains(me.Message, "requests_per_minute (5)") {
		t.Fatalf("%+v", me)
	}
	if s := l.State("A"); s.Requests != (ratelimit.Quota{Limit: 5, Remaining: 0, Reset: time.Minute}) {
		t.Fatalf("state %+v", s)
	}
	clk.Advance(12 * time.Second)
	if _, err := l.Admit(ctx, f); err != nil {
		t.Fatalf("after refill: %v", err)
	}
}

func TestTokensPerMinute(t *testing.T) {
	clk := newClock()
	l := ratelimit.New(cfgWith(map[string]config.RateLimit{"A": {TokensPerMinute: 1000}}), ratelimit.WithClock(clk.Now))
	ctx := context.Background()
	f := chatFrame("A", 398, 100) // 400-byte field: 100 + 100 tokens
	if est := ratelimit.EstimateTokens(f, 512); est != 200 {
		t.Fatalf("estimate %d", est)
	}
	var rels []func(int64)
	for i := 0; i < 5; i++ {
		rel, err := l.Admit(ctx, f)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		rels = append(rels, rel)
	}
	_, err := l.Admit(ctx, f)
	me := refusal(t, err)
	if !strings.Contains(me.Message, "tokens_per_minute (1000)") || me.RetryAfterMS != 12000 {
		t.Fatalf("%+v", me)
	}
	// Reconcile: each used 50, not 200: 750 come back.
	for _, rel := range rels {
		rel(50)
		rel(50) // a second release does nothing
	}
	if s := l.State("A"); s.Tokens.Remaining != 750 {
		t.Fatalf("after reconcile: %+v", s.Tokens)
	}
	// Overuse is charged: 1200 used against a 200 estimate.
	rel, err := l.Admit(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	rel(1200)
	if s := l.State("A"); s.Tokens.Remaining != 0 {
		t.Fatalf("after overuse: %+v", s.Tokens)
	}
	// A request larger than the whole bucket waits for a full bucket.
	clk.Advance(2 * time.Minute)
	big := chatFrame("A", 0, 5000)
	if _, err := l.Admit(ctx, big); err != nil {
		t.Fatalf("big request on a full bucket: %v", err)
	}
	_, err = l.Admit(ctx, big)
	refusal(t, err)
}

func TestMaxConcurrent(t *testing.T) {
	l := ratelimit.New(cfgWith(map[string]config.RateLimit{"A": {MaxConcurrent: 2}}))
	ctx := context.Background()
	f := chatFrame("A", 0, 0)
	r1, err1 := l.Admit(ctx, f)
	_, err2 := l.Admit(ctx, f)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	_, err := l.Admit(ctx, f)
	me := refusal(t, err)
	if !strings.Contains(me.Message, "max_concurrent (2)") || me.RetryAfterMS != 1000 {
		t.Fatalf("%+v", me)
	}
	if s := l.State("A"); s.InFlight != 2 || s.MaxConcurrent != 2 {
		t.Fatalf("%+v", s)
	}
	r1(0)
	r1(0)
	if _, err := l.Admit(ctx, f); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Admit(ctx, f); err == nil {
		t.Fatal("double release freed two slots")
	}
}

func TestUnlimited(t *testing.T) {
	l := ratelimit.New(cfgWith(map[string]config.RateLimit{"FREE": {}}))
	for _, tenant := range []string{"FREE", "UNKNOWN"} {
		for i := 0; i < 100; i++ {
			rel, err := l.Admit(context.Background(), chatFrame(tenant, 0, 0))
			if err != nil {
				t.Fatal(err)
			}
			rel(1 << 40)
		}
		if s := l.State(tenant); s != (ratelimit.Info{}) {
			t.Fatalf("%s: %+v", tenant, s)
		}
	}
}

func TestHeaders(t *testing.T) {
	clk := newClock()
	l := ratelimit.New(cfgWith(map[string]config.RateLimit{"A": {RequestsPerMinute: 60, TokensPerMinute: 6000}}), ratelimit.WithClock(clk.Now))
	rel, _ := l.Admit(context.Background(), chatFrame("A", 0, 100))
	rel(0)
	h := http.Header{}
	l.State("A").SetHeaders(h)
	want := map[string]string{
		"X-Ratelimit-Limit-Requests": "60", "X-Ratelimit-Remaining-Requests": "59", "X-Ratelimit-Reset-Requests": "1s",
		"X-Ratelimit-Limit-Tokens": "6000", "X-Ratelimit-Remaining-Tokens": "5900", "X-Ratelimit-Reset-Tokens": "1s",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if len(h) != len(want) {
		t.Errorf("headers %v", h)
	}
}

func TestEstimateTokens(t *testing.T) {
	msgs := &l7v1.L7ChatRequest{Messages: []*l7v1.Message{{Role: "user", Content: strings.Repeat("y", 94)}}, N: 2, MaxTokens: 10}
	f := &dbe.Frame{Type: dbe.MsgChatReq}
	f.Payload, _ = proto.Marshal(msgs)
	// Message: role (2+4) + content (2+94) = 102 bytes → 26 tokens; 10 × 2.
	if got := ratelimit.EstimateTokens(f, 512); got != 26+20 {
		t.Fatalf("chat: %d", got)
	}
	agent := &dbe.Frame{Type: dbe.MsgAgentTask, Payload: make([]byte, 8)}
	if got := ratelimit.EstimateTokens(agent, 100); got != 102 {
		t.Fatalf("agent: %d", got)
	}
	bad := &dbe.Frame{Type: dbe.MsgChatReq, Payload: []byte{0x12, 0x7f}}
	if got := ratelimit.EstimateTokens(bad, 100); got != 101 {
		t.Fatalf("malformed: %d", got)
	}
}

// TestConcurrentBurst: many goroutines hit each limit at once with the
// clock stopped; exactly the quota is admitted (no check-then-increment
// race). Run with -race.
func TestConcurrentBurst(t *testing.T) {
	clk := newClock()
	l := ratelimit.New(cfgWith(map[string]config.RateLimit{
		"REQ": {RequestsPerMinute: 100},
		"TOK": {TokensPerMinute: 10 * 200},
		"CON": {MaxConcurrent: 7},
	}), ratelimit.WithClock(clk.Now))
	const workers, tries = 16, 40
	for tenant, want := range map[string]int64{"REQ": 100, "TOK": 10, "CON": 7} {
		f := chatFrame(tenant, 398, 100) // 200 tokens
		var admitted atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for i := 0; i < tries; i++ {
					if _, err := l.Admit(context.Background(), f); err == nil {
						admitted.Add(1) // never released: holds its slot and tokens
					}
				}
			}()
		}
		close(start)
		wg.Wait()
		if got := admitted.Load(); got != want {
			t.Errorf("%s: admitted %d of %d attempts, want %d", tenant, got, workers*tries, want)
		}
	}
}

// TestTenantIsolation (issue 6 item 6): while tenant A floods far beyond
// its quota from many goroutines, every request of tenant B within B's
// quota is admitted, promptly.
func TestTenantIsolation(t *testing.T) {
	l := ratelimit.New(cfgWith(map[string]config.RateLimit{
		"A": {RequestsPerMinute: 10, TokensPerMinute: 1000, MaxConcurrent: 2},
		"B": {RequestsPerMinute: 200, TokensPerMinute: 200 * 200, MaxConcurrent: 4},
	}))
	ctx := context.Background()
	stop := make(chan struct{})
	var flood, floodAdmitted atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := chatFrame("A", 398, 100)
			for {
				select {
				case <-stop:
					return
				default:
				}
				flood.Add(1)
				if rel, err := l.Admit(ctx, f); err == nil {
					floodAdmitted.Add(1)
					rel(200)
				}
			}
		}()
	}
	time.Sleep(5 * time.Millisecond) // let the flood start
	f := chatFrame("B", 398, 100)
	lat := make([]time.Duration, 0, 200)
	for i := 0; i < 200; i++ {
		t0 := time.Now()
		rel, err := l.Admit(ctx, f)
		lat = append(lat, time.Since(t0))
		if err != nil {
			t.Fatalf("B request %d refused during A's flood: %v", i, err)
		}
		rel(150)
	}
	close(stop)
	wg.Wait()
	slices.Sort(lat)
	p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
	t.Logf("A: %d attempts, %d admitted; B: 200/200 admitted, Admit p50 %v p99 %v max %v",
		flood.Load(), floodAdmitted.Load(), p50, p99, lat[len(lat)-1])
	if floodAdmitted.Load() > 11 {
		t.Errorf("A admitted %d, quota 10/min", floodAdmitted.Load())
	}
	// Generous bound: B never waits on A's lock, but the flood competes for
	// the CPU (and -race slows everything).
	if p99 > 20*time.Millisecond {
		t.Errorf("B's Admit p99 %v during A's flood", p99)
	}
}

// TestEmbedTokens: an L7_EMBED_REQ is estimated by its input alone (it
// generates nothing: no default completion) and charged the input tokens
// its response reports, against tokens_per_minute.
func TestEmbedTokens(t *testing.T) {
	clk := newClock()
	l := ratelimit.New(cfgWith(map[string]config.RateLimit{"A": {TokensPerMinute: 100}}), ratelimit.WithClock(clk.Now))
	f := &dbe.Frame{Type: dbe.MsgEmbedReq}
	f.SetTenantID("A")
	f.Payload, _ = proto.Marshal(&l7v1.L7EmbedRequest{Inputs: []*l7v1.EmbedInput{{Input: &l7v1.EmbedInput_Text{Text: strings.Repeat("z", 76)}}}})
	// inputs (2) + EmbedInput (2) + text (76) = 80 bytes → 20 tokens, no completion.
	if est := ratelimit.EstimateTokens(f, 512); est != 20 {
		t.Fatalf("estimate %d, want 20", est)
	}
	rel, err := l.Admit(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	rel(90) // the plugin read 90 input tokens
	if s := l.State("A"); s.Tokens.Remaining != 10 {
		t.Fatalf("after an embedding of 90 tokens: %+v", s.Tokens)
	}
	_, err = l.Admit(context.Background(), f)
	if me := refusal(t, err); !strings.Contains(me.Message, "tokens_per_minute (100)") {
		t.Fatalf("%+v", me)
	}
}
