package defaultipam

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"testing"

	"github.com/netkit/libnetwork/ipamapi"
	"github.com/netkit/libnetwork/netlabel"
)

func TestRequestAddress(t *testing.T) {
	gw := map[string]string{ipamapi.RequestAddressType: netlabel.Gateway}
	type req struct {
		ip      string // "" for any
		opts    map[string]string
		want    string
		wantErr error
	}
	tests := []struct {
		name          string
		pool, subPool string
		reqs          []req
	}{
		{name: "v4 lowest first", pool: "10.0.0.0/24", reqs: []req{
			{opts: gw, want: "10.0.0.1/24"},
			{want: "10.0.0.2/24"},
			{ip: "10.0.0.5", want: "10.0.0.5/24"},
			{want: "10.0.0.3/24"},
			{want: "10.0.0.4/24"},
			{want: "10.0.0.6/24"},
			{ip: "10.0.0.5", wantErr: ipamapi.ErrIPAlreadyAllocated},
			{ip: "10.0.0.0", wantErr: ipamapi.ErrIPAlreadyAllocated},   // network
			{ip: "10.0.0.255", wantErr: ipamapi.ErrIPAlreadyAllocated}, // broadcast
			{ip: "10.0.1.1", wantErr: ipamapi.ErrIPOutOfRange},
			{ip: "2001:db8::1", wantErr: ipamapi.ErrIPOutOfRange},
			{ip: "::ffff:10.0.0.9", want: "10.0.0.9/24"}, // 16-byte form of an IPv4 address
			{ip: "10.0.0.254", opts: gw, want: "10.0.0.254/24"},
		}},
		{name: "v4 sub-pool", pool: "10.1.0.0/16", subPool: "10.1.2.0/30", reqs: []req{
			{want: "10.1.2.0/16"},                 // the pool's network address only is reserved
			{ip: "10.1.7.7", want: "10.1.7.7/16"}, // outside the sub-pool, inside the pool
			{want: "10.1.2.1/16"},
			{ip: "10.1.2.2", want: "10.1.2.2/16"},
			{want: "10.1.2.3/16"},
			{wantErr: ipamapi.ErrNoAvailableIPs},
			{ip: "10.1.2.4", want: "10.1.2.4/16"},
			{ip: "10.2.0.1", wantErr: ipamapi.ErrIPOutOfRange},
		}},
		{name: "v4 sub-pool at the pool's start", pool: "10.2.0.0/24", subPool: "10.2.0.0/30", reqs: []req{
			{want: "10.2.0.1/24"}, {want: "10.2.0.2/24"}, {want: "10.2.0.3/24"},
			{wantErr: ipamapi.ErrNoAvailableIPs},
		}},
		{name: "v4 /30", pool: "10.3.0.0/30", reqs: []req{
			{want: "10.3.0.1/30"}, {want: "10.3.0.2/30"},
			{wantErr: ipamapi.ErrNoAvailableIPs},
			{ip: "10.3.0.3", wantErr: ipamapi.ErrIPAlreadyAllocated},
		}},
		{name: "v4 /31", pool: "10.4.0.0/31", reqs: []req{
			{want: "10.4.0.0/31"}, {want: "10.4.0.1/31"}, {wantErr: ipamapi.ErrNoAvailableIPs},
		}},
		{name: "v6", pool: "2001:db8::/64", reqs: []req{
			{opts: gw, want: "2001:db8::1/64"},
			{want: "2001:db8::2/64"},
			{ip: "2001:db8::", wantErr: ipamapi.ErrIPAlreadyAllocated},                      // subnet-router anycast
			{ip: "2001:db8::ffff:ffff:ffff:ffff", want: "2001:db8::ffff:ffff:ffff:ffff/64"}, // no broadcast in IPv6
			{ip: "2001:db8:0:1::1", wantErr: ipamapi.ErrIPOutOfRange},
			{ip: "10.0.0.1", wantErr: ipamapi.ErrIPOutOfRange},
		}},
		{name: "v6 /126", pool: "2001:db8:1::/126", reqs: []req{
			{want: "2001:db8:1::1/126"}, {want: "2001:db8:1::2/126"}, {want: "2001:db8:1::3/126"},
			{wantErr: ipamapi.ErrNoAvailableIPs},
		}},
		{name: "v6 /127", pool: "2001:db8:2::/127", reqs: []req{
			{want: "2001:db8:2::/127"}, {want: "2001:db8:2::1/127"}, {wantErr: ipamapi.ErrNoAvailableIPs},
		}},
		{name: "v6 huge with sub-pool", pool: "fd00::/8", subPool: "fd12:3456::/120", reqs: []req{
			{want: "fd12:3456::/8"},
			{ip: "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", want: "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/8"},
			{want: "fd12:3456::1/8"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAllocator(t, Config{})
			id := mustPool(t, a, tt.pool, tt.subPool)
			for _, r := range tt.reqs {
				var ip net.IP
				if r.ip != "" {
					ip = net.ParseIP(r.ip)
				}
				nw, meta, err := a.RequestAddress(id, ip, r.opts)
				checkErr(t, fmt.Sprintf("RequestAddress(%q)", r.ip), err, r.wantErr)
				if r.wantErr == nil && (nw.String() != r.want || meta != nil) {
					t.Fatalf("RequestAddress(%q) = %v, %v; want %s, nil", r.ip, nw, meta, r.want)
				}
			}
		})
	}
}

func TestRequestAddressBadInput(t *testing.T) {
	a := newAllocator(t, Config{})
	id := mustPool(t, a, "10.0.0.0/24", "")
	_, _, err := a.RequestAddress(id, net.IP{1, 2, 3}, nil)
	checkErr(t, "RequestAddress(3 bytes)", err, ipamapi.ErrInvalidRequest)
	for _, bad := range []string{"garbage", "LocalDefault/10.0.1.0/24", "GlobalDefault/10.0.0.0/24", "LocalDefault/10.0.0.0/24/10.0.0.0/25"} {
		_, _, err := a.RequestAddress(bad, nil, nil)
		checkErr(t, "RequestAddress in "+bad, err, ipamapi.ErrPoolNotFound)
		checkErr(t, "ReleaseAddress in "+bad, a.ReleaseAddress(bad, net.ParseIP("10.0.0.1")), ipamapi.ErrPoolNotFound)
	}
}

func TestReleaseAddress(t *testing.T) {
	a := newAllocator(t, Config{})
	id := mustPool(t, a, "10.0.0.0/29", "")
	for range 6 {
		if _, _, err := a.RequestAddress(id, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		ip      net.IP
		wantErr error
	}{
		{net.ParseIP("10.0.0.3"), nil},
		{net.ParseIP("10.0.0.3"), ipamapi.ErrInvalidRequest}, // twice
		{net.ParseIP("10.0.0.0"), ipamapi.ErrInvalidRequest}, // network
		{net.ParseIP("10.0.0.7"), ipamapi.ErrInvalidRequest}, // broadcast
		{net.ParseIP("10.0.1.1"), ipamapi.ErrIPOutOfRange},
		{nil, ipamapi.ErrInvalidRequest},
		{net.ParseIP("10.0.0.5").To4(), nil},
	}
	for _, tt := range tests {
		checkErr(t, fmt.Sprintf("ReleaseAddress(%v)", tt.ip), a.ReleaseAddress(id, tt.ip), tt.wantErr)
	}
	// The failed releases changed nothing: exactly .3 and .5 are free.
	for _, want := range []string{"10.0.0.3/29", "10.0.0.5/29"} {
		if nw, _, err := a.RequestAddress(id, nil, nil); err != nil || nw.String() != want {
			t.Fatalf("RequestAddress = %v, %v; want %s", nw, err, want)
		}
	}
	_, _, err := a.RequestAddress(id, nil, nil)
	checkErr(t, "RequestAddress in a full pool", err, ipamapi.ErrNoAvailableIPs)
}

// TestReplay rebuilds state the way the controller does at start: the
// stored pool, then each stored address.
func TestReplay(t *testing.T) {
	a := newAllocator(t, Config{})
	id := mustPool(t, a, "172.20.0.0/16", "172.20.5.0/24")
	var stored []net.IP
	for range 5 {
		nw, _, err := a.RequestAddress(id, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, nw.IP)
	}
	stored = append(stored, net.ParseIP("172.20.9.9"))

	b := newAllocator(t, Config{})
	if got := mustPool(t, b, "172.20.0.0/16", "172.20.5.0/24"); got != id {
		t.Fatalf("replayed pool ID %q, want %q", got, id)
	}
	for _, ip := range stored {
		if nw, _, err := b.RequestAddress(id, ip, nil); err != nil || !nw.IP.Equal(ip) {
			t.Fatalf("replay of %v = %v, %v", ip, nw, err)
		}
	}
	if nw, _, err := b.RequestAddress(id, nil, nil); err != nil || nw.String() != "172.20.5.5/16" {
		t.Fatalf("RequestAddress after replay = %v, %v; want 172.20.5.5/16", nw, err)
	}
}

// TestHugeV6Pool allocates 100k addresses in a /8, releases some and checks
// they come back lowest first, with memory in runs, not addresses.
func TestHugeV6Pool(t *testing.T) {
	a := newAllocator(t, Config{})
	id := mustPool(t, a, "fd00::/8", "")
	const n = 100_000
	for i := 1; i <= n; i++ {
		if _, _, err := a.RequestAddress(id, nil, nil); err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
	}
	p := a.spaces[ipamapi.LocalDefault].pools[0]
	if p.used.runs != 1 || p.used.addrs != n {
		t.Fatalf("after %d allocations: %d runs, %d addresses; want 1, %d", n, p.used.runs, p.used.addrs, n)
	}
	nth := func(i int) netip.Addr {
		b := netip.MustParseAddr("fd00::").As16()
		b[13], b[14], b[15] = byte(i>>16), byte(i>>8), byte(i)
		return netip.AddrFrom16(b)
	}
	var released []netip.Addr
	for i := 99_999; i >= 7; i -= 997 {
		released = append(released, nth(i))
		if err := a.ReleaseAddress(id, nth(i).AsSlice()); err != nil {
			t.Fatalf("ReleaseAddress(%v): %v", nth(i), err)
		}
	}
	if p.used.runs != len(released)+1 {
		t.Fatalf("%d runs after %d releases, want %d", p.used.runs, len(released), len(released)+1)
	}
	for i := len(released) - 1; i >= 0; i-- { // lowest first
		nw, _, err := a.RequestAddress(id, nil, nil)
		if want := released[i]; err != nil || nw.IP.String() != want.String() || nw.Mask.String() != "ff000000000000000000000000000000" {
			t.Fatalf("re-allocation = %v, %v; want %v/8", nw, err, want)
		}
	}
	if nw, _, err := a.RequestAddress(id, nil, nil); err != nil || nw.IP.String() != nth(n+1).String() {
		t.Fatalf("next allocation = %v, %v; want %v", nw, err, nth(n+1))
	}
	checkRunSet(t, &p.used)
}

func TestHugeV4Pool(t *testing.T) {
	a := newAllocator(t, Config{})
	id := mustPool(t, a, "10.0.0.0/8", "")
	if _, _, err := a.RequestAddress(id, net.ParseIP("10.255.255.254"), nil); err != nil {
		t.Fatal(err)
	}
	if nw, _, err := a.RequestAddress(id, nil, nil); err != nil || nw.String() != "10.0.0.1/8" {
		t.Fatalf("RequestAddress = %v, %v; want 10.0.0.1/8", nw, err)
	}
}

// TestConcurrent allocates and releases from many goroutines; run it with
// -race. Every address handed out must be unique.
func TestConcurrent(t *testing.T) {
	a := newAllocator(t, Config{})
	ids := []string{mustPool(t, a, "10.0.0.0/16", ""), mustPool(t, a, "2001:db8::/64", "")}
	const workers, per = 8, 500
	var (
		mu   sync.Mutex
		seen = map[string]bool{}
		wg   sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			id := ids[w%2]
			for i := range per {
				nw, _, err := a.RequestAddress(id, nil, nil)
				if err != nil {
					t.Errorf("RequestAddress: %v", err)
					return
				}
				if i%3 == 0 {
					if err := a.ReleaseAddress(id, nw.IP); err != nil {
						t.Errorf("ReleaseAddress: %v", err)
					}
					continue
				}
				mu.Lock()
				if seen[nw.IP.String()] {
					t.Errorf("%v handed out twice", nw.IP)
				}
				seen[nw.IP.String()] = true
				mu.Unlock()
			}
		})
		wg.Go(func() {
			if _, _, _, err := a.RequestPool(ipamapi.LocalDefault, "", "", nil, w%2 == 1); err != nil {
				t.Errorf("RequestPool: %v", err)
			}
		})
	}
	wg.Wait()
	for _, p := range a.spaces[ipamapi.LocalDefault].pools {
		checkRunSet(t, &p.used)
	}
}

// FuzzAllocations runs a sequence of operations, decoded from the input, on
// a small pool and checks every address handed out is in range, unique, and
// the lowest free one.
func FuzzAllocations(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 5, 0, 130, 0, 3, 255})
	f.Add([]byte{})
	seed := make([]byte, 300)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range seed {
		seed[i] = byte(rng.Uint32())
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, ops []byte) {
		for _, tc := range []struct{ pool, sub string }{{"10.0.0.0/26", "10.0.0.16/28"}, {"2001:db8::/122", ""}} {
			a := newAllocator(t, Config{})
			id := mustPool(t, a, tc.pool, tc.sub)
			pool, dyn := netip.MustParsePrefix(tc.pool), netip.MustParsePrefix(tc.pool)
			if tc.sub != "" {
				dyn = netip.MustParsePrefix(tc.sub)
			}
			held := map[netip.Addr]bool{}
			usable := func(x netip.Addr) bool {
				return pool.Contains(x) && x != pool.Addr() && !(x.Is4() && x == netip.MustParseAddr("10.0.0.63"))
			}
			for _, op := range ops {
				off := int(op & 0x3f)
				b := pool.Addr().As16()
				if pool.Addr().Is4() {
					b = netip.AddrFrom4([4]byte{10, 0, 0, byte(off)}).As16()
				} else {
					b[15] = byte(off)
				}
				x := netip.AddrFrom16(b).Unmap()
				switch op >> 6 {
				case 0: // any address
					nw, _, err := a.RequestAddress(id, nil, nil)
					var want netip.Addr
					for c := dyn.Addr(); dyn.Contains(c); c = c.Next() {
						if usable(c) && !held[c] {
							want = c
							break
						}
					}
					if !want.IsValid() {
						if !errors.Is(err, ipamapi.ErrNoAvailableIPs) {
							t.Fatalf("RequestAddress in a full range: %v, %v", nw, err)
						}
						continue
					}
					got, _ := netip.AddrFromSlice(nw.IP)
					if err != nil || got != want {
						t.Fatalf("RequestAddress = %v, %v; want %v", nw, err, want)
					}
					held[got] = true
				case 1: // a given address
					_, _, err := a.RequestAddress(id, x.AsSlice(), nil)
					if ok := usable(x) && !held[x]; ok != (err == nil) {
						t.Fatalf("RequestAddress(%v) error = %v, want ok=%v", x, err, ok)
					}
					if err == nil {
						held[x] = true
					}
				default: // release
					err := a.ReleaseAddress(id, x.AsSlice())
					if held[x] != (err == nil) {
						t.Fatalf("ReleaseAddress(%v) error = %v, held=%v", x, err, held[x])
					}
					delete(held, x)
				}
			}
			p := a.spaces[ipamapi.LocalDefault].pools[0]
			checkRunSet(t, &p.used)
			if p.used.addrs != len(held) {
				t.Fatalf("pool holds %d addresses, model %d", p.used.addrs, len(held))
			}
		}
	})
}
