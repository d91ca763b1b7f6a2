package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// echoEnv names the environment variable that makes this binary the echo
// process of roundTrips: its value is "SOCKET CPU" (CPU -1: not pinned).
const echoEnv = "DSMIL_WAKEUP_ECHO"

// pinProcess pins every thread of this process to cpu (threads made later
// inherit it from the thread that makes them).
func pinProcess(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("pin thread %d to CPU %d: %w", tid, cpu, err)
		}
	}
	return nil
}

// echo is the child of roundTrips: it connects to the socket and sends
// back every byte it reads.
func echo(arg string) error {
	var sock string
	var cpu int
	if _, err := fmt.Sscan(arg, &sock, &cpu); err != nil {
		return fmt.Errorf("%s=%q: %w", echoEnv, arg, err)
	}
	if cpu >= 0 {
		if err := pinProcess(cpu); err != nil {
			return err
		}
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = io.Copy(c, c)
	return err
}

// roundTrips measures what a message to another process and its answer
// cost in wall time, as the host and a plugin exchange a request: 64 bytes
// over a Unix socket to an echo process and back. Back to back, both sides
// stay awake; after an idle gap (this side computes, the echo process
// sleeps), the answer waits for the echo process's CPU to wake. The echo
// process runs on the caller's CPU or on another one, which tells the
// cost of waking an idle CPU apart from that of the round trip itself.
func roundTrips(d time.Duration) error {
	if runtime.NumCPU() < 2 {
		fmt.Println("  (one CPU: no cross-CPU round trips to measure)")
		return nil
	}
	runtime.LockOSThread() // the measuring goroutine keeps its pinned thread
	defer runtime.UnlockOSThread()
	if err := pinProcess(0); err != nil {
		return err
	}
	fmt.Printf("Wall time of a 64-byte round trip to another process over a Unix socket (this process on CPU 0; median of %v each):\n", d)
	for _, gap := range []time.Duration{0, 200 * time.Microsecond} {
		for _, cpu := range []int{0, 1} {
			med, n, err := roundTrip(d, gap, cpu)
			if err != nil {
				return err
			}
			what := "back to back"
			if gap > 0 {
				what = fmt.Sprintf("after %v of work", gap)
			}
			fmt.Printf("  %-22s echo process on CPU %d %8.1f µs (%d)\n", what, cpu, float64(med)/float64(time.Microsecond), n)
		}
	}
	return nil
}

func roundTrip(d, gap time.Duration, cpu int) (time.Duration, int, error) {
	dir, err := os.MkdirTemp("", "bench-wakeup")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "echo")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return 0, 0, err
	}
	defer ln.Close()
	self, err := os.Executable()
	if err != nil {
		return 0, 0, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d", echoEnv, sock, cpu))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if ul, ok := ln.(*net.UnixListener); ok {
		_ = ul.SetDeadline(time.Now().Add(10 * time.Second))
	}
	c, err := ln.Accept()
	if err != nil {
		return 0, 0, fmt.Errorf("the echo process did not connect: %w", err)
	}
	defer c.Close()
	buf := make([]byte, 64)
	var rtts []time.Duration
	for end := time.Now().Add(d); time.Now().Before(end); {
		for t0 := time.Now(); time.Since(t0) < gap; {
			// work: the echo process's CPU goes idle meanwhile
		}
		t := time.Now()
		if _, err := c.Write(buf); err != nil {
			return 0, 0, err
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return 0, 0, err
		}
		rtts = append(rtts, time.Since(t))
	}
	slices.Sort(rtts)
	return rtts[len(rtts)/2], len(rtts), nil
}
