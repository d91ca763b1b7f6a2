package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"

	"github.com/dsmil/l7/host/internal/httpserver"
	"github.com/dsmil/l7/host/pluginmgr"
	"github.com/dsmil/l7/host/router"
)

// Mode is the admin socket's file mode.
const Mode fs.FileMode = 0o600

// Status is the host's status as GET /v1/status reports it.
type Status struct {
	Version string       `json:"version"`
	PID     int          `json:"pid"`
	Started time.Time    `json:"started"`
	Config  string       `json:"config"`
	Router  router.Stats `json:"router"`
	Listen  Listeners    `json:"listeners"`
	Plugins int          `json:"plugins"`
	Healthy int          `json:"healthy_plugins"`
}

// Listeners are the addresses the host serves on.
type Listeners struct {
	Shim   string `json:"shim,omitempty"`
	Router string `json:"router"`
	Admin  string `json:"admin"`
}

// Source is what the admin API reports on.
type Source interface {
	Snapshots() []pluginmgr.Snapshot
	Status() Status
}

// Server is the admin API server.
type Server struct {
	Path   string
	Source Source

	http *httpserver.Server
}

// Listen creates the socket (replacing a stale one, refusing a live one).
func (s *Server) Listen() error {
	if fi, err := os.Lstat(s.Path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return fmt.Errorf("admin: %s exists and is not a socket", s.Path)
		}
		if c, err := net.DialTimeout("unix", s.Path, 200*time.Millisecond); err == nil {
			c.Close()
			return fmt.Errorf("admin: %s is in use: is another dsmil-host running?", s.Path)
		}
		_ = os.Remove(s.Path)
	}
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", s.Path)
	syscall.Umask(old)
	if err != nil {
		return fmt.Errorf("admin: listen: %w", err)
	}
	if err := os.Chmod(s.Path, Mode); err != nil {
		ln.Close()
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/plugins", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, s.Source.Snapshots())
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, s.Source.Status())
	})
	s.http = httpserver.New(ln, mux)
	return nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// Serve serves until Close.
func (s *Server) Serve() error { return s.http.Serve() }

// Close stops the server and removes the socket.
func (s *Server) Close() error {
	err := s.http.Close()
	_ = os.Remove(s.Path)
	return err
}

// ErrNoHost is returned by the client when no host listens on the socket.
var ErrNoHost = errors.New("no dsmil-host is running")

// Client reaches a running host's admin socket.
type Client struct {
	Path string
	hc   *http.Client
}

// NewClient returns a client for the admin socket at path.
func NewClient(path string) *Client {
	return &Client{Path: path, hc: &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}},
	}}
}

func (c *Client) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://dsmil-admin"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var se *os.SyscallError
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &se) {
			return fmt.Errorf("%w (admin socket %s: %v)", ErrNoHost, c.Path, err)
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("admin: %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// Plugins lists the running host's plugin instances.
func (c *Client) Plugins(ctx context.Context) ([]pluginmgr.Snapshot, error) {
	var out []pluginmgr.Snapshot
	return out, c.get(ctx, "/v1/plugins", &out)
}

// Status returns the running host's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var out Status
	return out, c.get(ctx, "/v1/status", &out)
}
