package host

import (
	"testing"

	"github.com/netkit/libnetwork/types"
)

func TestOnlyOneHostNetwork(t *testing.T) {
	d := New()
	if got := d.Type(); got != "host" {
		t.Fatalf("Type() = %q, want host", got)
	}
	if err := d.CreateNetwork("n1", nil, nil, nil); err != nil {
		t.Fatalf("first CreateNetwork: %v", err)
	}
	err := d.CreateNetwork("n2", nil, nil, nil)
	if !types.IsForbidden(err) {
		t.Fatalf("second CreateNetwork = %v, want a Forbidden error", err)
	}
	if err := d.DeleteNetwork("n2"); !types.IsNotFound(err) {
		t.Fatalf("DeleteNetwork(unknown) = %v, want NotFound", err)
	}
	if err := d.DeleteNetwork("n1"); err != nil {
		t.Fatalf("DeleteNetwork: %v", err)
	}
	if err := d.CreateNetwork("n2", nil, nil, nil); err != nil {
		t.Fatalf("CreateNetwork after delete: %v", err)
	}
}

func TestEndpointOpsDoNothing(t *testing.T) {
	d := New()
	if err := d.CreateNetwork("n1", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateEndpoint("n1", "e1", nil, nil); err != nil {
		t.Fatalf("CreateEndpoint: %v", err)
	}
	// A nil JoinInfo would panic if Join reported anything.
	if err := d.Join("n1", "e1", "", nil, nil); err != nil {
		t.Fatalf("Join: %v", err)
	}
	if err := d.Leave("n1", "e1"); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	if err := d.DeleteEndpoint("n1", "e1"); err != nil {
		t.Fatalf("DeleteEndpoint: %v", err)
	}
}
