package bridge

import (
	"errors"
	"strings"
	"testing"

	"github.com/netkit/libnetwork/firewall"
	"github.com/vishvananda/netlink"
)

// TestCollectOrphansRetriesInterruptedDump: while the kernel tears down a
// killed process's namespaces, link dumps are often interrupted
// (netlink.ErrDumpInterrupted). Orphan collection retries the dump instead
// of giving up.
func TestCollectOrphansRetriesInterruptedDump(t *testing.T) {
	d, host := testDriver(t)
	h := host.Handle()
	const nid = "b600000000000001"
	createNetwork(t, d, nid, 116, false, nil)
	br, err := h.LinkByName("br-b60000000000")
	if err != nil {
		t.Fatal(err)
	}
	orphan := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vethb6fffffffff", MasterIndex: br.Attrs().Index}, PeerName: "orphanpeer6"}
	if err := h.LinkAdd(orphan); err != nil {
		t.Fatal(err)
	}
	interrupted := 2
	d.SetLinkList(func() ([]netlink.Link, error) {
		links, err := h.LinkList()
		if err == nil && interrupted > 0 {
			interrupted--
			return links[:len(links)/2], netlink.ErrDumpInterrupted
		}
		return links, err
	})
	if err := d.CollectOrphans(map[string]bool{nid: true}, nil); err != nil {
		t.Fatalf("CollectOrphans with interrupted dumps: %v", err)
	}
	if linkExists(t, h, "vethb6fffffffff") {
		t.Error("orphan veth survived")
	}
}

// TestCollectOrphansReconcilesWhenListingFails: a failed listing of links
// is reported, but the firewall is reconciled all the same.
func TestCollectOrphansReconcilesWhenListingFails(t *testing.T) {
	d, _ := testDriver(t)
	const nid = "b700000000000001"
	createNetwork(t, d, nid, 117, false, nil)
	// A crashed run's network: its rules are in the table, the driver does
	// not know it.
	d2, _ := testDriver(t)
	const gone = "b7ff000000000002"
	createNetwork(t, d2, gone, 118, false, nil)
	if table := nftTable(t); !strings.Contains(table, "br-b7ff00000000") {
		t.Fatalf("no rules for the crashed network:\n%s", table)
	}
	listErr := errors.New("listing failed")
	d.SetLinkList(func() ([]netlink.Link, error) { return nil, listErr })
	if err := d.CollectOrphans(map[string]bool{nid: true}, nil); !errors.Is(err, listErr) {
		t.Errorf("CollectOrphans: %v, want the listing's error", err)
	}
	table := nftTable(t)
	if strings.Contains(table, "br-b7ff00000000") {
		t.Errorf("rules of a network nothing keeps survived orphan collection:\n%s", table)
	}
	if !strings.Contains(table, "br-b70000000000") {
		t.Errorf("rules of the kept network are gone:\n%s", table)
	}
}

// TestCollectOrphansInstallsRulesWhenReconcileFails: at restart the one
// Reconcile batch installs the restored networks' rules; if it fails,
// each network's rules are installed on their own instead of the networks
// being left open.
func TestCollectOrphansInstallsRulesWhenReconcileFails(t *testing.T) {
	d, _ := testDriver(t)
	const nid = "b900000000000001"
	createNetwork(t, d, nid, 119, false, nil)
	bridge := "br-b90000000000"
	if err := d.fw.DeleteNetwork(bridge); err != nil {
		t.Fatalf("emptying the table as a reboot would: %v", err)
	}
	if strings.Contains(nftTable(t), bridge) {
		t.Fatal("the network's rules survived DeleteNetwork")
	}
	failed := errors.New("reconcile failed")
	d.SetReconcile(func([]firewall.NetworkRules) error { return failed })
	if err := d.CollectOrphans(map[string]bool{nid: true}, nil); !errors.Is(err, failed) {
		t.Errorf("CollectOrphans: %v, want the reconcile's error reported", err)
	}
	if table := nftTable(t); !strings.Contains(table, bridge) {
		t.Errorf("the restored network was left without rules:\n%s", table)
	}
}
