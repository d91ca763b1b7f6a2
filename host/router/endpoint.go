package router

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"sync"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"github.com/dsmil/l7/sdk/session"
	"google.golang.org/protobuf/proto"
)

// Endpoint serves the router to local DBE clients on a Unix socket.
type Endpoint struct {
	// Router routes the requests. Required.
	Router *Router
	// Path of the Unix socket. A stale socket file is replaced.
	Path string
	// Mode of the socket file; default 0660.
	Mode fs.FileMode
	// Handshaker authenticates each connection; nil means plain frames,
	// access controlled by the socket file's mode (the security issue sets
	// the post-quantum handshake here).
	Handshaker session.Handshaker
	// MaxFrame is the frame size limit; default dbe.DefaultMaxFrameSize.
	MaxFrame int

	mu       sync.Mutex
	ln       net.Listener
	sessions map[*session.Session]*mux.Server
	wg       sync.WaitGroup
}

// Listen creates the socket. Serve then accepts on it.
func (e *Endpoint) Listen() error {
	if e.Mode == 0 {
		e.Mode = 0o660
	}
	if fi, err := os.Lstat(e.Path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return fmt.Errorf("router: %s exists and is not a socket", e.Path)
		}
		if c, err := net.DialTimeout("unix", e.Path, 200*time.Millisecond); err == nil {
			c.Close()
			return fmt.Errorf("router: %s is in use by a running process", e.Path)
		}
		_ = os.Remove(e.Path)
	}
	ln, err := net.Listen("unix", e.Path)
	if err != nil {
		return fmt.Errorf("router: listen: %w", err)
	}
	if err := os.Chmod(e.Path, e.Mode); err != nil {
		ln.Close()
		return fmt.Errorf("router: chmod %s: %w", e.Path, err)
	}
	e.mu.Lock()
	e.ln = ln
	e.sessions = make(map[*session.Session]*mux.Server)
	e.mu.Unlock()
	return nil
}

// Serve accepts connections until ctx ends or Close is called.
func (e *Endpoint) Serve(ctx context.Context) error {
	e.mu.Lock()
	ln := e.ln
	e.mu.Unlock()
	if ln == nil {
		return errors.New("router: Serve before Listen")
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("router: accept: %w", err)
		}
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.serveConn(ctx, c)
		}()
	}
}

func (e *Endpoint) serveConn(ctx context.Context, c net.Conn) {
	var ch session.Channel
	if e.Handshaker == nil {
		ch = session.NewPlainChannel(c, e.MaxFrame, session.Peer{Role: "client"})
	} else {
		var err error
		if ch, err = e.Handshaker.Server(ctx, c); err != nil {
			e.Router.cfg.Logger.Warn("router endpoint: handshake refused", "error", err)
			return
		}
	}
	s := session.New(ch, nil)
	srv := mux.NewServer(s, mux.HandlerFunc(func(ctx context.Context, req *dbe.Frame, w *mux.ResponseWriter) {
		if req.Type == dbe.MsgHealth {
			_ = w.Send(e.Router.statusFrame())
			return
		}
		_ = e.Router.Route(ctx, req, w.Send)
	}))
	s.SetHandler(srv.Dispatch)
	e.mu.Lock()
	if e.sessions == nil {
		e.mu.Unlock()
		s.Close()
		return
	}
	e.sessions[s] = srv
	e.mu.Unlock()
	<-s.Done()
	srv.Close(time.Second)
	e.mu.Lock()
	delete(e.sessions, s)
	e.mu.Unlock()
}

// Close stops accepting, ends every session and removes the socket.
func (e *Endpoint) Close() error {
	e.mu.Lock()
	ln := e.ln
	ss := e.sessions
	e.sessions = nil
	e.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	for s := range ss {
		s.Close()
	}
	e.wg.Wait()
	return nil
}

// statusFrame is the router's own L7_MODEL_STATUS.
func (r *Router) statusFrame() *dbe.Frame {
	st := r.Stats()
	b, _ := proto.Marshal(&l7v1.L7ModelStatus{Plugin: "router", DeviceId: DeviceID, Healthy: true,
		InFlight: uint32(st.InFlight)})
	return &dbe.Frame{Type: dbe.MsgModelStatus, Flags: dbe.FlagEndStream, Payload: b}
}
