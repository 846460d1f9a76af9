// Package globalipam is the address allocator of global-scope networks
// (overlay): the default allocator's rules, with its state in the global
// store (etcd), so that controllers on several hosts allocate pools and
// addresses concurrently and never hand out the same one twice.
//
// State, under the store's prefix:
//
//   - pools/<address space>: the set of pools taken in the address space,
//     one record changed only by compare-and-swap on its revision, so two
//     hosts asking for overlapping pools at once cannot both get them;
//   - ip_<pool>/<address>: one key per allocated address of a pool (the
//     pool's '/' written '_'), created only if absent. An endpoint's
//     address is bound to the host lease of the controller that asked
//     (so the addresses of a host that disappears for good come back to
//     the pool when its lease expires); a gateway's is not.
//
// Dynamic allocation creates the lowest free address of the allocator's
// view of the pool: its last listing of the pool's keys, plus what it took
// and minus what it gave back since. A collision (another host took the
// address) lists the pool again and retries with one of the first free
// addresses at random, so that hosts allocating at once stop colliding; a
// pool that looks full is listed again before the request is refused.
// Addresses other hosts give back are seen at the next listing.
package globalipam

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/netkit/libnetwork/config"
	"github.com/netkit/libnetwork/globalstore"
	"github.com/netkit/libnetwork/ipamapi"
	defaultipam "github.com/netkit/libnetwork/ipams/default"
	"github.com/netkit/libnetwork/ipamutils"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/types"
)

// OwnerOption is the RequestAddress option naming the controller an
// address is for. An address requested by name that its owner already
// holds (a controller restoring its endpoints after a restart) is taken
// over instead of refused.
const OwnerOption = "netkit.global.owner"

const (
	kindPools = "pools"
	// kindAddrPrefix starts the kind of a pool's address keys.
	kindAddrPrefix = "ip_"
	// maxAttempts bounds the retries of a compare-and-swap that keeps
	// losing to other writers.
	maxAttempts = 64
	// candidates is how many of the first free addresses a dynamic
	// request chooses among.
	candidates = 16
	// txnOps bounds the operations of one transaction (etcd's default
	// limit is 128).
	txnOps = 100
)

// Config configures the allocator.
type Config struct {
	// Store is the global store; required.
	Store *globalstore.Store
	// Pools are the default pools of the global address space; nil means
	// ipamutils.GlobalDefaultPools.
	Pools []config.PoolSpec
	// Logger receives the allocator's logs; nil discards them.
	Logger *slog.Logger
}

// Allocator is the global-scope allocator. It implements ipamapi.Ipam;
// its methods are safe for concurrent use, also across hosts.
type Allocator struct {
	store  *globalstore.Store
	pools  []config.PoolSpec
	logger *slog.Logger

	mu sync.Mutex
	// used are, by address kind (pool), the addresses known taken: the
	// last listing of the pool's keys plus what this allocator took since
	// and minus what it gave back. Others' releases are seen at the next
	// listing, made when the pool looks full or a create collides.
	used map[string]map[netip.Addr]bool
	// inflight are the addresses reserve picked whose create has not
	// returned yet, by address kind.
	inflight map[string]map[netip.Addr]bool
	// revs are the address keys this allocator wrote, with their mod
	// revisions and owners, so giving one back takes one round trip, not
	// two.
	revs map[string]written
}

var _ ipamapi.Ipam = (*Allocator)(nil)

// New returns an allocator on cfg.Store.
func New(cfg Config) (*Allocator, error) {
	if cfg.Store == nil {
		return nil, types.BadRequestErrorf("global IPAM: no global store")
	}
	pools := cfg.Pools
	if pools == nil {
		pools = ipamutils.GlobalDefaultPools()
	}
	for _, p := range pools {
		if err := ipamutils.ValidatePoolSpec(p); err != nil {
			return nil, types.Errorf("global IPAM: default pools: %w", err)
		}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Allocator{store: cfg.Store, pools: slices.Clone(pools), logger: logger,
		used: map[string]map[netip.Addr]bool{}, inflight: map[string]map[netip.Addr]bool{}, revs: map[string]written{}}, nil
}

// GetDefaultAddressSpaces returns ipamapi.LocalDefault and
// ipamapi.GlobalDefault; this allocator serves the latter.
func (a *Allocator) GetDefaultAddressSpaces() (string, string, error) {
	return ipamapi.LocalDefault, ipamapi.GlobalDefault, nil
}

// poolEntry is one taken pool of an address space.
type poolEntry struct {
	Pool    netip.Prefix
	SubPool netip.Prefix `json:",omitzero"`
}

// poolSet is the record of an address space's taken pools.
type poolSet struct {
	Pools []poolEntry
}

// addrRecord is the value of an address key.
type addrRecord struct {
	Owner   string `json:",omitempty"`
	Gateway bool   `json:",omitempty"`
}

func addrKind(pool netip.Prefix) string {
	return kindAddrPrefix + strings.ReplaceAll(pool.Masked().String(), "/", "_")
}

// space checks the address space of a request.
func space(addressSpace string) (string, error) {
	switch addressSpace {
	case "", ipamapi.GlobalDefault:
		return ipamapi.GlobalDefault, nil
	}
	return "", types.Errorf("address space %q: the global allocator serves %s: %w", addressSpace, ipamapi.GlobalDefault, ipamapi.ErrInvalidAddressSpace)
}

// readPools returns the address space's pool set and its revision (0 when
// no pool was ever taken).
func (a *Allocator) readPools(ctx context.Context, as string) (poolSet, int64, error) {
	kv, err := a.store.Get(ctx, kindPools, as)
	if types.IsNotFound(err) {
		return poolSet{}, 0, nil
	}
	if err != nil {
		return poolSet{}, 0, err
	}
	var ps poolSet
	if err := json.Unmarshal(kv.Value, &ps); err != nil {
		return poolSet{}, 0, types.InternalErrorf("global IPAM: pools of %s: unreadable record: %v", as, err)
	}
	return ps, kv.ModRev, nil
}

// writePools replaces the pool set at revision rev.
func (a *Allocator) writePools(ctx context.Context, as string, ps poolSet, rev int64) error {
	b, err := json.Marshal(ps)
	if err != nil {
		return types.InternalErrorf("global IPAM: encoding pools: %v", err)
	}
	op := globalstore.Update(kindPools, as, b, rev)
	if rev == 0 {
		op = globalstore.Create(kindPools, as, b)
	}
	_, err = a.store.Txn(ctx, op)
	return err
}

func isConflict(err error) bool {
	var ce *globalstore.ConflictError
	return errors.As(err, &ce)
}

// RequestPool takes pool (or, when pool is "", the first default pool of
// the family that overlaps no taken pool) in the global address space.
func (a *Allocator) RequestPool(addressSpace, pool, subPool string, _ map[string]string, v6 bool) (string, *net.IPNet, map[string]string, error) {
	as, err := space(addressSpace)
	if err != nil {
		return "", nil, nil, err
	}
	var want, sub netip.Prefix
	if pool != "" {
		if want, err = netip.ParsePrefix(pool); err != nil {
			return "", nil, nil, types.Errorf("pool %q: %v: %w", pool, err, ipamapi.ErrInvalidPool)
		}
		want = want.Masked()
		if want.Addr().Is4() == v6 {
			return "", nil, nil, types.BadRequestErrorf("pool %s: not an IPv%s pool", want, map[bool]string{false: "4", true: "6"}[v6])
		}
		if err := ipamutils.CheckPool(want); err != nil {
			return "", nil, nil, err
		}
		if subPool != "" {
			if sub, err = netip.ParsePrefix(subPool); err != nil || !want.Contains(sub.Addr()) || sub.Bits() < want.Bits() {
				return "", nil, nil, types.Errorf("sub-pool %q of pool %s: %w", subPool, want, ipamapi.ErrInvalidSubPool)
			}
			sub = sub.Masked()
			if err := ipamutils.CheckSubPool(want, sub, netip.Addr{}); err != nil {
				return "", nil, nil, err
			}
		}
	} else if subPool != "" {
		return "", nil, nil, types.Errorf("sub-pool %q without a pool: %w", subPool, ipamapi.ErrInvalidSubPool)
	}
	ctx := context.Background()
	for range maxAttempts {
		ps, rev, err := a.readPools(ctx, as)
		if err != nil {
			return "", nil, nil, types.Errorf("requesting pool %q: %w", pool, err)
		}
		got := want
		if pool != "" {
			for _, e := range ps.Pools {
				if e.Pool.Overlaps(got) {
					return "", nil, nil, types.Errorf("pool %s overlaps pool %s, taken in the global address space: %w", got, e.Pool, ipamapi.ErrOverlapPool)
				}
			}
		} else if got, err = a.firstFree(ps, v6); err != nil {
			return "", nil, nil, err
		}
		ps.Pools = append(ps.Pools, poolEntry{Pool: got, SubPool: sub})
		err = a.writePools(ctx, as, ps, rev)
		if isConflict(err) {
			continue // another host took a pool meanwhile: look again
		}
		if err != nil {
			return "", nil, nil, types.Errorf("requesting pool %s: %w", got, err)
		}
		id := defaultipam.PoolID{AddressSpace: as, Pool: got, SubPool: sub}
		return id.String(), ipamutils.IPNet(got), nil, nil
	}
	return "", nil, nil, types.RetryErrorf("requesting pool %q: the global store's pools kept changing (%d attempts)", pool, maxAttempts)
}

// firstFree returns the first default pool of the family that overlaps no
// taken pool.
func (a *Allocator) firstFree(ps poolSet, v6 bool) (netip.Prefix, error) {
	for _, spec := range a.pools {
		if spec.Base.Addr().Is6() != v6 {
			continue
		}
		for p := range ipamutils.Subnets(spec) {
			if !slices.ContainsFunc(ps.Pools, func(e poolEntry) bool { return e.Pool.Overlaps(p) }) {
				return p, nil
			}
		}
	}
	return netip.Prefix{}, types.Errorf("global address space, IPv%s: %w", map[bool]string{false: "4", true: "6"}[v6], ipamapi.ErrNoAvailablePool)
}

// ReleasePool gives the pool back and frees its addresses.
func (a *Allocator) ReleasePool(poolID string) error {
	id, err := defaultipam.ParsePoolID(poolID)
	if err != nil {
		return err
	}
	ctx := context.Background()
	for range maxAttempts {
		ps, rev, err := a.readPools(ctx, id.AddressSpace)
		if err != nil {
			return types.Errorf("releasing pool %s: %w", poolID, err)
		}
		i := slices.IndexFunc(ps.Pools, func(e poolEntry) bool { return e.Pool == id.Pool })
		if i < 0 {
			return types.Errorf("releasing pool %s: %w", poolID, ipamapi.ErrPoolNotFound)
		}
		ps.Pools = slices.Delete(ps.Pools, i, i+1)
		err = a.writePools(ctx, id.AddressSpace, ps, rev)
		if isConflict(err) {
			continue
		}
		if err != nil {
			return types.Errorf("releasing pool %s: %w", poolID, err)
		}
		return a.dropAddresses(ctx, id.Pool)
	}
	return types.RetryErrorf("releasing pool %s: the global store's pools kept changing (%d attempts)", poolID, maxAttempts)
}

// dropAddresses deletes the address keys of a released pool.
func (a *Allocator) dropAddresses(ctx context.Context, pool netip.Prefix) error {
	kind := addrKind(pool)
	kvs, _, err := a.store.List(ctx, kind)
	if err != nil {
		return types.Errorf("releasing the addresses of pool %s: %w", pool, err)
	}
	for len(kvs) > 0 {
		n := min(len(kvs), txnOps)
		ops := make([]globalstore.Op, 0, n)
		for _, kv := range kvs[:n] {
			ops = append(ops, globalstore.Delete(kind, kv.ID, 0))
		}
		if _, err := a.store.Txn(ctx, ops...); err != nil {
			return types.Errorf("releasing the addresses of pool %s: %w", pool, err)
		}
		kvs = kvs[n:]
	}
	a.mu.Lock()
	delete(a.used, kind)
	for k := range a.revs {
		if strings.HasPrefix(k, kind+"/") {
			delete(a.revs, k)
		}
	}
	a.mu.Unlock()
	return nil
}

// RequestAddress allocates ip in the pool, or any free address when ip is
// nil (from the sub-pool if the pool has one). Option
// ipamapi.RequestAddressType = netlabel.Gateway marks the gateway's
// address, which is not bound to the host lease; OwnerOption names the
// controller asking.
func (a *Allocator) RequestAddress(poolID string, ip net.IP, opts map[string]string) (*net.IPNet, map[string]string, error) {
	id, err := defaultipam.ParsePoolID(poolID)
	if err != nil {
		return nil, nil, err
	}
	if _, err := space(id.AddressSpace); err != nil {
		return nil, nil, err
	}
	rec := addrRecord{Owner: opts[OwnerOption], Gateway: opts[ipamapi.RequestAddressType] == gatewayType}
	val, _ := json.Marshal(rec)
	kind := addrKind(id.Pool)
	ctx := context.Background()
	if ip != nil {
		addr, ok := netip.AddrFromSlice(ip)
		if !ok {
			return nil, nil, types.Errorf("address %v: %w", ip, ipamapi.ErrInvalidRequest)
		}
		addr = addr.Unmap()
		if first, last := ipamutils.HostRange(id.Pool); !id.Pool.Contains(addr) || addr.Less(first) || last.Less(addr) {
			return nil, nil, types.Errorf("address %s in pool %s: %w", addr, id.Pool, ipamapi.ErrIPOutOfRange)
		}
		if err := a.claim(ctx, kind, addr, val, rec); err != nil {
			return nil, nil, err
		}
		return ipamutils.IPNet(netip.PrefixFrom(addr, id.Pool.Bits())), nil, nil
	}
	first, last := ipamutils.HostRange(id.Pool)
	if id.SubPool.IsValid() {
		sf, sl := id.SubPool.Addr(), ipamutils.LastAddr(id.SubPool)
		if first.Less(sf) {
			first = sf
		}
		if sl.Less(last) {
			last = sl
		}
	}
	fresh := false // whether the cache was listed in this request
	for attempt := range maxAttempts {
		// After a collision, spread: hosts allocating at once would
		// otherwise all go for the same lowest free address again.
		pick, ok, err := a.reserve(ctx, kind, first, last, attempt > 0, &fresh)
		if err != nil {
			return nil, nil, types.Errorf("requesting an address in pool %s: %w", id.Pool, err)
		}
		if !ok {
			return nil, nil, types.Errorf("pool %s: %w", id.Pool, ipamapi.ErrNoAvailableIPs)
		}
		op := globalstore.CreateLeased(kind, pick.String(), val)
		if rec.Gateway {
			op = globalstore.Create(kind, pick.String(), val)
		}
		rev, err := a.store.Txn(ctx, op)
		if isConflict(err) {
			// Taken by another host: the cache is stale.
			a.unreserve(kind, pick)
			a.forgetPool(kind)
			fresh = false
			continue
		}
		if err != nil {
			a.unreserve(kind, pick)
			return nil, nil, types.Errorf("requesting an address in pool %s: %w", id.Pool, err)
		}
		a.took(kind, pick, rev, rec.Owner)
		return ipamutils.IPNet(netip.PrefixFrom(pick, id.Pool.Bits())), nil, nil
	}
	return nil, nil, types.RetryErrorf("requesting an address in pool %s: other hosts kept taking the free ones (%d attempts)", id.Pool, maxAttempts)
}

// reserve picks a free address of the pool between first and last from
// the cache (listing the pool first if the cache is empty, or if it looks
// full and was not listed in this request) and marks it taken: the lowest,
// as the default allocator gives, or after a collision (spread) one of the
// first few at random, so that hosts allocating at once stop colliding.
// ok is false when the pool is full.
func (a *Allocator) reserve(ctx context.Context, kind string, first, last netip.Addr, spread bool, fresh *bool) (netip.Addr, bool, error) {
	for {
		a.mu.Lock()
		used, cached := a.used[kind]
		var free []netip.Addr
		if cached {
			for x := first; x.IsValid() && !last.Less(x) && len(free) < candidates; x = x.Next() {
				if !used[x] {
					free = append(free, x)
				}
			}
		}
		if len(free) > 0 {
			pick := free[0]
			if spread {
				pick = free[rand.IntN(len(free))]
			}
			used[pick] = true
			if a.inflight[kind] == nil {
				a.inflight[kind] = map[netip.Addr]bool{}
			}
			a.inflight[kind][pick] = true
			a.mu.Unlock()
			return pick, true, nil
		}
		a.mu.Unlock()
		if cached && *fresh {
			return netip.Addr{}, false, nil
		}
		if err := a.listPool(ctx, kind); err != nil {
			return netip.Addr{}, false, err
		}
		*fresh = true
	}
}

// listPool reads the pool's address keys into the cache.
func (a *Allocator) listPool(ctx context.Context, kind string) error {
	kvs, _, err := a.store.List(ctx, kind)
	if err != nil {
		return err
	}
	used := make(map[netip.Addr]bool, len(kvs))
	for _, kv := range kvs {
		if u, err := netip.ParseAddr(kv.ID); err == nil {
			used[u] = true
		}
	}
	a.mu.Lock()
	// Reservations in flight stay reserved.
	for x := range a.inflight[kind] {
		used[x] = true
	}
	a.used[kind] = used
	a.mu.Unlock()
	return nil
}

// forgetPool drops the cache of a pool.
func (a *Allocator) forgetPool(kind string) {
	a.mu.Lock()
	delete(a.used, kind)
	a.mu.Unlock()
}

// unreserve gives back an address reserve picked and that was not taken.
func (a *Allocator) unreserve(kind string, x netip.Addr) {
	a.mu.Lock()
	if used := a.used[kind]; used != nil {
		delete(used, x)
	}
	delete(a.inflight[kind], x)
	a.mu.Unlock()
}

// written is an address key this allocator wrote.
type written struct {
	rev   int64
	owner string
}

// took records an address this allocator took for owner, with its key's
// revision.
func (a *Allocator) took(kind string, x netip.Addr, rev int64, owner string) {
	a.mu.Lock()
	if used := a.used[kind]; used != nil {
		used[x] = true
	}
	delete(a.inflight[kind], x)
	a.revs[kind+"/"+x.String()] = written{rev, owner}
	a.mu.Unlock()
}

// gave records an address this allocator gave back.
func (a *Allocator) gave(kind string, x netip.Addr) {
	a.mu.Lock()
	if used := a.used[kind]; used != nil {
		delete(used, x)
	}
	delete(a.revs, kind+"/"+x.String())
	a.mu.Unlock()
}

// rev returns the revision this allocator wrote an address key at for
// owner, 0 if it did not.
func (a *Allocator) rev(kind string, x netip.Addr, owner string) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if w, ok := a.revs[kind+"/"+x.String()]; ok && w.owner == owner {
		return w.rev
	}
	return 0
}

// claim creates the key of a named address; one its owner already holds
// is taken over (re-bound to this Store's lease).
func (a *Allocator) claim(ctx context.Context, kind string, addr netip.Addr, val []byte, rec addrRecord) error {
	op := globalstore.CreateLeased(kind, addr.String(), val)
	if rec.Gateway {
		op = globalstore.Create(kind, addr.String(), val)
	}
	rev, err := a.store.Txn(ctx, op)
	if err == nil {
		a.took(kind, addr, rev, rec.Owner)
		return nil
	}
	if !isConflict(err) {
		return types.Errorf("requesting address %s: %w", addr, err)
	}
	kv, gerr := a.store.Get(ctx, kind, addr.String())
	if gerr == nil && rec.Owner != "" {
		var held addrRecord
		if json.Unmarshal(kv.Value, &held) == nil && held.Owner == rec.Owner && held.Gateway == rec.Gateway {
			up := globalstore.UpdateLeased(kind, addr.String(), val, kv.ModRev)
			if rec.Gateway {
				up = globalstore.Update(kind, addr.String(), val, kv.ModRev)
			}
			rev, err := a.store.Txn(ctx, up)
			if err == nil {
				a.took(kind, addr, rev, rec.Owner)
				return nil
			}
			// Its own key, changed between the read and the update
			// (the store putting it back under a new lease): a
			// conflict to retry, not an address in use.
			return types.Errorf("requesting address %s: %w", addr, err)
		}
	}
	return types.Errorf("address %s: %w", addr, ipamapi.ErrIPAlreadyAllocated)
}

// releaseArgs parses the arguments of ReleaseAddress and ReleaseOwned.
func releaseArgs(poolID string, ip net.IP) (defaultipam.PoolID, netip.Addr, error) {
	id, err := defaultipam.ParsePoolID(poolID)
	if err != nil {
		return id, netip.Addr{}, err
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return id, netip.Addr{}, types.Errorf("releasing address %v: %w", ip, ipamapi.ErrInvalidRequest)
	}
	return id, addr.Unmap(), nil
}

// ReleaseAddress frees ip in the pool.
func (a *Allocator) ReleaseAddress(poolID string, ip net.IP) error {
	id, addr, err := releaseArgs(poolID, ip)
	if err != nil {
		return err
	}
	if !id.Pool.Contains(addr) {
		return types.Errorf("releasing address %s of pool %s: %w", addr, id.Pool, ipamapi.ErrIPOutOfRange)
	}
	if _, err := a.store.Txn(context.Background(), globalstore.Delete(addrKind(id.Pool), addr.String(), 0)); err != nil {
		return types.Errorf("releasing address %s: %w", addr, err)
	}
	a.gave(addrKind(id.Pool), addr)
	return nil
}

// ReleaseOwned frees ip in the pool if owner holds it, and does nothing if
// it is free or another controller's (which may have taken it since this
// one lost it): for a controller releasing its own endpoint's address
// again, or late.
func (a *Allocator) ReleaseOwned(poolID string, ip net.IP, owner string) error {
	id, addr, err := releaseArgs(poolID, ip)
	if err != nil {
		return err
	}
	kind := addrKind(id.Pool)
	ctx := context.Background()
	if rev := a.rev(kind, addr, owner); rev != 0 {
		// Written by this allocator and unchanged since: one round trip.
		_, err := a.store.Txn(ctx, globalstore.Delete(kind, addr.String(), rev))
		if err == nil {
			a.gave(kind, addr)
			return nil
		}
		if !isConflict(err) {
			return types.Errorf("releasing address %s: %w", addr, err)
		}
	}
	for range maxAttempts {
		kv, err := a.store.Get(ctx, kind, addr.String())
		if types.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return types.Errorf("releasing address %s: %w", addr, err)
		}
		var held addrRecord
		if json.Unmarshal(kv.Value, &held) != nil || held.Owner != owner {
			a.gave(kind, addr) // not ours (any more)
			return nil
		}
		_, err = a.store.Txn(ctx, globalstore.Delete(kind, addr.String(), kv.ModRev))
		if isConflict(err) {
			continue
		}
		if err != nil {
			return types.Errorf("releasing address %s: %w", addr, err)
		}
		a.gave(kind, addr)
		return nil
	}
	return types.RetryErrorf("releasing address %s: it kept changing (%d attempts)", addr, maxAttempts)
}

// gatewayType is the value of ipamapi.RequestAddressType for a gateway.
const gatewayType = netlabel.Gateway
