// Package client connects a local program to a dsmil-host router socket
// (docs/dbe.md §8): plain frames when the host runs without a security
// block, or a DSMIL-PQ1 session (docs/dbe.md §12.4) authenticated with a
// client identity (role client) when it runs with one. A request is a DBE
// frame; its responses come back as a Stream, pulled one frame at a time.
//
// It is the one implementation behind the libdbe C library and the Python
// dsmil_dbe package (issue 17), and what Go tools use to speak DBE to the
// router without the OpenAI shim.
package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/identity"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"github.com/dsmil/l7/sdk/session"
	"google.golang.org/protobuf/proto"
)

// Options configure Dial.
type Options struct {
	// Identity, when set, makes the connection a DSMIL-PQ1 session: the
	// client proves this identity (its bundle must carry role client) and
	// checks the host's bundle against Roots.
	Identity *identity.Identity
	// Roots are the keys the host's identity bundle must be signed by
	// (required with Identity).
	Roots []*identity.PublicKey
	// HostName, when set, is the name the host's bundle must carry (its
	// role must be host in any case).
	HostName string
	// HandshakeTimeout bounds connecting and the handshake (default 10 s).
	HandshakeTimeout time.Duration
}

// Client is one connection to the router. It is safe for concurrent use:
// many requests may be in flight at once.
type Client struct {
	sess *session.Session
	mux  *mux.Client
}

// Dial connects to the router socket at path.
func Dial(ctx context.Context, path string, o Options) (*Client, error) {
	to := o.HandshakeTimeout
	if to <= 0 {
		to = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, to)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	var ch session.Channel
	if o.Identity != nil {
		if len(o.Roots) == 0 {
			conn.Close()
			return nil, errors.New("client: an identity needs the roots that sign the host's bundle")
		}
		ch, err = (&session.PQ{Auth: session.Auth{Identity: o.Identity, Roots: o.Roots, PeerName: o.HostName, PeerRoles: []string{"host"}}}).Client(ctx, conn)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("client: handshake with %s: %w", path, err)
		}
	} else {
		ch = session.NewPlainChannel(conn, 0, session.Peer{})
	}
	s := session.New(ch, nil)
	c := &Client{sess: s, mux: mux.NewClient(s)}
	s.SetHandler(func(f *dbe.Frame, _ error) { c.mux.Dispatch(f) })
	go func() { <-s.Done(); c.mux.Close(s.Err()) }()
	return c, nil
}

// Close ends the connection; streams still open end with an error.
func (c *Client) Close() error { return c.sess.Close() }

// Stream is one request's responses, in order.
type Stream struct {
	mu     sync.Mutex
	frames []*dbe.Frame
	err    error // set once the last delivery came: nil after END_STREAM
	done   bool
	ready  chan struct{}
	cancel func()
	// interrupt sends CANCEL and keeps the stream (Stop).
	interrupt func()
}

// Start sends req (its correlation id is assigned here) and returns the
// stream of its responses. timeout > 0 bounds the whole exchange: when it
// passes, the router is sent CANCEL and Next returns an error wrapping
// context.DeadlineExceeded.
func (c *Client) Start(req *dbe.Frame, timeout time.Duration) *Stream {
	s := &Stream{ready: make(chan struct{}, 1)}
	s.cancel = c.mux.Go(req, timeout, s.deliver)
	id := req.CorrelationID
	s.interrupt = func() { c.mux.Interrupt(id) }
	return s
}

func (s *Stream) deliver(f *dbe.Frame, err error) {
	s.mu.Lock()
	switch {
	case err != nil:
		s.err, s.done = err, true
	case f.Type == dbe.MsgError:
		s.err, s.done = mux.ParseError(f), true
	default:
		s.frames = append(s.frames, f)
		s.done = f.Flags&dbe.FlagEndStream != 0
	}
	s.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// Next returns the next response frame. After the frame with END_STREAM it
// returns io.EOF; an ERROR frame from the router is returned as a
// *mux.Error (its Code, Message, Param, Rule and RetryAfterMS), a dead
// connection as its error. If ctx ends first, Next returns ctx.Err() and
// the stream stays usable.
func (s *Stream) Next(ctx context.Context) (*dbe.Frame, error) {
	for {
		s.mu.Lock()
		if len(s.frames) > 0 {
			f := s.frames[0]
			s.frames = s.frames[1:]
			s.mu.Unlock()
			return f, nil
		}
		if s.done {
			err := s.err
			s.mu.Unlock()
			if err == nil {
				return nil, io.EOF
			}
			return nil, err
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.ready:
		}
	}
}

// Cancel stops the request: the router is sent CANCEL, and Next returns
// what had arrived, then context.Canceled. It is safe to call at any time,
// more than once.
func (s *Stream) Cancel() { s.cancel() }

// Stop asks the router to stop the request (CANCEL) but keeps reading its
// responses up to the final one: an agent task (L7_AGENT_TASK) ends with its
// L7_AGENT_RESULT, status CANCELLED, carrying the steps and transcript so
// far; other requests end with ERROR CANCELLED.
func (s *Stream) Stop() { s.interrupt() }

// Payload returns a new, empty protobuf message of the payload that
// message type t carries (docs/dbe.md §5), or nil for a type without one
// (HANDSHAKE, TUNNEL_DATA, CANCEL, HEALTH) or an unknown type.
func Payload(t dbe.MsgType) proto.Message {
	switch t {
	case dbe.MsgChatReq:
		return &l7v1.L7ChatRequest{}
	case dbe.MsgChatResp:
		return &l7v1.L7ChatResponse{}
	case dbe.MsgChatChunk:
		return &l7v1.L7ChatChunk{}
	case dbe.MsgAgentTask:
		return &l7v1.L7AgentTask{}
	case dbe.MsgAgentResult:
		return &l7v1.L7AgentResult{}
	case dbe.MsgModelStatus:
		return &l7v1.L7ModelStatus{}
	case dbe.MsgPolicyCheck:
		return &l7v1.L7PolicyCheck{}
	case dbe.MsgPolicyResult:
		return &l7v1.L7PolicyResult{}
	case dbe.MsgEmbedReq:
		return &l7v1.L7EmbedRequest{}
	case dbe.MsgEmbedResp:
		return &l7v1.L7EmbedResponse{}
	case dbe.MsgError:
		return &l7v1.L7Error{}
	case dbe.MsgClose:
		return &l7v1.Close{}
	}
	return nil
}
