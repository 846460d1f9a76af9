package bridge

import (
	"errors"
	"fmt"
	"strings"

	"github.com/netkit/libnetwork/firewall"
	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
)

// CollectOrphans deletes, in one batch, the bridges ("br-" + 12 hex digits) of networks
// not in keepNetworks and the veths ("veth" + 11 hex digits) of endpoints
// not in keepEndpoints, and makes the firewall hold only the rules of the
// networks the driver knows, in one batch: RestoreNetwork leaves the rules
// to it, so call it once the networks are restored. A bridge belongs to
// the network its mark names (see markPrefix); a veth name matches an
// endpoint when the endpoint ID starts with its 11 digits.
//
// Names alone prove nothing (docker names its bridges "br-" + 12 hex
// digits too): a bridge is deleted only if it also carries the library's
// mark, and a veth (or a retired one, "vgone" + 10 digits) only if it is
// also a port of a bridge that carries it. A veth of our name on no
// bridge, or on a bridge not ours, is left alone: it may leak, but what
// is not the library's is never deleted.
//
// A failed listing of links is reported but does not keep the firewall
// from being reconciled.
func (d *Driver) CollectOrphans(keepNetworks, keepEndpoints map[string]bool) error {
	list := d.host.LinkList
	if d.linkList != nil {
		list = d.linkList
	}
	var errs []error
	links, err := osl.Dump(list)
	if err != nil {
		errs = append(errs, fmt.Errorf("listing links: %w", err))
	}
	keptNetworks := make(map[string]bool, len(keepNetworks))
	for nid, keep := range keepNetworks {
		keptNetworks[nid] = keep
	}
	keptVeths := prefixSet(keepEndpoints, 11)

	d.mu.Lock()
	// The restore is over: adoptions list addresses afresh.
	d.restoreAddrs = nil
	// Networks the driver knows, and the veths of endpoints it knows as
	// joined, are never orphans, whatever the caller passed. The veth of an
	// endpoint that left before a crash is one.
	var rules []firewall.NetworkRules
	for nid, n := range d.networks {
		keptNetworks[nid] = true
		rules = append(rules, n.rules())
		for eid, ep := range n.endpoints {
			if ep.hostIndex != 0 {
				keptVeths[shortID(eid, 11)] = true
			}
		}
	}
	d.mu.Unlock()

	// The library's bridges, by index: its veths are their ports.
	ownBridges := map[int]bool{}
	for _, l := range links {
		if _, marked := markedNetwork(l); marked && l.Type() == "bridge" {
			ownBridges[l.Attrs().Index] = true
		}
	}
	var orphans []int
	for _, l := range links {
		name := l.Attrs().Name
		onOwnBridge := ownBridges[l.Attrs().MasterIndex]
		var orphan bool
		switch {
		case l.Type() == "bridge" && isOwnName(name, tempPrefix, 12):
			// A bridge a crash caught between its creation and its
			// final name (setupBridge): nobody else names links so.
			orphan = true
		case l.Type() == "bridge" && isOwnName(name, bridgePrefix, 12):
			nid, marked := markedNetwork(l)
			// Keyed on the mark, which says whose it is; a bridge
			// named by the caller is never collected, as before.
			orphan = marked && !keptNetworks[nid]
		case l.Type() == "veth" && isOwnName(name, vethPrefix, 11):
			orphan = onOwnBridge && !keptVeths[strings.TrimPrefix(name, vethPrefix)]
		case l.Type() == "veth" && isOwnName(name, retiredPrefix, 10):
			orphan = onOwnBridge
		}
		if !orphan {
			continue
		}
		d.reaper.cancel(name)
		d.logger.Info("deleting an orphaned link", "link", name, "type", l.Type())
		orphans = append(orphans, l.Attrs().Index)
	}
	// One batch: deleting links one by one costs ~15 ms each (1.5 s for
	// 100 veths left by a crash), all in New.
	if err := d.deleteLinks(orphans); err != nil {
		errs = append(errs, fmt.Errorf("deleting %d orphaned links: %w", len(orphans), err))
	}
	if d.fw != nil {
		if err := d.reconcileRules(rules); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return types.InternalErrorf("collect orphans of the bridge driver: %w", errors.Join(errs...))
	}
	return nil
}

// reconcileRules makes the table hold exactly rules, in one batch. At
// restart that batch is what installs the restored networks' rules, so if
// it fails the networks are not left without them (not isolated, not
// internal, no masquerade): each network's rules are then installed on
// their own, and a network whose rules cannot be is logged as an error.
func (d *Driver) reconcileRules(rules []firewall.NetworkRules) error {
	reconcile := d.fw.Reconcile
	if d.reconcile != nil {
		reconcile = d.reconcile
	}
	err := reconcile(rules)
	// The published ports of a crashed run that no restored endpoint
	// publishes again go too.
	d.mu.Lock()
	ports, open := d.publishedRulesLocked(), d.publishedOpenLocked()
	d.mu.Unlock()
	if perr := d.fw.ReconcilePorts(ports); perr != nil {
		d.logger.Warn("reconciling published ports", "error", perr)
	}
	if perr := d.fw.ReconcileOpenPorts(open); perr != nil {
		d.logger.Warn("reconciling open ports", "error", perr)
	}
	if err == nil {
		return nil
	}
	errs := []error{fmt.Errorf("reconciling firewall rules: %w", err)}
	for _, r := range rules {
		if aerr := d.fw.AddNetwork(r); aerr != nil {
			d.logger.Error("bridge network left without its firewall rules", "bridge", r.Bridge, "error", aerr)
			errs = append(errs, fmt.Errorf("rules of bridge %s: %w", r.Bridge, aerr))
		}
	}
	return errors.Join(errs...)
}

// prefixSet returns the set of the first n characters of the keys of m
// that are true.
func prefixSet(m map[string]bool, n int) map[string]bool {
	s := make(map[string]bool, len(m))
	for id, keep := range m {
		if keep {
			s[shortID(id, n)] = true
		}
	}
	return s
}

// isOwnName reports whether name is prefix followed by n lowercase hex
// digits, the form of the links this driver names.
func isOwnName(name, prefix string, n int) bool { return osl.HasHexSuffix(name, prefix, n) }
