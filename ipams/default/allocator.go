// Package defaultipam is the built-in address allocator (ipamapi.DefaultIPAM).
//
// It keeps two address spaces, ipamapi.LocalDefault and
// ipamapi.GlobalDefault, each with its own pools. A pool is reserved either
// explicitly (a CIDR) or from the space's default pool specifications, in
// which case the first default subnet that overlaps neither a pool of the
// space nor a route of the host is taken. Addresses are handed out lowest
// first.
//
// Allocations live only in memory: the controller rebuilds them at start by
// replaying RequestPool and RequestAddress with what it stored. The
// allocated addresses of a pool are kept as runs of consecutive addresses in
// a balanced tree, so an IPv6 /8 costs memory in proportion to the addresses
// handed out, and each allocation or release is O(log n).
package defaultipam

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/netkit/libnetwork/config"
	"github.com/netkit/libnetwork/ipamapi"
	"github.com/netkit/libnetwork/ipamutils"
	"github.com/netkit/libnetwork/types"
)

// Config configures an Allocator.
type Config struct {
	// LocalPools are the default pools of ipamapi.LocalDefault; nil means
	// ipamutils.LocalDefaultPools.
	LocalPools []config.PoolSpec
	// GlobalPools are the default pools of ipamapi.GlobalDefault; nil
	// means ipamutils.GlobalDefaultPools.
	GlobalPools []config.PoolSpec
	// HostRoutes returns the routes of the host's namespace, of IPv6 if v6
	// is true and of IPv4 otherwise; default pools overlapping one are
	// skipped. Nil means no routes. It is called once per request for a
	// default pool, with the family of the request, without the
	// allocator's lock held.
	HostRoutes func(v6 bool) ([]netip.Prefix, error)
	// HostRouteIndex, when set, is used instead of HostRoutes: it calls
	// fn once with a lookup of the same routes (those of the family,
	// other than the default route, masked): overlapping returns one
	// overlapping a prefix, and whether there is one. It returns fn's
	// error, or its own if it could not read the routes (then without
	// calling fn). It lets the routes stay indexed where they are kept
	// rather than be copied and indexed on every request. The allocator
	// takes its lock inside fn, and never holds it when calling
	// HostRouteIndex: a lock HostRouteIndex holds around fn comes first.
	HostRouteIndex func(v6 bool, fn func(overlapping func(netip.Prefix) (netip.Prefix, bool)) error) error
}

// Allocator is the built-in allocator. It is safe for concurrent use.
type Allocator struct {
	hostRoutes     func(v6 bool) ([]netip.Prefix, error)
	hostRouteIndex func(v6 bool, fn func(overlapping func(netip.Prefix) (netip.Prefix, bool)) error) error

	mu sync.Mutex
	// spaces maps an address space name to its state.
	spaces map[string]*addrSpace
	// pools maps a pool ID (PoolID.String) to the pool, in any space.
	pools map[string]*pool
}

var _ ipamapi.Ipam = (*Allocator)(nil)

// addrSpace is the allocation state of one address space.
type addrSpace struct {
	name     string
	defaults []config.PoolSpec
	// pools are pairwise disjoint, sorted by network address.
	pools []*pool
	// runs are the address ranges the pools cover, with touching pools
	// merged into one run, sorted: a default pool request jumps past a
	// whole run of back-to-back pools in one step, instead of walking the
	// thousands of pools earlier requests laid end to end. They are
	// runSet's runs in a sorted slice, not its treap: they change only
	// when a pool is reserved or released.
	runs []run
}

// runAt returns the index of the run holding a, or -1.
func (sp *addrSpace) runAt(a netip.Addr) int {
	i, _ := slices.BinarySearchFunc(sp.runs, a, func(r run, a netip.Addr) int {
		if r.first.Compare(a) <= 0 {
			return -1
		}
		return 1
	})
	if i > 0 && sp.runs[i-1].first.Compare(a) <= 0 && a.Compare(sp.runs[i-1].last) <= 0 {
		return i - 1
	}
	return -1
}

// addRun adds the addresses of p, which no run holds, merging it with the
// runs it touches.
func (sp *addrSpace) addRun(p netip.Prefix) {
	r := run{p.Addr(), ipamutils.LastAddr(p)}
	i, _ := slices.BinarySearchFunc(sp.runs, r.first, func(q run, a netip.Addr) int { return q.first.Compare(a) })
	lo, hi := i, i
	if i > 0 && sp.runs[i-1].last.Next() == r.first {
		lo = i - 1
		r.first = sp.runs[i-1].first
	}
	if i < len(sp.runs) && r.last.Next() == sp.runs[i].first {
		hi = i + 1
		r.last = sp.runs[i].last
	}
	sp.runs = slices.Replace(sp.runs, lo, hi, r)
}

// removeRun takes the addresses of p out of the run holding them,
// splitting it.
func (sp *addrSpace) removeRun(p netip.Prefix) {
	i := sp.runAt(p.Addr())
	if i < 0 {
		return
	}
	r, last := sp.runs[i], ipamutils.LastAddr(p)
	var parts []run
	if r.first.Less(p.Addr()) {
		parts = append(parts, run{r.first, p.Addr().Prev()})
	}
	if last.Less(r.last) {
		parts = append(parts, run{last.Next(), r.last})
	}
	sp.runs = slices.Replace(sp.runs, i, i+1, parts...)
}

// New returns an allocator with no pools reserved. It fails with an
// invalid-parameter error when a default pool specification is invalid.
func New(cfg Config) (*Allocator, error) {
	local, global := cfg.LocalPools, cfg.GlobalPools
	if local == nil {
		local = ipamutils.LocalDefaultPools()
	}
	if global == nil {
		global = ipamutils.GlobalDefaultPools()
	}
	a := &Allocator{hostRoutes: cfg.HostRoutes, hostRouteIndex: cfg.HostRouteIndex, spaces: make(map[string]*addrSpace, 2), pools: make(map[string]*pool)}
	for name, specs := range map[string][]config.PoolSpec{ipamapi.LocalDefault: local, ipamapi.GlobalDefault: global} {
		sp := &addrSpace{name: name}
		for _, spec := range specs {
			if err := ipamutils.ValidatePoolSpec(spec); err != nil {
				return nil, fmt.Errorf("default pools of %s: %w", name, err)
			}
			spec.Base = spec.Base.Masked()
			sp.defaults = append(sp.defaults, spec)
		}
		a.spaces[name] = sp
	}
	return a, nil
}

// Capabilities returns what the allocator needs from the controller:
// nothing.
func (a *Allocator) Capabilities() ipamapi.Capability { return ipamapi.Capability{} }

// GetDefaultAddressSpaces returns ipamapi.LocalDefault and
// ipamapi.GlobalDefault.
func (a *Allocator) GetDefaultAddressSpaces() (string, string, error) {
	return ipamapi.LocalDefault, ipamapi.GlobalDefault, nil
}

// RequestPool reserves pool in addressSpace, or when pool is "" the first
// free default pool of the family v6 selects. Dynamic addresses of the pool
// come from subPool when it is set. Options are ignored; the returned
// metadata is nil.
func (a *Allocator) RequestPool(addressSpace, pool, subPool string, _ map[string]string, v6 bool) (string, *net.IPNet, map[string]string, error) {
	if addressSpace != ipamapi.LocalDefault && addressSpace != ipamapi.GlobalDefault {
		return "", nil, nil, fmt.Errorf("request for pool %q in address space %q: %w", pool, addressSpace, ipamapi.ErrInvalidAddressSpace)
	}
	if pool == "" {
		if subPool != "" {
			return "", nil, nil, fmt.Errorf("request for sub-pool %q in %s without a pool: %w", subPool, addressSpace, ipamapi.ErrInvalidSubPool)
		}
		return a.requestDefaultPool(addressSpace, v6)
	}
	id, err := parsePoolRequest(addressSpace, pool, subPool, v6)
	if err != nil {
		return "", nil, nil, err
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	sp := a.spaces[addressSpace]
	if other := sp.overlapping(id.Pool); other != nil {
		return "", nil, nil, fmt.Errorf("request for pool %v in %s: it overlaps pool %v: %w", id.Pool, addressSpace, other.id.Pool, ipamapi.ErrOverlapPool)
	}
	a.insertLocked(sp, newPool(id))
	return id.String(), ipamutils.IPNet(id.Pool), nil, nil
}

// parsePoolRequest validates an explicit pool request.
func parsePoolRequest(space, pool, subPool string, v6 bool) (PoolID, error) {
	id := PoolID{AddressSpace: space}
	p, err := netip.ParsePrefix(pool)
	if err != nil {
		return PoolID{}, fmt.Errorf("request for pool %q in %s: %v: %w", pool, space, err, ipamapi.ErrInvalidPool)
	}
	if p.Addr().Is4In6() {
		return PoolID{}, fmt.Errorf("request for pool %q in %s: IPv4-mapped IPv6 pools are not supported: %w", pool, space, ipamapi.ErrInvalidPool)
	}
	if p.Addr().Is6() != v6 {
		return PoolID{}, fmt.Errorf("request for pool %q in %s: not an %s pool: %w", pool, space, family(v6), ipamapi.ErrInvalidPool)
	}
	id.Pool = p.Masked()
	if err := ipamutils.CheckPool(id.Pool); err != nil {
		return PoolID{}, fmt.Errorf("request for pool %q in %s: %v: %w", pool, space, err, ipamapi.ErrInvalidPool)
	}
	if subPool == "" {
		return id, nil
	}
	sp, err := netip.ParsePrefix(subPool)
	if err != nil {
		return PoolID{}, fmt.Errorf("request for sub-pool %q of pool %v in %s: %v: %w", subPool, id.Pool, space, err, ipamapi.ErrInvalidSubPool)
	}
	sp = sp.Masked()
	if sp.Addr().BitLen() != p.Addr().BitLen() || sp.Addr().Is4In6() || sp.Bits() < id.Pool.Bits() || !id.Pool.Contains(sp.Addr()) {
		return PoolID{}, fmt.Errorf("request for sub-pool %v of pool %v in %s: not inside the pool: %w", sp, id.Pool, space, ipamapi.ErrInvalidSubPool)
	}
	// Whether a single address leaves room beside the gateway depends on
	// a gateway IPAM is not told about yet (IpamConf.Validate checks it);
	// a sub-pool of reserved addresses only is wrong whatever it is.
	if first, last := ipamutils.HostRange(id.Pool); ipamutils.LastAddr(sp).Less(first) || last.Less(sp.Addr()) {
		return PoolID{}, fmt.Errorf("request for sub-pool %v of pool %v in %s: it holds no address that can be given out: %w", sp, id.Pool, space, ipamapi.ErrInvalidSubPool)
	}
	id.SubPool = sp
	return id, nil
}

func family(v6 bool) string {
	if v6 {
		return "IPv6"
	}
	return "IPv4"
}

// requestDefaultPool reserves the first default pool of the family that
// overlaps neither a pool of the space nor a host route.
func (a *Allocator) requestDefaultPool(space string, v6 bool) (string, *net.IPNet, map[string]string, error) {
	if a.hostRouteIndex != nil {
		var (
			id   string
			nw   *net.IPNet
			err  error
			took bool
		)
		lerr := a.hostRouteIndex(v6, func(overlapping func(netip.Prefix) (netip.Prefix, bool)) error {
			took = true
			id, nw, err = a.reserveDefault(space, v6, overlapping)
			return nil
		})
		if lerr != nil || !took {
			if lerr == nil {
				lerr = errors.New("the route lookup was not called")
			}
			return "", nil, nil, types.InternalErrorf("request for a default %s pool in %s: reading host routes: %w", family(v6), space, lerr)
		}
		return id, nw, nil, err
	}
	var routes []netip.Prefix
	if a.hostRoutes != nil {
		all, err := a.hostRoutes(v6)
		if err != nil {
			return "", nil, nil, types.InternalErrorf("request for a default %s pool in %s: reading host routes: %w", family(v6), space, err)
		}
		for _, r := range all {
			if r.IsValid() && r.Bits() > 0 && r.Addr().Is6() == v6 {
				routes = append(routes, r.Masked())
			}
		}
	}
	// Scanning every route for every candidate made a default pool
	// O(networks²) once each network's bridge had its route.
	rx := ipamutils.NewPrefixIndex(routes, struct{}{})
	id, nw, err := a.reserveDefault(space, v6, func(want netip.Prefix) (netip.Prefix, bool) {
		p, _, ok := rx.Overlapping(want)
		return p, ok
	})
	return id, nw, nil, err
}

// reserveDefault reserves the first default pool of the family that
// overlaps neither a pool of the space nor a route overlapping finds. It
// takes a.mu.
func (a *Allocator) reserveDefault(space string, v6 bool, overlapping func(netip.Prefix) (netip.Prefix, bool)) (string, *net.IPNet, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	sp := a.spaces[space]
	for _, spec := range sp.defaults {
		if spec.Base.Addr().Is6() != v6 {
			continue
		}
		if p, ok := sp.firstFree(spec, overlapping); ok {
			id := PoolID{AddressSpace: space, Pool: p}
			a.insertLocked(sp, newPool(id))
			return id.String(), ipamutils.IPNet(p), nil
		}
	}
	// types.Errorf: the error is a types.NoServiceError itself, for
	// callers that assert the class rather than unwrap.
	return "", nil, types.Errorf("request for a default %s pool in %s: all %d default pools overlap pools in use or host routes: %w",
		family(v6), space, len(sp.defaults), ipamapi.ErrNoAvailablePool)
}

// firstFree returns the first subnet of spec overlapping neither a pool of
// sp nor a route overlapping finds. On a conflict it jumps past the
// conflicting route, or the whole run of pools the conflicting pool is in,
// so the cost grows with the conflicts, not with the size of spec or the
// number of pools; each conflict is found in O(log n).
func (sp *addrSpace) firstFree(spec config.PoolSpec, overlapping func(netip.Prefix) (netip.Prefix, bool)) (netip.Prefix, bool) {
	cand, ok := ipamutils.SubnetFrom(spec, spec.Base.Addr())
	for ok {
		var conflictEnd netip.Addr
		if p := sp.overlapping(cand); p != nil {
			// Past the whole run of pools p is in.
			conflictEnd = ipamutils.LastAddr(p.id.Pool)
			if i := sp.runAt(p.id.Pool.Addr()); i >= 0 {
				conflictEnd = sp.runs[i].last
			}
		} else if r, ok := overlapping(cand); ok {
			conflictEnd = ipamutils.LastAddr(r)
		} else {
			return cand, true
		}
		end := ipamutils.LastAddr(cand)
		if end.Less(conflictEnd) {
			end = conflictEnd
		}
		next := end.Next()
		if !next.IsValid() {
			return netip.Prefix{}, false
		}
		cand, ok = ipamutils.SubnetFrom(spec, next)
	}
	return netip.Prefix{}, false
}

// ReleasePool releases a pool and every address allocated in it.
func (a *Allocator) ReleasePool(poolID string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.pools[poolID]
	if p == nil {
		return fmt.Errorf("release of pool %q: %w", poolID, ipamapi.ErrPoolNotFound)
	}
	delete(a.pools, poolID)
	sp := a.spaces[p.id.AddressSpace]
	i, _ := slices.BinarySearchFunc(sp.pools, p.id.Pool.Addr(), func(q *pool, a netip.Addr) int {
		return q.id.Pool.Addr().Compare(a)
	})
	sp.pools = slices.Delete(sp.pools, i, i+1)
	sp.removeRun(p.id.Pool)
	return nil
}

// overlapping returns a pool of sp overlapping p, or nil.
func (sp *addrSpace) overlapping(p netip.Prefix) *pool {
	// Pools are disjoint and sorted: only the last one starting at or
	// before p and the first one starting after p can overlap it.
	i, _ := slices.BinarySearchFunc(sp.pools, p.Addr(), func(q *pool, a netip.Addr) int {
		if q.id.Pool.Addr().Compare(a) <= 0 {
			return -1
		}
		return 1
	})
	for _, j := range [2]int{i - 1, i} {
		if j >= 0 && j < len(sp.pools) && sp.pools[j].id.Pool.Overlaps(p) {
			return sp.pools[j]
		}
	}
	return nil
}

// insertLocked adds p, which overlaps no pool of sp, keeping the order.
// a.mu must be held.
func (a *Allocator) insertLocked(sp *addrSpace, p *pool) {
	i, _ := slices.BinarySearchFunc(sp.pools, p.id.Pool.Addr(), func(q *pool, a netip.Addr) int {
		return q.id.Pool.Addr().Compare(a)
	})
	sp.pools = slices.Insert(sp.pools, i, p)
	sp.addRun(p.id.Pool)
	a.pools[p.id.String()] = p
}
