package libnetwork

import (
	"net"
	"net/netip"
	"strings"

	"github.com/netkit/libnetwork/internal/resolver"
	"github.com/netkit/libnetwork/types"
)

// The names a sandbox resolves (its embedded DNS server, ResolveName and
// ResolveIP all answer from one table, so they never disagree) are those
// of the endpoints joined to the networks the sandbox is on: the endpoint
// name (not for anonymous endpoints), its CreateOptionMyAlias aliases, the
// link aliases (CreateOptionAlias) of the sandbox's own endpoint on that
// network, and each of these followed by ".<network name>". Lookups are
// case-insensitive. Where a name is known on several networks, each family
// is answered from the first network, in the sandbox's join order, that
// has an address of that family for it, as v0.7 does.
//
// The table is built on first use and rebuilt lazily after any change that
// can alter it: every such change bumps the controller's nameGen after it
// is visible, and a table built from state read after the generation it
// records is never stale for longer than one lookup.

// nameTable is one sandbox's resolvable names at one generation. It is
// immutable once built.
type nameTable struct {
	gen   uint64
	names map[string]*nameEntry
	addrs map[netip.Addr]string
	// forward is whether queries for other names may be forwarded to
	// upstream servers: the sandbox is on at least one network that is
	// not internal (docker's CVE-2024-29018: an internal network must not
	// leak queries out through the resolver).
	forward bool
}

// nameEntry is the addresses of one name, by family.
type nameEntry struct {
	v4, v6 []netip.Addr
}

// namesChanged records that what some sandbox resolves may have changed;
// call it after the change is visible to readers.
func (c *controller) namesChanged() { c.nameGen.Add(1) }

// names returns the sandbox's current name table.
func (sb *sandbox) names() *nameTable {
	gen := sb.ctrl.nameGen.Load()
	if t := sb.nameTable.Load(); t != nil && t.gen == gen {
		return t
	}
	t := sb.buildNames(gen)
	sb.nameTable.Store(t)
	return t
}

// buildNames builds the table from the joined endpoints.
func (sb *sandbox) buildNames(gen uint64) *nameTable {
	t := &nameTable{gen: gen, names: map[string]*nameEntry{}, addrs: map[netip.Addr]string{}}
	seen := map[*network]bool{}
	for _, own := range sb.joined() {
		n := own.network
		if seen[n] {
			// Two endpoints of one network joined: the first's aliases
			// win, as in join order.
			continue
		}
		seen[n] = true
		if n.hasSpecialDriver() {
			// Host and null endpoints have no addresses to give: their
			// names are not the sandbox's to answer.
			continue
		}
		if !n.internal {
			t.forward = true
		}
		// This network's matches, merged below family by family.
		local := map[string]*nameEntry{}
		suffix := "." + strings.ToLower(n.name)
		for _, ep := range n.joinedEndpoints() {
			if ep.disableResolution {
				continue
			}
			v4, v6 := endpointAddrs(ep)
			add := func(name string) { addName(local, name, suffix, v4, v6) }
			// An anonymous endpoint is named, and reversed, by its
			// first alias.
			ptr := ""
			if !ep.anonymous {
				ptr = ep.Name()
				add(ptr)
			}
			for _, a := range ep.myAliases {
				add(a)
				if ptr == "" {
					ptr = a
				}
			}
			for alias, target := range own.aliases {
				if strings.EqualFold(target, ep.Name()) {
					add(alias)
				}
			}
			for _, a := range []netip.Addr{v4, v6} {
				if _, dup := t.addrs[a]; a.IsValid() && ptr != "" && !dup {
					t.addrs[a] = ptr + "." + n.name
				}
			}
		}
		// The endpoints other hosts have joined to a global network.
		for _, ge := range sb.ctrl.remoteEndpoints(n.id) {
			if ge.DisableResolution {
				continue
			}
			var v4, v6 netip.Addr
			if p, err := netip.ParsePrefix(ge.Addr); err == nil {
				v4 = p.Addr()
			}
			if p, err := netip.ParsePrefix(ge.AddrV6); err == nil {
				v6 = p.Addr()
			}
			add := func(name string) { addName(local, name, suffix, v4, v6) }
			ptr := ""
			if !ge.Anonymous {
				ptr = ge.Name
				add(ptr)
			}
			for _, a := range ge.MyAliases {
				add(a)
				if ptr == "" {
					ptr = a
				}
			}
			for _, a := range []netip.Addr{v4, v6} {
				if _, dup := t.addrs[a]; a.IsValid() && ptr != "" && !dup {
					t.addrs[a] = ptr + "." + n.name
				}
			}
		}
		for name, e := range local {
			g := t.names[name]
			if g == nil {
				g = &nameEntry{}
				t.names[name] = g
			}
			if len(g.v4) == 0 {
				g.v4 = e.v4
			}
			if len(g.v6) == 0 {
				g.v6 = e.v6
			}
		}
	}
	return t
}

// addName adds an endpoint's addresses to name and to name followed by
// suffix (".<network>") in local.
func addName(local map[string]*nameEntry, name, suffix string, v4, v6 netip.Addr) {
	name = strings.ToLower(name)
	for _, key := range []string{name, name + suffix} {
		e := local[key]
		if e == nil {
			e = &nameEntry{}
			local[key] = e
		}
		if v4.IsValid() {
			e.v4 = append(e.v4, v4)
		}
		if v6.IsValid() {
			e.v6 = append(e.v6, v6)
		}
	}
}

// endpointAddrs returns the endpoint's addresses; each is the zero Addr
// when the endpoint has none of that family.
func endpointAddrs(ep *endpoint) (v4, v6 netip.Addr) {
	if a := ep.iface.addr; a != nil {
		v4, _ = netip.AddrFromSlice(a.IP.To4())
	}
	if a := ep.iface.addrv6; a != nil {
		v6, _ = netip.AddrFromSlice(a.IP.To16())
	}
	return v4, v6
}

// LookupName implements resolver.Names.
func (t *nameTable) LookupName(name string) (v4, v6 []netip.Addr, known bool) {
	e, ok := t.names[name]
	if !ok {
		return nil, nil, false
	}
	return e.v4, e.v6, true
}

// LookupAddr implements resolver.Names.
func (t *nameTable) LookupAddr(a netip.Addr) (string, bool) {
	name, ok := t.addrs[a.Unmap()]
	return name, ok
}

// sandboxNames is the resolver.Names of a sandbox: each lookup uses the
// current table.
type sandboxNames struct{ sb *sandbox }

var _ resolver.Names = sandboxNames{}

func (s sandboxNames) LookupName(name string) ([]netip.Addr, []netip.Addr, bool) {
	return s.sb.names().LookupName(name)
}

func (s sandboxNames) LookupAddr(a netip.Addr) (string, bool) {
	return s.sb.names().LookupAddr(a)
}

// ResolveName returns the addresses of the endpoint (or alias) called name
// on the networks the sandbox is joined to: iplen 16 (net.IPv6len) asks for
// IPv6 addresses, anything else for IPv4. name may be "name" or
// "name.network", with or without the trailing dot. For IPv6 the boolean
// is true when the name exists but has no IPv6 address, so the caller
// answers it empty instead of forwarding it. The embedded DNS server
// answers from the same table.
func (sb *sandbox) ResolveName(name string, iplen int) ([]net.IP, bool) {
	v4, v6, known := sb.names().LookupName(strings.ToLower(strings.TrimSuffix(name, ".")))
	addrs := v4
	if iplen == net.IPv6len {
		addrs = v6
	}
	if len(addrs) == 0 {
		return nil, known && iplen == net.IPv6len
	}
	out := make([]net.IP, len(addrs))
	for i, a := range addrs {
		out[i] = types.GetIPCopy(a.AsSlice())
	}
	return out, false
}

// ResolveIP returns "name.network" of the endpoint whose address is given
// in reverse notation ("4.3.2.1.in-addr.arpa" or the ip6.arpa nibbles), or
// "" when the address is not one of the sandbox's networks' endpoints. An
// anonymous endpoint is named by its first alias.
func (sb *sandbox) ResolveIP(name string) string {
	a, ok := resolver.ParseReverse(name)
	if !ok {
		return ""
	}
	s, _ := sb.names().LookupAddr(a)
	return s
}
