package firewall

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/netkit/libnetwork/types"
)

// AddNetwork installs the rules of network r in one batch. Adding a network
// that is already installed replaces its rules, so calling it twice with the
// same r changes nothing.
func (f *Firewall) AddNetwork(r NetworkRules) error {
	r, err := r.normalize()
	if err != nil {
		return err
	}
	what := "add network " + r.Bridge
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkReadyLocked(what); err != nil {
		return err
	}
	// The network may have changed: drop its old elements first (in the
	// same batch, so traffic never sees the network without them).
	var oldMasq []netip.Prefix
	if old, ok := f.networks[r.Bridge]; ok {
		if err := f.queueAllElementsLocked(r.Bridge, old, true); err != nil {
			return queueError(what, err)
		}
		oldMasq = old.masq
	}
	inst := installedOf(r)
	next := f.countAfter(oldMasq, inst.masq)
	f.queueMasqCountLocked(next)
	if err := f.queueElementsLocked(networkElements(r), false); err != nil {
		return queueError(what, err)
	}
	if err := f.queueMasqElementsLocked(masqElemsOf(r.Bridge, inst.masq), false); err != nil {
		return queueError(what, err)
	}
	if err := f.flushLocked(what); err != nil {
		return err
	}
	f.networks[r.Bridge] = inst
	f.masqCount = next
	f.logger.Debug("firewall: network added", "bridge", r.Bridge, "subnets", r.Subnets,
		"icc", r.ICC, "masquerade", r.Masquerade, "internal", r.Internal,
		"routed_ipv4", r.RoutedIPv4, "routed_ipv6", r.RoutedIPv6)
	return nil
}

// DeleteNetwork removes every set and map element of the network on bridge
// in one batch. Deleting a bridge that has no rules is not an error.
func (f *Firewall) DeleteNetwork(bridge string) error {
	if err := validateBridge(bridge); err != nil {
		return err
	}
	what := "delete network " + bridge
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkReadyLocked(what); err != nil {
		return err
	}
	inst, ok := f.networks[bridge]
	if !ok {
		return nil
	}
	if err := f.queueAllElementsLocked(bridge, inst, true); err != nil {
		return queueError(what, err)
	}
	next := f.countAfter(inst.masq, nil)
	f.queueMasqCountLocked(next)
	if err := f.flushLocked(what); err != nil {
		return err
	}
	delete(f.networks, bridge)
	f.masqCount = next
	f.logger.Debug("firewall: network deleted", "bridge", bridge)
	return nil
}

// Reconcile makes the table hold exactly the networks in keep, removing
// whatever an earlier run left behind (a crash between the kernel change and
// the caller's record of it). It deletes and recreates the whole table in
// one batch, so packets see either the old rules or the new ones; the
// batch holds one message per set whatever the number of networks. The
// published ports and open ports are carried over into the new table in
// the same batch; ReconcilePorts and ReconcileOpenPorts then make them
// match the caller's records.
func (f *Firewall) Reconcile(keep []NetworkRules) error {
	const what = "reconcile"
	nets := make([]NetworkRules, 0, len(keep))
	seen := make(map[string]bool, len(keep))
	for _, r := range keep {
		r, err := r.normalize()
		if err != nil {
			return err
		}
		if seen[r.Bridge] {
			return types.InvalidParameterErrorf("firewall: reconcile: bridge %s is listed twice", r.Bridge)
		}
		seen[r.Bridge] = true
		nets = append(nets, r)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkReadyLocked(what); err != nil {
		return err
	}
	// Adding first makes the delete succeed whether or not the table exists.
	networks := make(map[string]installed, len(nets))
	count := map[masqLen]int{}
	var all elements
	masq := masqElems{}
	for _, r := range nets {
		inst := installedOf(r)
		all.append(networkElements(r))
		masq.add(r.Bridge, inst.masq)
		for _, p := range inst.masq {
			count[lenOf(p)]++
		}
		networks[r.Bridge] = inst
	}
	f.conn.AddTable(f.table)
	f.conn.DelTable(f.table)
	f.queueBaseLocked(masqLens(count))
	if err := f.queueElementsLocked(all, false); err != nil {
		return queueError(what, err)
	}
	if err := f.queueMasqElementsLocked(masq, false); err != nil {
		return queueError(what, err)
	}
	if err := f.queueForwardDropLocked(); err != nil {
		return queueError(what, err)
	}
	if err := f.queuePortElementsLocked(); err != nil {
		return queueError(what, err)
	}
	if err := f.queueOpenElementsLocked(); err != nil {
		return queueError(what, err)
	}
	if err := f.flushLocked(what); err != nil {
		return err
	}
	removed := 0
	for bridge := range f.networks {
		if !seen[bridge] {
			removed++
		}
	}
	f.networks = networks
	f.masqCount = count
	f.logger.Debug("firewall: reconciled", "networks", len(networks), "removed", removed)
	return nil
}

// elements lists set and map elements by the set or map they belong to.
type elements struct {
	bridges, icc, internal []nftables.SetElement
	routed4, routed6       []nftables.SetElement
}

func (e *elements) append(o elements) {
	e.bridges = append(e.bridges, o.bridges...)
	e.icc = append(e.icc, o.icc...)
	e.internal = append(e.internal, o.internal...)
	e.routed4 = append(e.routed4, o.routed4...)
	e.routed6 = append(e.routed6, o.routed6...)
}

// networkElements returns the set and map elements of network r.
func networkElements(r NetworkRules) elements {
	v := expr.VerdictDrop
	if r.ICC {
		v = expr.VerdictAccept
	}
	e := installedElements(r.Bridge, installedOf(r))
	e.icc[0].VerdictData = &expr.Verdict{Kind: v}
	return e
}

// installedOf returns what the kernel holds for r once its elements are
// added.
func installedOf(r NetworkRules) installed {
	return installed{icc: r.ICC, internal: r.Internal, routed4: r.RoutedIPv4, routed6: r.RoutedIPv6, masq: masqSubnets(r)}
}

// masqElemsOf returns the elements of the per-length masquerade sets for
// subnets masqueraded on bridge.
func masqElemsOf(bridge string, subnets []netip.Prefix) masqElems {
	m := masqElems{}
	m.add(bridge, subnets)
	return m
}

// queueAllElementsLocked queues the addition, or with del the deletion,
// of every element inst has on bridge. f.mu must be held.
func (f *Firewall) queueAllElementsLocked(bridge string, inst installed, del bool) error {
	if err := f.queueElementsLocked(installedElements(bridge, inst), del); err != nil {
		return err
	}
	return f.queueMasqElementsLocked(masqElemsOf(bridge, inst.masq), del)
}

// installedElements returns the elements the kernel holds for inst on
// bridge (the icc element without its verdict, which a delete does not
// need).
func installedElements(bridge string, inst installed) elements {
	name := ifname(bridge)
	e := elements{
		bridges: []nftables.SetElement{{Key: name}},
		icc:     []nftables.SetElement{{Key: append(slices.Clone(name), name...)}},
	}
	if inst.internal {
		e.internal = []nftables.SetElement{{Key: name}}
	}
	if inst.routed4 {
		e.routed4 = []nftables.SetElement{{Key: name}}
	}
	if inst.routed6 {
		e.routed6 = []nftables.SetElement{{Key: name}}
	}
	return e
}

// queueElementsLocked queues the addition, or with del the deletion, of e:
// one message per set or map, whatever the number of networks. Re-adding an
// element that exists with the same data is a no-op. f.mu must be held.
func (f *Firewall) queueElementsLocked(e elements, del bool) error {
	for _, m := range []struct {
		s     *nftables.Set
		elems []nftables.SetElement
	}{
		{f.icc, e.icc}, {f.internal, e.internal}, {f.routed4, e.routed4}, {f.routed6, e.routed6}, {f.bridges, e.bridges},
	} {
		if err := f.queueSetLocked(m.s, m.elems, del); err != nil {
			return err
		}
	}
	return nil
}

// queueBySetLocked queues, for each set of order with elements in bySet,
// one message adding them, or with del deleting them. f.mu must be held.
func (f *Firewall) queueBySetLocked(order []*nftables.Set, bySet map[*nftables.Set][]nftables.SetElement, del bool) error {
	for _, s := range order {
		if err := f.queueSetLocked(s, bySet[s], del); err != nil {
			return err
		}
	}
	return nil
}

// queueSetLocked queues one message adding elems to s, or with del
// deleting them (by key: a map's deletion carries no values); nothing for
// no elements. f.mu must be held.
func (f *Firewall) queueSetLocked(s *nftables.Set, elems []nftables.SetElement, del bool) error {
	if len(elems) == 0 {
		return nil
	}
	var err error
	if del {
		err = f.conn.SetDeleteElements(s, keysOnly(elems))
	} else {
		err = f.conn.SetAddElements(s, elems)
	}
	if err != nil {
		return fmt.Errorf("queuing elements of %s: %w", s.Name, err)
	}
	return nil
}

// keysOnly strips the data of elements about to be deleted: the kernel
// finds elements by key.
func keysOnly(elems []nftables.SetElement) []nftables.SetElement {
	out := make([]nftables.SetElement, len(elems))
	for i, e := range elems {
		out[i] = nftables.SetElement{Key: e.Key}
	}
	return out
}
