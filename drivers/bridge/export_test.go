package bridge

import (
	"github.com/netkit/libnetwork/firewall"
	"github.com/vishvananda/netlink"
)

// SetFailAfter makes CreateNetwork fail right after step ("bridge",
// "addresses", "up", "firewall", "sysctl").
func (d *Driver) SetFailAfter(step string) { d.failAfter = step }

// SetLinkList replaces the host handle's LinkList in orphan collection.
func (d *Driver) SetLinkList(list func() ([]netlink.Link, error)) { d.linkList = list }

// SetReconcile replaces the firewall's Reconcile in orphan collection.
func (d *Driver) SetReconcile(reconcile func([]firewall.NetworkRules) error) { d.reconcile = reconcile }
