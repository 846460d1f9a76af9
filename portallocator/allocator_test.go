package portallocator

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/netkit/libnetwork/types"
	"golang.org/x/sys/unix"
)

func TestFixedPortIsHeld(t *testing.T) {
	ns := newNamespace(t)
	a := newAllocator(t, ns)
	for _, tc := range []struct {
		proto types.Protocol
		addr  netip.Addr
	}{
		{types.TCP, any4}, {types.UDP, any4}, {types.TCP, any6}, {types.UDP, any6},
		{types.TCP, lo4}, {types.UDP, netip.IPv6Loopback()},
	} {
		t.Run(fmt.Sprintf("%s on %s", tc.proto, tc.addr), func(t *testing.T) {
			al := mustAllocate(t, a, Request{Proto: tc.proto, HostIP: tc.addr, HostPort: 8080})
			if al.Port != 8080 || len(al.Bindings) != 1 {
				t.Fatalf("Allocate = %+v, want one binding on port 8080", al)
			}
			if b := al.Bindings[0]; b.Proto != tc.proto || b.HostIP != tc.addr || b.Port != 8080 || b.NoSocket {
				t.Errorf("binding = %+v", b)
			}
			assertHeld(t, ns, tc.proto, tc.addr, 8080)
			// An overlapping address of the same family is refused too.
			if tc.addr.IsUnspecified() && tc.addr.Is4() {
				assertHeld(t, ns, tc.proto, lo4, 8080)
			}
			if tc.addr == lo4 {
				assertHeld(t, ns, tc.proto, any4, 8080)
				assertFree(t, ns, tc.proto, lo4b, 8080)
			}
			// The other family (IPV6_V6ONLY) and the other protocol are
			// independent.
			other := any6
			if tc.addr.Is6() {
				other = any4
			}
			assertFree(t, ns, tc.proto, other, 8080)
			otherProto := types.UDP
			if tc.proto == types.UDP {
				otherProto = types.TCP
			}
			assertFree(t, ns, otherProto, tc.addr, 8080)

			a.Release(al)
			assertFree(t, ns, tc.proto, tc.addr, 8080)
			if n := a.reservations(); n != 0 {
				t.Errorf("after Release the table holds %d reservations", n)
			}
		})
	}
}

// TestUDPHoldSocketQueuesLittle checks that datagrams the NAT rules do not
// catch hold at most the minimal receive buffer of the holding socket, and
// the rest are dropped.
func TestUDPHoldSocketQueuesLittle(t *testing.T) {
	ns := newNamespace(t)
	a := newAllocator(t, ns)
	al := mustAllocate(t, a, Request{Proto: types.UDP, HostIP: lo4, HostPort: 5353})
	const sent = 100
	err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		for range sent {
			err := unix.Sendto(fd, make([]byte, 1000), 0, &unix.SockaddrInet4{Addr: lo4.As4(), Port: int(al.Port)})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var table []byte
	err = ns.Do(func() error {
		// /proc/thread-self/net shows the thread's namespace.
		table, err = os.ReadFile("/proc/thread-self/net/udp")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	local := fmt.Sprintf("0100007F:%04X", al.Port)
	for line := range strings.Lines(string(table)) {
		f := strings.Fields(line)
		if len(f) < 13 || f[1] != local {
			continue
		}
		// f[4] is tx_queue:rx_queue in hex bytes, f[12] the drop count.
		_, rxHex, _ := strings.Cut(f[4], ":")
		rx, err1 := strconv.ParseUint(rxHex, 16, 64)
		drops, err2 := strconv.Atoi(f[12])
		if err1 != nil || err2 != nil {
			t.Fatalf("cannot parse %q", line)
		}
		if rx > 8192 {
			t.Errorf("the holding socket queued %d bytes, want the minimal buffer", rx)
		}
		if drops < sent-8 {
			t.Errorf("the holding socket dropped %d of %d datagrams", drops, sent)
		}
		return
	}
	t.Fatalf("no UDP socket on %s in:\n%s", local, table)
}

func TestPortInUseIsRefused(t *testing.T) {
	ns := newNamespace(t)
	a := newAllocator(t, ns)
	occupy(t, ns, types.TCP, any4, 8081)

	// The IPv6 member binds first and must be undone when IPv4 fails.
	_, err := a.Allocate(
		Request{Proto: types.TCP, HostIP: any6, HostPort: 8081},
		Request{Proto: types.TCP, HostIP: any4, HostPort: 8081},
	)
	var inUse *PortInUseError
	if !errors.As(err, &inUse) {
		t.Fatalf("Allocate of a port another program holds: %v, want a *PortInUseError", err)
	}
	if inUse.Proto != types.TCP || inUse.HostIP != any4 || inUse.Port != 8081 || inUse.Allocated {
		t.Errorf("PortInUseError = %+v", inUse)
	}
	if want := "host port 8081/tcp on 0.0.0.0 is already in use"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if _, ok := err.(types.ForbiddenError); !ok {
		t.Errorf("error %T is not a types.ForbiddenError by type assertion", err)
	}
	if !errors.Is(err, unix.EADDRINUSE) {
		t.Errorf("error does not unwrap to EADDRINUSE")
	}
	assertFree(t, ns, types.TCP, any6, 8081)
	if n := a.reservations(); n != 0 {
		t.Errorf("after a refused allocation the table holds %d reservations", n)
	}

	// A port of another allocation is refused from the table, naming it.
	mustAllocate(t, a, Request{Proto: types.UDP, HostIP: lo4, HostPort: 8082})
	_, err = a.Allocate(Request{Proto: types.UDP, HostIP: any4, HostPort: 8082})
	if !errors.As(err, &inUse) || !inUse.Allocated || inUse.Port != 8082 {
		t.Fatalf("Allocate over another allocation: %v, want a *PortInUseError from the table", err)
	}
	if want := "host port 8082/udp on 0.0.0.0 is already in use by another published port"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if !types.IsForbidden(err) {
		t.Errorf("error is not Forbidden")
	}
	// A different specific address is a different reservation.
	mustAllocate(t, a, Request{Proto: types.UDP, HostIP: lo4b, HostPort: 8082})
}

func TestHostIPNotLocal(t *testing.T) {
	ns := newNamespace(t)
	a := newAllocator(t, ns)
	_, err := a.Allocate(
		Request{Proto: types.TCP, HostIP: lo4, HostPort: 8083},
		Request{Proto: types.TCP, HostIP: netip.MustParseAddr("192.0.2.1"), HostPort: 8083},
	)
	if !types.IsBadRequest(err) || !strings.Contains(err.Error(), "192.0.2.1 is not an address of this host") {
		t.Fatalf("Allocate on a foreign address: %v, want a BadRequestError naming it", err)
	}
	assertFree(t, ns, types.TCP, lo4, 8083)
}

func TestRange(t *testing.T) {
	ns := newNamespace(t)
	a := newAllocator(t, ns)
	occupy(t, ns, types.TCP, any4, 9001)
	req := Request{Proto: types.TCP, HostIP: any4, HostPort: 9000, HostPortEnd: 9003}

	var got []uint16
	var als []*Allocation
	for range 3 {
		al := mustAllocate(t, a, req)
		assertHeld(t, ns, types.TCP, any4, al.Port)
		got = append(got, al.Port)
		als = append(als, al)
	}
	if want := []uint16{9000, 9002, 9003}; !slices.Equal(got, want) {
		t.Errorf("ports = %v, want %v (9001 is another program's)", got, want)
	}
	_, err := a.Allocate(req)
	var noFree *NoFreePortError
	if !errors.As(err, &noFree) || !types.IsForbidden(err) {
		t.Fatalf("Allocate of a full range: %v, want a Forbidden *NoFreePortError", err)
	}
	if want := "no host port in range 9000-9003 is free for tcp on 0.0.0.0"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if n := a.reservations(); n != 3 {
		t.Errorf("the table holds %d reservations, want 3", n)
	}

	// The search rotates: 9002 released, the next search starts after
	// 9003 (the last handed out), so 9000 comes before 9002 once freed.
	a.Release(als[1])
	a.Release(als[0])
	if al := mustAllocate(t, a, req); al.Port != 9000 {
		t.Errorf("after releasing 9000 and 9002: got %d, want 9000 (first after the cursor)", al.Port)
	}
	if al := mustAllocate(t, a, req); al.Port != 9002 {
		t.Errorf("next: got %d, want 9002", al.Port)
	}
	// A port just released is not handed out again while others are free.
	a.Release(als[2])
	a.Release(mustAllocate(t, a, Request{Proto: types.UDP, HostIP: any4, HostPort: 9100, HostPortEnd: 9101}))
	if al := mustAllocate(t, a, Request{Proto: types.UDP, HostIP: any4, HostPort: 9100, HostPortEnd: 9101}); al.Port != 9101 {
		t.Errorf("after releasing 9100: got %d, want 9101", al.Port)
	}
}

func TestEphemeral(t *testing.T) {
	ns := newNamespace(t)
	setSysctl(t, ns, "net.ipv4.ip_local_port_range", "40000 40009")
	setSysctl(t, ns, "net.ipv4.ip_local_reserved_ports", "40002,40004-40006,50000")
	a := newAllocator(t, ns)

	var got []int
	for range 6 {
		al := mustAllocate(t, a, Request{Proto: types.UDP, HostIP: any4})
		assertHeld(t, ns, types.UDP, any4, al.Port)
		got = append(got, int(al.Port))
	}
	slices.Sort(got)
	if want := []int{40000, 40001, 40003, 40007, 40008, 40009}; !slices.Equal(got, want) {
		t.Errorf("ephemeral ports = %v, want %v", got, want)
	}
	_, err := a.Allocate(Request{Proto: types.UDP, HostIP: any4})
	var noFree *NoFreePortError
	if !errors.As(err, &noFree) || !noFree.Ephemeral || noFree.Begin != 40000 || noFree.End != 40009 {
		t.Fatalf("Allocate of an exhausted ephemeral range: %v, want a *NoFreePortError for 40000-40009", err)
	}
	if !strings.Contains(err.Error(), "ephemeral range 40000-40009") {
		t.Errorf("error %q does not name the range", err)
	}

	// A change of the sysctl applies to the next request.
	setSysctl(t, ns, "net.ipv4.ip_local_port_range", "41000 41001")
	if al := mustAllocate(t, a, Request{Proto: types.UDP, HostIP: any4}); al.Port < 41000 || al.Port > 41001 {
		t.Errorf("after changing the range: got %d, want 41000-41001", al.Port)
	}
}

// TestEphemeralLongReservedList checks that an ip_local_reserved_ports
// value longer than the first read buffer is read whole: a sysctl answers
// only the first read, so a short buffer would cut the list.
func TestEphemeralLongReservedList(t *testing.T) {
	ns := newNamespace(t)
	setSysctl(t, ns, "net.ipv4.ip_local_port_range", "44000 44999")
	var even []string
	for p := 44000; p <= 44998; p += 2 {
		even = append(even, fmt.Sprint(p))
	}
	list := strings.Join(even, ",")
	setSysctl(t, ns, "net.ipv4.ip_local_reserved_ports", list)
	if len(list) <= 2*firstSysctlRead {
		t.Fatalf("the reserved list is %d bytes, want more than twice the first read (%d)", len(list), firstSysctlRead)
	}
	a := newAllocator(t, ns)
	for range 500 {
		al := mustAllocate(t, a, Request{Proto: types.TCP, HostIP: any4})
		if al.Port%2 == 0 {
			t.Fatalf("got reserved port %d", al.Port)
		}
	}
	if _, err := a.Allocate(Request{Proto: types.TCP, HostIP: any4}); err == nil {
		t.Errorf("a 501st port from 500 unreserved ones")
	}
}

func TestGroupSharesOnePort(t *testing.T) {
	ns := newNamespace(t)
	setSysctl(t, ns, "net.ipv4.ip_local_port_range", "42000 42003")
	a := newAllocator(t, ns)
	// Each of the first three ports is taken for one member only.
	occupy(t, ns, types.UDP, any4, 42000)
	occupy(t, ns, types.TCP, any6, 42001)
	mustAllocate(t, a, Request{Proto: types.UDP, HostIP: netip.IPv6Loopback(), HostPort: 42002})
	group := []Request{
		{Proto: types.TCP, HostIP: any4}, {Proto: types.TCP, HostIP: any6},
		{Proto: types.UDP, HostIP: any4}, {Proto: types.UDP, HostIP: any6},
	}
	for range 2 { // from any starting point of the rotation
		al := mustAllocate(t, a, group...)
		if al.Port != 42003 {
			t.Fatalf("group got port %d, want 42003, the only one free for all", al.Port)
		}
		for i, b := range al.Bindings {
			if b.Proto != group[i].Proto || b.HostIP != group[i].HostIP || b.Port != 42003 {
				t.Errorf("binding %d = %+v", i, b)
			}
			assertHeld(t, ns, b.Proto, b.HostIP, b.Port)
		}
		a.Release(al)
	}

	mustAllocate(t, a, Request{Proto: types.TCP, HostIP: any4, HostPort: 42003})
	before := a.reservations()
	_, err := a.Allocate(group...)
	var noFree *NoFreePortError
	if !errors.As(err, &noFree) {
		t.Fatalf("group without a common free port: %v, want a *NoFreePortError", err)
	}
	if want := "tcp on 0.0.0.0 and tcp on :: and udp on 0.0.0.0 and udp on ::"; !strings.HasSuffix(err.Error(), want) {
		t.Errorf("error %q does not name the bindings", err)
	}
	if n := a.reservations(); n != before {
		t.Errorf("a failed group left %d reservations, want %d", n, before)
	}
	for _, port := range []uint16{42000, 42001, 42002, 42003} {
		if port != 42001 {
			assertFree(t, ns, types.TCP, any6, port)
		}
		if port != 42000 {
			assertFree(t, ns, types.UDP, any4, port)
		}
	}
}

func TestAllocateGroups(t *testing.T) {
	ns := newNamespace(t)
	a := newAllocator(t, ns)
	web := []Request{{Proto: types.TCP, HostIP: any4, HostPort: 8080}, {Proto: types.TCP, HostIP: any6, HostPort: 8080}}
	dns := []Request{{Proto: types.UDP, HostIP: any4, HostPort: 5300, HostPortEnd: 5309}, {Proto: types.TCP, HostIP: any4, HostPort: 5300, HostPortEnd: 5309}}
	als, err := a.AllocateGroups(web, dns)
	if err != nil {
		t.Fatal(err)
	}
	if len(als) != 2 || als[0].Port != 8080 || als[1].Port != 5300 || len(als[1].Bindings) != 2 {
		t.Fatalf("AllocateGroups = %+v", als)
	}
	assertHeld(t, ns, types.UDP, any4, 5300)

	// The second group fails: the first, already bound, is let go.
	_, err = a.AllocateGroups([]Request{{Proto: types.TCP, HostIP: any4, HostPort: 8090}}, web)
	var inUse *PortInUseError
	if !errors.As(err, &inUse) || inUse.Port != 8080 {
		t.Fatalf("AllocateGroups over a held port: %v, want a *PortInUseError for 8080", err)
	}
	assertFree(t, ns, types.TCP, any4, 8090)
	if n := a.reservations(); n != 4 {
		t.Errorf("the table holds %d reservations, want the 4 of the first call", n)
	}
	// A bad group refuses the whole call before anything is bound.
	if _, err := a.AllocateGroups([]Request{{Proto: types.TCP, HostIP: any4, HostPort: 8091}}, nil); !types.IsBadRequest(err) {
		t.Errorf("AllocateGroups with an empty group: %v, want a BadRequestError", err)
	}
}

func TestReleaseAndClose(t *testing.T) {
	ns := newNamespace(t)
	a := newAllocator(t, ns)
	al := mustAllocate(t, a, Request{Proto: types.TCP, HostIP: any4, HostPort: 7000}, Request{Proto: types.TCP, HostIP: any6, HostPort: 7000})
	a.Release(al)
	a.Release(al) // harmless
	a.Release(nil)
	assertFree(t, ns, types.TCP, any4, 7000)
	assertFree(t, ns, types.TCP, any6, 7000)
	// The port can be allocated again, and the stale handle's release
	// does not touch the new allocation.
	al2 := mustAllocate(t, a, Request{Proto: types.TCP, HostIP: any4, HostPort: 7000})
	a.Release(al)
	assertHeld(t, ns, types.TCP, any4, 7000)

	mustAllocate(t, a, Request{Proto: types.UDP, HostIP: any4, HostPort: 7001})
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	assertFree(t, ns, types.TCP, any4, 7000)
	assertFree(t, ns, types.UDP, any4, 7001)
	a.Release(al2) // after Close: harmless
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_, err := a.Allocate(Request{Proto: types.TCP, HostIP: any4, HostPort: 7002})
	if !types.IsForbidden(err) || !errors.Is(err, ErrClosed) {
		t.Errorf("Allocate after Close: %v, want a Forbidden ErrClosed", err)
	}
}

// TestRestoreSamePort models a controller restart: the new Allocator asks
// for exactly the port the old one handed out.
func TestRestoreSamePort(t *testing.T) {
	ns := newNamespace(t)
	old := newAllocator(t, ns)
	group := []Request{{Proto: types.TCP, HostIP: any4}, {Proto: types.TCP, HostIP: any6}}
	al := mustAllocate(t, old, group...)
	old.Close() // what Stop, or the death of the process, does to the sockets

	restarted := newAllocator(t, ns)
	for i := range group {
		group[i].HostPort = al.Port
	}
	got := mustAllocate(t, restarted, group...)
	if got.Port != al.Port {
		t.Fatalf("restored port %d, want %d", got.Port, al.Port)
	}
	assertHeld(t, ns, types.TCP, any4, al.Port)
	assertHeld(t, ns, types.TCP, any6, al.Port)
}

func TestConcurrentAllocations(t *testing.T) {
	ns := newNamespace(t)
	setSysctl(t, ns, "net.ipv4.ip_local_port_range", "43000 43199")
	a := newAllocator(t, ns)
	const workers, each = 16, 10
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = map[uint16]int{}
		als  []*Allocation
	)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				req := []Request{{Proto: types.TCP, HostIP: any4}, {Proto: types.TCP, HostIP: any6}}
				if (w+i)%3 == 0 {
					req = []Request{{Proto: types.TCP, HostIP: any4, HostPort: 43000, HostPortEnd: 43199}}
				}
				al, err := a.Allocate(req...)
				if err != nil {
					t.Errorf("worker %d: %v", w, err)
					return
				}
				mu.Lock()
				seen[al.Port]++
				als = append(als, al)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != workers*each {
		t.Errorf("%d allocations got %d distinct ports", workers*each, len(seen))
	}
	for port, n := range seen {
		if n > 1 {
			t.Errorf("port %d handed out %d times", port, n)
		}
	}
	for _, al := range als {
		wg.Go(func() { a.Release(al) })
	}
	wg.Wait()
	if n := a.reservations(); n != 0 {
		t.Errorf("after releasing all, the table holds %d reservations", n)
	}
}

// TestCloseDuringAllocations checks that Close racing with allocations
// leaves no socket, sysctl file or table entry behind.
func TestCloseDuringAllocations(t *testing.T) {
	ns := newNamespace(t)
	setSysctl(t, ns, "net.ipv4.ip_local_port_range", "46000 46999")
	openFiles := func() int {
		entries, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(entries)
	}
	before := openFiles()
	a, err := New(ns)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	started := make(chan struct{}, 8)
	for range 8 {
		wg.Go(func() {
			// Signal once, after three allocations or on leaving early,
			// so Close is never waited for by a starved goroutine.
			signalled := false
			signal := func() {
				if !signalled {
					signalled = true
					started <- struct{}{}
				}
			}
			defer signal()
			for i := 0; ; i++ {
				_, err := a.Allocate(Request{Proto: types.UDP, HostIP: any4}, Request{Proto: types.UDP, HostIP: any6})
				if i == 2 {
					signal()
				}
				if errors.Is(err, ErrClosed) {
					if !types.IsForbidden(err) {
						t.Errorf("Allocate after Close: %v, want a ForbiddenError", err)
					}
					return
				}
				var full *NoFreePortError
				if errors.As(err, &full) {
					// The others took the whole range before Close:
					// wait for it.
					continue
				}
				if err != nil {
					t.Errorf("Allocate: %v", err)
					return
				}
			}
		})
	}
	for range 8 {
		<-started
	}
	a.Close()
	wg.Wait()
	if n := a.reservations(); n != 0 {
		t.Errorf("after Close the table holds %d reservations", n)
	}
	if after := openFiles(); after != before {
		t.Errorf("%d files open after Close, %d before", after, before)
	}
}

func TestSCTP(t *testing.T) {
	ns := newNamespace(t)
	a := newAllocator(t, ns)
	hasSCTP := kernelHasSCTP(t, ns)
	t.Logf("kernel SCTP: %v", hasSCTP)
	group := []Request{{Proto: types.SCTP, HostIP: any4, HostPort: 3868}, {Proto: types.SCTP, HostIP: any6, HostPort: 3868}}
	al := mustAllocate(t, a, group...)
	for _, b := range al.Bindings {
		if b.NoSocket == hasSCTP {
			t.Errorf("binding %+v: NoSocket = %v with kernel SCTP %v", b, b.NoSocket, hasSCTP)
		}
		if hasSCTP {
			assertHeld(t, ns, types.SCTP, b.HostIP, b.Port)
		}
	}
	// Held in the table either way.
	_, err := a.Allocate(Request{Proto: types.SCTP, HostIP: lo4, HostPort: 3868})
	var inUse *PortInUseError
	if !errors.As(err, &inUse) || !inUse.Allocated {
		t.Errorf("second SCTP allocation of the port: %v, want a *PortInUseError", err)
	}
	a.Release(al)
	al = mustAllocate(t, a, Request{Proto: types.SCTP, HostIP: lo4, HostPort: 3868})
	if al.Bindings[0].NoSocket == hasSCTP {
		t.Errorf("after release: %+v", al.Bindings[0])
	}
	if !hasSCTP && !a.sctpMissing.Load() {
		t.Errorf("the allocator did not remember that the kernel lacks SCTP")
	}
}

func TestTableOnlyFallback(t *testing.T) {
	for _, tc := range []struct {
		proto types.Protocol
		err   error
		want  bool
	}{
		{types.SCTP, unix.EPROTONOSUPPORT, true},
		{types.SCTP, unix.ESOCKTNOSUPPORT, true},
		{types.SCTP, fmt.Errorf("socket: %w", unix.EPROTONOSUPPORT), true},
		{types.SCTP, unix.EAFNOSUPPORT, false}, // no IPv6: an error, not a fallback
		{types.SCTP, unix.EACCES, false},
		{types.SCTP, unix.EMFILE, false},
		{types.SCTP, nil, false},
		{types.TCP, unix.EPROTONOSUPPORT, false},
		{types.UDP, unix.ESOCKTNOSUPPORT, false},
	} {
		if got := tableOnly(tc.proto, tc.err); got != tc.want {
			t.Errorf("tableOnly(%s, %v) = %v, want %v", tc.proto, tc.err, got, tc.want)
		}
	}
}

// panicNamespace fails the test if the allocator reaches the kernel.
type panicNamespace struct{ t *testing.T }

func (n panicNamespace) Do(func() error) error {
	n.t.Errorf("a bad request reached the namespace")
	return errors.New("unexpected Do")
}

func TestBadRequests(t *testing.T) {
	if _, err := New(nil); !types.IsBadRequest(err) {
		t.Errorf("New(nil): %v, want a BadRequestError", err)
	}
	a, err := New(panicNamespace{t})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		group []Request
		want  string
	}{
		{"empty", nil, "no bindings requested"},
		{"icmp", []Request{{Proto: types.ICMP, HostIP: any4, HostPort: 1}}, "only tcp, udp and sctp"},
		{"no host IP", []Request{{Proto: types.TCP, HostPort: 80}}, "no host IP"},
		{"zone", []Request{{Proto: types.TCP, HostIP: netip.MustParseAddr("fe80::1%eth0"), HostPort: 80}}, "zone"},
		{"reversed range", []Request{{Proto: types.TCP, HostIP: any4, HostPort: 90, HostPortEnd: 80}}, "range 90-80"},
		{"range from 0", []Request{{Proto: types.TCP, HostIP: any4, HostPortEnd: 80}}, "range 0-80"},
		{"different ports", []Request{{Proto: types.TCP, HostIP: any4, HostPort: 80}, {Proto: types.UDP, HostIP: any4, HostPort: 81}}, "different ports (80 and 81)"},
		{"overlap", []Request{{Proto: types.TCP, HostIP: any4, HostPort: 80}, {Proto: types.TCP, HostIP: netip.MustParseAddr("::ffff:127.0.0.1"), HostPort: 80}}, "overlap"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.Allocate(tc.group...)
			if !types.IsBadRequest(err) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Allocate(%v): %v, want a BadRequestError containing %q", tc.group, err, tc.want)
			}
		})
	}
}

func TestParsePortList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []portInterval
		err  bool
	}{
		{"", nil, false},
		{"\n", nil, false},
		{"8080\n", []portInterval{{8080, 8080}}, false},
		{"9000-9010,8080,9005-9020,9021", []portInterval{{8080, 8080}, {9000, 9021}}, false},
		{"1-65535", []portInterval{{1, 65535}}, false},
		{"10-5", nil, true},
		{"x", nil, true},
		{"70000", nil, true},
		{"1,,2", nil, true},
	} {
		got, err := parsePortList(tc.in)
		if (err != nil) != tc.err || !slices.Equal(got, tc.want) {
			t.Errorf("parsePortList(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
	r := ephemeralRange{reserved: []portInterval{{10, 10}, {20, 30}}}
	for port, want := range map[uint16]bool{9: false, 10: true, 11: false, 19: false, 20: true, 25: true, 30: true, 31: false, 65535: false} {
		if got := r.isReserved(port); got != want {
			t.Errorf("isReserved(%d) = %v, want %v", port, got, want)
		}
	}
}

func TestParsePortRange(t *testing.T) {
	for in, want := range map[string][2]int{
		"32768\t60999\n": {32768, 60999},
		"1024 1024":      {1024, 1024},
		"":               {-1},
		"5 4":            {-1},
		"0 10":           {-1},
		"1 2 3":          {-1},
	} {
		b, e, err := parsePortRange(in)
		if want[0] < 0 {
			if err == nil {
				t.Errorf("parsePortRange(%q) = %d, %d; want an error", in, b, e)
			}
			continue
		}
		if err != nil || int(b) != want[0] || int(e) != want[1] {
			t.Errorf("parsePortRange(%q) = %d, %d, %v; want %v", in, b, e, err, want)
		}
	}
}
