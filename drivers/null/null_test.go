package null

import (
	"testing"

	"github.com/netkit/libnetwork/driverapi"
)

// recordingJoinInfo fails the test if the driver reports anything at Join.
type recordingJoinInfo struct {
	driverapi.JoinInfo
	t *testing.T
}

func (r recordingJoinInfo) InterfaceName() driverapi.InterfaceNameInfo {
	r.t.Fatal("null driver asked for an interface")
	return nil
}

func TestEveryOperationSucceeds(t *testing.T) {
	d := New()
	if got := d.Type(); got != "null" {
		t.Fatalf("Type() = %q, want null", got)
	}
	if err := d.CreateNetwork("n1", nil, nil, nil); err != nil {
		t.Fatalf("CreateNetwork: %v", err)
	}
	if err := d.CreateEndpoint("n1", "e1", nil, nil); err != nil {
		t.Fatalf("CreateEndpoint: %v", err)
	}
	if err := d.Join("n1", "e1", "/run/netns/x", recordingJoinInfo{t: t}, nil); err != nil {
		t.Fatalf("Join: %v", err)
	}
	info, err := d.EndpointOperInfo("n1", "e1")
	if err != nil || info == nil {
		t.Fatalf("EndpointOperInfo = %v, %v; want an empty map", info, err)
	}
	if err := d.ProgramExternalConnectivity("n1", "e1", nil); err != nil {
		t.Fatalf("ProgramExternalConnectivity: %v", err)
	}
	if err := d.RevokeExternalConnectivity("n1", "e1"); err != nil {
		t.Fatalf("RevokeExternalConnectivity: %v", err)
	}
	if err := d.Leave("n1", "e1"); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	if err := d.DeleteEndpoint("n1", "e1"); err != nil {
		t.Fatalf("DeleteEndpoint: %v", err)
	}
	if err := d.DeleteNetwork("n1"); err != nil {
		t.Fatalf("DeleteNetwork: %v", err)
	}
}
