// Command wakeup measures what waking an idle thread costs this machine,
// in CPU time charged to the process (getrusage), which is the budget a
// token stream competes for with the model's threads:
//
//   - a time.Ticker at 5 ms and 12 ms (an idle process woken by a timer);
//   - a sleep of one int4 decode step (12 ms) followed by a goroutine
//     hand-off and back;
//   - one DBE frame every 12 ms over a Unix socket through dbe.Writer (its
//     flusher goroutine) and, as the baseline, written directly, with the
//     reader in the same process;
//   - the wall time of a round trip to another process over a Unix socket,
//     back to back and after an idle gap, with that process on the same CPU
//     and on another one: what waking an idle CPU adds to each hop between
//     the host and a plugin.
//
// docs/performance.md ("LLM") explains why these numbers bound the whole
// stack's decode rate against raw ONNX Runtime at int4.
//
//	go run ./bench/wakeup [-duration 2s]
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
)

func cpu() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// per runs step until d has passed and returns the CPU time per step.
func per(d time.Duration, step func()) (time.Duration, int) {
	c0, n := cpu(), 0
	for end := time.Now().Add(d); time.Now().Before(end); n++ {
		step()
	}
	return (cpu() - c0) / time.Duration(max(n, 1)), n
}

func main() {
	dur := flag.Duration("duration", 2*time.Second, "length of each measurement")
	flag.Parse()
	if arg, ok := os.LookupEnv(echoEnv); ok {
		if err := echo(arg); err != nil {
			fmt.Fprintln(os.Stderr, "bench/wakeup echo:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*dur); err != nil {
		fmt.Fprintln(os.Stderr, "bench/wakeup:", err)
		os.Exit(1)
	}
}

func run(d time.Duration) error {
	fmt.Printf("CPU time charged to this process per event (%v each):\n", d)
	for _, every := range []time.Duration{5 * time.Millisecond, 12 * time.Millisecond} {
		t := time.NewTicker(every)
		c, n := per(d, func() { <-t.C })
		t.Stop()
		fmt.Printf("  ticker every %-6v %8v per tick (%d ticks)\n", every, c.Round(time.Microsecond), n)
	}
	ping, pong := make(chan struct{}), make(chan struct{})
	go func() {
		for range ping {
			pong <- struct{}{}
		}
	}()
	c, n := per(d, func() { time.Sleep(12 * time.Millisecond); ping <- struct{}{}; <-pong })
	close(ping)
	fmt.Printf("  12 ms sleep + goroutine hand-off %8v per round (%d)\n", c.Round(time.Microsecond), n)

	dir, err := os.MkdirTemp("", "bench-wakeup")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ln, err := net.Listen("unix", filepath.Join(dir, "s"))
	if err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, _ = io.Copy(io.Discard, c)
		}
	}()
	conn, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		return err
	}
	defer conn.Close()
	w := dbe.NewWriter(conn)
	f := &dbe.Frame{Type: dbe.MsgChatChunk, CorrelationID: 1, Payload: make([]byte, 48)}
	wire, err := f.MarshalBinary()
	if err != nil {
		return err
	}
	for _, mode := range []string{"dbe.Writer", "direct write", "dbe.Writer", "direct write"} {
		c, n := per(d, func() {
			time.Sleep(12 * time.Millisecond)
			if mode == "dbe.Writer" {
				_ = w.WriteFrame(f)
			} else {
				_, _ = conn.Write(wire)
			}
		})
		fmt.Printf("  12 ms sleep + one frame, %-12s %8v per frame (%d), reader in-process\n", mode, c.Round(time.Microsecond), n)
	}
	return roundTrips(d / 2)
}
