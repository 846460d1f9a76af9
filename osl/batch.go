package osl

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/netkit/libnetwork/types"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Deleting links in one batch. Deleting a link makes the kernel wait for
// RCU grace periods and for the device's last references, about 15 ms for
// a veth here; links deleted in one request share those waits (50 veths:
// 40 ms in one request, 830 ms one by one). RTM_DELLINK deletes many links
// only by group, so DeleteLinks moves them into a fresh random group and
// deletes that group.

// DeleteLinks deletes the links with the given interface indexes inside
// the namespace, in one batch. Indexes of links that no longer exist are
// skipped. A veth goes together with its peer, wherever the peer is.
func (n *Namespace) DeleteLinks(indexes []int) error {
	if len(indexes) == 0 {
		return nil
	}
	const op = "deleting links"
	raw, err := n.rawSocket()
	if err != nil {
		return err
	}
	return n.withHandle(op, func(h *netlink.Handle) error {
		group, err := batchGroup()
		if err != nil {
			return n.kernelError(op, err)
		}
		// A link that cannot be marked is left out; the others still go.
		var errs []error
		marked := 0
		for _, idx := range indexes {
			l := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: idx}}
			err := h.LinkSetGroup(l, int(group))
			if errors.Is(err, unix.ENODEV) {
				continue
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("marking link %d for deletion: %w", idx, err))
				continue
			}
			marked++
		}
		if marked > 0 {
			req := nl.NewNetlinkRequest(unix.RTM_DELLINK, unix.NLM_F_ACK)
			req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
			req.AddData(nl.NewRtAttr(unix.IFLA_GROUP, nl.Uint32Attr(group)))
			req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: raw}
			if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil && !errors.Is(err, unix.ENODEV) {
				errs = append(errs, fmt.Errorf("deleting %d links: %w", marked, err))
			}
		}
		if err := errors.Join(errs...); err != nil {
			return n.kernelError(op, err)
		}
		return nil
	})
}

// DeleteInterfaces deletes the named links inside the namespace in one
// batch (see DeleteLinks). Names that do not exist are skipped.
func (n *Namespace) DeleteInterfaces(names []string) error {
	var indexes []int
	err := n.withHandle("deleting interfaces", func(h *netlink.Handle) error {
		for _, name := range names {
			if err := checkIfName("deleting interface", name); err != nil {
				return err
			}
			if l, err := h.LinkByName(name); err == nil {
				indexes = append(indexes, l.Attrs().Index)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return n.DeleteLinks(indexes)
}

// batchGroup returns a random link group for one batch, far above the
// small numbers people give groups by hand.
func batchGroup() (uint32, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, err
	}
	return 1<<30 | binary.LittleEndian.Uint32(b[:])&(1<<30-1), nil
}

// rawSocket returns a netlink route socket inside the namespace, for
// requests netlink.Handle has no method for. It is opened on first use
// (through Do) and kept until Close. It must not be called with n.mu held:
// Do takes it.
func (n *Namespace) rawSocket() (*nl.SocketHandle, error) {
	n.rawMu.Lock()
	defer n.rawMu.Unlock()
	if n.raw != nil {
		return n.raw, nil
	}
	var s *nl.NetlinkSocket
	err := n.Do(func() error {
		var err error
		s, err = nl.Subscribe(unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return nil, types.InternalErrorf("opening a netlink socket in %s: %w", n, err)
	}
	n.raw = &nl.SocketHandle{Socket: s}
	return n.raw, nil
}
