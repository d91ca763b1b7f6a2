package widerun

import (
	"bufio"
	"context"
	"os"
	"strconv"
	"strings"
	"time"
)

// QuietIdle is the idle share of the machine's CPU time, over one
// QuietWindow, from which WaitQuiet takes the machine to be quiet.
const QuietIdle = 0.90

// QuietWindow is how long WaitQuiet watches the machine at a time.
const QuietWindow = 200 * time.Millisecond

// CPUTimes returns the CPU time the machine's CPUs have spent idle and in
// all so far, in clock ticks (the "cpu" line of /proc/stat; idle counts
// iowait too), and false where there is no /proc/stat.
func CPUTimes() (idle, total uint64, ok bool) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	fields := strings.Fields(line)
	if err != nil || len(fields) < 6 || fields[0] != "cpu" {
		return 0, 0, false
	}
	// user nice system idle iowait irq softirq steal guest guest_nice;
	// guest time is already counted in user and nice.
	for i, s := range fields[1:min(len(fields), 9)] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		total += v
		if i == 3 || i == 4 {
			idle += v
		}
	}
	return idle, total, true
}

// WaitQuiet waits until the machine's CPUs have been at least QuietIdle
// idle over one QuietWindow, or until maxWait has passed (at least one
// window is watched unless maxWait is 0), and returns the idle share of
// the last window watched and whether it was quiet. MinTokens compares
// runs on one thread with runs on every thread, and other processes'
// work — a plane's other plugins loading their models beside this one —
// slows the runs on every thread most: measured then, the answer is
// "none" where a quiet machine gives the shortest length. Where the
// machine's CPU times cannot be read it returns (1, true) at once.
func WaitQuiet(ctx context.Context, maxWait time.Duration) (float64, bool, error) {
	return waitQuiet(ctx, maxWait, QuietWindow, CPUTimes)
}

func waitQuiet(ctx context.Context, maxWait, window time.Duration, times func() (uint64, uint64, bool)) (float64, bool, error) {
	if maxWait <= 0 {
		return 1, true, nil
	}
	deadline := time.Now().Add(maxWait)
	idle0, total0, ok := times()
	if !ok {
		return 1, true, nil
	}
	t := time.NewTimer(window)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return 0, false, ctx.Err()
		case <-t.C:
		}
		idle1, total1, ok := times()
		if !ok {
			return 1, true, nil
		}
		share := 1.0
		if total1 > total0 {
			share = float64(idle1-idle0) / float64(total1-total0)
		}
		if share >= QuietIdle {
			return share, true, nil
		}
		if !time.Now().Before(deadline) {
			return share, false, nil
		}
		idle0, total0 = idle1, total1
		t.Reset(min(window, time.Until(deadline)))
	}
}
