package ipvlan

import (
	"testing"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/drivers/internal/drivertest"
	"github.com/netkit/libnetwork/internal/testutil"
	"github.com/netkit/libnetwork/osl"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// testDriver returns a driver on the test namespace.
func testDriver(t testing.TB) (*Driver, *osl.Namespace) {
	t.Helper()
	testutil.RequireRoot(t)
	host := drivertest.CurrentNamespace(t)
	d, err := New(Config{Logger: drivertest.Logger(t), Host: host.Handle()})
	if err != nil {
		t.Fatal(err)
	}
	return d, host
}

// lanNetwork creates network nid on parent with mode and flag ("" for
// the default) on 192.168.90.0/24.
func lanNetwork(t testing.TB, d *Driver, nid, parent, mode, flag string) {
	t.Helper()
	kv := []string{ParentOption, parent}
	if mode != "" {
		kv = append(kv, ModeOption, mode)
	}
	if flag != "" {
		kv = append(kv, FlagOption, flag)
	}
	o := drivertest.GenericData(kv...)
	v4 := []driverapi.IPAMData{drivertest.IPAMData(t, "192.168.90.0/24", "192.168.90.1")}
	if err := d.CreateNetwork(nid, o, v4, nil); err != nil {
		t.Fatalf("CreateNetwork %s on %s: %v", nid, parent, err)
	}
	t.Cleanup(func() { _ = d.DeleteNetwork(nid) })
}
