package globalipam

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netkit/libnetwork/globalstore"
	"github.com/netkit/libnetwork/internal/testutil/etcdtest"
	"github.com/netkit/libnetwork/ipamapi"
	"github.com/netkit/libnetwork/types"
)

// hosts returns n allocators, each on a Store of its own ("hosts"), on one
// etcd and a prefix of the test's.
func hosts(t *testing.T, srv *etcdtest.Server, n int) []*Allocator {
	t.Helper()
	prefix := "/test/" + strings.ReplaceAll(t.Name(), "/", "_")
	var out []*Allocator
	for i := range n {
		s, err := globalstore.New(globalstore.Config{Endpoints: srv.Endpoints(), Prefix: prefix, Host: fmt.Sprintf("host%d", i),
			RequestTimeout: 2 * time.Second, LeaseTTL: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		a, err := New(Config{Store: s})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

func TestPools(t *testing.T) {
	srv := etcdtest.Start(t)
	h := hosts(t, srv, 2)
	id, pool, _, err := h[0].RequestPool("", "10.40.0.0/16", "", nil, false)
	if err != nil || pool.String() != "10.40.0.0/16" || id != "GlobalDefault/10.40.0.0/16" {
		t.Fatalf("RequestPool: %s %v %v", id, pool, err)
	}
	// Another host asking for an overlapping pool is refused, naming it.
	_, _, _, err = h[1].RequestPool(ipamapi.GlobalDefault, "10.40.3.0/24", "", nil, false)
	if !errors.Is(err, ipamapi.ErrOverlapPool) || !types.IsForbidden(err) || !strings.Contains(err.Error(), "10.40.0.0/16") {
		t.Errorf("overlapping pool from another host: %v", err)
	}
	// Default pools: the first free of each family.
	_, p4, _, err := h[1].RequestPool("", "", "", nil, false)
	if err != nil || p4.String() != "10.0.0.0/24" {
		t.Errorf("default IPv4 pool: %v %v", p4, err)
	}
	_, p6, _, err := h[0].RequestPool("", "", "", nil, true)
	if err != nil || p6.String() != "fd01::/64" {
		t.Errorf("default IPv6 pool: %v %v", p6, err)
	}
	_, p4b, _, err := h[0].RequestPool("", "", "", nil, false)
	if err != nil || p4b.String() != "10.0.1.0/24" {
		t.Errorf("second default IPv4 pool: %v %v", p4b, err)
	}
	// Released, the pool can be taken again, by any host.
	if err := h[1].ReleasePool(id); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := h[1].RequestPool("", "10.40.3.0/24", "", nil, false); err != nil {
		t.Errorf("pool after release: %v", err)
	}
	if err := h[0].ReleasePool(id); !errors.Is(err, ipamapi.ErrPoolNotFound) {
		t.Errorf("releasing twice: %v", err)
	}
	for _, bad := range []struct{ as, pool, sub string }{{"LocalDefault", "10.41.0.0/24", ""}, {"", "127.0.0.0/24", ""},
		{"", "10.42.0.0/24", "10.43.0.0/25"}, {"", "nonsense", ""}, {"", "", "10.44.0.0/24"}} {
		if _, _, _, err := h[0].RequestPool(bad.as, bad.pool, bad.sub, nil, false); !types.IsBadRequest(err) {
			t.Errorf("RequestPool(%q, %q, %q): %v, want BadRequest", bad.as, bad.pool, bad.sub, err)
		}
	}
}

// TestConcurrentPools: hosts asking for default pools at once get
// distinct, non-overlapping ones.
func TestConcurrentPools(t *testing.T) {
	srv := etcdtest.Start(t)
	h := hosts(t, srv, 3)
	var mu sync.Mutex
	var got []netip.Prefix
	var wg sync.WaitGroup
	for i := range 24 {
		wg.Go(func() {
			_, p, _, err := h[i%3].RequestPool("", "", "", nil, false)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			got = append(got, netip.MustParsePrefix(p.String()))
			mu.Unlock()
		})
	}
	wg.Wait()
	for i := range got {
		for j := range i {
			if got[i].Overlaps(got[j]) {
				t.Errorf("pools %s and %s handed out at once", got[i], got[j])
			}
		}
	}
}

// TestConcurrentAddresses: three hosts, many requests each at once: every
// address is handed out once.
func TestConcurrentAddresses(t *testing.T) {
	srv := etcdtest.Start(t)
	h := hosts(t, srv, 3)
	id, _, _, err := h[0].RequestPool("", "10.50.0.0/24", "", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	gw, _, err := h[0].RequestAddress(id, nil, map[string]string{ipamapi.RequestAddressType: gatewayType})
	if err != nil || gw.String() != "10.50.0.1/24" {
		t.Fatalf("gateway: %v %v", gw, err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	const perHost = 60
	for i := range 3 * perHost {
		wg.Go(func() {
			a, _, err := h[i%3].RequestAddress(id, nil, map[string]string{OwnerOption: fmt.Sprint(i % 3)})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			seen[a.String()]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(seen) != 3*perHost {
		t.Errorf("%d distinct addresses for %d requests", len(seen), 3*perHost)
	}
	for a, n := range seen {
		if n > 1 || a == gw.String() {
			t.Errorf("address %s handed out %d times (gateway %s)", a, n, gw)
		}
	}
}

func TestNamedAddresses(t *testing.T) {
	srv := etcdtest.Start(t)
	h := hosts(t, srv, 2)
	id, _, _, err := h[0].RequestPool("", "10.60.0.0/29", "", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	mine := map[string]string{OwnerOption: "ctrl-a"}
	if a, _, err := h[0].RequestAddress(id, net.ParseIP("10.60.0.3"), mine); err != nil || a.String() != "10.60.0.3/29" {
		t.Fatalf("named address: %v %v", a, err)
	}
	// Another controller cannot have it; its owner (restarted, on a new
	// Store) takes it over.
	if _, _, err := h[1].RequestAddress(id, net.ParseIP("10.60.0.3"), map[string]string{OwnerOption: "ctrl-b"}); !errors.Is(err, ipamapi.ErrIPAlreadyAllocated) {
		t.Errorf("another owner's address: %v", err)
	}
	if _, _, err := h[1].RequestAddress(id, net.ParseIP("10.60.0.3"), mine); err != nil {
		t.Errorf("its owner taking it over: %v", err)
	}
	// ReleaseOwned frees only the owner's.
	if err := h[1].ReleaseOwned(id, net.ParseIP("10.60.0.3"), "ctrl-b"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h[0].RequestAddress(id, net.ParseIP("10.60.0.3"), map[string]string{OwnerOption: "ctrl-c"}); !errors.Is(err, ipamapi.ErrIPAlreadyAllocated) {
		t.Errorf("released by a controller that does not own it: %v", err)
	}
	if err := h[1].ReleaseOwned(id, net.ParseIP("10.60.0.3"), "ctrl-a"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h[0].RequestAddress(id, net.ParseIP("10.60.0.3"), mine); err != nil {
		t.Errorf("after its owner released it: %v", err)
	}
	for _, bad := range []string{"10.60.0.0", "10.60.0.7", "10.61.0.1"} {
		if _, _, err := h[0].RequestAddress(id, net.ParseIP(bad), mine); !errors.Is(err, ipamapi.ErrIPOutOfRange) {
			t.Errorf("address %s: %v, want out of range", bad, err)
		}
	}
	// Exhaustion: 6 host addresses in a /29, one taken.
	for range 5 {
		if _, _, err := h[0].RequestAddress(id, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := h[1].RequestAddress(id, nil, nil); !errors.Is(err, ipamapi.ErrNoAvailableIPs) {
		t.Errorf("full pool: %v", err)
	}
	if err := h[1].ReleaseAddress(id, net.ParseIP("10.60.0.3")); err != nil {
		t.Fatal(err)
	}
	if a, _, err := h[1].RequestAddress(id, nil, nil); err != nil || a.String() != "10.60.0.3/29" {
		t.Errorf("after a release: %v %v", a, err)
	}
	// Releasing the pool frees its addresses: taken again, it is empty.
	if err := h[0].ReleasePool(id); err != nil {
		t.Fatal(err)
	}
	id, _, _, err = h[1].RequestPool("", "10.60.0.0/29", "", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if a, _, err := h[1].RequestAddress(id, net.ParseIP("10.60.0.3"), nil); err != nil {
		t.Errorf("address of a released pool: %v %v", a, err)
	}
}

// TestUnreachable: with etcd down, requests fail with the store's
// timeout-class error; with etcd back, the same allocator works.
func TestUnreachable(t *testing.T) {
	srv := etcdtest.Start(t)
	h := hosts(t, srv, 1)
	id, _, _, err := h[0].RequestPool("", "10.70.0.0/24", "", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	_, _, err = h[0].RequestAddress(id, nil, nil)
	var te types.TimeoutError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "10.70.0.0/24") {
		t.Errorf("with etcd down: %v (%T), want a TimeoutError naming the pool", err, err)
	}
	srv.Start()
	if _, _, err := h[0].RequestAddress(id, nil, nil); err != nil {
		t.Errorf("with etcd back: %v", err)
	}
}

func BenchmarkRequestAddress(b *testing.B) {
	srv := etcdtest.Start(b)
	s, err := globalstore.New(globalstore.Config{Endpoints: srv.Endpoints(), Prefix: "/bench", Host: "h"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	a, _ := New(Config{Store: s})
	id, _, _, err := a.RequestPool("", "10.80.0.0/16", "", nil, false)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, _, err := a.RequestAddress(id, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
}
