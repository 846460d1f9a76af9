package overlay

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
)

// CollectOrphans removes what crashed runs left: the namespaces in the
// driver's directory of networks neither in keepNetworks nor known to the
// driver (their VXLAN devices deleted first, so that their VNIs are free
// at once), and, in the namespaces of known networks, the veths of
// endpoints neither in keepEndpoints nor joined here, in one batch per
// network. Call it once the networks are restored. Nothing of the
// driver's is ever in the controller's namespace, so nothing is looked
// for there.
func (d *Driver) CollectOrphans(keepNetworks, keepEndpoints map[string]bool) error {
	keepNets := map[string]bool{}
	for nid, keep := range keepNetworks {
		keepNets[nid] = keep
	}
	keepVeths := map[string]bool{}
	for eid, keep := range keepEndpoints {
		if keep {
			keepVeths[vethPrefix+shortID(eid, 11)] = true
		}
	}
	var known []*network
	d.mu.Lock()
	for nid, n := range d.networks {
		keepNets[nid] = true // nil: being created
		if n == nil {
			continue
		}
		known = append(known, n)
		for _, ep := range n.endpoints {
			if ep.hostIndex != 0 || ep.joining {
				keepVeths[ep.hostVeth] = true
			}
		}
	}
	d.mu.Unlock()

	var errs []error
	entries, err := os.ReadDir(d.nsDir)
	if err != nil {
		errs = append(errs, fmt.Errorf("listing %s: %w", d.nsDir, err))
	}
	for _, e := range entries {
		if keepNets[e.Name()] {
			continue
		}
		d.logger.Info("removing the namespace of a network that is gone", "network", e.Name())
		if err := d.removeNamespace(filepath.Join(d.nsDir, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	for _, n := range known {
		if err := d.collectVeths(n, keepVeths); err != nil {
			errs = append(errs, fmt.Errorf("network %s: %w", n.id, err))
		}
	}
	if len(errs) > 0 {
		return types.InternalErrorf("collect orphans of the overlay driver: %w", errors.Join(errs...))
	}
	return nil
}

// removeNamespace removes an entry of the driver's directory: a network
// namespace (its VXLAN devices deleted first), or a stale file or link,
// removed as itself; a directory is left alone.
func (d *Driver) removeNamespace(path string) error {
	st, err := os.Lstat(path)
	if err != nil {
		return nil
	}
	switch {
	case st.IsDir():
		d.logger.Warn("a directory in the overlay namespace directory is not the driver's; leaving it", "path", path)
		return nil
	case st.Mode()&os.ModeSymlink != 0 || !osl.IsNamespaceMount(path):
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing %s: %w", path, err)
		}
		return nil
	}
	ns, err := osl.OpenNamespace(path)
	if err != nil {
		return err
	}
	var vxlans []int
	links, lerr := osl.Dump(ns.Handle().LinkList)
	for _, l := range links {
		if l.Type() == "vxlan" {
			vxlans = append(vxlans, l.Attrs().Index)
		}
	}
	var errs []error
	if lerr != nil {
		errs = append(errs, fmt.Errorf("listing the links of %s: %w", ns, lerr))
	}
	if err := ns.DeleteLinks(vxlans); err != nil {
		errs = append(errs, err)
	}
	if err := ns.Destroy(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// collectVeths deletes the veths in n's namespace that are not in keep,
// and those retired (renamed at a Join) that a crash left.
func (d *Driver) collectVeths(n *network, keep map[string]bool) error {
	return n.withNS(func(ns *osl.Namespace) error {
		links, err := osl.Dump(ns.Handle().LinkList)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			return types.InternalErrorf("listing the links of %s: %w", ns, err)
		}
		var orphans []int
		for _, l := range links {
			name := l.Attrs().Name
			if l.Type() != "veth" || keep[name] {
				continue
			}
			if strings.HasPrefix(name, vethPrefix) || osl.IsTombstone(name, retiredPrefix) {
				d.sweeper.cancel(n, name)
				d.logger.Info("deleting the veth of an endpoint that is gone", "network", n.id, "link", name)
				orphans = append(orphans, l.Attrs().Index)
			}
		}
		return ns.DeleteLinks(orphans)
	})
}
