package libnetwork

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/netkit/libnetwork/rootless/port"
	"github.com/netkit/libnetwork/types"
)

// Rootless port publishing: a controller that runs inside a rootless
// network namespace (config.OptionRootlessPortManager) publishes every port
// as usual inside that namespace, and also exposes it on the real host
// through the port manager: a port.Spec whose parent side is the binding's
// host address and port, and whose child side is the same port inside the
// namespace (on the binding's address, or loopback for a wildcard one),
// where the usual rules take it to the container.

// rootlessPorts are the ports the controller exposed through the manager,
// by the binding they expose.
type rootlessPorts struct {
	m port.Manager

	mu  sync.Mutex
	ids map[rootlessKey]int
}

// rootlessKey identifies an exposed port: its protocol and parent address.
type rootlessKey struct {
	proto, ip string
	port      int
}

func (k rootlessKey) String() string {
	return fmt.Sprintf("%s %s", k.proto, net.JoinHostPort(k.ip, fmt.Sprint(k.port)))
}

func keyOfSpec(s port.Spec) rootlessKey {
	return rootlessKey{proto: s.Proto, ip: s.ParentIP, port: s.ParentPort}
}

// rootlessSpecs returns the specs exposing bindings; a binding of a
// protocol the managers do not carry (SCTP) has none, and is returned in
// skipped. The child side of a wildcard binding is loopback for IPv4
// (route_localnet lets the port rules take it to the container) and
// child6 for IPv6, where the kernel routes nothing from ::1 to a
// container: an address of the namespace the rules apply to (the
// network's IPv6 gateway), or ::1 when there is none.
func rootlessSpecs(bindings []types.PortBinding, child6 net.IP) (specs []port.Spec, skipped []types.PortBinding) {
	loop6 := "::1"
	if child6 != nil {
		loop6 = child6.String()
	}
	for _, b := range bindings {
		var proto string
		switch b.Proto {
		case types.TCP:
			proto = "tcp"
		case types.UDP:
			proto = "udp"
		default:
			skipped = append(skipped, b)
			continue
		}
		parent, child := "0.0.0.0", "127.0.0.1"
		family := "4"
		if ip := b.HostIP; ip != nil && !ip.IsUnspecified() {
			parent, child = ip.String(), ip.String()
			if ip.To4() == nil {
				family = "6"
			}
		} else if ip != nil && ip.To4() == nil {
			parent, child, family = "::", loop6, "6"
		}
		last := b.HostPortEnd
		if last < b.HostPort {
			last = b.HostPort
		}
		for p := int(b.HostPort); p <= int(last) && p > 0; p++ {
			specs = append(specs, port.Spec{Proto: proto + family, ParentIP: parent, ParentPort: p, ChildIP: child, ChildPort: p})
		}
	}
	return specs, skipped
}

// add exposes bindings; on a failure it removes what it exposed of them and
// returns an error naming the port.
func (r *rootlessPorts) add(ctx context.Context, bindings []types.PortBinding, child6 net.IP) error {
	if r == nil {
		return nil
	}
	specs, _ := rootlessSpecs(bindings, child6)
	var done []rootlessKey
	for _, s := range specs {
		k := keyOfSpec(s)
		r.mu.Lock()
		_, have := r.ids[k]
		r.mu.Unlock()
		if have {
			continue
		}
		st, err := r.m.AddPort(ctx, s)
		if err != nil {
			r.removeKeys(ctx, done)
			return types.Errorf("exposing %s on the host through the rootless port manager: %w", k, err)
		}
		r.mu.Lock()
		r.ids[k] = st.ID
		r.mu.Unlock()
		done = append(done, k)
	}
	return nil
}

// remove unexposes bindings; failures are returned joined, after every
// removal was tried.
func (r *rootlessPorts) remove(ctx context.Context, bindings []types.PortBinding) error {
	if r == nil {
		return nil
	}
	specs, _ := rootlessSpecs(bindings, nil)
	keys := make([]rootlessKey, 0, len(specs))
	for _, s := range specs {
		keys = append(keys, keyOfSpec(s))
	}
	return r.removeKeys(ctx, keys)
}

func (r *rootlessPorts) removeKeys(ctx context.Context, keys []rootlessKey) error {
	var errs []error
	for _, k := range keys {
		r.mu.Lock()
		id, ok := r.ids[k]
		delete(r.ids, k)
		r.mu.Unlock()
		if !ok {
			continue
		}
		if err := r.m.RemovePort(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("unexposing %s (id %d): %w", k, id, err))
		}
	}
	return errors.Join(errs...)
}

// reconcile makes the manager expose exactly bindings: the ports it lists
// that no binding owns are removed (a crash left them, or they were
// published before a restart and are gone), and the missing ones added.
// Failures are logged, one by one.
func (r *rootlessPorts) reconcile(ctx context.Context, c *controller, published []rootlessPublished) {
	if r == nil {
		return
	}
	want := map[rootlessKey]port.Spec{}
	for _, p := range published {
		specs, skipped := rootlessSpecs(p.bindings, p.child6)
		for _, b := range skipped {
			c.logger.Warn("rootless: a published port of a protocol the port manager does not carry is not exposed on the host", "binding", b.String())
		}
		for _, s := range specs {
			want[keyOfSpec(s)] = s
		}
	}
	listed, err := r.m.ListPorts(ctx)
	if err != nil {
		c.logger.Warn("rootless: listing the port manager's ports at start", "error", err)
		return
	}
	r.mu.Lock()
	r.ids = map[rootlessKey]int{}
	r.mu.Unlock()
	for _, st := range listed {
		k := keyOfSpec(st.Spec)
		if _, ok := want[k]; ok {
			r.mu.Lock()
			r.ids[k] = st.ID
			r.mu.Unlock()
			continue
		}
		if err := r.m.RemovePort(ctx, st.ID); err != nil {
			c.logger.Warn("rootless: removing a port no endpoint owns", "port", k.String(), "id", st.ID, "error", err)
		} else {
			c.logger.Info("rootless: removed a port no endpoint owns", "port", k.String(), "id", st.ID)
		}
	}
	for k, s := range want {
		r.mu.Lock()
		_, have := r.ids[k]
		r.mu.Unlock()
		if have {
			continue
		}
		st, err := r.m.AddPort(ctx, s)
		if err != nil {
			c.logger.Warn("rootless: exposing a published port again at start", "port", k.String(), "error", err)
			continue
		}
		r.mu.Lock()
		r.ids[k] = st.ID
		r.mu.Unlock()
	}
}

// rootlessTimeout bounds a call to the rootless port manager.
const rootlessTimeout = 30 * time.Second

// rootlessPublished is what an endpoint publishes, with the child address
// of its IPv6 wildcard bindings.
type rootlessPublished struct {
	bindings []types.PortBinding
	child6   net.IP
}

// rootlessChild6 returns the child address of ep's IPv6 wildcard bindings:
// its network's IPv6 gateway, or nil.
func rootlessChild6(ep *endpoint) net.IP {
	for _, i := range ep.network.ipamV6Info {
		if i.Gateway != nil {
			return i.Gateway.IP
		}
	}
	return nil
}

// rootlessAdd exposes the bindings ep published on the host when the
// controller has a rootless port manager.
func (c *controller) rootlessAdd(ep *endpoint, bindings []types.PortBinding) error {
	if c.rootless == nil || len(bindings) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), rootlessTimeout)
	defer cancel()
	return c.rootless.add(ctx, bindings, rootlessChild6(ep))
}

// rootlessRemove unexposes bindings on the host.
func (c *controller) rootlessRemove(bindings []types.PortBinding) error {
	if c.rootless == nil || len(bindings) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), rootlessTimeout)
	defer cancel()
	return c.rootless.remove(ctx, bindings)
}

// startRootless takes the configured rootless port manager, once the
// restore has published the ports again inside the namespace, and makes it
// expose exactly those.
func (c *controller) startRootless() {
	m := c.Config().Daemon.RootlessPorts
	if m == nil {
		return
	}
	var all []rootlessPublished
	c.mu.Lock()
	nets := make([]*network, 0, len(c.networks))
	for _, n := range c.networks {
		nets = append(nets, n)
	}
	c.mu.Unlock()
	for _, n := range nets {
		n.mu.Lock()
		eps := make([]*endpoint, 0, len(n.endpoints))
		for _, ep := range n.endpoints {
			eps = append(eps, ep)
		}
		n.mu.Unlock()
		for _, ep := range eps {
			ep.mu.Lock()
			if ep.join != nil && len(ep.join.published) > 0 {
				all = append(all, rootlessPublished{bindings: ep.join.published, child6: rootlessChild6(ep)})
			}
			ep.mu.Unlock()
		}
	}
	r := &rootlessPorts{m: m, ids: map[rootlessKey]int{}}
	ctx, cancel := context.WithTimeout(context.Background(), rootlessTimeout)
	defer cancel()
	r.reconcile(ctx, c, all)
	c.rootless = r
}
