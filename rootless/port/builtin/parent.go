package builtin

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/netkit/libnetwork/rootless/port"
	"github.com/netkit/libnetwork/types"
)

// defaultUDPIdleTimeout is how long a UDP flow lives without a datagram
// either way.
const defaultUDPIdleTimeout = 60 * time.Second

// maxSocketPath is the longest path a unix socket address holds.
const maxSocketPath = 107

// parentDriver exposes ports in the parent namespace.
type parentDriver struct {
	logger     *slog.Logger
	socketPath string
	// udpIdleTimeout is copied by each UDP port when it is added; tests
	// shorten it before adding ports.
	udpIdleTimeout time.Duration

	mu sync.Mutex
	// ports are the exposed ports by ID.
	ports map[int]*exposed
	// pending are the specs of AddPort calls under way, so that two calls
	// for one address refuse each other as an exposed port would.
	pending map[*port.Spec]struct{}
	nextID  int
	// stopped is set when RunParentDriver's quit has closed everything.
	stopped bool
}

// exposed is an exposed port and what forwards it.
type exposed struct {
	status port.Status
	fwd    forwarder
}

// forwarder relays a port's traffic.
type forwarder interface {
	// close stops listening, closes the relayed connections and flows,
	// and waits, until ctx is done, for its goroutines.
	close(ctx context.Context) error
}

// NewParentDriver returns the parent half of the driver. stateDir is a
// directory private to the caller (as rootlesskit's state directory): the
// child's socket goes there, and whoever may connect to it can open
// sockets in the child's namespace. A nil logger discards.
func NewParentDriver(stateDir string, logger *slog.Logger) (port.ParentDriver, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if stateDir == "" {
		return nil, types.BadRequestErrorf("builtin port driver: empty state directory")
	}
	fi, err := os.Stat(stateDir)
	if err != nil {
		return nil, types.BadRequestErrorf("builtin port driver: state directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, types.BadRequestErrorf("builtin port driver: state directory %s is not a directory", stateDir)
	}
	path := filepath.Join(stateDir, socketName)
	if len(path) > maxSocketPath {
		return nil, types.BadRequestErrorf("builtin port driver: socket path %s is longer than the %d bytes a unix socket address holds", path, maxSocketPath)
	}
	return &parentDriver{
		logger:         logger,
		socketPath:     path,
		udpIdleTimeout: defaultUDPIdleTimeout,
		ports:          map[int]*exposed{},
		pending:        map[*port.Spec]struct{}{},
		nextID:         1,
	}, nil
}

// RunParentDriver waits until the child driver answers on its socket,
// then closes initComplete and serves until quit is signaled; then it
// removes every port (closing their connections) and returns. If quit
// comes before the child answers, it returns nil without closing
// initComplete. ChildContext is not used: the socket is enough.
func (d *parentDriver) RunParentDriver(initComplete chan struct{}, quit <-chan struct{}, _ *port.ChildContext) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := d.waitForChild(ctx); err != nil || ctx.Err() != nil {
		return errors.Join(err, d.stop())
	}
	close(initComplete)
	<-ctx.Done()
	return d.stop()
}

// waitForChild pings the child until it answers or ctx is done (which is
// not an error: quit came first).
func (d *parentDriver) waitForChild(ctx context.Context) error {
	delay := 5 * time.Millisecond
	for {
		rep, _, err := call(ctx, d.socketPath, request{Op: opPing})
		var unreachable *unreachableError
		switch {
		case err == nil && rep.Version != protocolVersion:
			return types.InternalErrorf("builtin port driver: the child driver on %s speaks protocol %d, not %d", d.socketPath, rep.Version, protocolVersion)
		case err == nil:
			d.logger.Info("builtin port driver: the child driver answers", "socket", d.socketPath)
			return nil
		case !errors.As(err, &unreachable):
			return types.InternalErrorf("builtin port driver: pinging the child driver: %w", err)
		}
		d.logger.Debug("builtin port driver: waiting for the child driver", "error", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}

// stop removes every port and refuses new ones.
func (d *parentDriver) stop() error {
	d.mu.Lock()
	d.stopped = true
	ports := d.ports
	d.ports = map[int]*exposed{}
	d.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	var errs []error
	for _, e := range ports {
		errs = append(errs, e.fwd.close(ctx))
	}
	return errors.Join(errs...)
}

// AddPort validates spec, binds the parent address, checks that the child
// answers and can route to ChildIP, and then listens and forwards. It
// fails with a BadRequestError for a bad spec or a ChildIP the child
// cannot reach, a ForbiddenError for a parent address another port or
// another socket of the parent namespace holds, and a NoServiceError when
// the child driver does not answer; then nothing is left listening.
func (d *parentDriver) AddPort(ctx context.Context, spec port.Spec) (*port.Status, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	release, err := d.reserve(&spec)
	if err != nil {
		return nil, err
	}
	defer release()

	fwd, err := d.open(ctx, spec)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		_ = fwd.close(ctx)
		return nil, errStopped(spec)
	}
	st := port.Status{ID: d.nextID, Spec: spec}
	d.nextID++
	d.ports[st.ID] = &exposed{status: st, fwd: fwd}
	d.mu.Unlock()
	d.logger.Info("builtin port driver: port added", "id", st.ID, "spec", spec.String())
	return &st, nil
}

// reserve refuses spec if an exposed port or an AddPort under way overlaps
// it, and otherwise holds its address until release.
func (d *parentDriver) reserve(spec *port.Spec) (release func(), _ error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return nil, errStopped(*spec)
	}
	if err := port.CheckConflict(*spec, d.statusesLocked()); err != nil {
		return nil, err
	}
	for p := range d.pending {
		if spec.Overlaps(*p) {
			return nil, types.ForbiddenErrorf("port spec %s conflicts with port %s, being added: both listen on %s port %d", spec, p, spec.Proto, spec.ParentPort)
		}
	}
	d.pending[spec] = struct{}{}
	return func() {
		d.mu.Lock()
		delete(d.pending, spec)
		d.mu.Unlock()
	}, nil
}

func errStopped(spec port.Spec) error {
	return types.ForbiddenErrorf("adding port %s: the builtin port driver has stopped", spec)
}

// open binds the parent address, checks the child, and starts forwarding.
func (d *parentDriver) open(ctx context.Context, spec port.Spec) (forwarder, error) {
	sock, err := bindParent(spec)
	if err != nil {
		return nil, err
	}
	defer sock.close()
	if err := d.checkChild(ctx, spec); err != nil {
		return nil, err
	}
	if strings.HasPrefix(spec.Proto, "tcp") {
		ln, err := sock.listener(spec)
		if err != nil {
			return nil, err
		}
		return startTCP(d, spec, ln), nil
	}
	pc, err := sock.packetConn(spec)
	if err != nil {
		return nil, err
	}
	return startUDP(d, spec, pc, d.udpIdleTimeout), nil
}

// checkChild asks the child whether it answers and routes to ChildIP.
func (d *parentDriver) checkChild(ctx context.Context, spec port.Spec) error {
	_, _, err := call(ctx, d.socketPath, childRequest(opCheck, spec))
	var unreachable *unreachableError
	var refused *childError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &unreachable):
		return types.NoServiceErrorf("adding port %s: %w", spec, err)
	case errors.As(err, &refused):
		return types.BadRequestErrorf("adding port %s: %w", spec, err)
	}
	return types.InternalErrorf("adding port %s: asking the child driver: %w", spec, err)
}

// childRequest is the request for spec's target in the child.
func childRequest(op string, spec port.Spec) request {
	ip := spec.ChildIP
	if ip == "" {
		ip = defaultChildIP
	}
	return request{Op: op, Proto: spec.Proto[:3], IP: ip, Port: spec.ChildPort}
}

// ListPorts returns the exposed ports in the order they were added.
func (d *parentDriver) ListPorts(context.Context) ([]port.Status, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.statusesLocked(), nil
}

// statusesLocked returns the exposed ports by ID. d.mu must be held.
func (d *parentDriver) statusesLocked() []port.Status {
	ports := make([]port.Status, 0, len(d.ports))
	for _, e := range d.ports {
		ports = append(ports, e.status)
	}
	slices.SortFunc(ports, func(a, b port.Status) int { return a.ID - b.ID })
	return ports
}

// RemovePort stops listening on the port and closes its connections and
// flows; it waits for them until ctx is done (5 s without a deadline). An
// unknown ID is a NotFoundError. The port is gone from ListPorts even when
// the wait fails.
func (d *parentDriver) RemovePort(ctx context.Context, id int) error {
	d.mu.Lock()
	e, ok := d.ports[id]
	delete(d.ports, id)
	d.mu.Unlock()
	if !ok {
		return types.NotFoundErrorf("removing port %d: the builtin port driver has no port %d", id, id)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	if err := e.fwd.close(ctx); err != nil {
		return types.InternalErrorf("removing port %d (%s): %w", id, e.status.Spec, err)
	}
	d.logger.Info("builtin port driver: port removed", "id", id, "spec", e.status.Spec.String())
	return nil
}
