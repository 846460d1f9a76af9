package firewall

import (
	"bytes"
	"net/netip"

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
		if older, err = f.isOlderLayoutLocked(); err != nil {
			return err
		}
	}
	f.networks = map[string]installed{}
	f.masqCount = map[masqLen]int{}
	if !older {
		if existed {
			err = f.loadNetworksLocked()
			if err == nil {
				err = f.loadPortsLocked()
			}
			if err == nil {
				err = f.loadRoutedLocked()
			}
		}
		if err == nil {
			f.queueBaseLocked(masqLens(f.masqCount))
			err = f.flushLocked("init")
		}
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
		f.networks = map[string]installed{}
		f.masqCount = map[masqLen]int{}
		f.ports = map[portKey]PortRule{}
		f.inherited = map[portKey]bool{}
		f.open = map[OpenPort]bool{}
		f.conn.AddTable(f.table)
		f.conn.DelTable(f.table)
		f.queueBaseLocked(nil)
		if err := f.queueForwardDropLocked(); err != nil {
			return queueError("init: recreate table", err)
		}
		if err := f.flushLocked("init: recreate table"); err != nil {
			return err
		}
		existed = false
	}
	if existed {
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
// created if missing, kept if present), the masquerade sets of lens, and
// the rules of the base chains (see ports.go for those of prerouting and
// output). f.mu must be held.
func (f *Firewall) queueBaseLocked(lens []masqLen) {
	f.conn.AddTable(f.table)
	for _, c := range []*nftables.Chain{f.forward, f.postrouting, f.prerouting, f.output} {
		f.conn.AddChain(c)
	}
	for _, s := range f.sets() {
		// AddSet fails only for anonymous, non-constant sets.
		_ = f.conn.AddSet(s, nil)
	}
	f.conn.FlushChain(f.forward)
	for _, r := range f.forwardRules() {
		f.conn.AddRule(r)
	}
	f.queuePortRulesLocked()
	f.queueMasqRulesLocked(lens)
}

// sets returns the sets and maps of the table, in the order they are
// created.
func (f *Firewall) sets() []*nftables.Set {
	return []*nftables.Set{f.bridges, f.icc, f.internal, f.forwardDrop, f.ports4, f.ports4Any, f.ports6, f.ports6Any,
		f.routed4, f.routed6, f.open4, f.open6}
}

// isOlderLayoutLocked reports whether the table holds a chain that is not
// a base chain (the per-network chains of an older layout: forward chains,
// or nat-<bridge> masquerade chains), or a set that is neither a base set
// nor a per-length masquerade set (the masq4 and masq6 verdict maps of the
// layout with nat chains). f.mu must be held.
func (f *Firewall) isOlderLayoutLocked() (bool, error) {
	chains, err := f.conn.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, types.InternalErrorf("firewall: init: listing nftables chains: %w", err)
	}
	for _, c := range chains {
		if c.Table.Name != TableName {
			continue
		}
		switch c.Name {
		case chainForward, chainPostrouting, chainPrerouting, chainOutput:
		default:
			return true, nil
		}
	}
	sets, err := f.conn.GetSets(f.table)
	if err != nil {
		return false, types.InternalErrorf("firewall: init: listing nftables sets: %w", err)
	}
	base := map[string]bool{}
	for _, s := range f.sets() {
		base[s.Name] = true
	}
	for _, s := range sets {
		if _, _, ok := parseMasqSetName(s.Name); !ok && !base[s.Name] {
			return true, nil
		}
	}
	return false, nil
}

// loadNetworksLocked learns the networks of a table kept from an earlier
// run: the bridges set names them, the icc map and the internal set tell
// how they were made, and the subnet . bridge elements of the masquerade
// sets which subnets they masquerade. f.mu must be held.
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
	sets, err := f.conn.GetSets(f.table)
	if err != nil {
		return types.InternalErrorf("firewall: init: listing nftables sets: %w", err)
	}
	for _, s := range sets {
		k, pairs, ok := parseMasqSetName(s.Name)
		if !ok || !pairs {
			continue
		}
		_, s := f.masqSets(k)
		elems, err := read(s)
		if err != nil {
			return err
		}
		size := 4
		if k.v6 {
			size = 16
		}
		for _, e := range elems {
			if len(e.Key) < size {
				return types.InternalErrorf("firewall: init: element of %s with a %d-byte key", s.Name, len(e.Key))
			}
			addr, _ := netip.AddrFromSlice(e.Key[:size])
			bridge := name(e.Key[size:])
			n, ok := f.networks[bridge]
			if !ok {
				// Cannot happen with batches of ours; DeleteNetwork could
				// not find this element, so say so.
				f.logger.Warn("firewall: masquerade element of an unknown bridge, Reconcile will remove it", "bridge", bridge, "set", s.Name)
				continue
			}
			n.masq = append(n.masq, netip.PrefixFrom(addr, k.bits))
			f.networks[bridge] = n
			f.masqCount[k]++
		}
	}
	return nil
}

// loadRoutedLocked learns which networks of a table kept from an earlier
// run are routed for a family, and its open ports. A table of a version
// without routed networks lacks their sets, which Init then creates
// empty. f.mu must be held.
func (f *Firewall) loadRoutedLocked() error {
	sets, err := f.conn.GetSets(f.table)
	if err != nil {
		return types.InternalErrorf("firewall: init: listing nftables sets: %w", err)
	}
	exists := map[string]bool{}
	for _, s := range sets {
		exists[s.Name] = true
	}
	for _, s := range []*nftables.Set{f.routed4, f.routed6} {
		if !exists[s.Name] {
			continue
		}
		elems, err := f.conn.GetSetElements(s)
		if err != nil {
			return types.InternalErrorf("firewall: init: reading the elements of %s: %w", s.Name, err)
		}
		for _, e := range elems {
			bridge := string(bytes.TrimRight(e.Key, "\x00"))
			n, ok := f.networks[bridge]
			if !ok {
				f.logger.Warn("firewall: routed element of an unknown bridge, Reconcile will remove it", "bridge", bridge, "set", s.Name)
				continue
			}
			if s == f.routed4 {
				n.routed4 = true
			} else {
				n.routed6 = true
			}
			f.networks[bridge] = n
		}
	}
	return f.loadOpenLocked(exists)
}
