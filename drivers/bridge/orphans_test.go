package bridge

import (
	"errors"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

// TestCollectOrphansRetriesInterruptedDump: while the kernel tears down a
// killed process's namespaces, link dumps are often interrupted
// (netlink.ErrDumpInterrupted). Orphan collection retries the dump instead
// of giving up.
func TestCollectOrphansRetriesInterruptedDump(t *testing.T) {
	d, host := testDriver(t)
	h := host.Handle()
	orphan := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vethb6fffffffff"}, PeerName: "orphanpeer6"}
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
	if err := d.CollectOrphans(nil, nil); err != nil {
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
