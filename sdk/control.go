package sdk

import (
	"context"
	"fmt"

	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	pluginv1 "github.com/dsmil/l7/sdk/proto/dsmil/plugin/v1"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// GRPCPlugin is the go-plugin plugin of a DSMIL L7 plugin, registered under
// PluginName. On the plugin side (Serve) Impl is set and GRPCServer
// registers its Control service; on the host side leave Impl nil: Dispense
// returns a *ControlClient.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin

	// Impl is the plugin side's Server; nil in the host.
	Impl *Server
}

var (
	_ plugin.Plugin     = (*GRPCPlugin)(nil)
	_ plugin.GRPCPlugin = (*GRPCPlugin)(nil)
)

// GRPCServer implements plugin.GRPCPlugin.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, g *grpc.Server) error {
	if p.Impl == nil {
		return ErrNoServer
	}
	p.Impl.Register(g)
	return nil
}

// GRPCClient implements plugin.GRPCPlugin: it returns a *ControlClient.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return NewControlClient(cc), nil
}

// controlService is the plugin side of the Control service.
type controlService struct {
	pluginv1.UnimplementedControlServer
	s *Server
}

var _ pluginv1.ControlServer = (*controlService)(nil)

func (c *controlService) Info(ctx context.Context, _ *pluginv1.InfoRequest) (*pluginv1.PluginInfo, error) {
	i, err := c.s.refreshInfo(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return infoToProto(i), nil
}

func (c *controlService) Configure(ctx context.Context, req *pluginv1.ConfigureRequest) (*pluginv1.ConfigureResponse, error) {
	cfg, err := configFromProto(req)
	if err != nil {
		return nil, toStatus(err)
	}
	cfg.Logger = c.s.logger
	if err := c.s.w.Configure(ctx, cfg); err != nil {
		return nil, toStatus(err)
	}
	c.s.cfg.Store(cfg)
	if _, err := c.s.refreshInfo(ctx); err != nil {
		c.s.logger.Warn("workload info after configure failed", "error", err)
	}
	return &pluginv1.ConfigureResponse{}, nil
}

func (c *controlService) Health(ctx context.Context, _ *pluginv1.HealthRequest) (*pluginv1.HealthResponse, error) {
	ok, msg := c.s.health(ctx)
	return &pluginv1.HealthResponse{Healthy: ok, Message: msg}, nil
}

func (c *controlService) Status(ctx context.Context, _ *pluginv1.StatusRequest) (*l7v1.L7ModelStatus, error) {
	return c.s.modelStatus(ctx), nil
}

// ControlClient is the host's typed client of a plugin's Control service.
// Errors are *mux.Error values (wrapped) carrying the plugin's DBE code, so
// mux.CodeOf works on them; a broken connection is WORKER_FAILED, and when
// ctx ends the error wraps ctx.Err().
type ControlClient struct {
	c pluginv1.ControlClient
}

// NewControlClient returns a ControlClient over cc.
func NewControlClient(cc grpc.ClientConnInterface) *ControlClient {
	return &ControlClient{c: pluginv1.NewControlClient(cc)}
}

// Info asks the plugin to describe itself. The result is converted but not
// validated; see PluginInfo.Validate.
func (c *ControlClient) Info(ctx context.Context) (*PluginInfo, error) {
	p, err := c.c.Info(ctx, &pluginv1.InfoRequest{})
	if err != nil {
		return nil, callError(ctx, "Info", err)
	}
	return infoFromProto(p)
}

// Configure sends cfg (its Logger is not sent).
func (c *ControlClient) Configure(ctx context.Context, cfg *Config) error {
	req, err := configToProto(cfg)
	if err != nil {
		return err
	}
	if _, err := c.c.Configure(ctx, req); err != nil {
		return callError(ctx, "Configure", err)
	}
	return nil
}

// Health returns nil when the plugin is healthy, an error wrapping
// ErrUnhealthy with the plugin's message when it is not, or the call's
// error.
func (c *ControlClient) Health(ctx context.Context) error {
	r, err := c.c.Health(ctx, &pluginv1.HealthRequest{})
	if err != nil {
		return callError(ctx, "Health", err)
	}
	if !r.GetHealthy() {
		return fmt.Errorf("%w: %s", ErrUnhealthy, r.GetMessage())
	}
	return nil
}

// Status asks for the plugin's health and load.
func (c *ControlClient) Status(ctx context.Context) (*l7v1.L7ModelStatus, error) {
	st, err := c.c.Status(ctx, &pluginv1.StatusRequest{})
	if err != nil {
		return nil, callError(ctx, "Status", err)
	}
	return st, nil
}

func callError(ctx context.Context, method string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("sdk: control %s: %w: %w", method, ctx.Err(), fromStatus(err))
	}
	return fmt.Errorf("sdk: control %s: %w", method, fromStatus(err))
}
