package firewall

import (
	"bytes"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/netkit/libnetwork/types"
)

// Init creates the table with its base chains, sets and maps, in one batch.
// If the table exists from an earlier run it is kept with its networks (the
// base rules of the forward and postrouting chains are rewritten, which is
// idempotent), and Init learns which networks it holds so that AddNetwork
// and DeleteNetwork work on them; Reconcile then makes the content match
// what the caller recorded. Init must be called before any other method.
func (f *Firewall) Init() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkOpenLocked("init"); err != nil {
		return err
	}
	existed, err := f.tableExistsLocked()
	if err != nil {
		return err
	}
	older := false
	if existed {
		if older, err = f.hasOtherChainsLocked(); err != nil {
			return err
		}
	}
	if !older {
		f.queueBaseLocked()
		err = f.flushLocked("init")
	}
	if older || err != nil {
		if !existed {
			return err
		}
		// The table is not the one this version builds (an older layout
		// with per-network chains, or damaged by hand): start from an
		// empty one. The networks it held are gone until Reconcile or
		// AddNetwork puts them back.
		f.logger.Warn("firewall: existing nftables table is incompatible, recreating it empty", "table", "inet "+TableName, "older_layout", older, "error", err)
		// Whether the library turned forwarding on is not rebuilt by
		// anyone: carry it over if the old table says.
		f.dropFamilies = map[Family]bool{}
		_ = f.loadForwardDropLocked()
		f.conn.AddTable(f.table)
		f.conn.DelTable(f.table)
		f.queueBaseLocked()
		if err := f.queueForwardDropLocked(); err != nil {
			return queueError("init: recreate table", err)
		}
		if err := f.flushLocked("init: recreate table"); err != nil {
			return err
		}
		existed = false
	}
	f.networks = map[string]installed{}
	if existed {
		if err := f.loadNetworksLocked(); err != nil {
			return err
		}
		f.dropFamilies = map[Family]bool{}
		if err := f.loadForwardDropLocked(); err != nil {
			return err
		}
	}
	f.initialized = true
	f.logger.Debug("firewall: table ready", "table", "inet "+TableName, "kept", existed, "networks", len(f.networks))
	return nil
}

// tableExistsLocked reports whether our table exists. f.mu must be held.
func (f *Firewall) tableExistsLocked() (bool, error) {
	tables, err := f.conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, types.InternalErrorf("firewall: init: listing nftables tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == TableName {
			return true, nil
		}
	}
	return false, nil
}

// queueBaseLocked queues the table, its base chains, sets and maps (all
// created if missing, kept if present) and the rules of the base chains that
// dispatch to the networks' chains. prerouting and output belong to port
// publishing and keep their rules. f.mu must be held.
func (f *Firewall) queueBaseLocked() {
	f.conn.AddTable(f.table)
	for _, c := range []*nftables.Chain{f.forward, f.postrouting, f.prerouting, f.output} {
		f.conn.AddChain(c)
	}
	for _, s := range f.sets() {
		// AddSet fails only for anonymous, non-constant sets.
		_ = f.conn.AddSet(s, nil)
	}
	f.conn.FlushChain(f.forward)
	f.conn.FlushChain(f.postrouting)
	for _, r := range f.forwardRules() {
		f.conn.AddRule(r)
	}
	for _, r := range f.postroutingRules() {
		f.conn.AddRule(r)
	}
}

// sets returns the sets and maps of the table, in the order they are
// created.
func (f *Firewall) sets() []*nftables.Set {
	return []*nftables.Set{f.bridges, f.icc, f.internal, f.masq4, f.masq6, f.forwardDrop}
}

// hasOtherChainsLocked reports whether the table holds a chain that is
// neither a base chain nor a network's nat chain: the per-network forward
// chains of an older layout. f.mu must be held.
func (f *Firewall) hasOtherChainsLocked() (bool, error) {
	chains, err := f.conn.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, types.InternalErrorf("firewall: init: listing nftables chains: %w", err)
	}
	for _, c := range chains {
		if c.Table.Name != TableName {
			continue
		}
		switch {
		case c.Name == chainForward, c.Name == chainPostrouting, c.Name == chainPrerouting, c.Name == chainOutput:
		case strings.HasPrefix(c.Name, natChainPrefix):
		default:
			return true, nil
		}
	}
	return false, nil
}

// loadNetworksLocked learns the networks of a table kept from an earlier
// run: the bridges set names them, the icc map and the internal set tell
// how they were made, and the comments of the masquerade intervals tell
// whose they are. f.mu must be held.
func (f *Firewall) loadNetworksLocked() error {
	read := func(s *nftables.Set) ([]nftables.SetElement, error) {
		elems, err := f.conn.GetSetElements(s)
		if err != nil {
			return nil, types.InternalErrorf("firewall: init: reading the elements of %s: %w", s.Name, err)
		}
		return elems, nil
	}
	name := func(key []byte) string { return string(bytes.TrimRight(key, "\x00")) }
	bridges, err := read(f.bridges)
	if err != nil {
		return err
	}
	for _, e := range bridges {
		f.networks[name(e.Key)] = installed{}
	}
	icc, err := read(f.icc)
	if err != nil {
		return err
	}
	internal, err := read(f.internal)
	if err != nil {
		return err
	}
	for _, e := range icc {
		bridge := name(e.Key[:min(len(e.Key), ifNameSize)])
		if n, ok := f.networks[bridge]; ok {
			n.icc = e.VerdictData != nil && e.VerdictData.Kind == expr.VerdictAccept
			f.networks[bridge] = n
		}
	}
	for _, e := range internal {
		if n, ok := f.networks[name(e.Key)]; ok {
			n.internal = true
			f.networks[name(e.Key)] = n
		}
	}
	for _, m := range []*nftables.Set{f.masq4, f.masq6} {
		elems, err := read(m)
		if err != nil {
			return err
		}
		for bridge, owned := range ownersOfIntervals(elems) {
			n, ok := f.networks[bridge]
			if !ok {
				// Cannot happen with batches of ours; DeleteNetwork could
				// not find these elements, so say so.
				f.logger.Warn("firewall: masquerade elements of an unknown bridge, Reconcile will remove them", "bridge", bridge, "set", m.Name)
				continue
			}
			if m == f.masq4 {
				n.masq4 = owned
			} else {
				n.masq6 = owned
			}
			f.networks[bridge] = n
		}
	}
	return nil
}
