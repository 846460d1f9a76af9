package firewall

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/netkit/libnetwork/types"
)

// Family is an IP family, as nftables' `meta nfproto` names it.
type Family byte

// The families SetForwardDrop takes.
const (
	IPv4 Family = unix.NFPROTO_IPV4
	IPv6 Family = unix.NFPROTO_IPV6
)

// String returns "ipv4" or "ipv6", as nft writes them.
func (fam Family) String() string {
	switch fam {
	case IPv4:
		return "ipv4"
	case IPv6:
		return "ipv6"
	}
	return fmt.Sprintf("family(%d)", byte(fam))
}

// setForwardDrop names the set of families whose foreign forwarded traffic
// the table drops. Its elements are also the record, kept in the kernel for
// as long as the forwarding sysctls it answers for, that the library turned
// forwarding on: a later process finds forwarding on and cannot tell.
const setForwardDrop = "forward_drop"

// forwardDropRule is the last rule of the forward chain: a packet of a
// family in forward_drop that reaches it did not enter through a bridge of
// ours (the rules before decide for those), and is dropped unless it leaves
// through one. Traffic that neither enters nor leaves one of our bridges
// is routed by a host that did not route before the library turned
// forwarding on; the drop keeps it from routing.
func (f *Firewall) forwardDropRule() *nftables.Rule {
	return f.rule(f.forward, comment("forwarding turned on by libnetwork"),
		loadMeta(expr.MetaKeyNFPROTO),
		&expr.Lookup{SourceRegister: 1, SetName: f.forwardDrop.Name, SetID: f.forwardDrop.ID},
		loadMeta(expr.MetaKeyOIFNAME),
		&expr.Lookup{SourceRegister: 1, SetName: f.bridges.Name, SetID: f.bridges.ID, Invert: true},
		verdict(expr.VerdictDrop))
}

// SetForwardDrop, with drop set, makes the table drop forwarded packets of
// family fam that neither enter nor leave a bridge of its networks; with
// drop unset, it stops. It is what Docker (since 28.0) does when it turns
// forwarding on itself, except that it never changes the policy of a
// chain: the drop is a rule of the library's own forward chain. In
// nftables a drop in any base chain is final, so, unlike docker's iptables
// policy, another table's accept cannot let such a packet through; a host
// that routes for others (libvirt, a router) sets
// config.OptionForwardingNoDrop, or turns forwarding on before the
// library starts, which leaves it alone.
//
// The setting is an element of the set forward_drop, kept with the table:
// it survives Close, a later process's Init and Reconcile. Setting what is
// set changes nothing.
func (f *Firewall) SetForwardDrop(fam Family, drop bool) error {
	if fam != IPv4 && fam != IPv6 {
		return types.InvalidParameterErrorf("firewall: forward drop: unknown family %s", fam)
	}
	what := "forward drop " + fam.String()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkReadyLocked(what); err != nil {
		return err
	}
	if f.dropFamilies[fam] == drop {
		return nil
	}
	elems := []nftables.SetElement{{Key: []byte{byte(fam)}}}
	var err error
	if drop {
		err = f.conn.SetAddElements(f.forwardDrop, elems)
	} else {
		err = f.conn.SetDeleteElements(f.forwardDrop, elems)
	}
	if err != nil {
		return queueError(what, err)
	}
	if err := f.flushLocked(what); err != nil {
		return err
	}
	f.dropFamilies[fam] = drop
	f.logger.Debug("firewall: forward drop set", "family", fam.String(), "drop", drop)
	return nil
}

// ForwardDrop reports whether the table drops forwarded packets of family
// fam that neither enter nor leave a bridge of its networks: set by
// SetForwardDrop in this process or an earlier one.
func (f *Firewall) ForwardDrop(fam Family) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dropFamilies[fam]
}

// loadForwardDropLocked learns the families of forward_drop from a table
// kept from an earlier run. f.mu must be held.
func (f *Firewall) loadForwardDropLocked() error {
	elems, err := f.conn.GetSetElements(f.forwardDrop)
	if err != nil {
		return types.InternalErrorf("firewall: init: reading the elements of set %s: %w", f.forwardDrop.Name, err)
	}
	for _, e := range elems {
		if len(e.Key) == 1 {
			f.dropFamilies[Family(e.Key[0])] = true
		}
	}
	return nil
}

// queueForwardDropLocked queues the elements of forward_drop that f
// holds, for a table being rebuilt. f.mu must be held.
func (f *Firewall) queueForwardDropLocked() error {
	var elems []nftables.SetElement
	for _, fam := range []Family{IPv4, IPv6} {
		if f.dropFamilies[fam] {
			elems = append(elems, nftables.SetElement{Key: []byte{byte(fam)}})
		}
	}
	if len(elems) == 0 {
		return nil
	}
	if err := f.conn.SetAddElements(f.forwardDrop, elems); err != nil {
		return fmt.Errorf("queuing elements of %s: %w", f.forwardDrop.Name, err)
	}
	return nil
}
