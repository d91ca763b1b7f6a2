package sdk_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsmil/l7/sdk"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/identity"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"github.com/dsmil/l7/sdk/sdktest"
	"github.com/dsmil/l7/sdk/session"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// envAsPlugin makes the test binary run as a plugin (TestMain).
const (
	envAsPlugin   = "SDK_TEST_AS_PLUGIN"
	envClosedFile = "SDK_TEST_CLOSED_FILE"
)

func TestMain(m *testing.M) {
	if os.Getenv(envAsPlugin) == "1" {
		sdk.Serve(&sdk.ServeConfig{Workload: &closing{chatter: chatter{chat: words("hello from another process")}}})
		panic("sdk.Serve returned")
	}
	os.Exit(m.Run())
}

// closing records its Close in the file named by envClosedFile.
type closing struct{ chatter }

func (c *closing) Close(context.Context) error {
	return os.WriteFile(os.Getenv(envClosedFile), []byte("closed"), 0o600)
}

// TestServeWithGoPlugin runs the test binary as a real plugin process
// under a go-plugin client configured as dsmil-host configures it: the
// control service and the data path share one DBE session, and Kill shuts
// the plugin down through the workload's Close.
func TestServeWithGoPlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	// As dsmil-host does: a root, a host identity it signs, and an identity
	// the host issues this plugin process, handed over in the environment.
	root, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	host, err := identity.Issue(root, "dsmil-host", "host", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := identity.Issue(host.Key, "echo", sdk.PluginRole, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	closed := filepath.Join(t.TempDir(), "closed")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envAsPlugin+"=1", envClosedFile+"="+closed,
		sdk.EnvHostName+"=dsmil-host", sdk.EnvLogLevel+"=warn")
	release, err := identity.AttachHandoff(cmd, pid, []*identity.PublicKey{root.Public()})
	if err != nil {
		t.Fatal(err)
	}

	sessions := make(chan *mux.Client, 1)
	var stderr bytes.Buffer
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		Plugins:          plugin.PluginSet{sdk.PluginName: &sdk.GRPCPlugin{}},
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		GRPCDialOptions: []grpc.DialOption{grpc.WithTransportCredentials(&session.Credentials{
			Handshaker: &session.PQ{Auth: session.Auth{Identity: host, Roots: []*identity.PublicKey{host.Key.Public()},
				PeerName: "echo", PeerRoles: []string{sdk.PluginRole}}},
			OnSession: func(s *session.Session) {
				c := mux.NewClient(s)
				s.SetHandler(func(f *dbe.Frame, _ error) { c.Dispatch(f) })
				go func() { <-s.Done(); c.Close(s.Err()) }()
				select {
				case sessions <- c:
				default:
				}
			},
		})},
		Logger: hclog.New(&hclog.LoggerOptions{Output: &stderr, Level: hclog.Warn}),
	})
	defer client.Kill()
	handoff := pipeName(t, cmd.ExtraFiles[0])
	rpc, err := client.Client()
	release()
	if err != nil {
		t.Fatalf("start: %v\n%s", err, stderr.String())
	}
	// The identity came over a pipe: nothing of it is in the plugin's
	// environment, and the pipe is closed once read.
	ppid := client.ReattachConfig().Pid
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", ppid))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(environ, []byte("DSMIL_PLUGIN_IDENTITY=")) || bytes.Contains(environ, []byte("PRIVATE KEY")) {
		t.Fatalf("key material in the plugin's environment:\n%s", bytes.ReplaceAll(environ, []byte{0}, []byte{'\n'}))
	}
	if fd := holds(t, ppid, handoff); fd != "" {
		t.Fatalf("the plugin still holds the handoff pipe %s as fd %s after reading its identity", handoff, fd)
	}
	raw, err := rpc.Dispense(sdk.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	ctl := raw.(*sdk.ControlClient)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	info, err := ctl.Info(ctx)
	if err != nil || info.Name != "chatter" {
		t.Fatalf("info %+v, %v", info, err)
	}
	if err := ctl.Configure(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := ctl.Health(ctx); err != nil {
		t.Fatal(err)
	}
	data := <-sessions
	f, _ := sdktest.ChatFrame("p1", chatReq(false))
	frames, err := sdktest.Call(ctx, data, f)
	if err != nil || len(frames) != 1 {
		t.Fatalf("%d frames, %v", len(frames), err)
	}
	var resp l7v1.L7ChatResponse
	_ = proto.Unmarshal(frames[0].Payload, &resp)
	if got := resp.GetChoices()[0].GetMessage().GetContent(); got != "hello from another process" {
		t.Fatalf("answer %q", got)
	}

	client.Kill()
	if !client.Exited() {
		t.Fatal("plugin still running after Kill")
	}
	if b, err := os.ReadFile(closed); err != nil || string(b) != "closed" {
		t.Fatalf("workload Close not called: %v", err)
	}
	if stderr.Len() > 0 {
		t.Logf("host log:\n%s", stderr.String())
	}
}

// TestServeRefusesToRunAlone: started by hand, a plugin says what it is.
func TestServeRefusesToRunAlone(t *testing.T) {
	for name, env := range map[string][]string{
		"no cookie":    nil,
		"no key":       {sdk.Handshake.MagicCookieKey + "=" + sdk.Handshake.MagicCookieValue},
		"bad identity": {sdk.Handshake.MagicCookieKey + "=" + sdk.Handshake.MagicCookieValue, identity.EnvPluginIdentityFD + "=abcd"},
		"closed fd":    {sdk.Handshake.MagicCookieKey + "=" + sdk.Handshake.MagicCookieValue, identity.EnvPluginIdentityFD + "=9"},
	} {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(withoutPluginEnv(os.Environ()), append(env, envAsPlugin+"=1")...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
				t.Fatalf("exit: %v", err)
			}
			if !strings.Contains(out.String(), "this binary is a DSMIL L7 plugin; dsmil-host starts it") {
				t.Fatalf("output %q", out.String())
			}
		})
	}
}

// pipeName is how /proc names the pipe f is an end of.
func pipeName(t *testing.T, f *os.File) string {
	t.Helper()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("pipe:[%d]", fi.Sys().(*syscall.Stat_t).Ino)
}

// holds returns the descriptor of process pid that refers to name, or "".
func holds(t *testing.T, pid int, name string) string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && l == name {
			return e.Name()
		}
	}
	return ""
}

func withoutPluginEnv(env []string) []string {
	var out []string
	for _, e := range env {
		if !strings.HasPrefix(e, sdk.Handshake.MagicCookieKey+"=") && !strings.HasPrefix(e, "DSMIL_PLUGIN_") {
			out = append(out, e)
		}
	}
	return out
}
