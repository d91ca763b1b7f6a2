package dbe

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

func TestReaderWriterRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var frames []*Frame
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for range 500 {
		f := randFrame(r)
		frames = append(frames, f)
		if err := w.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	rd := NewReader(&buf, 0)
	var reuse Frame
	for i, want := range frames {
		var got *Frame
		var err error
		if i%2 == 0 {
			got, err = rd.ReadFrame()
		} else {
			err = rd.ReadFrameInto(&reuse)
			got = &reuse
		}
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !equalFrames(want, got) {
			t.Fatalf("frame %d differs", i)
		}
	}
	if _, err := rd.ReadFrame(); err != io.EOF {
		t.Fatalf("at end: %v, want io.EOF", err)
	}
}

// TestWriterFlushesWhenIdle: a lone frame reaches the peer without an
// explicit Flush, over a real socket pair.
func TestWriterFlushesWhenIdle(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	w := NewWriter(a)
	go func() { _ = w.WriteFrame(&Frame{Type: MsgHealth, CorrelationID: 42}) }()
	f, err := NewReader(b, 0).ReadFrame()
	if err != nil || f.CorrelationID != 42 {
		t.Fatalf("%v %v", f, err)
	}
}

// TestWriterConcurrent: frames from many goroutines arrive whole.
func TestWriterConcurrent(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("unix", dir+"/s")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const G, N = 8, 400
	done := make(chan map[uint64]int)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- nil
			return
		}
		defer c.Close()
		seen := map[uint64]int{}
		rd := NewReader(c, 0)
		for range G * N {
			f, err := rd.ReadFrame()
			if err != nil {
				t.Errorf("read: %v", err)
				break
			}
			if len(f.Payload) != int(f.CorrelationID%977) {
				t.Errorf("frame %d payload %d", f.CorrelationID, len(f.Payload))
			}
			seen[f.CorrelationID]++
		}
		done <- seen
	}()
	c, err := net.Dial("unix", dir+"/s")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := NewWriter(c)
	var wg sync.WaitGroup
	for g := range G {
		wg.Go(func() {
			for i := range N {
				id := uint64(g*N + i + 1)
				if err := w.WriteFrame(&Frame{Type: MsgTunnelData, CorrelationID: id, Payload: make([]byte, id%977)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	seen := <-done
	if len(seen) != G*N {
		t.Fatalf("%d distinct frames, want %d", len(seen), G*N)
	}
}

// TestReaderRecoverable: a frame with a bad body is reported as a
// *FrameError with its correlation id, and the next frame still reads.
func TestReaderRecoverable(t *testing.T) {
	var buf bytes.Buffer
	bad, _ := (&Frame{Type: MsgChatReq, CorrelationID: 7, TLVs: []TLV{{TLVTenantID, []byte("A")}}}).MarshalBinary()
	copy(bad[HeaderSize:], []byte{0xC0, 0x01}) // make it an unknown critical TLV
	buf.Write(bad)
	good, _ := (&Frame{Type: MsgHealth, CorrelationID: 8}).MarshalBinary()
	buf.Write(good)
	rd := NewReader(&buf, 0)
	_, err := rd.ReadFrame()
	var fe *FrameError
	if !errors.As(err, &fe) || fe.Header.CorrelationID != 7 || !errors.Is(err, ErrUnknownCriticalTLV) {
		t.Fatalf("err %v", err)
	}
	f, err := rd.ReadFrame()
	if err != nil || f.CorrelationID != 8 {
		t.Fatalf("next frame: %v %v", f, err)
	}
}

// TestReaderFatal: header-level errors are not FrameErrors.
func TestReaderFatal(t *testing.T) {
	cases := map[string][]byte{
		"bad magic":  []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"truncated":  {'D', 'B', 1, 6, 0, 0, 0, 0},
		"too large":  {'D', 'B', 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"short body": {'D', 'B', 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2},
		"version 2":  {'D', 'B', 2, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"mid-header": {'D'},
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(b), 1<<20).ReadFrame()
			var fe *FrameError
			if err == nil || errors.As(err, &fe) || err == io.EOF {
				t.Fatalf("err %v", err)
			}
			if ErrorName(err) == "" {
				t.Fatalf("err %v has no wire name", err)
			}
		})
	}
}

func TestReaderChecksSizeBeforeReading(t *testing.T) {
	hdr := []byte{'D', 'B', 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 1}
	var m1, m2 runtimeMem
	m1.read()
	_, err := NewReader(bytes.NewReader(hdr), 0).ReadFrame()
	m2.read()
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatal(err)
	}
	if d := m2.total - m1.total; d > 256<<10 {
		t.Fatalf("allocated %d bytes for a refused frame", d)
	}
}

// TestReaderSlowLoris: a frame that declares 15 MiB but delivers little
// costs at most one chunk of memory before the stream ends.
func TestReaderSlowLoris(t *testing.T) {
	hdr := []byte{'D', 'B', 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0xF0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}
	var m1, m2 runtimeMem
	m1.read()
	_, err := NewReader(io.MultiReader(bytes.NewReader(hdr), bytes.NewReader(make([]byte, 100))), 0).ReadFrame()
	m2.read()
	if !errors.Is(err, ErrTruncated) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err %v", err)
	}
	if d := m2.total - m1.total; d > 2*chunk+(256<<10) {
		t.Fatalf("allocated %d bytes for 100 delivered", d)
	}
}

type failingWriter struct{ n int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, io.ErrClosedPipe
	}
	f.n--
	return len(p), nil
}

func TestWriterStickyError(t *testing.T) {
	w := NewWriter(&failingWriter{n: 1})
	if err := w.WriteFrame(&Frame{Type: MsgHealth}); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	_ = w.WriteFrame(&Frame{Type: MsgHealth})
	err := w.Flush()
	if !errors.Is(err, ErrWriterFailed) || !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("err %v", err)
	}
	if err := w.WriteFrame(&Frame{Type: MsgHealth}); !errors.Is(err, ErrWriterFailed) {
		t.Fatalf("not sticky: %v", err)
	}
	if err := w.WriteEncoded([]byte("nope")); !errors.Is(err, ErrTruncated) {
		t.Fatalf("WriteEncoded: %v", err)
	}
}

// TestWriterBackpressure: a writer whose peer does not read blocks once
// MaxPending bytes wait, instead of buffering without bound.
func TestWriterBackpressure(t *testing.T) {
	pr, pw := io.Pipe()
	w := NewWriter(pw)
	w.maxPending = 64 << 10
	done := make(chan int)
	go func() {
		n := 0
		for range 1000 {
			if w.WriteFrame(&Frame{Type: MsgTunnelData, Payload: make([]byte, 4096)}) != nil {
				break
			}
			n++
		}
		done <- n
	}()
	select {
	case n := <-done:
		t.Fatalf("wrote %d frames to a peer that reads nothing", n)
	case <-time.After(200 * time.Millisecond):
	}
	go io.Copy(io.Discard, pr)
	if n := <-done; n != 1000 {
		t.Fatalf("%d frames", n)
	}
}

func TestWriteEncoded(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	b, _ := (&Frame{Type: MsgCancel, CorrelationID: 3}).MarshalBinary()
	if err := w.WriteEncoded(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteEncoded(append(b, 0)); !errors.Is(err, ErrTruncated) {
		t.Fatalf("length mismatch: %v", err)
	}
	if !bytes.Equal(buf.Bytes(), b) {
		t.Fatal("bytes differ")
	}
}

// TestWriterBigBatches: concurrent writers of 40 KiB frames through a slow
// reader (batches past the 1 MiB spare limit) get every frame intact. The
// buffer-sharing race it guards against was caught by the race detector in
// host/routersock's TestEndpointSlowReader.
func TestWriterBigBatches(t *testing.T) {
	pr, pw := io.Pipe()
	w := NewWriter(pw)
	const n = 300
	go func() {
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := range n {
					p := bytes.Repeat([]byte{byte(g)}, 40<<10)
					if err := w.WriteFrame(&Frame{Type: MsgTunnelData, CorrelationID: uint64(g*n + i + 1), Payload: p}); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		w.Flush()
		pw.Close()
	}()
	rd := NewReader(pr, 0)
	for range 4 * n {
		f, err := rd.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		g := byte((f.CorrelationID - 1) / n)
		if len(f.Payload) != 40<<10 || bytes.Count(f.Payload, []byte{g}) != len(f.Payload) {
			t.Fatalf("frame %d corrupted", f.CorrelationID)
		}
	}
}
