package dbe

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
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
	f := new(Frame)
	if err := r.read(f, nil); err != nil {
		return nil, err
	}
	return f, nil
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

// Writer writes frames to a byte stream through a buffer. It is safe for
// concurrent use: frames from concurrent callers are never interleaved, and
// the buffer is flushed when no other WriteFrame is waiting, so a burst of
// frames leaves in few system calls and a lone frame leaves at once.
type Writer struct {
	mu      sync.Mutex
	bw      *bufio.Writer
	waiting atomic.Int32
	err     error // sticky write error
}

// NewWriter returns a Writer over w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{bw: bufio.NewWriterSize(w, 64<<10)}
}

// ErrWriterFailed wraps the first I/O error a Writer met; every later write
// returns it.
var ErrWriterFailed = errors.New("dbe: writer failed")

// WriteFrame encodes f and writes it.
func (w *Writer) WriteFrame(f *Frame) error {
	w.waiting.Add(1)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		w.waiting.Add(-1)
		return w.err
	}
	buf, err := f.AppendBinary(w.bw.AvailableBuffer())
	if err != nil {
		w.waiting.Add(-1)
		w.flushIfIdle()
		return err
	}
	return w.finish(buf)
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
	w.waiting.Add(1)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		w.waiting.Add(-1)
		return w.err
	}
	return w.finish(b)
}

// finish writes b and flushes if nobody else is waiting. Called with mu held
// and waiting counting this call.
func (w *Writer) finish(b []byte) error {
	if _, err := w.bw.Write(b); err != nil {
		w.err = fmt.Errorf("%w: %w", ErrWriterFailed, err)
		w.waiting.Add(-1)
		return w.err
	}
	w.waiting.Add(-1)
	return w.flushIfIdle()
}

func (w *Writer) flushIfIdle() error {
	if w.waiting.Load() == 0 && w.bw.Buffered() > 0 {
		if err := w.bw.Flush(); err != nil {
			w.err = fmt.Errorf("%w: %w", ErrWriterFailed, err)
			return w.err
		}
	}
	return nil
}

// Flush writes any buffered frames.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if err := w.bw.Flush(); err != nil {
		w.err = fmt.Errorf("%w: %w", ErrWriterFailed, err)
	}
	return w.err
}
