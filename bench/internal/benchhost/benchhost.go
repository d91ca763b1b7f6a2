// Package benchhost is what the bench drivers share: an in-process
// dsmil-host started from dsmil.hcl text and waited for, a free loopback
// address, and the median of a sample.
package benchhost

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/server"
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
