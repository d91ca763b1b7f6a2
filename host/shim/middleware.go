package shim

import (
	"crypto/rand"
	"encoding/binary"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/sdk/dbe"
)

// The checks every request passes, in this order, before a handler runs:
// request id, Host allowlist, CORS, authentication. They are plain
// functions called from ServeHTTP rather than wrapped handlers, so the
// order is visible in one place.

// publicPath reports whether path is served without authentication: only
// the two probes, matched exactly. Every other path, including unknown
// ones, needs a valid key (default deny).
func publicPath(path string) bool { return path == "/healthz" || path == "/readyz" }

// requestID returns the request's id: the client's x-request-id when it is
// a UUID (any version but nil), else a new UUIDv7.
func requestID(r *http.Request, now time.Time) [16]byte {
	if id, ok := parseUUID(r.Header.Get("X-Request-Id")); ok {
		return id
	}
	return newUUIDv7(now)
}

// newUUIDv7 returns an RFC 9562 version 7 UUID: 48 bits of Unix
// milliseconds, then random bits.
func newUUIDv7(now time.Time) [16]byte {
	var id [16]byte
	_, _ = rand.Read(id[6:]) // never fails (crypto/rand)
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(now.UnixMilli()))
	copy(id[:6], ms[2:])
	id[6] = id[6]&0x0F | 0x70 // version 7
	id[8] = id[8]&0x3F | 0x80 // variant 10
	return id
}

// parseUUID parses the canonical 8-4-4-4-12 form (either case). The nil
// UUID is refused: DBE forbids it as a REQUEST_ID.
func parseUUID(s string) ([16]byte, bool) {
	var id [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return id, false
	}
	j := 0
	zero := true
	for i := 0; i < 36; {
		if s[i] == '-' {
			i++
			continue
		}
		hi, ok1 := unhex(s[i])
		lo, ok2 := unhex(s[i+1])
		if !ok1 || !ok2 {
			return id, false
		}
		id[j] = hi<<4 | lo
		zero = zero && id[j] == 0
		i += 2
		j++
	}
	return id, !zero
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// hostAllowed reports whether the Host header is in the allowlist
// (case-insensitive), the defence against DNS rebinding: a web page on a
// rebound name reaches 127.0.0.1 but sends its own name as Host.
func (s *Server) hostAllowed(host string) bool {
	for _, h := range s.allowedHosts {
		if strings.EqualFold(h, host) {
			return true
		}
	}
	return false
}

func hostForbidden(host string) *apiError {
	return &apiError{status: http.StatusForbidden, typ: typePermission, code: "host_not_allowed",
		message: "Host header " + quoteClip(host) + " is not allowed; add it to shim.allowed_hosts in dsmil.hcl if this name is meant to reach the shim."}
}

// loopbackHosts is the Host allowlist derived from a listener's address
// when none is configured.
func loopbackHosts(addr net.Addr) []string {
	_, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return nil
	}
	return []string{net.JoinHostPort("127.0.0.1", port), net.JoinHostPort("localhost", port), net.JoinHostPort("::1", port)}
}

// corsExposed are the response headers a browser page may read.
const corsExposed = "X-Request-Id, Retry-After, Retry-After-Ms, X-Ratelimit-Limit-Requests, X-Ratelimit-Limit-Tokens, " +
	"X-Ratelimit-Remaining-Requests, X-Ratelimit-Remaining-Tokens, X-Ratelimit-Reset-Requests, X-Ratelimit-Reset-Tokens"

// cors adds CORS headers for an allowlisted Origin and answers its
// preflight requests. It reports whether the response is complete. With no
// origins configured it does nothing at all.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) bool {
	if len(s.cfg.Shim.CORSOrigins) == 0 {
		return false
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	if origin == "" || !s.originAllowed(origin) {
		return false
	}
	h.Set("Access-Control-Allow-Origin", origin)
	if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		h.Set("Access-Control-Expose-Headers", corsExposed)
		return false
	}
	// A preflight: it carries no credentials, so it is answered before
	// authentication. The real request is authenticated as usual.
	h.Add("Vary", "Access-Control-Request-Method")
	h.Add("Vary", "Access-Control-Request-Headers")
	h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
		h.Set("Access-Control-Allow-Headers", req)
	}
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return true
}

func (s *Server) originAllowed(origin string) bool {
	for _, o := range s.cfg.Shim.CORSOrigins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

// authenticate returns the tenant whose key the request presents in
// "Authorization: Bearer KEY", or the 401 to send. The key is hashed and
// compared with every tenant's every digest in constant time.
func (s *Server) authenticate(r *http.Request) (*config.Tenant, *apiError) {
	vals := r.Header.Values("Authorization")
	if len(vals) == 0 {
		return nil, unauthenticated("missing_api_key",
			"You didn't provide an API key. Send it in an Authorization header: \"Authorization: Bearer KEY\".")
	}
	scheme, key, _ := strings.Cut(vals[0], " ")
	key = strings.TrimSpace(key)
	if len(vals) > 1 || !strings.EqualFold(scheme, "Bearer") || key == "" {
		return nil, unauthenticated("invalid_api_key",
			"The Authorization header is malformed; send exactly one \"Authorization: Bearer KEY\".")
	}
	t := s.tenantByKey(key)
	if t == nil {
		return nil, unauthenticated("invalid_api_key", "Incorrect API key provided.")
	}
	return t, nil
}

// tenantByKey is config.Config.TenantByKey over the shim's tenants.
func (s *Server) tenantByKey(key string) *config.Tenant {
	var found *config.Tenant
	for _, t := range s.cfg.Tenants {
		if t.MatchKey(key) && found == nil {
			found = t
		}
	}
	return found
}

// quoteClip quotes s for an error message, cut to 200 bytes.
func quoteClip(s string) string { return "\"" + clip(s) + "\"" }

// clip cuts client-supplied text to 200 bytes for an error message.
func clip(s string) string {
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}

// formatID renders a request id.
func formatID(id [16]byte) string { return dbe.FormatUUID(id) }
