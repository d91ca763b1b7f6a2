package shim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"
)

// Router routes one request frame; *router.Router implements it (see
// router.Router.Forward). out receives every response frame without
// blocking, the last one final (END_STREAM, or an ERROR frame), with the
// final frame's payload when the router decoded it; ctx's deadline bounds
// the request; cancel, for a client that went away, cancels the work in the
// plugin and sends nothing more. Forward takes ownership of the frame: the
// shim builds a new one per request and never touches it again.
type Router interface {
	Forward(ctx context.Context, req *dbe.Frame, out func(f *dbe.Frame, payload proto.Message)) (cancel func())
}

// DefaultKey is the API key `make run` puts in DSMIL_OPENAI_API_KEY when it
// is unset. New logs a warning for every tenant that accepts it.
const DefaultKey = "dsmil-local-key"

// Config configures a Server.
type Config struct {
	// Shim is the shim block of dsmil.hcl, defaults filled in. Zero fields
	// get the config package's defaults.
	Shim config.ShimConfig
	// Tenants are the callers allowed in, with their key digests.
	Tenants []*config.Tenant
	// Models map OpenAI model ids to DBE profiles; /v1/models lists them.
	Models []*config.Model
	// Router serves the request frames. Required.
	Router Router
	// Ready reports whether every configured profile has a healthy worker,
	// and why not; /readyz answers 503 until it says true. Nil means ready.
	Ready func() (ok bool, reason string)
	// ClaimSource, when set, returns the L7_CLAIM_TOKEN for a request of
	// the tenant (nil or empty: the frame carries none). dsmil-host sets it
	// to the Minter's token for the tenant's session.
	ClaimSource func(t *config.Tenant) []byte
	// RateLimitHeaders, when set, adds the x-ratelimit-* headers that
	// describe the tenant's quotas to a 429 (the host wires the limiter's
	// State(tenant).SetHeaders). Nil: they are derived from the tenant's
	// configured rate_limit and the refusal's retry time.
	RateLimitHeaders func(tenant string, h http.Header)
	// Logger receives a line per failed request and the lifecycle events.
	// Default: no logging.
	Logger hclog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// AgentTimeout bounds an agent task (POST /v1/dsmil/agent/tasks): the
	// most its timeout_seconds may ask, and its budget when it asks none
	// (dsmil.hcl router.agent_timeout). Default config.DefaultAgentTimeout.
	AgentTimeout time.Duration
	// Accelerator, when set, says where the plugins serving a profile
	// compute ("" unknown): the accelerator field of /v1/models.
	// dsmil-host reports its running instances' PluginInfo.Accelerator.
	Accelerator func(profile string) string
	// ModelsCreated is the "created" time /v1/models reports for every
	// model. Default: when New was called, so it is stable for the life of
	// the process.
	ModelsCreated time.Time
}

// Server is the OpenAI-compatible HTTP shim.
type Server struct {
	cfg          Config
	log          hclog.Logger
	models       map[string]*config.Model
	allowedHosts []string
	srv          *http.Server
}

var _ http.Handler = (*Server)(nil)

// New returns a Server; Listen and Serve (or ListenAndServe) start it.
func New(cfg Config) (*Server, error) {
	if cfg.Router == nil {
		return nil, ErrNoRouter
	}
	sh := &cfg.Shim
	if sh.Listen == "" {
		sh.Listen = config.DefaultShimListen
	}
	if sh.MaxBodyBytes <= 0 {
		sh.MaxBodyBytes = config.DefaultShimMaxBodyBytes
	}
	if sh.RequestTimeout <= 0 {
		sh.RequestTimeout = config.DefaultShimRequestTimeout
	}
	if cfg.AgentTimeout <= 0 {
		cfg.AgentTimeout = config.DefaultAgentTimeout
	}
	if sh.KeepaliveInterval <= 0 {
		sh.KeepaliveInterval = config.DefaultShimKeepaliveInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ModelsCreated.IsZero() {
		cfg.ModelsCreated = cfg.Now()
	}
	s := &Server{cfg: cfg, log: cfg.Logger, models: make(map[string]*config.Model, len(cfg.Models)),
		allowedHosts: sh.AllowedHosts}
	for _, m := range cfg.Models {
		s.models[m.ID] = m
	}
	defaultDigest := config.HashKey(DefaultKey)
	for _, t := range cfg.Tenants {
		switch {
		case t.EnvKeySHA256 == defaultDigest || containsFold(t.APIKeySHA256, defaultDigest):
			s.log.Warn("tenant accepts the default API key "+DefaultKey+"; anyone on this machine can use it: set a key of your own",
				"tenant", t.Name, "env", t.APIKeyEnv)
		case t.APIKeyEnv != "" && t.EnvKeySHA256 == "" && len(t.APIKeySHA256) == 0:
			s.log.Warn("tenant has no API key: its environment variable is unset, so no request can authenticate as it",
				"tenant", t.Name, "env", t.APIKeyEnv)
		}
	}
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute, // the body; streaming responses are not bounded by it
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		// "OPTIONS *" reaches ServeHTTP too, so it is authenticated and
		// gets a request id like everything else.
		DisableGeneralOptionsHandler: true,
		ErrorLog:                     s.log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	return s, nil
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// Listen opens the configured address. It refuses an address that is not
// loopback unless ShimConfig.AllowNonLoopback is set, and then logs a
// warning.
func (s *Server) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", s.cfg.Shim.Listen)
	if err != nil {
		return nil, fmt.Errorf("shim: %w", err)
	}
	if ta, ok := ln.Addr().(*net.TCPAddr); ok && !ta.IP.IsLoopback() {
		if !s.cfg.Shim.AllowNonLoopback {
			ln.Close()
			return nil, fmt.Errorf("%w: %s", ErrNonLoopback, s.cfg.Shim.Listen)
		}
		s.log.Warn("the OpenAI shim listens on a non-loopback address: other machines can reach it", "addr", ln.Addr())
	}
	return ln, nil
}

// Serve serves HTTP on ln until Shutdown, and then returns nil. With no
// AllowedHosts configured the Host allowlist is the loopback names of ln's
// port.
func (s *Server) Serve(ln net.Listener) error {
	if len(s.allowedHosts) == 0 {
		s.allowedHosts = loopbackHosts(ln.Addr())
	}
	s.log.Info("OpenAI shim listening", "addr", "http://"+ln.Addr().String()+"/v1", "models", len(s.models), "tenants", len(s.cfg.Tenants))
	err := s.srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// ListenAndServe is Listen then Serve.
func (s *Server) ListenAndServe() error {
	ln, err := s.Listen()
	if err != nil {
		return err
	}
	return s.Serve(ln)
}

// Shutdown stops accepting connections and waits for the requests in
// flight (streams included) until ctx ends; then it closes every
// connection, which cancels the remaining generations.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, s.srv.Close())
	}
	return err
}

// ServeHTTP implements http.Handler: the checks every request passes, then
// the route.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.cfg.Now()
	id := requestID(r, start)
	rq := &request{id: id, idStr: formatID(id), start: start}
	w.Header().Set("X-Request-Id", rq.idStr)
	rec := &statusRecorder{ResponseWriter: w}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.log.Error("panic serving request", "request_id", rq.idStr, "path", r.URL.Path, "panic", p)
			if !rec.wrote {
				writeError(rec, internalError(rq.idStr))
			}
		}
		s.logRequest(r, rq, rec.status)
	}()
	s.serve(rec, r, rq)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, rq *request) {
	if !s.hostAllowed(r.Host) {
		writeError(w, hostForbidden(r.Host))
		return
	}
	if s.cors(w, r) {
		return
	}
	if publicPath(r.URL.Path) {
		s.probe(w, r)
		return
	}
	t, e := s.authenticate(r)
	if e != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="dsmil"`)
		writeError(w, e)
		return
	}
	rq.tenant = t
	path := r.URL.Path
	switch {
	case path == "/v1/models":
		if allow(w, r, http.MethodGet) {
			s.listModels(w, rq)
		}
	case strings.HasPrefix(path, "/v1/models/") && len(path) > len("/v1/models/"):
		if allow(w, r, http.MethodGet) {
			s.getModel(w, rq, strings.TrimPrefix(path, "/v1/models/"))
		}
	case path == "/v1/chat/completions":
		if allow(w, r, http.MethodPost) {
			s.complete(w, r, rq, chatEndpoint)
		}
	case path == "/v1/completions":
		if allow(w, r, http.MethodPost) {
			s.complete(w, r, rq, textEndpoint)
		}
	case path == "/v1/embeddings":
		if allow(w, r, http.MethodPost) {
			s.embeddings(w, r, rq)
		}
	case path == "/v1/dsmil/agent/tasks":
		if allow(w, r, http.MethodPost) {
			s.agentTask(w, r, rq)
		}
	default:
		writeError(w, &apiError{status: http.StatusNotFound, typ: typeInvalidRequest, code: "unknown_url",
			message: fmt.Sprintf("Invalid URL (%s %s).", r.Method, quoteClip(path))})
	}
}

// allow answers 405 with an Allow header unless r uses method (GET also
// allows HEAD).
func allow(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Method == method || (method == http.MethodGet && r.Method == http.MethodHead) {
		return true
	}
	allowed := method
	if method == http.MethodGet {
		allowed = "GET, HEAD"
	}
	w.Header().Set("Allow", allowed)
	writeError(w, &apiError{status: http.StatusMethodNotAllowed, typ: typeInvalidRequest, code: "method_not_allowed",
		message: fmt.Sprintf("Method %s is not allowed on %s; use %s.", quoteClip(r.Method), r.URL.Path, allowed)})
	return false
}

// request is what the shim knows about one HTTP request.
type request struct {
	id     [16]byte
	idStr  string
	start  time.Time
	tenant *config.Tenant
}

// statusRecorder remembers the status sent, for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusRecorder) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (flushing,
// deadlines).
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) logRequest(r *http.Request, rq *request, status int) {
	if !s.log.IsDebug() {
		return
	}
	tenant := ""
	if rq.tenant != nil {
		tenant = rq.tenant.Name
	}
	s.log.Debug("request", "request_id", rq.idStr, "method", r.Method, "path", r.URL.Path, "status", status,
		"tenant", tenant, "duration", s.cfg.Now().Sub(rq.start))
}
