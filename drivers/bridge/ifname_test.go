package bridge

import (
	"strings"
	"testing"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/drivers/internal/drivertest"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/types"
)

// TestBridgeNameKeptVerbatim checks that only names the kernel keeps as
// given are accepted: a '%' is expanded by the kernel ("a%d" becomes "a0"),
// so the bridge could not be found again to delete.
func TestBridgeNameKeptVerbatim(t *testing.T) {
	v4 := ipamDataList(t)
	for _, name := range []string{"br0", "my-br_1.x", "abcdefghijklmno", "A~!@#$^&*()+="} {
		c, err := parseNetworkConfig(testNID, map[string]interface{}{netlabel.GenericData: map[string]string{BridgeName: name}}, v4, nil)
		if err != nil || c.bridgeName != name {
			t.Errorf("bridge name %q: %v, %q", name, err, c.bridgeName)
		}
	}
	for _, name := range []string{
		"", "abcdefghijklmnop", ".", "..", "a%d", "%d", "br/0", "br:0", "br 0", "br\t0", "br\n0",
		"br\x01", "br\x7f", "brü", strings.Repeat("é", 4),
	} {
		_, err := parseNetworkConfig(testNID, map[string]interface{}{netlabel.GenericData: map[string]string{BridgeName: name}}, v4, nil)
		if !types.IsBadRequest(err) {
			t.Errorf("bridge name %q: %v, want BadRequest", name, err)
			continue
		}
		if !strings.Contains(err.Error(), BridgeName) {
			t.Errorf("bridge name %q: error %q does not name the option", name, err)
		}
	}
}

func ipamDataList(t *testing.T) []driverapi.IPAMData {
	return []driverapi.IPAMData{drivertest.IPAMData(t, "10.10.0.0/24", "10.10.0.1")}
}
