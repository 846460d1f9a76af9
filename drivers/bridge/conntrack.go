package bridge

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netkit/libnetwork/firewall"
	"github.com/netkit/libnetwork/types"
)

// conntrackFlusher deletes the conntrack entries of host ports in the
// background. The kernel deletes entries by filter only through a dump of
// its conntrack table, which walks every bucket of the table all
// namespaces share (262,144 here) whatever the namespace holds: about
// 13 ms a dump. Done inline, once per published UDP port, that made an
// attach publishing two ports take 15 ms and one publishing 100 ports
// 600 ms. So publishing and unpublishing queue their ports and return; the
// flusher takes everything queued at once and deletes it in one dump per
// address family. A flush queued at publish time runs a few milliseconds
// after the port's NAT element is in, which is what it is for: entries a
// client created while the port was not published (a container
// restarting) would otherwise keep its datagrams away from the new one.
type conntrackFlusher struct {
	host   *netlink.Handle
	logger *slog.Logger

	mu sync.Mutex
	// pending are the ports to flush, by protocol, host address and port.
	pending map[flushKey]bool
	// busy is set while a flush runs; idle is broadcast when the queue is
	// empty and no flush runs.
	busy   bool
	idle   *sync.Cond
	closed bool
	wake   chan struct{}
	done   chan struct{}
}

type flushKey struct {
	proto  types.Protocol
	hostIP netip.Addr
	port   uint16
}

func newConntrackFlusher(host *netlink.Handle, logger *slog.Logger) *conntrackFlusher {
	f := &conntrackFlusher{host: host, logger: logger, pending: map[flushKey]bool{},
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	f.idle = sync.NewCond(&f.mu)
	go f.run()
	return f
}

// published queues the flush of the UDP ports of rules, just published.
// A flush of one of the rules' ports queued when it was unpublished is
// dropped: it would cut the new mapping's first connections.
func (f *conntrackFlusher) published(rules []firewall.PortRule) {
	f.queue(rules, func(r firewall.PortRule) bool { return r.Proto == types.UDP })
}

// unpublished queues the flush of every port of rules, just unpublished,
// so no connection keeps going to a container whose port is gone.
func (f *conntrackFlusher) unpublished(rules []firewall.PortRule) {
	f.queue(rules, func(firewall.PortRule) bool { return true })
}

func (f *conntrackFlusher) queue(rules []firewall.PortRule, flush func(firewall.PortRule) bool) {
	if len(rules) == 0 {
		return
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	for _, r := range rules {
		k := flushKey{r.Proto, r.HostIP, r.HostPort}
		if flush(r) {
			f.pending[k] = true
		} else {
			delete(f.pending, k)
		}
	}
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *conntrackFlusher) run() {
	defer close(f.done)
	for {
		f.mu.Lock()
		for len(f.pending) == 0 {
			f.busy = false
			f.idle.Broadcast()
			if f.closed {
				f.mu.Unlock()
				return
			}
			f.mu.Unlock()
			<-f.wake
			f.mu.Lock()
		}
		batch := f.pending
		f.pending = map[flushKey]bool{}
		f.busy = true
		f.mu.Unlock()
		f.flush(batch)
	}
}

// flush deletes the entries of batch: one dump per address family.
func (f *conntrackFlusher) flush(batch map[flushKey]bool) {
	filters := map[netlink.InetFamily][]netlink.CustomConntrackFilter{}
	for k := range batch {
		cf := &netlink.ConntrackFilter{}
		_ = cf.AddProtocol(uint8(k.proto))
		_ = cf.AddPort(netlink.ConntrackOrigDstPort, k.port)
		if !k.hostIP.IsUnspecified() {
			_ = cf.AddIP(netlink.ConntrackOrigDstIP, net.IP(k.hostIP.AsSlice()))
		}
		family := netlink.InetFamily(unix.AF_INET)
		if k.hostIP.Is6() {
			family = unix.AF_INET6
		}
		filters[family] = append(filters[family], cf)
	}
	for family, fs := range filters {
		if _, err := f.host.ConntrackDeleteFilters(netlink.ConntrackTable, family, fs...); err != nil {
			f.logger.Warn("flushing the conntrack entries of published ports", "ports", len(fs), "error", err)
		}
	}
}

// wait returns when everything queued so far is flushed.
func (f *conntrackFlusher) wait() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.pending) > 0 || f.busy {
		f.idle.Wait()
	}
}

// close flushes what is queued and stops the flusher.
func (f *conntrackFlusher) close() {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.closed = true
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
	<-f.done
}
