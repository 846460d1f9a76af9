package portmapper

import (
	"context"
	"log/slog"
	"time"

	"github.com/netkit/libnetwork/plugins"
	"github.com/netkit/libnetwork/portallocator"
	"github.com/netkit/libnetwork/portmapper/api"
	"github.com/netkit/libnetwork/types"
)

// Mapper maps and unmaps the ports of one endpoint. Built-in or remote.
type Mapper interface {
	// MapPorts fulfils req: one PortBinding per request of req.Reqs, in
	// order (DiscardReq ones included). On error nothing stays mapped.
	MapPorts(ctx context.Context, req api.MapPortsRequest) ([]api.PortBinding, error)
	// UnmapPorts releases what MapPorts returned (bindings as returned).
	// Unmapping twice is harmless.
	UnmapPorts(ctx context.Context, req api.UnmapPortsRequest) error
}

// The names of the built-in mappers.
const (
	// NAT is the built-in mapper that reserves host ports and NATs them
	// to the container. It is also the mapper of the empty name.
	NAT = "nat"
	// Routed is the built-in mapper that maps nothing: the container is
	// reached at its own address and port.
	Routed = "routed"
)

// DefaultCallTimeout bounds each call to a remote mapper when
// Config.CallTimeout is 0: the plugin client's own default.
const DefaultCallTimeout = plugins.DefaultCallTimeout

// Config is what a Registry needs.
type Config struct {
	// Allocator reserves the host ports of the nat mapper. Required.
	Allocator *portallocator.Allocator
	// Plugins finds remote mappers; nil means there are none.
	Plugins *plugins.Registry
	// Logger receives warnings (SCTP ports reserved without a socket,
	// failed clean-ups of remote mappers). Nil discards.
	Logger *slog.Logger
	// CallTimeout bounds each call to a remote mapper, on top of the
	// caller's context; 0 means DefaultCallTimeout.
	CallTimeout time.Duration
}

// Registry returns the mapper of a name. It is safe for concurrent use and
// holds no lock while a mapper works.
type Registry struct {
	plugins     *plugins.Registry
	log         *slog.Logger
	callTimeout time.Duration

	nat    *natMapper
	routed routedMapper
}

// New returns the Registry of cfg. A missing Allocator or a negative
// CallTimeout is a types.BadRequestError.
func New(cfg Config) (*Registry, error) {
	if cfg.Allocator == nil {
		return nil, types.BadRequestErrorf("port mapper registry: no port allocator")
	}
	if cfg.CallTimeout < 0 {
		return nil, types.BadRequestErrorf("port mapper registry: negative call timeout %v", cfg.CallTimeout)
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Registry{
		plugins:     cfg.Plugins,
		log:         cfg.Logger,
		callTimeout: cfg.CallTimeout,
		nat:         newNATMapper(cfg.Allocator, cfg.Logger),
	}, nil
}

// Mapper returns the mapper named name: "" or "nat" the built-in NAT
// mapper, "routed" the built-in routed mapper, any other name a remote
// port-mapper plugin found through cfg.Plugins (activated, must implement
// "PortMapper"). Unknown -> types.NotFoundError naming it; invalid name ->
// BadRequest.
//
// A plugin that exists but does not implement PortMapper is a
// types.NotImplementedError (*plugins.InterfaceError); one that does not
// answer its activation in time, a types.TimeoutError. The plugin registry
// activates a plugin once and reuses it.
func (r *Registry) Mapper(name string) (Mapper, error) {
	switch name {
	case "", NAT:
		return r.nat, nil
	case Routed:
		return r.routed, nil
	}
	if err := plugins.ValidateName(name); err != nil {
		return nil, types.Errorf("port mapper %q: %w", name, err)
	}
	if r.plugins == nil {
		return nil, types.NotFoundErrorf("port mapper %q not found: it is not built in and remote plugins are not configured", name)
	}
	// Activation is bounded by the plugin registry's activation timeout;
	// the call timeout is a bound of last resort.
	ctx, cancel := context.WithTimeout(context.Background(), r.callTimeout)
	defer cancel()
	p, err := r.plugins.Get(ctx, name, api.Interface)
	if err != nil {
		return nil, types.Errorf("port mapper %q: %w", name, err)
	}
	return &remoteMapper{plugin: p, name: name, callTimeout: r.callTimeout, log: r.log}, nil
}
