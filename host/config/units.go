package config

import (
	"fmt"
	"io/fs"
	"math"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/dsmil/l7/sdk"
	"github.com/dsmil/l7/sdk/identity"
)

// parseDuration parses a Go duration that must be positive.
func parseDuration(s string) (time.Duration, string) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, `want a duration such as "250ms", "15s" or "2m"`
	}
	if d <= 0 {
		return 0, "must be greater than zero"
	}
	return d, ""
}

// parseMode parses an octal permission mode such as "0660", "660" or
// "0o660".
func parseMode(s string) (fs.FileMode, string) {
	t := strings.TrimPrefix(strings.TrimSpace(s), "0o")
	if t == "" {
		return 0, `want an octal permission mode such as "0660"`
	}
	n, err := strconv.ParseUint(t, 8, 32)
	if err != nil {
		return 0, `want an octal permission mode such as "0660"`
	}
	if n > 0o777 {
		return 0, "only permission bits (at most 0777) may be set"
	}
	return fs.FileMode(n), ""
}

// parseListen checks a host:port listen address and reports whether it
// binds loopback only. An empty host (all interfaces), an unspecified
// address and any host name except "localhost" count as non-loopback.
func parseListen(addr string) (loopback bool, reason string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false, `want host:port, such as "127.0.0.1:8001"`
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return false, "the port must be a number from 1 to 65535"
	}
	switch {
	case host == "":
		return false, ""
	case host == "localhost":
		return true, ""
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		if strings.ContainsAny(host, " /\\\x00") {
			return false, "the host is neither an IP address nor a host name"
		}
		return false, ""
	}
	return a.IsLoopback(), ""
}

// resolvePath makes p absolute against dir; "" stays "".
func resolvePath(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

var (
	nameRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	modelIDRE = regexp.MustCompile(`^[A-Za-z0-9/:._-]+$`)
)

// isSHA256Hex reports whether s is 64 hex digits, either case.
func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// tenantNameProblem explains why s is not a valid TENANT_ID, or returns "".
func tenantNameProblem(s string) string {
	switch {
	case s == "":
		return "it is empty"
	case len(s) > MaxTenantNameBytes:
		return fmt.Sprintf("it is %d bytes long; the limit is %d", len(s), MaxTenantNameBytes)
	case !utf8.ValidString(s):
		return "it is not valid UTF-8"
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return "it contains a control character"
		}
	}
	return ""
}

// envNameProblem explains why s cannot be an environment variable name, or
// returns "".
func envNameProblem(s string) string {
	switch {
	case s == "":
		return "it is empty"
	case strings.ContainsAny(s, "=\x00"):
		return `it contains "=" or a NUL byte`
	}
	return ""
}

// suggest returns the option closest to given when it is close enough to
// be a likely typo, or "".
func suggest(given string, options []string) string {
	for _, o := range options {
		if strings.EqualFold(o, given) {
			return o
		}
	}
	best, bestDist := "", 3
	for _, o := range options {
		if d := levenshtein(given, o); d < bestDist {
			best, bestDist = o, d
		}
	}
	return best
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 128 || len(rb) > 128 {
		return math.MaxInt
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// didYouMean formats a suggestion sentence, or "".
func didYouMean(given string, options []string) string {
	if s := suggest(given, options); s != "" {
		return fmt.Sprintf(" Did you mean %q?", s)
	}
	return ""
}

// quoteList renders names as "A", "B" and "C".
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	switch len(q) {
	case 0:
		return "(none)"
	case 1:
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " and " + q[len(q)-1]
}

// reservedPluginEnv reports whether dsmil-host sets variable k itself for
// every plugin process (go-plugin's PLUGIN_* and handshake cookie, the
// host's name, the identity handoff), so a plugin block may not.
func reservedPluginEnv(k string) bool {
	switch k {
	case sdk.Handshake.MagicCookieKey, sdk.EnvHostName, identity.EnvPluginIdentityFD:
		return true
	}
	return strings.HasPrefix(k, "PLUGIN_")
}
