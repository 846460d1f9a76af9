// Package plugins discovers remote plugins and talks to them, as docker's
// v1 plugins do: a plugin is a "<name>.sock" unix socket in a socket
// directory, or a "<name>.spec" (a URL) or "<name>.json" file in a spec
// directory; it is activated by POST /Plugin.Activate, which answers the
// interfaces it implements, then called by HTTP POST of JSON to
// /<Interface>.<Method>.
//
// A Registry belongs to one controller and holds no package-level state:
// the directories, timeouts and logger are its Config, and the plugins it
// activated are its cache. Each plugin has its own HTTP client and no lock
// is held across a call, so a plugin that hangs or dies delays only the
// calls made to it, each of which ends at its timeout.
package plugins

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// The defaults of Config.
const (
	// DefaultCallTimeout bounds a call, retries included.
	DefaultCallTimeout = 30 * time.Second
	// DefaultActivateTimeout bounds an activation, retries included. It is
	// shorter than a call: activation is trivial work for the plugin, and
	// a caller waiting on a plugin that never comes up should learn it
	// soon.
	DefaultActivateTimeout = 10 * time.Second
	// DefaultRetryWindow bounds how long a call keeps trying to connect to
	// a plugin that is not (yet) listening, as when it is starting or
	// restarting.
	DefaultRetryWindow = 5 * time.Second
	// DefaultMaxResponseSize bounds the body of an answer.
	DefaultMaxResponseSize = 4 << 20
)

// Config is what a Registry needs. Zero durations and sizes take the
// defaults above.
type Config struct {
	// SocketDirs are searched for "<name>.sock" and "<name>/<name>.sock"
	// (config.Config's Daemon.PluginSocketDirs).
	SocketDirs []string
	// SpecDirs are searched for "<name>.spec", "<name>.json" and the same
	// under "<name>/" (config.Config's Daemon.PluginSpecDirs).
	SpecDirs []string

	CallTimeout     time.Duration
	ActivateTimeout time.Duration
	RetryWindow     time.Duration
	MaxResponseSize int64

	// Logger receives the retries, at debug level. Nil discards.
	Logger *slog.Logger
}

// Registry finds and activates plugins by name and caches them. It is safe
// for concurrent use.
type Registry struct {
	cfg Config // read-only after NewRegistry

	mu sync.Mutex
	// plugins has one entry per name whose activation is under way or
	// succeeded; a failed activation removes its entry so that the next
	// Get tries again.
	plugins map[string]*activation
}

// activation is one activation of a plugin; done is closed when plugin or
// err is set.
type activation struct {
	done   chan struct{}
	plugin *Plugin
	err    error
}

// NewRegistry returns a Registry that searches the directories of cfg.
func NewRegistry(cfg Config) *Registry {
	cfg.SocketDirs = slices.Clone(cfg.SocketDirs)
	cfg.SpecDirs = slices.Clone(cfg.SpecDirs)
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.ActivateTimeout <= 0 {
		cfg.ActivateTimeout = DefaultActivateTimeout
	}
	if cfg.RetryWindow <= 0 {
		cfg.RetryWindow = DefaultRetryWindow
	}
	if cfg.MaxResponseSize <= 0 {
		cfg.MaxResponseSize = DefaultMaxResponseSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Registry{cfg: cfg, plugins: make(map[string]*activation)}
}

// Lookup finds plugin name in the directories without activating it.
func (r *Registry) Lookup(name string) (Endpoint, error) {
	if err := ValidateName(name); err != nil {
		return Endpoint{}, err
	}
	return discover(name, r.cfg.SocketDirs, r.cfg.SpecDirs)
}

// Get returns plugin name activated and implementing iface ("PortMapper",
// "NetworkDriver", "IpamDriver"). The first Get of a name finds and
// activates the plugin; later ones reuse it. Errors: *NameError,
// *NotFoundError, *SpecError, *InterfaceError, and those of Client.Call
// for the activation.
func (r *Registry) Get(ctx context.Context, name, iface string) (*Plugin, error) {
	p, err := r.Activate(ctx, name)
	if err != nil {
		return nil, err
	}
	if !p.Implements(iface) {
		return nil, &InterfaceError{Name: name, Interface: iface, Implements: p.Manifest()}
	}
	return p, nil
}

// Activate returns plugin name activated, whatever it implements.
// Concurrent callers share one activation, which runs for at most the
// activation timeout whatever their contexts; each caller stops waiting
// when its own ctx ends.
func (r *Registry) Activate(ctx context.Context, name string) (*Plugin, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	r.mu.Lock()
	a, ok := r.plugins[name]
	if !ok {
		a = &activation{done: make(chan struct{})}
		r.plugins[name] = a
		go r.activate(context.WithoutCancel(ctx), name, a)
	}
	r.mu.Unlock()

	select {
	case <-a.done:
		return a.plugin, a.err
	case <-ctx.Done():
		cause := context.Cause(ctx)
		if errors.Is(cause, context.DeadlineExceeded) {
			return nil, &TimeoutError{Name: name, Method: ActivateMethod, Err: cause}
		}
		return nil, &UnavailableError{Name: name, Method: ActivateMethod, Err: cause}
	}
}

// activate finds and activates a plugin for a, then publishes the result.
func (r *Registry) activate(ctx context.Context, name string, a *activation) {
	a.plugin, a.err = r.find(ctx, name)
	if a.err != nil {
		r.mu.Lock()
		if r.plugins[name] == a {
			delete(r.plugins, name)
		}
		r.mu.Unlock()
	}
	close(a.done)
}

func (r *Registry) find(ctx context.Context, name string) (*Plugin, error) {
	ep, err := discover(name, r.cfg.SocketDirs, r.cfg.SpecDirs)
	if err != nil {
		return nil, err
	}
	c := newClient(ep, &r.cfg)
	var manifest struct{ Implements []string }
	if err := c.call(ctx, ActivateMethod, r.cfg.ActivateTimeout, nil, &manifest); err != nil {
		c.CloseIdleConnections()
		return nil, err
	}
	r.cfg.Logger.Debug("plugin activated", "plugin", name, "endpoint", ep.String(), "implements", manifest.Implements)
	return &Plugin{name: name, client: c, implements: manifest.Implements}, nil
}

// Close closes the kept-alive connections of the plugins activated so far.
// The Registry stays usable.
func (r *Registry) Close() {
	r.mu.Lock()
	var ps []*Plugin
	for _, a := range r.plugins {
		select {
		case <-a.done:
			if a.plugin != nil {
				ps = append(ps, a.plugin)
			}
		default:
		}
	}
	r.mu.Unlock()
	for _, p := range ps {
		p.client.CloseIdleConnections()
	}
}

// Plugin is an activated plugin.
type Plugin struct {
	name       string
	client     *Client
	implements []string
}

// Name returns the plugin's name.
func (p *Plugin) Name() string { return p.name }

// Endpoint returns where the plugin listens.
func (p *Plugin) Endpoint() Endpoint { return p.client.Endpoint() }

// Manifest returns the interfaces the plugin said it implements.
func (p *Plugin) Manifest() []string { return slices.Clone(p.implements) }

// Implements reports whether the plugin said it implements iface.
func (p *Plugin) Implements(iface string) bool { return slices.Contains(p.implements, iface) }

// Client returns the plugin's HTTP client.
func (p *Plugin) Client() *Client { return p.client }

// Call calls method ("<Interface>.<Method>") of the plugin; see
// Client.Call.
func (p *Plugin) Call(ctx context.Context, method string, req, resp any) error {
	return p.client.Call(ctx, method, req, resp)
}
