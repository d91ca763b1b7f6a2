package dbe

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
)

// Reader reads frames from a byte stream.
type Reader struct {
	br       *bufio.Reader
	maxFrame int
	hdr      [HeaderSize]byte
	buf      []byte // reused body buffer for ReadFrameInto
}

// NewReader returns a Reader over r that refuses frames larger than
// maxFrame bytes (<= 0 means DefaultMaxFrameSize).
func NewReader(r io.Reader, maxFrame int) *Reader {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrameSize
	}
	return &Reader{br: bufio.NewReaderSize(r, 64<<10), maxFrame: maxFrame}
}

// SetMaxFrame changes the frame size limit for the frames read next
// (<= 0 means DefaultMaxFrameSize).
func (r *Reader) SetMaxFrame(maxFrame int) {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrameSize
	}
	r.maxFrame = maxFrame
}

// ReadFrame reads the next frame into newly allocated memory that the
// returned frame owns.
//
// At a clean end of stream it returns io.EOF. A *FrameError means the frame
// was consumed and the stream is still in sync; any other error (bad magic,
// unsupported version, frame too large, truncated stream, I/O) leaves the
// stream unusable.
func (r *Reader) ReadFrame() (*Frame, error) {
	f := NewFrame()
	if err := r.read(f, nil); err != nil {
		return nil, err
	}
	return f, nil
}

// NewFrame returns an empty frame allocated together with room for a
// typical TLV list, so that decoding into it allocates nothing more.
func NewFrame() *Frame {
	fb := new(frameWithTLVs)
	fb.f.TLVs = fb.tlvs[:0]
	return &fb.f
}

// frameWithTLVs keeps a frame and its first TLVs in one allocation.
type frameWithTLVs struct {
	f    Frame
	tlvs [14]TLV
}

// ReadFrameInto reads the next frame into f, reusing the Reader's buffer and
// f's TLV slice: f is valid only until the next call. Errors are as for
// ReadFrame.
func (r *Reader) ReadFrameInto(f *Frame) error { return r.read(f, &r.buf) }

// chunk bounds how much memory a frame may claim ahead of the bytes that
// actually arrive: a peer that declares 16 MiB and sends nothing costs 1 MiB.
const chunk = 1 << 20

func (r *Reader) read(f *Frame, reuse *[]byte) error {
	if _, err := io.ReadFull(r.br, r.hdr[:]); err != nil {
		if err == io.EOF {
			return io.EOF
		}
		return fmt.Errorf("%w: header: %w", ErrTruncated, err)
	}
	h, err := parseHeader(r.hdr[:], r.maxFrame)
	if err != nil {
		return err
	}
	n := int(h.TLVLen) + int(h.PayloadLen)
	var body []byte
	if reuse != nil && cap(*reuse) >= n {
		body = (*reuse)[:n]
		if _, err := io.ReadFull(r.br, body); err != nil {
			return fmt.Errorf("%w: body: %w", ErrTruncated, noEOF(err))
		}
	} else {
		body = make([]byte, 0, min(n, chunk))
		for len(body) < n {
			m := min(n-len(body), chunk)
			body = grow(body, m)
			if _, err := io.ReadFull(r.br, body[len(body)-m:]); err != nil {
				return fmt.Errorf("%w: body: %w", ErrTruncated, noEOF(err))
			}
		}
		if reuse != nil {
			*reuse = body
		}
	}
	if err := decodeBody(f, h, body); err != nil {
		return &FrameError{Header: h, Err: err}
	}
	return nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Writer writes frames to a byte stream. It is safe for concurrent use and
// never interleaves frames. Frames are encoded into a pending buffer at once
// and written by a single flusher that runs while there is something to
// write: every frame that arrives while a write system call is in progress
// leaves with the next one (group commit), so a burst of frames costs few
// system calls while a lone frame leaves at once. WriteFrame blocks only
// while more than MaxPending bytes wait to be written.
//
// A write error is sticky: it is returned by the next WriteFrame, Flush or
// WriteEncoded.
type Writer struct {
	w          io.Writer
	maxPending int

	mu       sync.Mutex
	cond     *sync.Cond
	buf      []byte // frames waiting to be written
	spare    []byte // the previous batch's buffer, reused
	flushing bool   // a flusher goroutine is running
	err      error
}

// DefaultMaxPending is how many bytes may wait in a Writer before
// WriteFrame blocks.
const DefaultMaxPending = 4 << 20

// NewWriter returns a Writer over w.
func NewWriter(w io.Writer) *Writer {
	wr := &Writer{w: w, maxPending: DefaultMaxPending}
	wr.cond = sync.NewCond(&wr.mu)
	return wr
}

// ErrWriterFailed wraps the first I/O error a Writer met; every later write
// returns it.
var ErrWriterFailed = errors.New("dbe: writer failed")

// WriteFrame encodes f into the pending buffer and returns; f may be reused
// at once. Encoding errors are returned and write nothing.
func (w *Writer) WriteFrame(f *Frame) error {
	return w.writeWith(f.AppendBinary, true)
}

// ErrWouldBlock is returned by TryWriteFrame when MaxPending bytes already
// wait to be written: the peer is not reading.
var ErrWouldBlock = errors.New("dbe: writer full")

// TryWriteFrame is WriteFrame for callers that must never block (a read
// loop relaying another connection's frames): when the pending buffer is
// full it returns ErrWouldBlock at once and writes nothing.
func (w *Writer) TryWriteFrame(f *Frame) error {
	return w.writeWith(f.AppendBinary, false)
}

// WriteWith appends whatever fn appends to the pending buffer, with the
// writer's lock held: fn sees the pending bytes as dst and returns dst with
// one or more whole frames appended (or dst and an error, which writes
// nothing). Writes keep the order of the calls, which a channel that seals
// each frame under a counter nonce relies on. fn must not block.
func (w *Writer) WriteWith(fn func(dst []byte) ([]byte, error)) error {
	return w.writeWith(fn, true)
}

// TryWriteWith is WriteWith that returns ErrWouldBlock instead of waiting
// for room.
func (w *Writer) TryWriteWith(fn func(dst []byte) ([]byte, error)) error {
	return w.writeWith(fn, false)
}

func (w *Writer) writeWith(fn func(dst []byte) ([]byte, error), wait bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if wait {
		if err := w.waitRoom(); err != nil {
			return err
		}
	} else if w.err != nil {
		return w.err
	} else if len(w.buf) >= w.maxPending {
		return ErrWouldBlock
	}
	buf, err := fn(w.buf)
	if err != nil {
		return err
	}
	w.buf = buf
	w.kick()
	return nil
}

// WriteEncoded writes an already-encoded frame (for forwarding frames that
// were decoded from a trusted peer). It checks the header only.
func (w *Writer) WriteEncoded(b []byte) error {
	h, err := parseHeader(b, 0)
	if err != nil {
		return err
	}
	if h.FrameSize() != uint64(len(b)) {
		return fmt.Errorf("%w: header declares %d bytes, have %d", ErrTruncated, h.FrameSize(), len(b))
	}
	return w.writeWith(func(dst []byte) ([]byte, error) { return append(dst, b...), nil }, true)
}

// waitRoom blocks while the pending buffer is full. Called with mu held.
func (w *Writer) waitRoom() error {
	for w.err == nil && len(w.buf) >= w.maxPending {
		w.cond.Wait()
	}
	return w.err
}

// kick starts the flusher if it is not running. Called with mu held.
func (w *Writer) kick() {
	if !w.flushing {
		w.flushing = true
		go w.flushLoop()
	}
}

// flushLoop writes pending batches until none is left.
func (w *Writer) flushLoop() {
	// Let goroutines that are about to write run first, so that they join
	// this batch instead of each paying for a system call.
	runtime.Gosched()
	w.mu.Lock()
	for len(w.buf) > 0 && w.err == nil {
		batch := w.buf
		// The spare becomes the pending buffer; it must not stay the spare
		// too, or a batch too big to keep would leave it shared.
		w.buf, w.spare = w.spare[:0], nil
		w.mu.Unlock()
		_, err := w.w.Write(batch)
		w.mu.Lock()
		if cap(batch) <= 1<<20 {
			w.spare = batch[:0]
		}
		if err != nil {
			w.err = fmt.Errorf("%w: %w", ErrWriterFailed, err)
			w.buf = nil
		}
		w.cond.Broadcast()
	}
	w.flushing = false
	w.cond.Broadcast()
	w.mu.Unlock()
}

// Flush waits until every frame written so far has been handed to the
// underlying writer, and returns the sticky error if there is one.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.flushing && w.err == nil {
		w.cond.Wait()
	}
	return w.err
}
