package portmapper

import (
	"log/slog"
	"net/netip"
	"testing"

	"github.com/netkit/libnetwork/portallocator"
	"github.com/netkit/libnetwork/portmapper/api"
	"github.com/netkit/libnetwork/types"
	"golang.org/x/sys/unix"
)

// TestNATMapUnmap: a fixed host port is reserved (another program cannot
// bind it) with a NAT rule to the container, and released by UnmapPorts;
// unmapping twice, or bindings the mapper never returned, is harmless.
func TestNATMapUnmap(t *testing.T) {
	ns := newNamespace(t)
	r := newRegistry(t, ns, nil)
	m := mustMapper(t, r, "")
	if m2 := mustMapper(t, r, NAT); m2 != m {
		t.Fatalf(`Mapper("nat") = %v, Mapper("") = %v: want the same mapper`, m2, m)
	}

	for _, proto := range []types.Protocol{types.TCP, types.UDP} {
		req := api.MapPortsRequest{
			Reqs:   []api.PortBindingReq{{Proto: proto, BackendIP: ctr4, BackendPort: 80, FrontendPort: 8080}},
			Labels: map[string]string{"ignored": "by nat"},
		}
		bs, err := m.MapPorts(t.Context(), req)
		if err != nil {
			t.Fatalf("MapPorts %s: %v", proto, err)
		}
		want := api.PortBinding{
			Proto: proto, BackendIP: ctr4, BackendPort: 80, FrontendIP: any4, FrontendPort: 8080, AllowForwarding: true,
			NAT: &api.NATRule{Proto: proto, FrontendIP: any4, FrontendPort: 8080, BackendIP: ctr4, BackendPort: 80},
		}
		if len(bs) != 1 || bs[0].NAT == nil || *bs[0].NAT != *want.NAT {
			t.Fatalf("MapPorts %s = %+v, want %+v (NAT %+v)", proto, bs, want, want.NAT)
		}
		got := bs[0]
		got.NAT, want.NAT = nil, nil
		if got != want {
			t.Fatalf("MapPorts %s = %+v, want %+v", proto, got, want)
		}
		if err := bs[0].NAT.Validate(); err != nil {
			t.Errorf("NAT rule: %v", err)
		}
		assertHeld(t, ns, proto, any4, 8080)
		assertHeld(t, ns, proto, netip.MustParseAddr("127.0.0.1"), 8080)

		// A binding the mapper never returned is ignored.
		other := bs[0]
		other.BackendIP = ctr4b
		if err := m.UnmapPorts(t.Context(), api.UnmapPortsRequest{PortBindings: []api.PortBinding{other}}); err != nil {
			t.Fatalf("UnmapPorts of an unknown binding: %v", err)
		}
		assertHeld(t, ns, proto, any4, 8080)

		for range 2 {
			if err := m.UnmapPorts(t.Context(), api.UnmapPortsRequest{PortBindings: bs}); err != nil {
				t.Fatalf("UnmapPorts: %v", err)
			}
			assertFree(t, ns, proto, any4, 8080)
		}
	}
}

// TestNATGroupSharesPort: the IPv4 and IPv6 bindings of one container port
// get one host port, ephemeral or from a range, skipping a port another
// program holds in one family only.
func TestNATGroupSharesPort(t *testing.T) {
	ns := newNamespace(t)
	m := mustMapper(t, newRegistry(t, ns, nil), NAT)

	t.Run("ephemeral", func(t *testing.T) {
		bs, err := m.MapPorts(t.Context(), api.MapPortsRequest{Reqs: []api.PortBindingReq{
			{Proto: types.TCP, BackendIP: ctr4, BackendPort: 80, FrontendIP: any4},
			{Proto: types.TCP, BackendIP: ctr6, BackendPort: 80}, // zero FrontendIP: all of IPv6
		}})
		if err != nil {
			t.Fatal(err)
		}
		if len(bs) != 2 || bs[0].FrontendPort == 0 || bs[0].FrontendPort != bs[1].FrontendPort {
			t.Fatalf("MapPorts = %+v, want one host port for both", bs)
		}
		if bs[0].FrontendIP != any4 || bs[1].FrontendIP != any6 || bs[1].NAT.FrontendIP != any6 || bs[1].NAT.BackendIP != ctr6 {
			t.Fatalf("MapPorts = %+v, want 0.0.0.0 and ::", bs)
		}
		port := bs[0].FrontendPort
		assertHeld(t, ns, types.TCP, any4, port)
		assertHeld(t, ns, types.TCP, any6, port)
		if err := m.UnmapPorts(t.Context(), api.UnmapPortsRequest{PortBindings: bs}); err != nil {
			t.Fatal(err)
		}
		assertFree(t, ns, types.TCP, any4, port)
		assertFree(t, ns, types.TCP, any6, port)
	})

	t.Run("range", func(t *testing.T) {
		occupy(t, ns, types.UDP, any6, 9000)
		bs, err := m.MapPorts(t.Context(), api.MapPortsRequest{Reqs: []api.PortBindingReq{
			{Proto: types.UDP, BackendIP: ctr4, BackendPort: 53, FrontendPort: 9000, FrontendPortEnd: 9010},
			{Proto: types.UDP, BackendIP: ctr6, BackendPort: 53, FrontendIP: any6, FrontendPort: 9000, FrontendPortEnd: 9010},
		}})
		if err != nil {
			t.Fatal(err)
		}
		if bs[0].FrontendPort != 9001 || bs[1].FrontendPort != 9001 {
			t.Fatalf("MapPorts = %+v, want 9001 for both (9000 is taken on ::)", bs)
		}
		assertFree(t, ns, types.UDP, any4, 9000) // the group let go of it

		// Unmapping part of the group keeps the shared port until the
		// last binding of it is unmapped.
		if err := m.UnmapPorts(t.Context(), api.UnmapPortsRequest{PortBindings: bs[:1]}); err != nil {
			t.Fatal(err)
		}
		assertHeld(t, ns, types.UDP, any6, 9001)
		if err := m.UnmapPorts(t.Context(), api.UnmapPortsRequest{PortBindings: bs[1:]}); err != nil {
			t.Fatal(err)
		}
		assertFree(t, ns, types.UDP, any4, 9001)
		assertFree(t, ns, types.UDP, any6, 9001)
	})
}

// TestNATPortInUse: a host port another program holds refuses the whole
// group with a *portallocator.PortInUseError, a types.ForbiddenError, and
// nothing of the group stays held; a second mapping of a port already
// mapped is refused the same way and leaves the first in place.
func TestNATPortInUse(t *testing.T) {
	ns := newNamespace(t)
	m := mustMapper(t, newRegistry(t, ns, nil), NAT)
	occupy(t, ns, types.TCP, any4, 8080)

	group := api.MapPortsRequest{Reqs: []api.PortBindingReq{
		{Proto: types.TCP, BackendIP: ctr6, BackendPort: 80, FrontendPort: 8080},
		{Proto: types.TCP, BackendIP: ctr4, BackendPort: 80, FrontendPort: 8080},
	}}
	bs, err := m.MapPorts(t.Context(), group)
	if bs != nil || err == nil {
		t.Fatalf("MapPorts = %+v, %v; want an error", bs, err)
	}
	pe := asError[*portallocator.PortInUseError](t, err)
	if pe.Port != 8080 || pe.Proto != types.TCP || pe.Allocated {
		t.Errorf("PortInUseError = %+v", pe)
	}
	if _, ok := err.(types.ForbiddenError); !ok {
		t.Errorf("error %v (%T) is not a types.ForbiddenError", err, err)
	}
	assertFree(t, ns, types.TCP, any6, 8080) // the IPv6 member was let go

	first, err := m.MapPorts(t.Context(), api.MapPortsRequest{Reqs: group.Reqs[:1]})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.MapPorts(t.Context(), api.MapPortsRequest{Reqs: []api.PortBindingReq{
		{Proto: types.TCP, BackendIP: netip.MustParseAddr("fd00::3"), BackendPort: 80, FrontendPort: 8080},
	}})
	if pe := asError[*portallocator.PortInUseError](t, err); !pe.Allocated {
		t.Errorf("second mapping of a mapped port: %+v, want Allocated", pe)
	}
	assertHeld(t, ns, types.TCP, any6, 8080)
	if err := m.UnmapPorts(t.Context(), api.UnmapPortsRequest{PortBindings: first}); err != nil {
		t.Fatal(err)
	}
}

// TestNATRefusesBadRequests: invalid requests, and a group whose members
// ask for different ports, are types.BadRequestErrors and reserve
// nothing.
func TestNATRefusesBadRequests(t *testing.T) {
	ns := newNamespace(t)
	r := newRegistry(t, ns, nil)
	m := mustMapper(t, r, NAT)
	for name, reqs := range map[string][]api.PortBindingReq{
		"icmp":           {{Proto: types.ICMP, BackendIP: ctr4, BackendPort: 80, FrontendPort: 8080}},
		"mixed families": {{Proto: types.TCP, BackendIP: ctr4, BackendPort: 80, FrontendIP: any6, FrontendPort: 8080}},
		"group ports differ": {
			{Proto: types.TCP, BackendIP: ctr4, BackendPort: 80, FrontendPort: 8080},
			{Proto: types.TCP, BackendIP: ctr6, BackendPort: 80, FrontendPort: 8081},
		},
		"second invalid": {
			{Proto: types.TCP, BackendIP: ctr4, BackendPort: 80, FrontendPort: 8080},
			{Proto: types.TCP, BackendIP: ctr6, BackendPort: 0, FrontendPort: 8080},
		},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := m.MapPorts(t.Context(), api.MapPortsRequest{Reqs: reqs})
			if _, ok := err.(types.BadRequestError); !ok {
				t.Fatalf("MapPorts: %v (%T), want a types.BadRequestError", err, err)
			}
			assertFree(t, ns, types.TCP, any4, 8080)
		})
	}
}

// TestNATSCTP: an SCTP port is held by a socket where the kernel has SCTP;
// without it, the reservation is in the allocator's table only and the
// mapper warns once per binding.
func TestNATSCTP(t *testing.T) {
	ns := newNamespace(t)
	logs := &logRecorder{}
	m := mustMapper(t, newRegistry(t, ns, func(c *Config) { c.Logger = slog.New(logs) }), NAT)
	bs, err := m.MapPorts(t.Context(), api.MapPortsRequest{Reqs: []api.PortBindingReq{
		{Proto: types.SCTP, BackendIP: ctr4, BackendPort: 9, FrontendPort: 9999},
		{Proto: types.SCTP, BackendIP: ctr6, BackendPort: 9, FrontendPort: 9999},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if bs[0].NAT == nil || bs[0].NAT.Proto != types.SCTP || bs[1].FrontendPort != 9999 {
		t.Fatalf("MapPorts = %+v", bs)
	}
	hasSCTP := true
	if err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_SCTP)
		if err != nil {
			hasSCTP = false
			return nil
		}
		return unix.Close(fd)
	}); err != nil {
		t.Fatal(err)
	}
	if hasSCTP {
		assertHeld(t, ns, types.SCTP, any4, 9999)
		if n := logs.count(slog.LevelWarn); n != 0 {
			t.Errorf("%d warnings with SCTP in the kernel, want none", n)
		}
	} else if n := logs.count(slog.LevelWarn); n != 2 {
		t.Errorf("%d warnings without SCTP in the kernel, want one per binding (2)", n)
	}
	if err := m.UnmapPorts(t.Context(), api.UnmapPortsRequest{PortBindings: bs}); err != nil {
		t.Fatal(err)
	}
}

// TestNATConcurrent: mappings made and unmapped concurrently by many
// callers get distinct ports and leave nothing held.
func TestNATConcurrent(t *testing.T) {
	ns := newNamespace(t)
	m := mustMapper(t, newRegistry(t, ns, nil), NAT)
	const n = 16
	errs := make(chan error, n)
	for i := range n {
		go func() {
			backend := netip.AddrFrom4([4]byte{10, 0, 1, byte(i + 2)})
			bs, err := m.MapPorts(t.Context(), api.MapPortsRequest{Reqs: []api.PortBindingReq{
				{Proto: types.TCP, BackendIP: backend, BackendPort: 80, FrontendPort: 20000, FrontendPortEnd: 20000 + n - 1},
			}})
			if err == nil {
				err = m.UnmapPorts(t.Context(), api.UnmapPortsRequest{PortBindings: bs})
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
