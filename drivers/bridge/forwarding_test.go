package bridge

import (
	"errors"
	"testing"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/drivers/internal/drivertest"
	"github.com/netkit/libnetwork/firewall"
	"github.com/netkit/libnetwork/internal/testutil"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/osl"
)

// forwardingDriver returns a driver and its firewall on a namespace of the
// test's own, whose forwarding is off; setSysctl replaces the namespace's
// sysctl writer when not nil.
func forwardingDriver(t *testing.T, noDrop bool, setSysctl func(key, value string) error) (*Driver, *firewall.Firewall, *osl.Namespace) {
	t.Helper()
	testutil.RequireRoot(t)
	ns := drivertest.NewNamespace(t)
	logger := drivertest.Logger(t)
	fw, err := firewall.New(ns.Fd(), logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fw.Close() })
	if err := fw.Init(); err != nil {
		t.Fatal(err)
	}
	if setSysctl == nil {
		setSysctl = ns.SetSysctl
	}
	d, err := New(Config{Logger: logger, Firewall: fw, Host: ns.Handle(), SetSysctl: setSysctl, Sysctl: ns.Sysctl, ForwardingNoDrop: noDrop})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d, fw, ns
}

func createV4Network(t *testing.T, d *Driver, nid string) error {
	t.Helper()
	v4 := []driverapi.IPAMData{drivertest.IPAMData(t, "10.77.0.0/24", "10.77.0.1")}
	return d.CreateNetwork(nid, map[string]interface{}{netlabel.EnableIPv6: false}, v4, nil)
}

func sysctl(t *testing.T, ns *osl.Namespace, key string) string {
	t.Helper()
	v, err := ns.Sysctl(key)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestForwardingDropOnlyForTheFamilyTurnedOn(t *testing.T) {
	d, fw, ns := forwardingDriver(t, false, nil)
	if err := createV4Network(t, d, "af00000000000001"); err != nil {
		t.Fatal(err)
	}
	if got := sysctl(t, ns, "net.ipv4.ip_forward"); got != "1" {
		t.Errorf("ip_forward = %s, want 1", got)
	}
	if got := sysctl(t, ns, "net.ipv6.conf.all.forwarding"); got != "0" {
		t.Errorf("an IPv4-only network turned IPv6 forwarding on (%s)", got)
	}
	if !fw.ForwardDrop(firewall.IPv4) || fw.ForwardDrop(firewall.IPv6) {
		t.Errorf("ForwardDrop = %v (v4), %v (v6); want v4 only", fw.ForwardDrop(firewall.IPv4), fw.ForwardDrop(firewall.IPv6))
	}
}

func TestForwardingFoundOnGetsNoDrop(t *testing.T) {
	d, fw, ns := forwardingDriver(t, false, nil)
	if err := ns.SetSysctl("net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	if err := createV4Network(t, d, "af00000000000002"); err != nil {
		t.Fatal(err)
	}
	if fw.ForwardDrop(firewall.IPv4) {
		t.Error("forwarding found on got a drop")
	}
}

func TestForwardingNoDropDriver(t *testing.T) {
	d, fw, ns := forwardingDriver(t, true, nil)
	if err := createV4Network(t, d, "af00000000000003"); err != nil {
		t.Fatal(err)
	}
	if got := sysctl(t, ns, "net.ipv4.ip_forward"); got != "1" {
		t.Errorf("ip_forward = %s, want 1", got)
	}
	if fw.ForwardDrop(firewall.IPv4) {
		t.Error("ForwardingNoDrop still dropped")
	}
}

// The drop goes in before forwarding is turned on; if the sysctl cannot
// be written, the network is not created and the drop is taken out again.
func TestForwardingDropUndoneWhenSysctlFails(t *testing.T) {
	errNoWrite := errors.New("read-only /proc/sys")
	var dropWhenWritten bool
	var fw *firewall.Firewall
	d, fw, ns := forwardingDriver(t, false, func(key, value string) error {
		if key == "net.ipv4.ip_forward" {
			dropWhenWritten = fw.ForwardDrop(firewall.IPv4)
			return errNoWrite
		}
		return nil
	})
	err := createV4Network(t, d, "af00000000000004")
	if !errors.Is(err, errNoWrite) {
		t.Fatalf("CreateNetwork with an unwritable ip_forward: %v, want the write's error", err)
	}
	if !dropWhenWritten {
		t.Error("forwarding was turned on before the drop was in place")
	}
	if fw.ForwardDrop(firewall.IPv4) {
		t.Error("the drop stayed after turning forwarding on failed")
	}
	if got := sysctl(t, ns, "net.ipv4.ip_forward"); got != "0" {
		t.Errorf("ip_forward = %s, want 0", got)
	}
}
