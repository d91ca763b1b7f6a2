// Package httpserver is the life cycle the host's small HTTP servers (the
// admin API on its Unix socket, /metrics) share: serve a handler on a
// listener the caller bound, until Close.
package httpserver

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// Server serves one handler on one listener.
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// New is a Server for h on ln; it serves once Serve is called. Request
// headers must arrive within 5 seconds.
func New(ln net.Listener, h http.Handler) *Server {
	return &Server{ln: ln, srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}}
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve serves until Close, which is not an error.
func (s *Server) Serve() error {
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Close stops the server, giving requests in flight a second to finish.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}
