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
