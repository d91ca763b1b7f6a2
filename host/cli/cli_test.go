package cli

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/dsmil/l7/host/config/configtest"
)

func run(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestUsage(t *testing.T) {
	if code, out, _ := run(); code != 0 || !strings.Contains(out, "dbe decode") {
		t.Fatalf("no args: %d %q", code, out)
	}
	if code, _, errs := run("frobnicate"); code != 2 || !strings.Contains(errs, `unknown command "frobnicate"`) {
		t.Fatalf("unknown: %d %q", code, errs)
	}
	if code, out, _ := run("version"); code != 0 || !strings.HasPrefix(out, "dsmil-host "+Version) {
		t.Fatalf("version: %d %q", code, out)
	}
}

func TestDBEDecode(t *testing.T) {
	const health = "44420106" + "00000000" + "00000000" + "00000000" + "0000000000000090"
	code, out, errs := run("dbe", "decode", health)
	if code != 0 || !strings.HasPrefix(out, "HEALTH flags=0x0000 correlation_id=144 tlvs=0 payload=0 bytes") {
		t.Fatalf("%d %q %q", code, out, errs)
	}
	code, _, errs = run("dbe", "decode", health+"0")
	if code != 1 || !strings.Contains(errs, "not hex") {
		t.Fatalf("odd hex: %d %q", code, errs)
	}
	code, _, errs = run("dbe", "decode", "4443"+health[4:])
	if code != 1 || !strings.Contains(errs, "BAD_MAGIC") {
		t.Fatalf("bad magic: %d %q", code, errs)
	}
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	good := dir + "/good.hcl"
	bad := dir + "/bad.hcl"
	os.WriteFile(good, []byte(configtest.EchoPlane("bin/dsmil-echo", configtest.Tenant{KeySHA256: strings.Repeat("ab", 32)})), 0o600)
	os.WriteFile(bad, []byte("plugin \"echo\" {\n  device_id = 300\n}\n"), 0o600)
	if code, out, errs := run("config", "validate", "-config", good); code != 0 || !strings.Contains(out, "valid (1 plugins, 1 models, 1 tenants") {
		t.Fatalf("good: %d %q %q", code, out, errs)
	}
	code, _, errs := run("config", "validate", bad)
	if code != 1 || !strings.Contains(errs, "bad.hcl:2:") {
		t.Fatalf("bad: %d %q", code, errs)
	}
}
