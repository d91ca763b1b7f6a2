package pluginmgr

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/dsmil/l7/host/config"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
)

// supervise runs the instance until ctx ends: spawn, watch, restart with
// exponential backoff, give up after MaxRestarts.
func (i *Instance) supervise(ctx context.Context) {
	backoff := i.plugin.RestartBackoff
	failures := 0 // restarts since the plugin last ran stably for a minute
	for {
		i.setState(StateStarting)
		err := i.start(ctx)
		if err == nil {
			up := time.Now()
			err = i.watch(ctx)
			if time.Since(up) > time.Minute {
				// It had been stable: a crash weeks later starts the
				// count and the backoff over.
				backoff, failures = i.plugin.RestartBackoff, 0
			}
		}
		i.stop(ctx.Err() != nil)
		if ctx.Err() != nil {
			i.setState(StateStopped)
			return
		}
		i.mu.Lock()
		i.lastErr = err.Error()
		i.lastExit, i.exitAt = err.Error(), time.Now()
		i.mu.Unlock()
		if errors.Is(err, ErrChecksum) || errors.Is(err, ErrSettings) || failures >= i.plugin.MaxRestarts {
			i.setState(StateFailed)
			i.log.Error("plugin failed; not restarting", "error", err, "restarts_in_a_row", failures)
			return
		}
		i.setState(StateRestarting)
		i.log.Warn("plugin down; restarting", "error", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			i.setState(StateStopped)
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, config.MaxRestartBackoff)
		failures++
		i.mu.Lock()
		i.restarts++ // the total, shown by plugins list
		i.mu.Unlock()
	}
}

// start spawns a process and makes it the instance's running one.
func (i *Instance) start(ctx context.Context) error {
	p, err := i.spawn(ctx)
	if err != nil {
		return err
	}
	i.mu.Lock()
	i.proc, i.lastErr = p, ""
	i.mu.Unlock()
	i.healthy.Store(true)
	i.setState(StateRunning)
	return nil
}

// stop ends the running process (if any), then closes the data path.
func (i *Instance) stop(graceful bool) {
	i.healthy.Store(false)
	i.mu.Lock()
	p := i.proc
	i.proc = nil
	i.mu.Unlock()
	if p != nil {
		p.kill(graceful)
	}
	// A failed spawn may have attached a session without a process.
	i.data.detach()
}

// watch health-checks the running process until it dies, fails its checks
// too often, or ctx ends. It returns why it stopped.
func (i *Instance) watch(ctx context.Context) error {
	p, sess := i.running(), i.data.session()
	if p == nil || sess == nil {
		return errors.New("not running")
	}
	t := time.NewTicker(i.plugin.HealthInterval)
	defer t.Stop()
	fails := 0
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sess.Done():
			return fmt.Errorf("session closed: %v", sess.Err())
		case <-t.C:
		}
		if p.client.Exited() {
			return errors.New("process exited")
		}
		st, err := i.check(ctx, p)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			fails++
			i.healthy.Store(false)
			i.mu.Lock()
			i.state, i.lastErr = StateUnhealthy, err.Error()
			i.mu.Unlock()
			i.log.Warn("health check failed", "error", err, "consecutive", fails)
			if fails >= i.m.cfg.UnhealthyThreshold {
				return fmt.Errorf("unhealthy %d times: %w", fails, err)
			}
			continue
		}
		fails = 0
		i.load.Store(math.Float64bits(st.GetLoad()))
		mem := st.GetMemoryUsedBytes()
		if mem == 0 {
			mem = p.rss()
		}
		i.mu.Lock()
		i.memUsed = mem
		i.lastErr = ""
		if i.state != StateDraining {
			i.state = StateRunning
			// Set under mu: a draining instance never becomes routable again.
			i.healthy.Store(true)
		}
		i.mu.Unlock()
	}
}

// check is one health check: Health, then Status, within the health
// timeout.
func (i *Instance) check(ctx context.Context, p *process) (*l7v1.L7ModelStatus, error) {
	hctx, cancel := context.WithTimeout(ctx, min(i.plugin.HealthInterval, i.m.cfg.HealthTimeout))
	defer cancel()
	if err := p.control.Health(hctx); err != nil {
		return nil, err
	}
	return p.control.Status(hctx)
}

// socketAddr is the running process's socket address, or "".
func (i *Instance) socketAddr() string {
	if p := i.running(); p != nil {
		return p.socketAddr()
	}
	return ""
}
