package osl

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netkit/libnetwork/internal/testutil"
	"github.com/netkit/libnetwork/types"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// newTestNamespace creates a namespace under a temporary directory and
// destroys it at cleanup.
func newTestNamespace(t testing.TB) *Namespace {
	t.Helper()
	n, err := NewNamespace(filepath.Join(t.TempDir(), "netns", "sb"))
	if err != nil {
		t.Fatalf("NewNamespace: %v", err)
	}
	t.Cleanup(func() {
		if err := n.Destroy(); err != nil {
			t.Errorf("Destroy: %v", err)
		}
	})
	return n
}

// currentNamespace opens the test's own namespace and closes it at cleanup.
func currentNamespace(t testing.TB) *Namespace {
	t.Helper()
	n, err := CurrentNamespace()
	if err != nil {
		t.Fatalf("CurrentNamespace: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// inode returns the inode of the file at path (following links).
func inode(t testing.TB, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return st.Ino
}

func fdInode(t testing.TB, fd int) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatalf("fstat: %v", err)
	}
	return st.Ino
}

// vethIn creates a veth pair whose end host stays in the test namespace and
// whose end peer is created directly inside n.
func vethIn(t testing.TB, n *Namespace, host, peer string) {
	t.Helper()
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: host},
		PeerName:      peer,
		PeerNamespace: netlink.NsFd(n.Fd()),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("creating veth %s/%s: %v", host, peer, err)
	}
	t.Cleanup(func() { _ = netlink.LinkDel(veth) })
}

func mustCIDR(t testing.TB, s string) *net.IPNet {
	t.Helper()
	ip, ipNet, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	ipNet.IP = ip
	return ipNet
}

func findIface(t testing.TB, n *Namespace, name string) (Iface, bool) {
	t.Helper()
	ifaces, err := n.Interfaces()
	if err != nil {
		t.Fatalf("Interfaces: %v", err)
	}
	for _, i := range ifaces {
		if i.Name == name {
			return i, true
		}
	}
	return Iface{}, false
}

func addrStrings(addrs []*net.IPNet) []string {
	var s []string
	for _, a := range addrs {
		s = append(s, a.String())
	}
	return s
}

func TestNewNamespaceAndDestroy(t *testing.T) {
	testutil.RequireRoot(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before := inode(t, threadNetnsPath)

	path := filepath.Join(t.TempDir(), "netns", "sb1")
	n, err := NewNamespace(path)
	if err != nil {
		t.Fatalf("NewNamespace: %v", err)
	}
	if got := inode(t, threadNetnsPath); got != before {
		t.Errorf("NewNamespace changed the calling thread's netns: inode %d, was %d", got, before)
	}
	if !IsNamespaceMount(path) {
		t.Errorf("IsNamespaceMount(%s) = false after NewNamespace", path)
	}
	if ino := fdInode(t, n.Fd()); ino == before || ino != inode(t, path) {
		t.Errorf("namespace inode %d: want the mount's (%d), not ours (%d)", ino, inode(t, path), before)
	}
	if n.Path() != path {
		t.Errorf("Path() = %q, want %q", n.Path(), path)
	}
	lo, ok := findIface(t, n, "lo")
	if !ok || !lo.Up {
		t.Errorf("lo inside the namespace: %+v (found %v), want up", lo, ok)
	}
	if ifaces, _ := n.Interfaces(); len(ifaces) != 1 {
		t.Errorf("new namespace has %d interfaces, want only lo", len(ifaces))
	}

	if err := n.Destroy(); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Destroy, %s: %v, want it gone", path, err)
	}
	if IsNamespaceMount(path) {
		t.Errorf("IsNamespaceMount(%s) = true after Destroy", path)
	}
	if n.Fd() != -1 || n.Handle() != nil {
		t.Errorf("after Destroy: Fd %d, Handle %v; want -1, nil", n.Fd(), n.Handle())
	}
	if _, err := n.Interfaces(); !errors.Is(err, ErrClosed) {
		t.Errorf("Interfaces after Destroy: %v, want ErrClosed", err)
	}
	if err := n.Destroy(); err != nil {
		t.Errorf("second Destroy: %v", err)
	}
}

func TestNewNamespaceExistingFile(t *testing.T) {
	testutil.RequireRoot(t)
	path := filepath.Join(t.TempDir(), "taken")
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewNamespace(path); !types.IsForbidden(err) {
		t.Errorf("NewNamespace on an existing file: %v, want a ForbiddenError", err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "x" {
		t.Errorf("existing file after the failed NewNamespace: %q, %v; want it untouched", b, err)
	}
}

func TestDo(t *testing.T) {
	testutil.RequireRoot(t)
	n := newTestNamespace(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before := inode(t, threadNetnsPath)

	var inside uint64
	err := n.Do(func() error {
		inside = inode(t, threadNetnsPath)
		return nil
	})
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if want := inode(t, n.Path()); inside != want {
		t.Errorf("inside Do the thread's netns inode is %d, want the namespace's %d", inside, want)
	}
	if got := inode(t, threadNetnsPath); got != before {
		t.Errorf("Do changed the calling thread's netns: inode %d, was %d", got, before)
	}

	wantErr := errors.New("fn failed")
	if err := n.Do(func() error { return wantErr }); !errors.Is(err, wantErr) {
		t.Errorf("Do returned %v, want fn's error", err)
	}

	func() {
		defer func() {
			if v := recover(); v != "boom" {
				t.Errorf("Do with a panicking fn: recovered %v, want the panic raised in the caller", v)
			}
		}()
		_ = n.Do(func() error { panic("boom") })
	}()
}

func TestDoAfterClose(t *testing.T) {
	testutil.RequireRoot(t)
	n := newTestNamespace(t)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	ran := false
	if err := n.Do(func() error { ran = true; return nil }); !errors.Is(err, ErrClosed) || ran {
		t.Errorf("Do after Close: %v (fn ran: %v), want ErrClosed without running fn", err, ran)
	}
}

func TestOpenNamespace(t *testing.T) {
	testutil.RequireRoot(t)
	plain := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		path string
		is   func(error) bool
	}{
		{"regular file", plain, types.IsBadRequest},
		{"mount namespace", "/proc/self/ns/mnt", types.IsBadRequest},
		{"missing", filepath.Join(t.TempDir(), "none"), types.IsNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := OpenNamespace(tc.path)
			if err == nil {
				n.Close()
			}
			if !tc.is(err) {
				t.Errorf("OpenNamespace(%s): %v, want a classified error", tc.path, err)
			}
		})
	}
}

func TestOpenNamespaceAdoptsMount(t *testing.T) {
	testutil.RequireRoot(t)
	path := filepath.Join(t.TempDir(), "sb")
	created, err := NewNamespace(path)
	if err != nil {
		t.Fatal(err)
	}
	// As after a restart: the mount outlives the object.
	if err := created.Close(); err != nil {
		t.Fatal(err)
	}
	n, err := OpenNamespace(path)
	if err != nil {
		t.Fatalf("OpenNamespace(%s): %v", path, err)
	}
	if lo, ok := findIface(t, n, "lo"); !ok || !lo.Up {
		t.Errorf("adopted namespace: lo %+v (found %v), want the up lo NewNamespace left", lo, ok)
	}
	if err := n.Destroy(); err != nil {
		t.Fatalf("Destroy of an adopted mount: %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Destroy, %s: %v, want it gone", path, err)
	}
}

func TestOpenNamespaceProc(t *testing.T) {
	testutil.RequireRoot(t)
	n, err := OpenNamespace("/proc/self/ns/net")
	if err != nil {
		t.Fatalf("OpenNamespace(/proc/self/ns/net): %v", err)
	}
	defer n.Close()
	if err := n.Destroy(); !types.IsForbidden(err) {
		t.Errorf("Destroy of /proc/self/ns/net: %v, want a ForbiddenError", err)
	}
	if IsNamespaceMount("/proc/self/ns/net") {
		t.Error("IsNamespaceMount(/proc/self/ns/net) = true, want false: it is a link, not a mount")
	}
}

func TestCurrentNamespace(t *testing.T) {
	testutil.RequireRoot(t)
	n := currentNamespace(t)
	runtime.LockOSThread()
	ours := inode(t, threadNetnsPath)
	runtime.UnlockOSThread()
	if got := fdInode(t, n.Fd()); got != ours {
		t.Errorf("CurrentNamespace inode %d, want the process's %d", got, ours)
	}
	if n.Path() != "" {
		t.Errorf("Path() = %q, want \"\"", n.Path())
	}
	if err := n.Destroy(); !types.IsForbidden(err) {
		t.Errorf("Destroy of the current namespace: %v, want a ForbiddenError", err)
	}
	if _, ok := findIface(t, n, "lo"); !ok {
		t.Error("the current namespace is unusable after the refused Destroy")
	}
}

func TestConfigureInterface(t *testing.T) {
	testutil.RequireRoot(t)
	n := newTestNamespace(t)
	vethIn(t, n, "vh-conf", "eth0")
	c := IfaceConfig{
		Name:   "eth0",
		Addr:   mustCIDR(t, "10.10.0.2/24"),
		AddrV6: mustCIDR(t, "fd00:10::2/64"),
		MTU:    1400,
		Routes: []Route{
			{Dst: mustCIDR(t, "10.20.0.0/16"), Gw: net.ParseIP("10.10.0.1")},
			{Dst: mustCIDR(t, "10.30.0.0/24")},
			{Dst: mustCIDR(t, "fd00:20::/64"), Gw: net.ParseIP("fd00:10::1")},
		},
	}
	if err := n.ConfigureInterface(c); err != nil {
		t.Fatalf("ConfigureInterface: %v", err)
	}
	// Replayed after a restart.
	if err := n.ConfigureInterface(c); err != nil {
		t.Fatalf("ConfigureInterface again: %v", err)
	}

	eth0, ok := findIface(t, n, "eth0")
	if !ok {
		t.Fatal("eth0 not found")
	}
	if !eth0.Up || eth0.MTU != 1400 || eth0.Type != "veth" || len(eth0.MAC) != 6 {
		t.Errorf("eth0 = %+v, want an up veth with MTU 1400 and a MAC", eth0)
	}
	addrs := addrStrings(eth0.Addrs)
	for _, want := range []string{"10.10.0.2/24", "fd00:10::2/64"} {
		if !slices.Contains(addrs, want) {
			t.Errorf("eth0 addresses %v lack %s", addrs, want)
		}
	}

	routes, err := n.Handle().RouteList(nil, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range routes {
		if r.Dst != nil && r.LinkIndex == eth0.Index {
			got = append(got, r.Dst.String()+" via "+r.Gw.String())
		}
	}
	for _, want := range []string{"10.20.0.0/16 via 10.10.0.1", "10.30.0.0/24 via <nil>", "fd00:20::/64 via fd00:10::1"} {
		if !slices.Contains(got, want) {
			t.Errorf("routes on eth0 %v lack %s", got, want)
		}
	}
}

func TestConfigureInterfaceUndo(t *testing.T) {
	testutil.RequireRoot(t)
	n := newTestNamespace(t)
	vethIn(t, n, "vh-undo", "eth0")
	c := IfaceConfig{
		Name:   "eth0",
		Addr:   mustCIDR(t, "10.10.0.2/24"),
		AddrV6: mustCIDR(t, "fd00:10::2/64"),
		MTU:    1400,
		// The gateway is not on any connected network: the kernel refuses.
		Routes: []Route{{Dst: mustCIDR(t, "10.20.0.0/16"), Gw: net.ParseIP("192.168.77.1")}},
	}
	if err := n.ConfigureInterface(c); err == nil {
		t.Fatal("ConfigureInterface with an unreachable gateway succeeded")
	}
	eth0, ok := findIface(t, n, "eth0")
	if !ok {
		t.Fatal("eth0 not found")
	}
	if eth0.Up || eth0.MTU == 1400 || len(eth0.Addrs) != 0 {
		t.Errorf("after the failed ConfigureInterface eth0 = %+v, want it down, with its MTU and no address", eth0)
	}
}

func TestConfigureInterfaceErrors(t *testing.T) {
	testutil.RequireRoot(t)
	n := newTestNamespace(t)
	for _, tc := range []struct {
		name string
		c    IfaceConfig
		is   func(error) bool
	}{
		{"no name", IfaceConfig{}, types.IsBadRequest},
		{"v6 as v4", IfaceConfig{Name: "eth0", Addr: mustCIDR(t, "fd00::1/64")}, types.IsBadRequest},
		{"v4 as v6", IfaceConfig{Name: "eth0", AddrV6: mustCIDR(t, "10.0.0.1/24")}, types.IsBadRequest},
		{"mixed route", IfaceConfig{Name: "eth0", Routes: []Route{{Dst: mustCIDR(t, "10.0.0.0/8"), Gw: net.ParseIP("fd00::1")}}}, types.IsBadRequest},
		{"missing link", IfaceConfig{Name: "nope0"}, types.IsNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := n.ConfigureInterface(tc.c); !tc.is(err) {
				t.Errorf("ConfigureInterface(%+v): %v, want a classified error", tc.c, err)
			}
		})
	}
}

func defaultRoutes(t *testing.T, n *Namespace, family int) []netlink.Route {
	t.Helper()
	routes, err := n.Handle().RouteList(nil, family)
	if err != nil {
		t.Fatal(err)
	}
	var defs []netlink.Route
	for _, r := range routes {
		if ones, _ := r.Dst.Mask.Size(); r.Dst == nil || ones == 0 {
			defs = append(defs, r)
		}
	}
	return defs
}

func TestDefaultGateway(t *testing.T) {
	testutil.RequireRoot(t)
	n := newTestNamespace(t)
	vethIn(t, n, "vh-gw", "eth0")
	err := n.ConfigureInterface(IfaceConfig{Name: "eth0", Addr: mustCIDR(t, "10.10.0.2/24"), AddrV6: mustCIDR(t, "fd00:10::2/64")})
	if err != nil {
		t.Fatal(err)
	}
	for _, gw := range []string{"10.10.0.1", "10.10.0.254", "fd00:10::1"} {
		if err := n.SetDefaultGateway(net.ParseIP(gw), "eth0"); err != nil {
			t.Fatalf("SetDefaultGateway(%s): %v", gw, err)
		}
	}
	v4 := defaultRoutes(t, n, netlink.FAMILY_V4)
	if len(v4) != 1 || !v4[0].Gw.Equal(net.ParseIP("10.10.0.254")) {
		t.Errorf("IPv4 default routes %v, want only the replacing one via 10.10.0.254", v4)
	}
	v6 := defaultRoutes(t, n, netlink.FAMILY_V6)
	if len(v6) != 1 || !v6[0].Gw.Equal(net.ParseIP("fd00:10::1")) {
		t.Errorf("IPv6 default routes %v, want one via fd00:10::1", v6)
	}

	if err := n.UnsetDefaultGateway(false); err != nil {
		t.Fatalf("UnsetDefaultGateway(v4): %v", err)
	}
	if r := defaultRoutes(t, n, netlink.FAMILY_V4); len(r) != 0 {
		t.Errorf("IPv4 default routes after Unset: %v", r)
	}
	if r := defaultRoutes(t, n, netlink.FAMILY_V6); len(r) != 1 {
		t.Errorf("IPv6 default routes after unsetting IPv4: %v, want it kept", r)
	}
	if err := n.UnsetDefaultGateway(false); err != nil {
		t.Errorf("UnsetDefaultGateway without a default route: %v", err)
	}
	if err := n.UnsetDefaultGateway(true); err != nil {
		t.Fatalf("UnsetDefaultGateway(v6): %v", err)
	}
	if r := defaultRoutes(t, n, netlink.FAMILY_V6); len(r) != 0 {
		t.Errorf("IPv6 default routes after Unset: %v", r)
	}
	if err := n.SetDefaultGateway(net.ParseIP("10.10.0.1"), "nope0"); !types.IsNotFound(err) {
		t.Errorf("SetDefaultGateway on a missing link: %v, want a NotFoundError", err)
	}
}

// TestDefaultInterface: a default route through the interface itself
// replaces one through a gateway, and the reverse, per family.
func TestDefaultInterface(t *testing.T) {
	testutil.RequireRoot(t)
	n := newTestNamespace(t)
	vethIn(t, n, "vh-di", "eth0")
	if err := n.ConfigureInterface(IfaceConfig{Name: "eth0", Addr: mustCIDR(t, "10.11.0.2/24"), AddrV6: mustCIDR(t, "fd00:11::2/64")}); err != nil {
		t.Fatal(err)
	}
	if err := n.SetDefaultGateway(net.ParseIP("10.11.0.1"), "eth0"); err != nil {
		t.Fatal(err)
	}
	for _, v6 := range []bool{false, true} {
		if err := n.SetDefaultInterface("eth0", v6); err != nil {
			t.Fatalf("SetDefaultInterface(v6=%v): %v", v6, err)
		}
	}
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		defs := defaultRoutes(t, n, family)
		// IPv6 routes have no scope; the kernel reports universe.
		if len(defs) != 1 || defs[0].Gw != nil || (family == netlink.FAMILY_V4 && defs[0].Scope != netlink.SCOPE_LINK) {
			t.Errorf("family %d: default routes %v, want one through eth0 without gateway", family, defs)
		}
	}
	if err := n.SetDefaultGateway(net.ParseIP("10.11.0.1"), "eth0"); err != nil {
		t.Fatal(err)
	}
	if defs := defaultRoutes(t, n, netlink.FAMILY_V4); len(defs) != 1 || !defs[0].Gw.Equal(net.ParseIP("10.11.0.1")) {
		t.Errorf("IPv4 default routes %v, want the gateway's to replace the interface's", defs)
	}
	if err := n.SetDefaultInterface("nope0", false); !types.IsNotFound(err) {
		t.Errorf("SetDefaultInterface on a missing link: %v, want a NotFoundError", err)
	}
}

func TestRetireInterface(t *testing.T) {
	testutil.RequireRoot(t)
	n := newTestNamespace(t)
	vethIn(t, n, "vh-ret1", "eth0")
	err := n.ConfigureInterface(IfaceConfig{Name: "eth0", Addr: mustCIDR(t, "10.10.0.2/24"), AddrV6: mustCIDR(t, "fd00:10::2/64")})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.RetireInterface("eth0", "tomb0"); err != nil {
		t.Fatalf("RetireInterface: %v", err)
	}
	if _, ok := findIface(t, n, "eth0"); ok {
		t.Error("eth0 still exists after RetireInterface")
	}
	tomb, ok := findIface(t, n, "tomb0")
	if !ok {
		t.Fatal("tomb0 not found after RetireInterface")
	}
	if tomb.Up || len(tomb.Addrs) != 0 {
		t.Errorf("retired link %+v, want it down without addresses", tomb)
	}
	// The name is free: a new endpoint can join at once.
	vethIn(t, n, "vh-ret2", "eth0")
	if err := n.ConfigureInterface(IfaceConfig{Name: "eth0", Addr: mustCIDR(t, "10.10.0.2/24")}); err != nil {
		t.Errorf("configuring a new eth0 with the retired address: %v", err)
	}
	if err := n.RetireInterface("eth1", "tomb0"); err != nil {
		t.Errorf("RetireInterface replayed (eth1 gone, tomb0 there): %v", err)
	}
	if err := n.RetireInterface("eth1", "tomb1"); !types.IsNotFound(err) {
		t.Errorf("RetireInterface of a missing link: %v, want a NotFoundError", err)
	}
	if err := n.RetireInterface("eth0", "tomb0"); !types.IsForbidden(err) {
		t.Errorf("RetireInterface onto a taken tombstone: %v, want a ForbiddenError", err)
	}
}

func TestDeleteInterface(t *testing.T) {
	testutil.RequireRoot(t)
	n := newTestNamespace(t)
	vethIn(t, n, "vh-del", "eth0")
	if err := n.DeleteInterface("eth0"); err != nil {
		t.Fatalf("DeleteInterface: %v", err)
	}
	if _, ok := findIface(t, n, "eth0"); ok {
		t.Error("eth0 still exists after DeleteInterface")
	}
	if err := n.DeleteInterface("eth0"); err != nil {
		t.Errorf("DeleteInterface of a missing link: %v, want nil", err)
	}
}

func TestMoveInterface(t *testing.T) {
	testutil.RequireRoot(t)
	n := newTestNamespace(t)
	host := currentNamespace(t)
	for _, name := range []string{"mv0", "mv1"} {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}
		if err := netlink.LinkAdd(veth); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if l, err := netlink.LinkByName(name); err == nil {
				_ = netlink.LinkDel(l)
			}
		})
	}
	if err := n.MoveInterface(host.Handle(), "mv0", "eth1"); err != nil {
		t.Fatalf("MoveInterface: %v", err)
	}
	if _, ok := findIface(t, n, "eth1"); !ok {
		t.Error("eth1 not found inside after MoveInterface")
	}
	if _, ok := findIface(t, host, "mv0"); ok {
		t.Error("mv0 still in the host namespace after MoveInterface")
	}
	if err := n.MoveInterface(host.Handle(), "mv1", "eth1"); !types.IsForbidden(err) {
		t.Errorf("MoveInterface onto a taken name: %v, want a ForbiddenError", err)
	}
	if _, ok := findIface(t, host, "mv1"); !ok {
		t.Error("mv1 left the host namespace although the move was refused")
	}
	if err := n.MoveInterface(host.Handle(), "nope0", "eth2"); !types.IsNotFound(err) {
		t.Errorf("MoveInterface of a missing link: %v, want a NotFoundError", err)
	}
}

func TestStatistics(t *testing.T) {
	testutil.RequireRoot(t)
	n := newTestNamespace(t)
	host := currentNamespace(t)
	vethIn(t, n, "vh-stat", "eth0")
	if err := host.ConfigureInterface(IfaceConfig{Name: "vh-stat", Addr: mustCIDR(t, "10.11.0.1/24")}); err != nil {
		t.Fatal(err)
	}
	if err := n.ConfigureInterface(IfaceConfig{Name: "eth0", Addr: mustCIDR(t, "10.11.0.2/24")}); err != nil {
		t.Fatal(err)
	}
	before, err := n.Statistics()
	if err != nil {
		t.Fatalf("Statistics: %v", err)
	}
	if _, ok := before["lo"]; ok {
		t.Error("Statistics reports lo")
	}
	if before["eth0"] == nil {
		t.Fatalf("Statistics %v lack eth0", before)
	}

	// A UDP echo inside the sandbox: the socket is bound inside through Do.
	var server net.PacketConn
	err = n.Do(func() error {
		var err error
		server, err = net.ListenPacket("udp4", "10.11.0.2:0")
		return err
	})
	if err != nil {
		t.Fatalf("listening inside the namespace: %v", err)
	}
	defer server.Close()
	client, err := net.Dial("udp4", server.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	payload := []byte(strings.Repeat("x", 1000))
	if _, err := client.Write(payload); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2000)
	_ = server.SetReadDeadline(time.Now().Add(5 * time.Second))
	nr, from, err := server.ReadFrom(buf)
	if err != nil || nr != len(payload) {
		t.Fatalf("reading inside the namespace: %d bytes, %v", nr, err)
	}
	if _, err := server.WriteTo(buf[:nr], from); err != nil {
		t.Fatal(err)
	}
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Read(buf); err != nil {
		t.Fatalf("reading the echo: %v", err)
	}

	after, err := n.Statistics()
	if err != nil {
		t.Fatal(err)
	}
	b, a := before["eth0"], after["eth0"]
	if a.RxBytes < b.RxBytes+uint64(len(payload)) || a.TxBytes < b.TxBytes+uint64(len(payload)) || a.RxPackets <= b.RxPackets {
		t.Errorf("eth0 counters did not grow by the datagrams: before %v, after %v", b, a)
	}
}

func TestSetSysctl(t *testing.T) {
	testutil.RequireRoot(t)
	n := newTestNamespace(t)
	const file = "/proc/sys/net/ipv4/ip_forward"
	hostBefore, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	want := "1"
	if strings.TrimSpace(string(hostBefore)) == "1" {
		want = "0"
	}
	if err := n.SetSysctl("net.ipv4.ip_forward", want); err != nil {
		t.Fatalf("SetSysctl: %v", err)
	}
	var inside []byte
	if err := n.Do(func() error { inside, err = os.ReadFile(file); return err }); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(inside)) != want {
		t.Errorf("ip_forward inside = %q, want %q", inside, want)
	}
	if hostAfter, _ := os.ReadFile(file); string(hostAfter) != string(hostBefore) {
		t.Errorf("SetSysctl changed the caller's ip_forward: %q, was %q", hostAfter, hostBefore)
	}
	if err := n.SetSysctl("net.ipv4.no_such_knob", "1"); !types.IsNotFound(err) {
		t.Errorf("SetSysctl of a missing key: %v, want a NotFoundError", err)
	}
	if err := n.SetSysctl("kernel.hostname", "x"); !types.IsBadRequest(err) {
		t.Errorf("SetSysctl of a non-network key: %v, want a BadRequestError", err)
	}
}

func TestSysctlPath(t *testing.T) {
	for _, tc := range []struct {
		key, want string
		ok        bool
	}{
		{"net.ipv4.ip_forward", "/proc/sys/net/ipv4/ip_forward", true},
		{"net.ipv6.conf.eth0.disable_ipv6", "/proc/sys/net/ipv6/conf/eth0/disable_ipv6", true},
		{"net.ipv4.conf.eth0/100.forwarding", "/proc/sys/net/ipv4/conf/eth0.100/forwarding", true},
		{"kernel.hostname", "", false},
		{"net", "", false},
		{"net..ip_forward", "", false},
		{"net.ipv4.conf./.x", "", false},
		{"net.ipv4.conf.//.x", "", false},
		{"", "", false},
	} {
		got, err := sysctlPath(tc.key)
		if tc.ok && (err != nil || got != tc.want) {
			t.Errorf("sysctlPath(%q) = %q, %v; want %q", tc.key, got, err, tc.want)
		}
		if !tc.ok && !types.IsBadRequest(err) {
			t.Errorf("sysctlPath(%q) = %q, %v; want a BadRequestError", tc.key, got, err)
		}
	}
}

func TestCheckIfName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"eth0", true},
		{"veth-1234abcd", true},
		{"123456789012345", true},
		{"1234567890123456", false},
		{"", false},
		{"a/b", false},
		{"a b", false},
		{"a:1", false},
		{"..", false},
	} {
		if err := checkIfName("test", tc.name); (err == nil) != tc.ok {
			t.Errorf("checkIfName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// AdoptNamespace brings up the lo of a runtime's namespace, which a fresh
// namespace has down.
func TestAdoptNamespaceBringsLoUp(t *testing.T) {
	testutil.RequireRoot(t)
	cmd := exec.Command("unshare", "-n", "sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	src := fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)
	self, err := os.Stat("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if st, err := os.Stat(src); err == nil && !os.SameFile(st, self) {
			break
		}
		if i == 3000 {
			t.Fatal("process never entered its namespace")
		}
		time.Sleep(10 * time.Millisecond)
	}
	n, err := AdoptNamespace(src, filepath.Join(t.TempDir(), "adopted"))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Destroy()
	if lo, ok := findIface(t, n, "lo"); !ok || !lo.Up {
		t.Errorf("adopted namespace: lo %+v (found %v), want it up", lo, ok)
	}
}
