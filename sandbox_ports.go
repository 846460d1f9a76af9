package libnetwork

import (
	"slices"

	"github.com/netkit/libnetwork/datastore"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/types"
)

// External connectivity: as in v0.7, the endpoint that gives a sandbox its
// default gateway (IPv4 first) is the one whose driver publishes the
// sandbox's ports (ProgramExternalConnectivity); when another endpoint
// takes the gateway over, the ports move with it. The ports published are
// the endpoint's own (CreateOptionPortMapping) followed by the sandbox's
// (OptionPortMapping). The driver reports what it published, with the host
// ports it got, under netlabel.PortMap of its EndpointOperInfo; the
// controller records that in the endpoint's join record, and a restart asks
// the driver for exactly those bindings again, so an ephemeral host port
// stays the same across restarts.

// updateExternal gives external connectivity to the endpoint that should
// have it, taking it from the one that had it. If the new endpoint's ports
// cannot be published, the old one gets its ports back, as they were, and
// the error is returned. The endpoints whose published ports changed are
// queued in sb.extChanged for the caller's store update.
func (sb *sandbox) updateExternal() error {
	sb.mu.Lock()
	want := sb.gw4
	if want == nil {
		want = sb.gw6
	}
	cur := sb.ext
	sb.mu.Unlock()
	if want == cur {
		return nil
	}
	var before []types.PortBinding
	if cur != nil {
		before = sb.revokeExternal(cur)
		sb.mu.Lock()
		sb.ext = nil
		sb.mu.Unlock()
	}
	if want == nil {
		return nil
	}
	if err := sb.programExternal(want, nil); err != nil {
		if cur != nil {
			if rerr := sb.programExternal(cur, before); rerr != nil {
				sb.ctrl.logger.Warn("publishing the ports of the previous gateway endpoint again", "sandbox", sb.id, "endpoint", cur.Name(), "error", rerr)
			} else {
				sb.mu.Lock()
				sb.ext = cur
				sb.mu.Unlock()
			}
		}
		return err
	}
	sb.mu.Lock()
	sb.ext = want
	sb.mu.Unlock()
	return nil
}

// programExternal has ep's driver publish the sandbox's ports. published,
// when set, are the bindings to ask for instead (ports that were published
// before, with their host ports); otherwise a restored endpoint asks for
// what its record says it had.
func (sb *sandbox) programExternal(ep *endpoint, published []types.PortBinding) error {
	ep.mu.Lock()
	js := ep.join
	if js == nil {
		ep.mu.Unlock()
		return nil
	}
	fromRecord := published == nil && js.published != nil
	if published == nil {
		published = js.published
	}
	ep.mu.Unlock()
	opts := sb.externalOptions(ep, published)
	n := ep.network
	if err := n.driver.ProgramExternalConnectivity(n.id, ep.id, opts); err != nil {
		// Nothing is published now (the driver undid its part): the
		// endpoint must not say otherwise, here or in its record.
		sb.setPublished(ep, nil)
		if fromRecord {
			// The host ports it had (after a restart) are not to be
			// had: publish what was asked for, as a new join would.
			sb.ctrl.logger.Warn("the recorded published ports cannot be published again; publishing the requested bindings",
				"endpoint", ep.Name(), "sandbox", sb.id, "error", err)
			return sb.programExternal(ep, nil)
		}
		return types.Errorf("endpoint %s (network %s) in sandbox %s: %w", ep.Name(), n.name, sb.id, err)
	}
	// Only an endpoint asked to publish has bindings to read back: most
	// joins publish nothing and skip the driver round trip.
	var got []types.PortBinding
	if _, asked := opts[netlabel.PortMap]; asked {
		if info, err := n.driver.EndpointOperInfo(n.id, ep.id); err == nil {
			got, _ = info[netlabel.PortMap].([]types.PortBinding)
		} else {
			sb.ctrl.logger.Warn("reading the published ports of an endpoint", "endpoint", ep.Name(), "error", err)
		}
	}
	sb.setPublished(ep, slices.Clone(got))
	if err := sb.ctrl.rootlessAdd(ep, got); err != nil {
		// Published inside the namespace but not on the host: undo it,
		// as a failed publish.
		if rerr := n.driver.RevokeExternalConnectivity(n.id, ep.id); rerr != nil {
			sb.ctrl.logger.Warn("unpublishing ports the rootless port manager refused", "endpoint", ep.Name(), "error", rerr)
		}
		sb.setPublished(ep, nil)
		return types.Errorf("endpoint %s (network %s) in sandbox %s: %w", ep.Name(), n.name, sb.id, err)
	}
	return nil
}

// setPublished records what ep publishes and queues its record for the
// next store update when that changed.
func (sb *sandbox) setPublished(ep *endpoint, published []types.PortBinding) (before []types.PortBinding) {
	ep.mu.Lock()
	changed := false
	if ep.join != nil {
		before = ep.join.published
		changed = !slices.EqualFunc(before, published, func(a, b types.PortBinding) bool { return a.Equal(&b) })
		ep.join.published = published
	}
	ep.mu.Unlock()
	if changed {
		sb.markExtChanged(ep)
	}
	return before
}

// dropExternal takes ep's places in sb, its default routes' endpoints and
// the endpoint giving external connectivity, whatever became of the
// routes, and unpublishes its ports if it published them. For an
// endpoint that leaves or goes.
func (sb *sandbox) dropExternal(ep *endpoint) {
	sb.mu.Lock()
	if sb.gw4 == ep {
		sb.gw4 = nil
	}
	if sb.gw6 == ep {
		sb.gw6 = nil
	}
	ext := sb.ext == ep
	if ext {
		sb.ext = nil
	}
	sb.mu.Unlock()
	if ext {
		sb.revokeExternal(ep)
	}
}

// revokeExternal has ep's driver unpublish its ports and returns what was
// published. A failure is logged: the endpoint is leaving or losing the
// gateway either way.
func (sb *sandbox) revokeExternal(ep *endpoint) []types.PortBinding {
	n := ep.network
	if err := n.driver.RevokeExternalConnectivity(n.id, ep.id); err != nil {
		sb.ctrl.logger.Warn("unpublishing the ports of an endpoint", "endpoint", ep.Name(), "network", n.name, "sandbox", sb.id, "error", err)
	}
	before := sb.setPublished(ep, nil)
	if err := sb.ctrl.rootlessRemove(before); err != nil {
		sb.ctrl.logger.Warn("rootless: unexposing the ports of an endpoint on the host", "endpoint", ep.Name(), "sandbox", sb.id, "error", err)
	}
	return before
}

// externalOptions is the option map of ProgramExternalConnectivity for ep:
// the endpoint's driver options, with netlabel.PortMap holding published,
// or else the endpoint's port mappings followed by the sandbox's, and
// netlabel.ExposedPorts likewise.
func (sb *sandbox) externalOptions(ep *endpoint, published []types.PortBinding) map[string]interface{} {
	opts := ep.driverOptions() // a map of its own
	sb.mu.Lock()
	sbPorts := slices.Clone(sb.config.PortBindings)
	sbExposed := slices.Clone(sb.config.ExposedPorts)
	sb.mu.Unlock()
	requested := append(slices.Clone(ep.portMapping), sbPorts...)
	ports := requested
	if published != nil {
		// Ports recorded as published are asked for again only where a
		// requested binding allows them: a record is input too.
		ports = nil
		for _, b := range published {
			if allowedBy(b, requested) {
				ports = append(ports, b)
			} else {
				sb.ctrl.logger.Warn("recorded published port matches no requested binding; not published again",
					"endpoint", ep.Name(), "sandbox", sb.id, "binding", b.String())
			}
		}
	}
	delete(opts, netlabel.PortMap)
	if len(ports) > 0 {
		opts[netlabel.PortMap] = ports
	}
	if exposed := append(slices.Clone(ep.exposedPorts), sbExposed...); len(exposed) > 0 {
		opts[netlabel.ExposedPorts] = exposed
	}
	return opts
}

// markExtChanged queues ep for the next store update.
func (sb *sandbox) markExtChanged(ep *endpoint) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if !slices.Contains(sb.extChanged, ep) {
		sb.extChanged = append(sb.extChanged, ep)
	}
}

// putExtChanged stores, in tx, the records of the endpoints queued by
// markExtChanged that are still joined to sb. The queue is emptied when tx
// commits (a failed commit leaves it for the next store update).
func (sb *sandbox) putExtChanged(tx *datastore.Tx) error {
	sb.mu.Lock()
	eps := slices.Clone(sb.extChanged)
	sb.mu.Unlock()
	if len(eps) == 0 {
		// Most joins and leaves: nothing to store, no commit hook.
		return nil
	}
	tx.OnCommit(func() {
		sb.mu.Lock()
		sb.extChanged = slices.DeleteFunc(sb.extChanged, func(e *endpoint) bool { return slices.Contains(eps, e) })
		sb.mu.Unlock()
	})
	for _, ep := range eps {
		ep.mu.Lock()
		joined := ep.sandboxID == sb.id && ep.join != nil
		ep.mu.Unlock()
		if !joined {
			continue
		}
		if err := tx.Put(kindEndpoint, ep.id, ep.record()); err != nil {
			return err
		}
	}
	return nil
}

// allowedBy reports whether published binding b, as a driver reported it
// (one host address, one host port), is what one of the requested
// bindings asks for: same protocol and container port, a host port the
// request's port or range allows (any for an ephemeral request), and its
// host address, or an unspecified one for a request that names none.
func allowedBy(b types.PortBinding, requested []types.PortBinding) bool {
	for _, r := range requested {
		if r.Proto != b.Proto || r.Port != b.Port {
			continue
		}
		if r.HostPort != 0 {
			end := max(r.HostPortEnd, r.HostPort)
			if b.HostPort < r.HostPort || b.HostPort > end {
				continue
			}
		}
		if len(r.HostIP) == 0 || r.HostIP.IsUnspecified() {
			// The driver may have used its network's default binding
			// address; any address of the host is then acceptable only
			// for it, so check the family at least.
			if len(r.HostIP) != 0 && (r.HostIP.To4() == nil) != (b.HostIP.To4() == nil) {
				continue
			}
			return true
		}
		if r.HostIP.Equal(b.HostIP) {
			return true
		}
	}
	return false
}
