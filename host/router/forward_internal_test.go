package router

import (
	"testing"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
)

// TestForwardFrameTimeout: TIMEOUT_MS is the budget rounded up to the
// millisecond (dbe.Frame.SetTimeout), never cut short.
func TestForwardFrameTimeout(t *testing.T) {
	for _, tc := range []struct{ budget, want time.Duration }{
		{1500 * time.Microsecond, 2 * time.Millisecond},
		{time.Microsecond, time.Millisecond},
		{3 * time.Second, 3 * time.Second},
	} {
		f := forwardFrame(&dbe.Frame{Type: dbe.MsgChatReq}, 47, tc.budget)
		if d, ok := f.Timeout(); !ok || d != tc.want {
			t.Errorf("budget %v: TIMEOUT_MS %v, want %v", tc.budget, d, tc.want)
		}
	}
}

// TestAgentTimeout: an agent task's budget is router.agent_timeout, not
// request_timeout (which a task type's wall_time may exceed), shortened by
// its TIMEOUT_MS; a chat keeps request_timeout.
func TestAgentTimeout(t *testing.T) {
	r := &Router{cfg: Config{RequestTimeout: time.Minute, AgentTimeout: 10 * time.Minute}}
	ctx := t.Context()
	for _, tc := range []struct {
		typ     dbe.MsgType
		timeout time.Duration // TIMEOUT_MS; 0 = none
		want    time.Duration
	}{
		{dbe.MsgAgentTask, 0, 10 * time.Minute},
		{dbe.MsgAgentTask, 180 * time.Second, 180 * time.Second},
		{dbe.MsgAgentTask, time.Hour, 10 * time.Minute},
		{dbe.MsgChatReq, 0, time.Minute},
		{dbe.MsgChatReq, 180 * time.Second, time.Minute},
	} {
		f := &dbe.Frame{Type: tc.typ}
		if tc.timeout > 0 {
			f.SetTimeout(tc.timeout)
		}
		if got := r.timeout(ctx, f); got != tc.want {
			t.Errorf("%s with TIMEOUT_MS %v: budget %v, want %v", tc.typ, tc.timeout, got, tc.want)
		}
	}
}
