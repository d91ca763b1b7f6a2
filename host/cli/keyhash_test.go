package cli

import (
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/dsmil/l7/host/config"
)

func TestKeysHash(t *testing.T) {
	defer func(r io.Reader) { stdin = r }(stdin)
	// printf %s dsmil-local-key | sha256sum
	const digest = "9ad5575e0ad81058f05c71c395c3dcfce0a21da5be4830d1e2a8f4c152286656\n"
	for _, tc := range []struct {
		in       string
		code     int
		out, err string
	}{
		{"dsmil-local-key", 0, digest, ""},
		{"dsmil-local-key\n", 0, digest, ""},
		{"dsmil-local-key\r\n", 0, digest, ""},
		{"", 1, "", "no key on stdin"},
		{"\n", 1, "", "no key on stdin"},
		{"a\nb\n", 1, "", "more than one line"},
		{" a", 1, "", "whitespace"},
		{strings.Repeat("k", 5000), 1, "", "longer than"},
	} {
		stdin = strings.NewReader(tc.in)
		code, out, errs := run("keys", "hash")
		if code != tc.code || out != tc.out || !strings.Contains(errs, tc.err) {
			t.Errorf("%q: %d %q %q", tc.in, code, out, errs)
		}
	}
	if code, _, errs := run("keys", "hash", "my-secret"); code != 2 || !strings.Contains(errs, "read from stdin") {
		t.Errorf("key as an argument: %d %q", code, errs)
	}
	code, out, errs := run("keys", "hash", "-generate")
	m := regexp.MustCompile(`^key:            (dsmil-[A-Za-z0-9_-]{43})\napi_key_sha256: ([0-9a-f]{64})\n$`).FindStringSubmatch(out)
	if code != 0 || m == nil || config.HashKey(m[1]) != m[2] || !strings.Contains(errs, "dsmil.hcl") {
		t.Fatalf("-generate: %d %q %q", code, out, errs)
	}
}
