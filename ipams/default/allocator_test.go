package defaultipam

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/netkit/libnetwork/config"
	"github.com/netkit/libnetwork/ipamapi"
	"github.com/netkit/libnetwork/ipamutils"
	"github.com/netkit/libnetwork/types"
)

func newAllocator(t testing.TB, cfg Config) *Allocator {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a
}

// mustPool reserves pool (and subPool) in LocalDefault.
func mustPool(t testing.TB, a *Allocator, pool, subPool string) string {
	t.Helper()
	id, _, _, err := a.RequestPool(ipamapi.LocalDefault, pool, subPool, nil, strings.Contains(pool, ":"))
	if err != nil {
		t.Fatalf("RequestPool(%s, %s): %v", pool, subPool, err)
	}
	return id
}

// isClass reports whether err is of the class the sentinel want has.
func isClass(err, want error) bool {
	switch {
	case types.IsBadRequest(want):
		return types.IsBadRequest(err)
	case types.IsNotFound(want):
		return types.IsNotFound(err)
	case types.IsForbidden(want):
		return types.IsForbidden(err)
	default:
		var ns types.NoServiceError
		return errors.As(want, &ns) && errors.As(err, &ns)
	}
}

// checkErr fails t unless err wraps want (nil: no error) and keeps its class.
func checkErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return
	}
	if !errors.Is(err, want) || !isClass(err, want) {
		t.Fatalf("%s: error %v, want %v with its class", what, err, want)
	}
}

func TestNew(t *testing.T) {
	if _, err := New(Config{LocalPools: []config.PoolSpec{{Base: netip.MustParsePrefix("10.0.0.0/8"), Size: 4}}}); !types.IsBadRequest(err) {
		t.Fatalf("New with a bad pool spec: error %v, want bad request", err)
	}
	a := newAllocator(t, Config{})
	local, global, err := a.GetDefaultAddressSpaces()
	if err != nil || local != ipamapi.LocalDefault || global != ipamapi.GlobalDefault {
		t.Fatalf("GetDefaultAddressSpaces = %q, %q, %v", local, global, err)
	}
	if c := a.Capabilities(); c != (ipamapi.Capability{}) {
		t.Fatalf("Capabilities = %+v", c)
	}
}

func TestRequestPool(t *testing.T) {
	tests := []struct {
		name             string
		space            string
		pool, subPool    string
		v6               bool
		wantID, wantPool string
		wantErr          error
	}{
		{name: "v4", pool: "10.0.0.0/24", wantID: "LocalDefault/10.0.0.0/24", wantPool: "10.0.0.0/24"},
		{name: "unmasked", pool: "10.1.2.3/16", wantID: "LocalDefault/10.1.0.0/16", wantPool: "10.1.0.0/16"},
		{name: "sub-pool", pool: "10.2.0.0/16", subPool: "10.2.1.0/24", wantID: "LocalDefault/10.2.0.0/16/10.2.1.0/24", wantPool: "10.2.0.0/16"},
		{name: "sub-pool equal", pool: "10.3.0.0/16", subPool: "10.3.0.0/16", wantID: "LocalDefault/10.3.0.0/16/10.3.0.0/16", wantPool: "10.3.0.0/16"},
		{name: "v6", pool: "2001:db8::/48", v6: true, wantID: "LocalDefault/2001:db8::/48", wantPool: "2001:db8::/48"},
		{name: "v6 sub-pool", pool: "2001:db9::/64", subPool: "2001:db9::1:0/112", v6: true, wantID: "LocalDefault/2001:db9::/64/2001:db9::1:0/112", wantPool: "2001:db9::/64"},
		{name: "global space", space: ipamapi.GlobalDefault, pool: "10.0.0.0/24", wantID: "GlobalDefault/10.0.0.0/24", wantPool: "10.0.0.0/24"},
		{name: "unknown space", space: "bogus", pool: "10.9.0.0/24", wantErr: ipamapi.ErrInvalidAddressSpace},
		{name: "empty space", space: "-", pool: "10.9.0.0/24", wantErr: ipamapi.ErrInvalidAddressSpace},
		{name: "malformed", pool: "10.9.0.0/33", wantErr: ipamapi.ErrInvalidPool},
		{name: "no mask", pool: "10.9.0.0", wantErr: ipamapi.ErrInvalidPool},
		{name: "v4 asked as v6", pool: "10.9.0.0/24", v6: true, wantErr: ipamapi.ErrInvalidPool},
		{name: "v6 asked as v4", pool: "2001:dba::/64", wantErr: ipamapi.ErrInvalidPool},
		{name: "mapped", pool: "::ffff:10.9.0.0/120", v6: true, wantErr: ipamapi.ErrInvalidPool},
		{name: "sub-pool outside", pool: "10.9.0.0/24", subPool: "10.9.1.0/25", wantErr: ipamapi.ErrInvalidSubPool},
		{name: "sub-pool larger", pool: "10.9.0.0/24", subPool: "10.9.0.0/23", wantErr: ipamapi.ErrInvalidSubPool},
		{name: "sub-pool other family", pool: "10.9.0.0/24", subPool: "2001:db8::/120", wantErr: ipamapi.ErrInvalidSubPool},
		{name: "sub-pool malformed", pool: "10.9.0.0/24", subPool: "10.9.0.0", wantErr: ipamapi.ErrInvalidSubPool},
		{name: "sub-pool without pool", subPool: "10.9.0.0/24", wantErr: ipamapi.ErrInvalidSubPool},
		{name: "same pool", pool: "10.0.0.0/24", wantErr: ipamapi.ErrOverlapPool},
		{name: "inside a pool", pool: "10.1.128.0/17", wantErr: ipamapi.ErrOverlapPool},
		{name: "around a pool", pool: "10.0.0.0/8", wantErr: ipamapi.ErrOverlapPool},
		{name: "v6 overlap", pool: "2001:db8:0:1::/64", v6: true, wantErr: ipamapi.ErrOverlapPool},
		{name: "adjacent", pool: "10.0.1.0/24", wantID: "LocalDefault/10.0.1.0/24", wantPool: "10.0.1.0/24"},
		// Pools that cannot be right (issue 14, item 6).
		{name: "every v4 address", pool: "0.0.0.0/0", wantErr: ipamapi.ErrInvalidPool},
		{name: "every v6 address", pool: "::/0", v6: true, wantErr: ipamapi.ErrInvalidPool},
		{name: "this network", pool: "0.0.0.0/24", wantErr: ipamapi.ErrInvalidPool},
		{name: "v4 loopback", pool: "127.0.0.0/24", wantErr: ipamapi.ErrInvalidPool},
		{name: "around v4 loopback", pool: "120.0.0.0/5", wantErr: ipamapi.ErrInvalidPool},
		{name: "v4 multicast", pool: "224.0.0.0/24", wantErr: ipamapi.ErrInvalidPool},
		{name: "v4 link-local", pool: "169.254.0.0/24", wantErr: ipamapi.ErrInvalidPool},
		{name: "v6 loopback", pool: "::/64", v6: true, wantErr: ipamapi.ErrInvalidPool},
		{name: "v6 multicast", pool: "ff02::/64", v6: true, wantErr: ipamapi.ErrInvalidPool},
		{name: "v6 link-local", pool: "fe80::/64", v6: true, wantErr: ipamapi.ErrInvalidPool},
		{name: "v4 /32", pool: "10.200.0.1/32", wantErr: ipamapi.ErrInvalidPool},
		{name: "v6 /128", pool: "2001:db8:5::1/128", v6: true, wantErr: ipamapi.ErrInvalidPool},
		{name: "sub-pool of the network address", pool: "10.201.0.0/24", subPool: "10.201.0.0/32", wantErr: ipamapi.ErrInvalidSubPool},
		{name: "sub-pool of the broadcast address", pool: "10.201.0.0/24", subPool: "10.201.0.255/32", wantErr: ipamapi.ErrInvalidSubPool},
		{name: "v4 /31 as docker", pool: "10.202.0.0/31", wantID: "LocalDefault/10.202.0.0/31", wantPool: "10.202.0.0/31"},
		{name: "v6 /127 as docker", pool: "2001:db8:6::/127", v6: true, wantID: "LocalDefault/2001:db8:6::/127", wantPool: "2001:db8:6::/127"},
		{name: "sub-pool of one address", pool: "10.203.0.0/24", subPool: "10.203.0.7/32", wantID: "LocalDefault/10.203.0.0/24/10.203.0.7/32", wantPool: "10.203.0.0/24"},
	}
	a := newAllocator(t, Config{})
	for _, tt := range tests { // in order: later cases see earlier pools
		t.Run(tt.name, func(t *testing.T) {
			space := tt.space
			switch space {
			case "":
				space = ipamapi.LocalDefault
			case "-":
				space = ""
			}
			id, nw, meta, err := a.RequestPool(space, tt.pool, tt.subPool, nil, tt.v6)
			checkErr(t, "RequestPool", err, tt.wantErr)
			if tt.wantErr != nil {
				return
			}
			if id != tt.wantID || nw.String() != tt.wantPool || meta != nil {
				t.Fatalf("RequestPool = %q, %v, %v; want %q, %s, nil", id, nw, meta, tt.wantID, tt.wantPool)
			}
			if pid, err := ParsePoolID(id); err != nil || pid.String() != id {
				t.Fatalf("ParsePoolID(%q) = %v, %v", id, pid, err)
			}
		})
	}
}

func TestOverlapErrorNamesPool(t *testing.T) {
	a := newAllocator(t, Config{})
	mustPool(t, a, "10.0.0.0/16", "")
	_, _, _, err := a.RequestPool(ipamapi.LocalDefault, "10.0.5.0/24", "", nil, false)
	if !errors.Is(err, ipamapi.ErrOverlapPool) || !strings.Contains(err.Error(), "10.0.0.0/16") {
		t.Fatalf("error %v, want ErrOverlapPool naming 10.0.0.0/16", err)
	}
}

func TestParsePoolID(t *testing.T) {
	for _, s := range []string{"", "LocalDefault", "LocalDefault/10.0.0.0", "LocalDefault/10.0.0.0/24/10.0.0.0", "LocalDefault/x/24", "LocalDefault/10.0.0.0/24/y/25"} {
		if _, err := ParsePoolID(s); !errors.Is(err, ipamapi.ErrPoolNotFound) {
			t.Errorf("ParsePoolID(%q) error = %v, want ErrPoolNotFound", s, err)
		}
	}
}

// TestDefaultPools checks default pool selection with the routes given by
// HostRoutes, and by HostRouteIndex instead.
func TestDefaultPools(t *testing.T) {
	for _, via := range []string{"HostRoutes", "HostRouteIndex"} {
		t.Run(via, func(t *testing.T) { testDefaultPools(t, via == "HostRouteIndex") })
	}
}

// scanIndex returns a Config.HostRouteIndex over what routes returns,
// found by a scan, with HostRoutes' filtering: valid, not the default
// route, of the family, masked.
func scanIndex(routes func(v6 bool) ([]netip.Prefix, error)) func(bool, func(func(netip.Prefix) (netip.Prefix, bool)) error) error {
	return func(v6 bool, fn func(func(netip.Prefix) (netip.Prefix, bool)) error) error {
		all, err := routes(v6)
		if err != nil {
			return err
		}
		return fn(func(want netip.Prefix) (netip.Prefix, bool) {
			for _, r := range all {
				if r.IsValid() && r.Bits() > 0 && r.Addr().Is6() == v6 && r.Masked().Overlaps(want) {
					return r.Masked(), true
				}
			}
			return netip.Prefix{}, false
		})
	}
}

func testDefaultPools(t *testing.T, viaIndex bool) {
	routes := []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/0"),       // default route: ignored
		netip.MustParsePrefix("::/0"),            // default route: ignored
		netip.MustParsePrefix("10.0.0.0/25"),     // inside the first pool
		netip.MustParsePrefix("10.0.2.7/32"),     // host route
		netip.MustParsePrefix("10.0.8.0/22"),     // covers several pools
		netip.MustParsePrefix("fd00:0:0:1::/64"), // second v6 pool
	}
	calls := 0
	cfg := Config{
		LocalPools: []config.PoolSpec{
			{Base: netip.MustParsePrefix("10.0.0.0/20"), Size: 24},
			{Base: netip.MustParsePrefix("192.168.0.0/23"), Size: 24},
			{Base: netip.MustParsePrefix("fd00::/48"), Size: 64},
		},
		HostRoutes: func(bool) ([]netip.Prefix, error) { calls++; return routes, nil },
	}
	if viaIndex {
		cfg.HostRouteIndex = scanIndex(cfg.HostRoutes)
		hostRoutes := cfg.HostRoutes
		// Not called when HostRouteIndex is set.
		cfg.HostRoutes = func(v6 bool) ([]netip.Prefix, error) {
			t.Error("HostRoutes called with HostRouteIndex set")
			return hostRoutes(v6)
		}
	}
	a := newAllocator(t, cfg)
	mustPool(t, a, "10.0.1.0/24", "")
	mustPool(t, a, "10.0.4.0/23", "")
	mustPool(t, a, "fd00::/64", "")

	want := []string{
		"10.0.3.0/24", // 0 route, 1 pool, 2 host route
		"10.0.6.0/24", // 4-5 pool
		"10.0.7.0/24",
		"10.0.12.0/24", // 8-11 route
		"10.0.13.0/24", "10.0.14.0/24", "10.0.15.0/24",
		"192.168.0.0/24", "192.168.1.0/24",
	}
	for _, w := range want {
		_, nw, _, err := a.RequestPool(ipamapi.LocalDefault, "", "", nil, false)
		if err != nil || nw.String() != w {
			t.Fatalf("default pool = %v, %v; want %s", nw, err, w)
		}
	}
	_, _, _, err := a.RequestPool(ipamapi.LocalDefault, "", "", nil, false)
	checkErr(t, "RequestPool when all are used", err, ipamapi.ErrNoAvailablePool)
	if _, ok := err.(types.NoServiceError); !ok {
		t.Errorf("RequestPool when all are used = %T, want a types.NoServiceError itself", err)
	}
	if calls != len(want)+1 {
		t.Fatalf("HostRoutes called %d times, want %d", calls, len(want)+1)
	}

	id, nw, _, err := a.RequestPool(ipamapi.LocalDefault, "", "", nil, true)
	if err != nil || nw.String() != "fd00:0:0:2::/64" || id != "LocalDefault/fd00:0:0:2::/64" {
		t.Fatalf("default v6 pool = %q, %v, %v; want fd00:0:0:2::/64", id, nw, err)
	}

	// The global space has its own state and its own defaults.
	_, nw, _, err = a.RequestPool(ipamapi.GlobalDefault, "", "", nil, false)
	if err != nil || nw.String() != "10.0.1.0/24" {
		t.Fatalf("default global pool = %v, %v; want 10.0.1.0/24 (global defaults, route 10.0.0.0/25 skipped)", nw, err)
	}

	// A released default pool is handed out again.
	checkErr(t, "ReleasePool", a.ReleasePool("LocalDefault/10.0.6.0/24"), nil)
	if _, nw, _, err = a.RequestPool(ipamapi.LocalDefault, "", "", nil, false); err != nil || nw.String() != "10.0.6.0/24" {
		t.Fatalf("default pool after release = %v, %v; want 10.0.6.0/24", nw, err)
	}
}

func TestDefaultPoolsBuiltIn(t *testing.T) {
	a := newAllocator(t, Config{HostRoutes: func(bool) ([]netip.Prefix, error) {
		return []netip.Prefix{netip.MustParsePrefix("172.17.0.0/16")}, nil
	}})
	for _, tt := range []struct {
		space string
		v6    bool
		want  string
	}{
		{ipamapi.LocalDefault, false, "172.18.0.0/16"},
		{ipamapi.LocalDefault, false, "172.19.0.0/16"},
		{ipamapi.LocalDefault, true, "fd00::/64"},
		{ipamapi.LocalDefault, true, "fd00:0:0:1::/64"},
		{ipamapi.GlobalDefault, false, "10.0.0.0/24"},
		{ipamapi.GlobalDefault, true, "fd01::/64"},
	} {
		if _, nw, _, err := a.RequestPool(tt.space, "", "", nil, tt.v6); err != nil || nw.String() != tt.want {
			t.Fatalf("default pool in %s (v6=%v) = %v, %v; want %s", tt.space, tt.v6, nw, err, tt.want)
		}
	}
	// After 172.18-31 the 192.168.0.0/16 /20s follow.
	for range 12 { // 172.20 to 172.31
		mustDefault(t, a)
	}
	if nw := mustDefault(t, a); nw.String() != "192.168.0.0/20" {
		t.Fatalf("default pool after 172.x = %v, want 192.168.0.0/20", nw)
	}
}

func mustDefault(t *testing.T, a *Allocator) *net.IPNet {
	t.Helper()
	_, nw, _, err := a.RequestPool(ipamapi.LocalDefault, "", "", nil, false)
	if err != nil {
		t.Fatalf("RequestPool: %v", err)
	}
	return nw
}

func TestHostRoutesError(t *testing.T) {
	boom := errors.New("netlink: boom")
	a := newAllocator(t, Config{HostRoutes: func(bool) ([]netip.Prefix, error) { return nil, boom }})
	_, _, _, err := a.RequestPool(ipamapi.LocalDefault, "", "", nil, false)
	if !errors.Is(err, boom) || !types.IsInternal(err) {
		t.Fatalf("error %v, want internal wrapping %v", err, boom)
	}
	// Explicit pools do not need the routes.
	mustPool(t, a, "10.0.0.0/24", "")
}

// A HostRouteIndex that cannot read the routes fails a default pool
// request with an internal error wrapping its own, and so does one that
// returns without calling fn; an error of the allocator's own made under
// it keeps its class.
func TestHostRouteIndexError(t *testing.T) {
	boom := errors.New("netlink: boom")
	a := newAllocator(t, Config{HostRouteIndex: scanIndex(func(bool) ([]netip.Prefix, error) { return nil, boom })})
	_, _, _, err := a.RequestPool(ipamapi.LocalDefault, "", "", nil, false)
	if !errors.Is(err, boom) || !types.IsInternal(err) {
		t.Fatalf("error %v, want internal wrapping %v", err, boom)
	}
	mustPool(t, a, "10.0.0.0/24", "")

	a = newAllocator(t, Config{HostRouteIndex: func(bool, func(func(netip.Prefix) (netip.Prefix, bool)) error) error { return nil }})
	if _, nw, _, err := a.RequestPool(ipamapi.LocalDefault, "", "", nil, false); !types.IsInternal(err) {
		t.Fatalf("default pool with a HostRouteIndex that did not call fn = %v, %v; want an internal error", nw, err)
	}

	// Every subnet of the one default pool is routed.
	a = newAllocator(t, Config{
		LocalPools:     []config.PoolSpec{{Base: netip.MustParsePrefix("10.1.0.0/23"), Size: 24}},
		HostRouteIndex: scanIndex(func(bool) ([]netip.Prefix, error) { return []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, nil }),
	})
	_, _, _, err = a.RequestPool(ipamapi.LocalDefault, "", "", nil, false)
	checkErr(t, "RequestPool with every default subnet routed", err, ipamapi.ErrNoAvailablePool)
}

func TestReleasePool(t *testing.T) {
	a := newAllocator(t, Config{})
	id := mustPool(t, a, "10.0.0.0/24", "10.0.0.128/25")
	if _, _, err := a.RequestAddress(id, nil, nil); err != nil {
		t.Fatal(err)
	}
	checkErr(t, "ReleasePool of another sub-pool", a.ReleasePool("LocalDefault/10.0.0.0/24"), ipamapi.ErrPoolNotFound)
	checkErr(t, "ReleasePool of another space", a.ReleasePool("GlobalDefault/10.0.0.0/24/10.0.0.128/25"), ipamapi.ErrPoolNotFound)
	checkErr(t, "ReleasePool of garbage", a.ReleasePool("garbage"), ipamapi.ErrPoolNotFound)
	checkErr(t, "ReleasePool", a.ReleasePool(id), nil)
	checkErr(t, "ReleasePool twice", a.ReleasePool(id), ipamapi.ErrPoolNotFound)
	_, _, err := a.RequestAddress(id, nil, nil)
	checkErr(t, "RequestAddress in a released pool", err, ipamapi.ErrPoolNotFound)
	// The pool is free again, with none of its old addresses.
	id = mustPool(t, a, "10.0.0.0/24", "10.0.0.128/25")
	if nw, _, err := a.RequestAddress(id, nil, nil); err != nil || nw.String() != "10.0.0.128/24" {
		t.Fatalf("RequestAddress = %v, %v; want 10.0.0.128/24", nw, err)
	}
}

// Default pools come out as the first free subnet, whatever the order of
// requests and releases: the run index that lets a request jump past
// back-to-back pools must pick what a subnet-by-subnet scan picks.
func TestDefaultPoolRunsMatchScan(t *testing.T) {
	spec := config.PoolSpec{Base: netip.MustParsePrefix("10.0.0.0/20"), Size: 24}
	a, err := New(Config{LocalPools: []config.PoolSpec{spec}, GlobalPools: []config.PoolSpec{}})
	if err != nil {
		t.Fatal(err)
	}
	// An explicit pool in the middle of the default range.
	if _, _, _, err := a.RequestPool(ipamapi.LocalDefault, "10.0.7.0/24", "", nil, false); err != nil {
		t.Fatal(err)
	}
	scan := func() (netip.Prefix, bool) {
		sp := a.spaces[ipamapi.LocalDefault]
		for cand, ok := ipamutils.SubnetFrom(spec, spec.Base.Addr()); ok; cand, ok = ipamutils.SubnetFrom(spec, ipamutils.LastAddr(cand).Next()) {
			if sp.overlapping(cand) == nil {
				return cand, true
			}
		}
		return netip.Prefix{}, false
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var held []string
	for i := range 2000 {
		if len(held) > 0 && rng.IntN(3) == 0 {
			j := rng.IntN(len(held))
			if err := a.ReleasePool(held[j]); err != nil {
				t.Fatal(err)
			}
			held = slices.Delete(held, j, j+1)
			continue
		}
		want, free := scan()
		id, nw, _, err := a.RequestPool(ipamapi.LocalDefault, "", "", nil, false)
		if !free {
			if err == nil {
				t.Fatalf("step %d: got %v with no free subnet", i, nw)
			}
			continue
		}
		if err != nil {
			t.Fatalf("step %d: %v, want %v", i, err, want)
		}
		if got, _ := netip.ParsePrefix(nw.String()); got != want {
			t.Fatalf("step %d: got %v, want the first free %v", i, got, want)
		}
		held = append(held, id)
	}
}
