package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/dsmil/l7/bench/internal/benchhost"
	"github.com/dsmil/l7/host/server"
	"github.com/dsmil/l7/sdk/client"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/identity"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"google.golang.org/protobuf/proto"
)

// nodePair is the remote row's setup: two whole dsmil-hosts in this
// process, as dsmil-host serve runs them. Router host a serves profile
// "echo" with its own echo plugin and routes profile "echo-remote" to
// worker node b (a peer block) over b's cross-node listener on loopback:
// TLS 1.3 SecP384r1MLKEM1024 with ML-DSA-87 identities, b re-verifying
// every claim token and applying its own policy. A client with its own
// identity and claim tokens calls a's router socket (DSMIL-PQ1, sealed
// frames); "local" and "remote" differ only by the hop to b.
type nodePair struct {
	a, b *server.Host
	cl   *client.Client
	tok  []byte
}

func (p *nodePair) close() {
	if p.cl != nil {
		p.cl.Close()
	}
	if p.a != nil {
		p.a.Shutdown()
	}
	if p.b != nil {
		p.b.Shutdown()
	}
}

// call sends one chat request for profile and reads its stream to the end.
func (p *nodePair) call(ctx context.Context, profile string, req func() *dbe.Frame) error {
	_, err := p.chat(ctx, profile, req)
	return err
}

// chat is call returning the text, for the check that each profile is
// answered by the host it should be (the echo plugins' prefixes).
func (p *nodePair) chat(ctx context.Context, profile string, req func() *dbe.Frame) (string, error) {
	f := req()
	f.SetProfile(profile)
	f.SetClaimToken(p.tok)
	st := p.cl.Start(f, 30*time.Second)
	var b strings.Builder
	for {
		fr, err := st.Next(ctx)
		if errors.Is(err, io.EOF) {
			return b.String(), nil
		} else if err != nil {
			return b.String(), err
		}
		var ch l7v1.L7ChatChunk
		if proto.Unmarshal(fr.Payload, &ch) == nil {
			b.WriteString(ch.GetDelta())
		}
	}
}

// check: "echo" is answered by a's plugin and "echo-remote" by b's.
func (p *nodePair) check(ctx context.Context, req func() *dbe.Frame) error {
	stream := func() *dbe.Frame {
		f := req()
		f.Payload, _ = proto.Marshal(&l7v1.L7ChatRequest{Stream: true, Messages: []*l7v1.Message{{Role: "user", Content: "which host"}}})
		return f
	}
	for profile, want := range map[string]string{"echo": "a> ", "echo-remote": "b> "} {
		text, err := p.chat(ctx, profile, stream)
		if err != nil {
			return fmt.Errorf("%s: %w", profile, err)
		}
		if !strings.HasPrefix(text, want) {
			return fmt.Errorf("%s answered %q, want the prefix %q of its host", profile, text, want)
		}
	}
	return nil
}

func startNodePair(ctx context.Context, dir, echo string) (*nodePair, error) {
	kd, err := benchhost.NewKeyDir(filepath.Join(dir, "keys"))
	if err != nil {
		return nil, err
	}
	a, err := kd.Issue("a", "router-a", "host", nil)
	if err != nil {
		return nil, err
	}
	if _, err := kd.Issue("a-node", "router-a", "node", a.Key); err != nil {
		return nil, err
	}
	if _, err := kd.Issue("b", "node-b", "host", nil); err != nil {
		return nil, err
	}
	tool, err := kd.Issue("tool", "soc-tool", "client", nil)
	if err != nil {
		return nil, err
	}
	var addrs [5]string
	for i := range addrs {
		if addrs[i], err = benchhost.FreeAddr(); err != nil {
			return nil, err
		}
	}
	common := func(name, plugin string) string {
		return fmt.Sprintf(`
shim    { listen = %q }
metrics { listen = %q }
router  { socket = "run-%[3]s/router.sock" }
admin   { socket = "run-%[3]s/admin.sock" }
plugin "echo" {
  path      = %[4]q
  device_id = 47
  profiles  = [%[5]q]
  prefix    = "%[3]s> "
  env       = { GOGC = "400" }
}
tenant "T" {
  api_key_sha256 = ["%064[6]x"]
  compartments   = ["SOC"]
  models         = ["*"]
}
`, addrs[0], addrs[1], name, echo, plugin, 1)
	}
	p := &nodePair{}
	// b first: a dials it at start.
	if p.b, err = benchhost.Start(dir, fmt.Sprintf(`
security {
  identity_key      = "keys/b.key"
  identity_bundle   = "keys/b.bundle"
  roots             = ["keys/root.pub"]
  cross_node_listen = %q
  claim_issuer "soc-tool" {
    key     = "keys/tool.pub"
    tenants = ["T"]
  }
}
`, addrs[4])+common("b", "echo-remote")); err != nil {
		return nil, fmt.Errorf("worker node b: %w", err)
	}
	addrs[0], addrs[1] = addrs[2], addrs[3]
	if p.a, err = benchhost.Start(dir, fmt.Sprintf(`
security {
  identity_key    = "keys/a.key"
  identity_bundle = "keys/a.bundle"
  node_bundle     = "keys/a-node.bundle"
  roots           = ["keys/root.pub"]
  claim_issuer "soc-tool" {
    key     = "keys/tool.pub"
    tenants = ["T"]
  }
}
peer "node-b" {
  address  = %q
  profiles = ["echo-remote"]
}
`, addrs[4])+common("a", "echo")); err != nil {
		p.close()
		return nil, fmt.Errorf("router host a: %w", err)
	}
	if err := benchhost.WaitPeer(p.a, "echo-remote"); err != nil {
		p.close()
		return nil, err
	}
	roots := []*identity.PublicKey{kd.Root.Public()}
	if p.cl, err = client.Dial(ctx, filepath.Join(dir, "run-a/router.sock"), client.Options{Identity: tool, Roots: roots, HostName: "router-a"}); err != nil {
		p.close()
		return nil, err
	}
	minter, err := identity.NewMinter(identity.MinterConfig{Key: tool.Key, Audience: server.ClaimAudience})
	if err != nil {
		p.close()
		return nil, err
	}
	if p.tok, err = minter.Token("T", "soc-tool", []string{"ANALYSIS_ONLY"}); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}
