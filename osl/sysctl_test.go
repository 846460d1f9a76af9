package osl

import (
	"os"
	"strings"
	"testing"

	"github.com/netkit/libnetwork/internal/testutil"
	"github.com/netkit/libnetwork/types"
)

func TestSysctlReadsTheNamespacesValue(t *testing.T) {
	testutil.RequireRoot(t)
	n := newTestNamespace(t)
	hostValue, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		t.Fatal(err)
	}
	want := "1"
	if strings.TrimSpace(string(hostValue)) == "1" {
		want = "0"
	}
	mustf := func(err error, what string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	mustf(n.SetSysctl("net.ipv4.ip_forward", want), "SetSysctl")
	got, err := n.Sysctl("net.ipv4.ip_forward")
	mustf(err, "Sysctl")
	if got != want {
		t.Errorf("Sysctl(net.ipv4.ip_forward) = %q, want %q (the caller's is %q)", got, want, hostValue)
	}
	if _, err := n.Sysctl("net.ipv4.no_such_knob"); !types.IsNotFound(err) {
		t.Errorf("Sysctl of a missing key: %v, want a NotFoundError", err)
	}
	if _, err := n.Sysctl("kernel.hostname"); !types.IsBadRequest(err) {
		t.Errorf("Sysctl of a non-network key: %v, want a BadRequestError", err)
	}
}
