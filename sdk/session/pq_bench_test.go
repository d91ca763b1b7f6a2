package session

import (
	"context"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/dsmil/l7/sdk/dbe"
)

// socketPair returns both ends of a connected Unix stream socket pair.
func socketPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]net.Conn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	return conns[0], conns[1]
}

// BenchmarkPQHandshake is one whole handshake, both ends in this process,
// over a Unix socket pair.
func BenchmarkPQHandshake(b *testing.B) {
	for _, g := range []Group{GroupMLKEM1024X25519, GroupMLKEM1024P384} {
		b.Run(g.String(), func(b *testing.B) {
			p := newPKI(b)
			cl, sv := p.client(), p.server()
			cl.Groups = []Group{g}
			ctx := context.Background()
			for b.Loop() {
				c, s := socketPair(b)
				done := make(chan error, 1)
				go func() {
					ch, err := sv.Server(ctx, s)
					if err == nil {
						ch.Close()
					}
					done <- err
				}()
				ch, err := cl.Client(ctx, c)
				if err != nil {
					b.Fatal(err)
				}
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				ch.Close()
			}
		})
	}
}

// BenchmarkSealedThroughput writes 256-byte frames through a sealed channel
// pair (one writer, one reader, a Unix socket pair) and reports messages
// per second; BenchmarkPlainThroughput is the same without sealing.
func BenchmarkSealedThroughput(b *testing.B) {
	a, r := sealedPair(b, RekeyFrames, RekeyBytes)
	throughput(b, a, r)
}

func BenchmarkPlainThroughput(b *testing.B) {
	c, s := socketPair(b)
	a, r := NewPlainChannel(c, 0, Peer{}), NewPlainChannel(s, 0, Peer{})
	b.Cleanup(func() { a.Close(); r.Close() })
	throughput(b, a, r)
}

func throughput(b *testing.B, w, r Channel) {
	f := &dbe.Frame{Type: dbe.MsgChatChunk, CorrelationID: 42, Payload: make([]byte, 256-dbe.HeaderSize-4-16)}
	f.SetRequestID([16]byte{1})
	size := f.EncodedLen()
	done := make(chan error, 1)
	b.SetBytes(int64(size))
	b.ResetTimer()
	go func() {
		for range b.N {
			if _, err := r.ReadFrame(); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range b.N {
		if err := w.WriteFrame(f); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkSealOpen is the CPU cost of sealing and opening one 256-byte
// frame, without I/O.
func BenchmarkSealOpen(b *testing.B) {
	w := newCipherState(testSecretA, RekeyFrames, RekeyBytes)
	r := newCipherState(testSecretA, RekeyFrames, RekeyBytes)
	f := &dbe.Frame{Type: dbe.MsgChatChunk, CorrelationID: 42, Payload: make([]byte, 256-dbe.HeaderSize-4-16)}
	f.SetRequestID([16]byte{1})
	buf := make([]byte, 0, 512)
	var out dbe.Frame
	b.SetBytes(int64(f.EncodedLen()))
	b.ReportAllocs()
	for b.Loop() {
		sealed, err := w.sealFrame(buf[:0], f)
		if err != nil {
			b.Fatal(err)
		}
		sh, err := parseSealedHeader(sealed, dbe.DefaultMaxFrameSize)
		if err != nil {
			b.Fatal(err)
		}
		if err := r.openFrame(&out, sealed, sh, dbe.DefaultMaxFrameSize); err != nil {
			b.Fatal(err)
		}
	}
}
