package sdk

import (
	"context"
	"fmt"
	"math"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	pluginv1 "github.com/dsmil/l7/sdk/proto/dsmil/plugin/v1"
	"github.com/dsmil/l7/sdk/session"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// sessionGrace is how long handlers get to return after their session ends.
const sessionGrace = 5 * time.Second

// Server is the plugin side of the SDK for one Workload: it serves the
// Control gRPC service (Register) and the DBE data path of every session
// (Attach), sharing one configuration and one set of counters. Serve builds
// one; sdktest and in-process tests build their own with NewServer.
type Server struct {
	w      Workload
	chat   Chatter        // nil unless w is a Chatter
	embed  Embedder       // nil unless w is an Embedder
	agent  AgentRunner    // nil unless w is an AgentRunner
	status StatusReporter // nil unless w is a StatusReporter
	logger hclog.Logger
	start  time.Time

	cfg  atomic.Pointer[Config]     // nil until Configure succeeded
	info atomic.Pointer[PluginInfo] // last Info the workload returned

	inFlight atomic.Int64
	tokens   atomic.Uint64
	rate     rateWindow

	mu       sync.Mutex
	sessions map[*mux.Server]struct{}
	closed   bool
	once     sync.Once
	closeErr error
}

var _ mux.Handler = (*Server)(nil)

// NewServer returns a Server for w. logger may be nil.
func NewServer(w Workload, logger hclog.Logger) *Server {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	s := &Server{w: w, logger: logger, start: time.Now(), sessions: map[*mux.Server]struct{}{}}
	s.chat, _ = w.(Chatter)
	s.embed, _ = w.(Embedder)
	s.agent, _ = w.(AgentRunner)
	s.status, _ = w.(StatusReporter)
	return s
}

// Register registers the Control service on g.
func (s *Server) Register(g grpc.ServiceRegistrar) {
	pluginv1.RegisterControlServer(g, &controlService{s: s})
}

// Attach serves the data path on sess until it ends: request frames go to
// ServeDBE, each in its own goroutine, and CANCEL cancels them. It is meant
// for session.Credentials.OnSession on the plugin's gRPC server. After Close,
// Attach closes sess instead.
//
// The session also carries the plugin's own requests to the host (an agent
// task's LLM steps, AgentTask.Router): their responses and ERROR frames go
// to the session's mux.Client, everything else to the server. Correlation
// ids are per direction of request (docs/dbe.md §8), and the message type
// says which direction a frame belongs to.
func (s *Server) Attach(sess *session.Session) {
	mc := mux.NewClient(sess)
	ms := mux.NewServer(sess, &sessionHandler{s: s, mc: mc})
	ms.IsRequest = isRequest
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = sess.Close()
		return
	}
	s.sessions[ms] = struct{}{}
	s.mu.Unlock()
	sess.SetHandler(func(f *dbe.Frame, malformed error) {
		if malformed == nil && f.Type.IsResponse() && mc.Dispatch(f) {
			return
		}
		ms.Dispatch(f, malformed)
	})
	go func() {
		<-sess.Done()
		mc.Close(fmt.Errorf("%w: %v", mux.ErrSessionClosed, sess.Err()))
		ms.Close(sessionGrace)
		s.mu.Lock()
		delete(s.sessions, ms)
		s.mu.Unlock()
	}()
}

// sessionHandler serves the requests of one session, whose client the
// agent tasks it starts send their own requests with.
type sessionHandler struct {
	s  *Server
	mc *mux.Client
}

func (h *sessionHandler) ServeDBE(ctx context.Context, req *dbe.Frame, w *mux.ResponseWriter) {
	h.s.serve(ctx, req, w, h.mc)
}

// isRequest says which frames start a request: not ERROR (never answered,
// so that two peers cannot ping-pong errors), and not correlation id 0,
// which is the connection itself (docs/dbe.md §8).
func isRequest(f *dbe.Frame) bool { return f.Type != dbe.MsgError && f.CorrelationID != 0 }

// Close stops serving: it cancels every request in flight, waits for their
// handlers until ctx ends, and then calls the workload's Close if it is a
// Closer. Sessions stay open (their owner closes them); requests that arrive
// later fail with CANCELLED. Close is idempotent.
func (s *Server) Close(ctx context.Context) error {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		servers := make([]*mux.Server, 0, len(s.sessions))
		for ms := range s.sessions {
			servers = append(servers, ms)
		}
		s.mu.Unlock()
		for _, ms := range servers {
			grace := sessionGrace
			if d, ok := ctx.Deadline(); ok {
				grace = max(time.Until(d), 0)
			}
			ms.Close(grace)
		}
		if c, ok := s.w.(Closer); ok {
			if err := c.Close(ctx); err != nil {
				s.closeErr = fmt.Errorf("sdk: closing workload: %w", err)
			}
		}
	})
	return s.closeErr
}

// InFlight is the number of chat and embeddings requests the workload is
// working on.
func (s *Server) InFlight() int { return int(s.inFlight.Load()) }

// ServeDBE serves one request frame of the data path: L7_CHAT_REQ runs the
// workload's Chat, L7_EMBED_REQ its Embed, L7_AGENT_TASK its RunTask,
// HEALTH answers L7_MODEL_STATUS, response types are refused with
// INVALID_REQUEST and anything else with UNKNOWN_MSG_TYPE (docs/dbe.md §8).
// A panic in the workload fails the request with WORKER_FAILED. Agent
// tasks served here, not over a session (Attach), have no router to call.
func (s *Server) ServeDBE(ctx context.Context, req *dbe.Frame, w *mux.ResponseWriter) {
	s.serve(ctx, req, w, nil)
}

// serve is ServeDBE for a frame of the session whose client is mc.
func (s *Server) serve(ctx context.Context, req *dbe.Frame, w *mux.ResponseWriter, mc *mux.Client) {
	defer func() {
		if r := recover(); r != nil {
			s.logger.Error("workload panicked", "msg_type", req.Type.String(), "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			_ = w.Fail(Errorf(dbe.CodeWorkerFailed, "plugin failed: panic: %v", r))
		}
	}()
	switch req.Type {
	case dbe.MsgChatReq:
		s.serveChat(ctx, req, w)
	case dbe.MsgEmbedReq:
		s.serveEmbed(ctx, req, w)
	case dbe.MsgAgentTask:
		s.serveAgent(ctx, req, w, mc)
	case dbe.MsgHealth:
		b, err := proto.Marshal(s.modelStatus(ctx))
		if err != nil {
			_ = w.Fail(Errorf(dbe.CodeInternal, "marshal L7ModelStatus: %w", err))
			return
		}
		_ = w.Send(&dbe.Frame{Type: dbe.MsgModelStatus, Flags: dbe.FlagEndStream, Payload: b})
	default:
		if req.Type.IsResponse() {
			_ = w.Fail(Errorf(dbe.CodeInvalidRequest, "%s is only sent by a worker", req.Type))
			return
		}
		_ = w.Fail(Errorf(dbe.CodeUnknownMsgType, "plugin does not serve %s", req.Type))
	}
}

// configured returns the configuration, or nil before Configure succeeded.
func (s *Server) configured() *Config { return s.cfg.Load() }

// pluginInfo returns the workload's last reported Info, asking for it the
// first time.
func (s *Server) pluginInfo(ctx context.Context) (*PluginInfo, error) {
	if i := s.info.Load(); i != nil {
		return i, nil
	}
	return s.refreshInfo(ctx)
}

func (s *Server) refreshInfo(ctx context.Context) (*PluginInfo, error) {
	i, err := s.w.Info(ctx)
	if err != nil {
		return nil, err
	}
	if i == nil {
		return nil, fmt.Errorf("%w: Info returned nil", ErrInvalidInfo)
	}
	s.info.Store(i)
	return i, nil
}

// health reports whether the plugin can serve: configured and its Health is
// nil.
func (s *Server) health(ctx context.Context) (bool, string) {
	if s.configured() == nil {
		return false, ErrNotConfigured.Error()
	}
	if err := s.w.Health(ctx); err != nil {
		return false, err.Error()
	}
	return true, ""
}

// modelStatus assembles L7_MODEL_STATUS from the configuration, the
// workload's Info and Health, its StatusReporter if any and the SDK's own
// counters.
func (s *Server) modelStatus(ctx context.Context) *l7v1.L7ModelStatus {
	st := &l7v1.L7ModelStatus{UptimeSeconds: int64(time.Since(s.start) / time.Second)}
	info, err := s.pluginInfo(ctx)
	if err != nil {
		st.HealthMessage = "info: " + err.Error()
		return st
	}
	st.Plugin, st.Version, st.Models = info.Name, info.Version, info.Models
	st.DeviceId, st.Profiles, st.MemoryBudgetBytes = uint32(info.DeviceID), info.Profiles, info.MemoryBudget
	if cfg := s.configured(); cfg != nil {
		st.DeviceId = uint32(cfg.DeviceID)
		if len(cfg.Profiles) > 0 {
			st.Profiles = cfg.Profiles
		}
		if cfg.MemoryBudget > 0 {
			st.MemoryBudgetBytes = cfg.MemoryBudget
		}
	}
	st.Healthy, st.HealthMessage = s.health(ctx)

	now := time.Now()
	inFlight := max(s.inFlight.Load(), 0)
	own := Status{
		// With no better knowledge, load grows with the requests in flight:
		// 0 idle, 1/2 with one, 2/3 with two, ... never reaching 1.
		Load:            float64(inFlight) / float64(inFlight+1),
		InFlight:        int(inFlight),
		TokensPerSecond: s.rate.perSecond(now),
		TokensTotal:     s.tokens.Load(),
	}
	if s.status != nil {
		rep, err := s.status.Status(ctx)
		switch {
		case err != nil:
			s.logger.Warn("workload status failed", "error", err)
		case rep != nil:
			r := *rep
			if r.InFlight == 0 {
				r.InFlight = own.InFlight
			}
			if r.TokensPerSecond == 0 {
				r.TokensPerSecond = own.TokensPerSecond
			}
			if r.TokensTotal == 0 {
				r.TokensTotal = own.TokensTotal
			}
			own = r
		}
	}
	st.Load = clamp01(own.Load)
	st.InFlight = uint32(min(max(own.InFlight, 0), math.MaxUint32))
	st.QueueDepth = uint32(min(max(own.QueueDepth, 0), math.MaxUint32))
	st.MemoryUsedBytes = own.MemoryUsed
	st.TokensPerSecond = max(own.TokensPerSecond, 0)
	st.TokensGeneratedTotal = own.TokensTotal
	return st
}

func clamp01(x float64) float64 {
	if math.IsNaN(x) || x < 0 {
		return 0
	}
	return min(x, 1)
}

// countTokens records n generated tokens.
func (s *Server) countTokens(n uint32) {
	if n == 0 {
		return
	}
	s.tokens.Add(uint64(n))
	s.rate.add(time.Now(), uint64(n))
}

// rateWindow measures tokens per second over the last rateSeconds whole
// seconds.
type rateWindow struct {
	mu  sync.Mutex
	sec [rateSeconds]int64
	n   [rateSeconds]uint64
}

const rateSeconds = 10

func (r *rateWindow) add(now time.Time, n uint64) {
	sec := now.Unix()
	i := sec % rateSeconds
	r.mu.Lock()
	if r.sec[i] != sec {
		r.sec[i], r.n[i] = sec, 0
	}
	r.n[i] += n
	r.mu.Unlock()
}

func (r *rateWindow) perSecond(now time.Time) float64 {
	sec := now.Unix()
	var sum uint64
	r.mu.Lock()
	for i := range r.sec {
		if age := sec - r.sec[i]; age >= 0 && age < rateSeconds {
			sum += r.n[i]
		}
	}
	r.mu.Unlock()
	return float64(sum) / rateSeconds
}
