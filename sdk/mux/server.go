package mux

import (
	"context"
	"sync"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
)

// Handler serves one request. It writes response frames with w; the last
// must have END_STREAM (Reply and Fail set it). If it returns without
// ending the stream, the server ends it with an ERROR INTERNAL.
type Handler interface {
	ServeDBE(ctx context.Context, req *dbe.Frame, w *ResponseWriter)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req *dbe.Frame, w *ResponseWriter)

// ServeDBE calls f.
func (f HandlerFunc) ServeDBE(ctx context.Context, req *dbe.Frame, w *ResponseWriter) {
	f(ctx, req, w)
}

// ResponseWriter writes the frames of one response.
type ResponseWriter struct {
	s     Sender
	corr  uint64
	reqID []byte
	mu    sync.Mutex
	ended bool
}

// Send writes f as part of the response: its correlation id is set, and its
// REQUEST_ID is set to the request's when it has none. After a frame with
// END_STREAM, Send does nothing.
func (w *ResponseWriter) Send(f *dbe.Frame) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return nil
	}
	f.CorrelationID = w.corr
	if w.reqID != nil {
		if _, ok := f.Get(dbe.TLVRequestID); !ok {
			f.TLVs = append(f.TLVs, dbe.TLV{Type: dbe.TLVRequestID, Value: w.reqID})
		}
	}
	if f.Flags&dbe.FlagEndStream != 0 {
		w.ended = true
	}
	return w.s.Send(f)
}

// Fail ends the response with an ERROR frame for err.
func (w *ResponseWriter) Fail(err error) error {
	return w.Send(ErrorFrame(0, nil, err))
}

// Ended reports whether the response has been ended.
func (w *ResponseWriter) Ended() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ended
}

// Server runs a Handler for each request frame of a session.
type Server struct {
	s Sender
	h Handler
	// IsRequest says which frames start a request; nil means every frame
	// that is not CANCEL, CLOSE, HANDSHAKE or TUNNEL_DATA.
	IsRequest func(*dbe.Frame) bool

	mu     sync.Mutex
	active map[uint64]context.CancelFunc
	closed bool
	wg     sync.WaitGroup
	pool   workerPool
}

// NewServer returns a Server that answers through s. Feed it the session's
// frames with Dispatch.
func NewServer(s Sender, h Handler) *Server {
	return &Server{s: s, h: h, active: make(map[uint64]context.CancelFunc),
		pool: workerPool{tasks: make(chan func())}}
}

// Active is the number of requests being served.
func (s *Server) Active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.active)
}

// Dispatch handles one frame read from the session: CANCEL cancels the
// request it names; a request frame starts the handler in its own
// goroutine; malformed frames are answered with ERROR.
func (s *Server) Dispatch(f *dbe.Frame, malformed error) {
	if malformed != nil {
		_ = s.s.Send(ErrorFrame(f.CorrelationID, nil, malformed))
		return
	}
	switch f.Type {
	case dbe.MsgCancel:
		s.mu.Lock()
		cancel := s.active[f.CorrelationID]
		s.mu.Unlock()
		if cancel != nil {
			cancel()
		}
		return
	case dbe.MsgClose, dbe.MsgHandshake, dbe.MsgTunnelData:
		return
	}
	if s.IsRequest != nil && !s.IsRequest(f) {
		return
	}
	// Request contexts hang off Background, not a server-wide parent, so
	// creating one registers nothing shared; Close cancels them one by one.
	var ctx context.Context
	var cancel context.CancelFunc
	if d, ok := f.Timeout(); ok {
		ctx, cancel = context.WithTimeout(context.Background(), d)
	} else {
		ctx, cancel = context.WithCancel(context.Background())
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		cancel()
		_ = s.s.Send(ErrorFrame(f.CorrelationID, nil, Errorf(dbe.CodeCancelled, "server closing")))
		return
	}
	if _, dup := s.active[f.CorrelationID]; dup {
		s.mu.Unlock()
		cancel()
		_ = s.s.Send(ErrorFrame(f.CorrelationID, nil, Errorf(dbe.CodeInvalidRequest, "correlation id %d already in use", f.CorrelationID)))
		return
	}
	s.active[f.CorrelationID] = cancel
	s.wg.Add(1)
	s.mu.Unlock()
	reqID, _ := f.Get(dbe.TLVRequestID)
	w := &ResponseWriter{s: s.s, corr: f.CorrelationID, reqID: reqID}
	s.pool.run(func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.active, f.CorrelationID)
			s.mu.Unlock()
			cancel()
		}()
		s.h.ServeDBE(ctx, f, w)
		if !w.Ended() {
			err := ctx.Err()
			if err == nil {
				err = Errorf(dbe.CodeInternal, "handler returned without a final frame")
			}
			_ = w.Fail(err)
		}
	})
}

// workerPool runs tasks on reused goroutines: a goroutine that finished a
// task waits a while for the next one instead of exiting, so a busy server
// neither creates a goroutine nor grows a fresh stack per request. There is
// no bound: a task never waits for a free worker.
type workerPool struct {
	tasks chan func() // unbuffered: a send succeeds only to an idle worker
}

// poolIdle is how long an idle worker waits for work before exiting.
const poolIdle = 2 * time.Second

func (p *workerPool) run(task func()) {
	select {
	case p.tasks <- task:
	default:
		go p.work(task)
	}
}

func (p *workerPool) work(task func()) {
	t := time.NewTimer(poolIdle)
	defer t.Stop()
	for {
		task()
		t.Reset(poolIdle)
		select {
		case task = <-p.tasks:
		case <-t.C:
			return
		}
	}
}

// Close cancels every request and waits up to grace for handlers to return.
func (s *Server) Close(grace time.Duration) {
	s.mu.Lock()
	s.closed = true
	for _, cancel := range s.active {
		cancel()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
	}
}

// Drain waits until no request is active or ctx ends, without cancelling.
func (s *Server) Drain(ctx context.Context) error {
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
