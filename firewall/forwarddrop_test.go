package firewall

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/netkit/libnetwork/internal/testutil"
	"github.com/netkit/libnetwork/types"
)

func mustSetForwardDrop(t testing.TB, f *Firewall, fam Family, drop bool) {
	t.Helper()
	if err := f.SetForwardDrop(fam, drop); err != nil {
		t.Fatalf("SetForwardDrop(%s, %v): %v", fam, drop, err)
	}
}

func TestForwardDropGolden(t *testing.T) {
	f := newFirewall(t)
	mustAdd(t, f, netDefault)
	mustSetForwardDrop(t, f, IPv4, true)
	mustSetForwardDrop(t, f, IPv6, true)
	checkGolden(t, "forward_drop", dump(t))
}

func TestForwardDropOnAndOff(t *testing.T) {
	f := newFirewall(t)
	mustAdd(t, f, netDefault)
	without := dump(t)
	if f.ForwardDrop(IPv4) || f.ForwardDrop(IPv6) {
		t.Fatal("a new table drops forwarded traffic")
	}
	mustSetForwardDrop(t, f, IPv4, true)
	once := dump(t)
	mustSetForwardDrop(t, f, IPv4, true)
	if got := dump(t); got != once {
		t.Errorf("setting the drop twice:\n%s\nwant:\n%s", got, once)
	}
	if !f.ForwardDrop(IPv4) || f.ForwardDrop(IPv6) {
		t.Errorf("ForwardDrop = %v, %v; want IPv4 only", f.ForwardDrop(IPv4), f.ForwardDrop(IPv6))
	}
	mustSetForwardDrop(t, f, IPv4, false)
	if got := dump(t); got != without {
		t.Errorf("after turning the drop off:\n%s\nwant:\n%s", got, without)
	}
	if err := f.SetForwardDrop(Family(7), true); !types.IsBadRequest(err) {
		t.Errorf("SetForwardDrop of family 7: %v, want an invalid-parameter error", err)
	}
	if got := dump(t); got != without {
		t.Errorf("a refused SetForwardDrop changed the table:\n%s", got)
	}
}

// The drop is the record that the library turned forwarding on: a
// restarted process cannot learn it from the sysctl, so it must survive
// Init and Reconcile.
func TestForwardDropSurvivesRestartAndReconcile(t *testing.T) {
	f := newFirewall(t)
	mustAdd(t, f, netDefault, netDual)
	mustSetForwardDrop(t, f, IPv6, true)
	before := dump(t)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	g := openFirewall(t)
	if got := dump(t); got != before {
		t.Fatalf("Init changed the table:\n%s\nwant:\n%s", got, before)
	}
	if !g.ForwardDrop(IPv6) || g.ForwardDrop(IPv4) {
		t.Errorf("after restart ForwardDrop = %v (v4), %v (v6); want v6 only", g.ForwardDrop(IPv4), g.ForwardDrop(IPv6))
	}
	if err := g.Reconcile([]NetworkRules{netDefault, netDual}); err != nil {
		t.Fatal(err)
	}
	if got := dump(t); got != before {
		t.Errorf("Reconcile of the same networks changed the table:\n%s\nwant:\n%s", got, before)
	}
	// A process that turns the drop off is believed by the next one.
	mustSetForwardDrop(t, g, IPv6, false)
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if h := openFirewall(t); h.ForwardDrop(IPv6) {
		t.Error("the drop turned off came back after a restart")
	}
}

func TestForwardDropKeptWhenIncompatibleTableIsReplaced(t *testing.T) {
	testutil.RequireRoot(t)
	resetTable(t)
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader("table inet " + TableName + " {\n\tset bridges { type ipv4_addr; }\n\tset forward_drop { type nf_proto; elements = { ipv4 }; }\n}\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v\n%s", err, out)
	}
	f := openFirewall(t)
	if !f.ForwardDrop(IPv4) || f.ForwardDrop(IPv6) {
		t.Errorf("after replacing an incompatible table ForwardDrop = %v (v4), %v (v6); want v4 only", f.ForwardDrop(IPv4), f.ForwardDrop(IPv6))
	}
	if got := dump(t); !strings.Contains(got, "elements = {\n\t\t\tipv4\n\t\t}") {
		t.Errorf("the new table lost the drop:\n%s", got)
	}
}
