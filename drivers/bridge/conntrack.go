package bridge

import (
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netkit/libnetwork/firewall"
	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
)

// conntrackFlusher deletes the conntrack entries of host ports in the
// background. The kernel deletes entries by filter only through a dump of
// its conntrack table, which walks every bucket of the table all
// namespaces share (262,144 here) whatever the namespace holds: about
// 13 ms of kernel time a dump. Done inline, once per published UDP port,
// that made an attach publishing two ports take 15 ms and one publishing
// 100 ports 600 ms; done in the background once per attach, it still took
// most of the CPU. So publishing and unpublishing queue their ports and
// return, and the flusher
//   - skips the dump when the namespace has no conntrack entry at all
//     (net.netfilter.nf_conntrack_count, per namespace), and
//   - dumps at most once per flushInterval, for everything queued
//     meanwhile, one dump per address family.
//
// A flush queued at publish time runs within flushInterval of the port's
// NAT element going in, which is what it is for: entries a client created
// while the port was not published (a container restarting) would
// otherwise keep its datagrams away from the new one.
type conntrackFlusher struct {
	host   *netlink.Handle
	logger *slog.Logger
	// count returns the number of conntrack entries of the namespace; nil,
	// or an error, means "maybe some".
	count func() (int, error)
	// interval is the least time between two dumps.
	interval time.Duration
	// lastDump is when the last dump started; only run uses it.
	lastDump time.Time

	mu sync.Mutex
	// pending are the ports to flush, by protocol, host address and port:
	// the entries of the mapping to the container address for an
	// unpublished port, the untranslated entries for a published one.
	pending map[flushKey]flushOp
	// busy is set while a flush runs; idle is broadcast when the queue is
	// empty and no flush runs.
	busy   bool
	idle   *sync.Cond
	closed bool
	wake   chan struct{}
	// closing is closed by close, to cut a wait between dumps short.
	closing chan struct{}
	done    chan struct{}
}

type flushKey struct {
	proto  types.Protocol
	hostIP netip.Addr
	port   uint16
}

// flushOp says which entries of a port to delete.
type flushOp struct {
	// unpublished: the entries translated to container; else the entries
	// addressed to the host port and not translated (a client's, from
	// before the port was published).
	unpublished bool
	container   netip.AddrPort
}

// flushInterval is the least time between two conntrack dumps.
const flushInterval = time.Second

func newConntrackFlusher(host *netlink.Handle, count func() (int, error), interval time.Duration, logger *slog.Logger) *conntrackFlusher {
	f := &conntrackFlusher{host: host, count: count, interval: interval, logger: logger, pending: map[flushKey]flushOp{},
		wake: make(chan struct{}, 1), closing: make(chan struct{}), done: make(chan struct{})}
	f.idle = sync.NewCond(&f.mu)
	go f.run()
	return f
}

// published queues the flush of the UDP ports of rules, just published:
// the entries addressed to the host port that were not translated, which
// a client made while the port was not published (a container
// restarting) and which would keep its datagrams away from the new one.
// A flush of one of the rules' ports queued when it was unpublished is
// dropped: it would cut the new mapping's first connections if the new
// container has the old one's address.
func (f *conntrackFlusher) published(rules []firewall.PortRule) {
	f.queue(rules, func(r firewall.PortRule) (flushOp, bool) { return flushOp{}, r.Proto == types.UDP })
}

// unpublished queues the flush of the entries translated to the
// containers of rules, just unpublished, so no connection keeps going to
// a container whose port is gone. Other connections to the same port
// number (the host's own, other containers') are left alone.
func (f *conntrackFlusher) unpublished(rules []firewall.PortRule) {
	f.queue(rules, func(r firewall.PortRule) (flushOp, bool) {
		return flushOp{unpublished: true, container: netip.AddrPortFrom(r.ContainerIP, r.ContainerPort)}, true
	})
}

func (f *conntrackFlusher) queue(rules []firewall.PortRule, op func(firewall.PortRule) (flushOp, bool)) {
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
		if o, ok := op(r); ok {
			f.pending[k] = o
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
		f.busy = true
		closed := f.closed
		f.mu.Unlock()
		if f.nothingToFlush() {
			f.mu.Lock()
			f.pending = map[flushKey]flushOp{}
			f.mu.Unlock()
			continue
		}
		// Let more ports queue up before the next dump, unless closing.
		if wait := time.Until(f.lastDump.Add(f.interval)); wait > 0 && !closed {
			select {
			case <-time.After(wait):
			case <-f.closing:
			}
		}
		f.mu.Lock()
		batch := f.pending
		f.pending = map[flushKey]flushOp{}
		f.mu.Unlock()
		f.lastDump = time.Now()
		f.flush(batch)
	}
}

// nothingToFlush reports whether the namespace has no conntrack entry, so
// no dump is needed.
func (f *conntrackFlusher) nothingToFlush() bool {
	if f.count == nil {
		return false
	}
	n, err := f.count()
	return err == nil && n == 0
}

// flush deletes the entries of batch: one dump per address family.
func (f *conntrackFlusher) flush(batch map[flushKey]flushOp) {
	var locals map[netip.Addr]bool // the namespace's addresses, read once
	filters := map[netlink.InetFamily][]netlink.CustomConntrackFilter{}
	for k, op := range batch {
		cf := &portFlowFilter{key: k, op: op}
		if !op.unpublished && k.hostIP.IsUnspecified() {
			if locals == nil {
				locals = f.localAddrs()
			}
			cf.locals = locals
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

// localAddrs returns the addresses of the namespace's links. The dump is
// retried when interrupted (osl.Dump): addresses come and go as containers
// attach, and a partial list would leave stale entries unflushed.
func (f *conntrackFlusher) localAddrs() map[netip.Addr]bool {
	m := map[netip.Addr]bool{}
	addrs, err := osl.Dump(func() ([]netlink.Addr, error) { return f.host.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		f.logger.Warn("listing addresses for a conntrack flush", "error", err)
		return m
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			m[ip.Unmap()] = true
		}
	}
	return m
}

// portFlowFilter matches the conntrack entries of one published port.
type portFlowFilter struct {
	key flushKey
	op  flushOp
	// locals are the namespace's addresses, for a port on all of them.
	locals map[netip.Addr]bool
}

// MatchConntrackFlow implements netlink.CustomConntrackFilter.
func (p *portFlowFilter) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	fw, rv := flow.Forward, flow.Reverse
	if types.Protocol(fw.Protocol) != p.key.proto || fw.DstPort != p.key.port {
		return false
	}
	dst, _ := netip.AddrFromSlice(fw.DstIP)
	dst = dst.Unmap()
	replySrc, _ := netip.AddrFromSlice(rv.SrcIP)
	replySrc = replySrc.Unmap()
	if !p.key.hostIP.IsUnspecified() && dst != p.key.hostIP {
		return false
	}
	if p.op.unpublished {
		// Translated to the container: its replies come from it.
		return replySrc == p.op.container.Addr() && rv.SrcPort == p.op.container.Port()
	}
	// Not translated, and addressed to the host itself.
	if replySrc != dst || rv.SrcPort != fw.DstPort {
		return false
	}
	return !p.key.hostIP.IsUnspecified() || p.locals[dst]
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
	close(f.closing)
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
	<-f.done
}

// conntrackCount returns a function reading the number of conntrack entries
// of the namespace through sysctl; nil when sysctl is nil.
func conntrackCount(sysctl func(string) (string, error)) func() (int, error) {
	if sysctl == nil {
		return nil
	}
	return func() (int, error) {
		v, err := sysctl("net.netfilter.nf_conntrack_count")
		if err != nil {
			return 0, err
		}
		return strconv.Atoi(strings.TrimSpace(v))
	}
}
