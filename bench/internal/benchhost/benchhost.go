// Package benchhost is what the bench drivers share: an in-process
// dsmil-host started from dsmil.hcl text and waited for, a free loopback
// address, the median of a sample, and the identities of a router host
// and its worker nodes.
package benchhost

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/server"
	"github.com/dsmil/l7/sdk/identity"
	"github.com/hashicorp/go-hclog"
)

// FreeAddr is a loopback TCP address free at the time of the call.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Base is the dsmil.hcl every bench host without a security block starts
// from: the shim on addr, router and admin sockets under run/, the router's
// and the shim's request timeouts at 10 minutes (the largest bench requests
// take tens of seconds on a busy 2-core machine), metrics on a free loopback
// port, and tenant BENCH (SOC, UNCLAS, ANALYSIS_ONLY, every model) whose API
// key is apiKey. Callers append their plugin and model blocks.
func Base(addr, apiKey string) (string, error) {
	metrics, err := FreeAddr()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf(`
shim    {
  listen          = %[1]q
  request_timeout = "10m"
}
router  {
  socket          = "run/router.sock"
  request_timeout = "10m"
}
admin   { socket = "run/admin.sock" }
metrics { listen = %[2]q }
tenant "BENCH" {
  api_key_sha256 = [%[3]q]
  compartments   = ["SOC"]
  classification = "UNCLAS"
  roe            = "ANALYSIS_ONLY"
  models         = ["*"]
}
`, addr, metrics, config.HashKey(apiKey)), nil
}

// Start parses src as dir/dsmil.hcl and starts dsmil-host in this process
// (errors only on stderr), waiting up to two minutes until every plugin
// instance runs.
func Start(dir, src string) (*server.Host, error) {
	cfg, diags := config.Parse(filepath.Join(dir, "dsmil.hcl"), []byte(src))
	if diags.HasErrors() {
		return nil, diags
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "dsmil-host", Level: hclog.Error, Output: os.Stderr})
	h, err := server.Start(context.Background(), cfg, log, server.Options{})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := h.Manager.WaitReady(ctx); err != nil {
		h.Shutdown()
		return nil, err
	}
	for _, s := range h.Manager.Snapshots() {
		if s.State != "running" {
			h.Shutdown()
			return nil, errors.New("plugin " + s.Name + " did not start: " + s.LastError)
		}
	}
	return h, nil
}

// Median is the median of x (the upper one of an even count); x is left
// as it was.
func Median(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	x = slices.Clone(x)
	slices.Sort(x)
	return x[len(x)/2]
}

// KeyDir writes identities for hosts and clients under Dir, all signed by
// one root whose public key is Dir/root.pub: what an operator's key
// directory holds (dsmil-host keys gen / keys bundle).
type KeyDir struct {
	Dir  string
	Root *identity.PrivateKey
}

// NewKeyDir makes dir with a fresh root.
func NewKeyDir(dir string) (*KeyDir, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	root, err := identity.GenerateKey()
	if err != nil {
		return nil, err
	}
	return &KeyDir{Dir: dir, Root: root}, identity.WritePublicKeyFile(filepath.Join(dir, "root.pub"), root.Public())
}

// Issue writes file.bundle, a day's bundle for name and role signed by the
// root; for key nil it first writes a new key pair as file.key and
// file.pub, else it bundles key.
func (k *KeyDir) Issue(file, name, role string, key *identity.PrivateKey) (*identity.Identity, error) {
	if key == nil {
		var err error
		if key, err = identity.GenerateKey(); err != nil {
			return nil, err
		}
		if err := identity.WritePrivateKeyFile(filepath.Join(k.Dir, file+".key"), key); err != nil {
			return nil, err
		}
		if err := identity.WritePublicKeyFile(filepath.Join(k.Dir, file+".pub"), key.Public()); err != nil {
			return nil, err
		}
	}
	now := time.Now()
	b := &identity.Bundle{Name: name, Role: role, PublicKey: key.Public(), NotBefore: now.Add(-time.Minute), Expiry: now.Add(24 * time.Hour)}
	if err := b.Sign(k.Root); err != nil {
		return nil, err
	}
	return &identity.Identity{Key: key, Bundle: b}, identity.WriteBundleFile(filepath.Join(k.Dir, file+".bundle"), b)
}

// WaitPeer waits up to ten seconds until one of h's peers serves profile
// with a healthy instance.
func WaitPeer(h *server.Host, profile string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if h.Peers != nil {
			if ws, _ := h.Peers.Workers(profile); len(ws) > 0 && ws[0].Healthy() {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return errors.New("no healthy worker node instance of profile " + profile)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
