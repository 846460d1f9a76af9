package osl

import (
	"fmt"
	"testing"

	"github.com/netkit/libnetwork/internal/testutil"
)

// TestDeleteLinks deletes veths in one batch: the named ones and their
// peers go, links not named and names that do not exist are left alone.
func TestDeleteLinks(t *testing.T) {
	testutil.RequireRoot(t)
	sb := newTestNamespace(t)
	host := currentNamespace(t)
	var names []string
	for i := range 20 {
		names = append(names, fmt.Sprintf("vb-del%d", i))
		vethIn(t, sb, names[i], fmt.Sprintf("eth%d", i))
	}
	vethIn(t, sb, "vb-keep", "keep0")
	if err := host.DeleteInterfaces(append(names, "vb-missing")); err != nil {
		t.Fatalf("DeleteInterfaces: %v", err)
	}
	for i, name := range names {
		if _, err := host.Handle().LinkByName(name); err == nil {
			t.Errorf("%s still exists", name)
		}
		if _, ok := findIface(t, sb, fmt.Sprintf("eth%d", i)); ok {
			t.Errorf("peer eth%d still exists", i)
		}
	}
	keep, err := host.Handle().LinkByName("vb-keep")
	if err != nil {
		t.Fatalf("a link not named was deleted: %v", err)
	}
	if _, ok := findIface(t, sb, "keep0"); !ok {
		t.Error("the peer of a link not named was deleted")
	}
	if keep.Attrs().Group != 0 {
		t.Errorf("a link not named is in group %d", keep.Attrs().Group)
	}
	if err := host.DeleteLinks([]int{keep.Attrs().Index + 100000}); err != nil {
		t.Errorf("DeleteLinks of a missing index: %v", err)
	}
	if err := sb.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sb.DeleteLinks([]int{1}); err == nil {
		t.Error("DeleteLinks on a closed namespace succeeded")
	}
}
