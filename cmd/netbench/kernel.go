package main

// The -kernel mode: the kernel calls of the library's attach and detach,
// made directly (see the package doc). Each function below names the
// library code it copies; keep them in step with it.

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// maxKernelN is the most containers -kernel attaches: the addresses of one
// /16, as the library's first default pool.
const maxKernelN = 65533

// The steps of a -kernel run, in the order print shows them.
var (
	kernelAttachSteps = []string{"kernel.new_netns", "kernel.join", "kernel.veth", "kernel.configure", "kernel.gateway"}
	kernelDetachSteps = []string{"kernel.leave", "kernel.unset_gateway", "kernel.retire", "kernel.destroy_netns"}
)

const (
	threadNetnsPath = "/proc/thread-self/ns/net"
	// bridgeMTU is the bridge driver's DefaultMTU.
	bridgeMTU = 1500
	// vethReapGrace is the bridge driver's reapGrace; nsReleaseQuiet and
	// nsReleaseMaxWait are the controller's namespace reaper's.
	vethReapGrace    = 2 * time.Second
	nsReleaseQuiet   = 100 * time.Millisecond
	nsReleaseMaxWait = time.Second
)

// kernelBench holds what the controller and the bridge driver would hold:
// the host's namespace with its handle and raw socket, the bridge, and the
// background reapers.
type kernelBench struct {
	execRoot string
	hostFd   int
	host     *netlink.Handle
	raw      *nl.SocketHandle // osl's rawSocket of the host namespace
	brIndex  int
	brMAC    net.HardwareAddr
	subnet   *net.IPNet
	gw       net.IP
	nsRel    *nsRelease
	vethReap *vethReaper
}

// sandbox is one container's namespace, as osl.Namespace holds it.
type sandbox struct {
	path   string
	fd     int
	handle *netlink.Handle
	// hostVeth and hostIndex name the host side of its veth.
	hostVeth  string
	hostIndex int
	addr      *net.IPNet
}

func runKernel(n int, mtuUser bool) (*result, error) {
	dir, cleanup, err := prepare()
	if err != nil {
		return nil, err
	}
	defer cleanup()
	k, err := newKernelBench(filepath.Join(dir, "exec"), mtuUser)
	if err != nil {
		return nil, err
	}
	defer k.close()

	steps := map[string][]time.Duration{}
	var attach, detach []time.Duration
	timed := func(step string, fn func() error) error {
		t0 := time.Now()
		err := fn()
		steps[step] = append(steps[step], time.Since(t0))
		return err
	}
	sbs := make([]*sandbox, 0, n)
	for i := 0; i < n; i++ {
		sb := &sandbox{}
		t0 := time.Now()
		err := timed("kernel.new_netns", func() (err error) {
			sb.path = filepath.Join(k.execRoot, "netns", randomHex(32)[:12])
			return sb.newNamespace()
		})
		var tj time.Time
		if err == nil {
			tj = time.Now()
			// The IPAM of the library hands out the pool's addresses in
			// order after the gateway's.
			ip := make(net.IP, 4)
			copy(ip, k.subnet.IP.To4())
			ip[2], ip[3] = byte((i+2)>>8), byte(i+2)
			sb.addr = &net.IPNet{IP: ip, Mask: k.subnet.Mask}
			sb.hostVeth = "veth" + randomHex(32)[:11]
			err = timed("kernel.veth", func() error { return k.addVeth(sb) })
		}
		if err == nil {
			err = timed("kernel.configure", sb.configureInterface)
		}
		if err == nil {
			err = timed("kernel.gateway", func() error { return sb.setDefaultGateway(k.gw) })
		}
		if err != nil {
			return nil, fmt.Errorf("attach %d: %w", i, err)
		}
		steps["kernel.join"] = append(steps["kernel.join"], time.Since(tj))
		attach = append(attach, time.Since(t0))
		sbs = append(sbs, sb)
	}
	for i, sb := range sbs {
		t0 := time.Now()
		err := timed("kernel.unset_gateway", sb.unsetDefaultGateway)
		if err == nil {
			err = timed("kernel.retire", func() error { return sb.retireInterface("gone" + randomHex(5)) })
		}
		if err == nil {
			steps["kernel.leave"] = append(steps["kernel.leave"], time.Since(t0))
			// The bridge driver's Leave hands the host side to its reaper.
			k.vethReap.add(sb.hostVeth, sb.hostIndex)
			err = timed("kernel.destroy_netns", func() error {
				fd, err := sb.destroyHold()
				if err == nil {
					k.nsRel.hold(fd)
				}
				return err
			})
		}
		if err != nil {
			return nil, fmt.Errorf("detach %d: %w", i, err)
		}
		detach = append(detach, time.Since(t0))
	}
	res := &result{N: n, Kernel: true, BridgeMTUUser: mtuUser, Attach: summarize(attach), Detach: summarize(detach), Steps: map[string]stats{}}
	for k, v := range steps {
		res.Steps[k] = summarize(v)
	}
	return res, nil
}

// newKernelBench opens the host's namespace as osl.CurrentNamespace does
// and sets the network up as the bridge driver's CreateNetwork does (but
// for the firewall): a bridge "br-" + 12 hex digits with MTU 1500, a
// random fixed MAC and multicast snooping off, the first default pool's
// gateway, up; IP forwarding on.
func newKernelBench(execRoot string, mtuUser bool) (_ *kernelBench, retErr error) {
	k := &kernelBench{execRoot: execRoot, hostFd: -1}
	defer func() {
		if retErr != nil {
			k.close()
		}
	}()
	err := onThread(func() error {
		var err error
		if k.hostFd, err = unix.Open(threadNetnsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
			return err
		}
		if k.host, err = netlink.NewHandle(); err != nil {
			return err
		}
		s, err := nl.Subscribe(unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		k.raw = &nl.SocketHandle{Socket: s}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("opening the host's namespace: %w", err)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "br-" + randomHex(32)[:12]
	attrs.MTU = bridgeMTU
	attrs.HardwareAddr = randomMAC()
	noSnooping := false
	br := &netlink.Bridge{LinkAttrs: attrs, MulticastSnooping: &noSnooping}
	if err := k.host.LinkAdd(br); err != nil {
		return nil, fmt.Errorf("creating the bridge: %w", err)
	}
	k.brIndex, k.brMAC = br.Attrs().Index, attrs.HardwareAddr
	if mtuUser {
		// A change through ndo_change_mtu sets BROPT_MTU_SET_BY_USER; a
		// change to the MTU it has is no change, hence the detour.
		for _, mtu := range []int{bridgeMTU - 1, bridgeMTU} {
			if err := k.host.LinkSetMTU(br, mtu); err != nil {
				return nil, fmt.Errorf("setting the bridge's MTU to %d: %w", mtu, err)
			}
		}
	}
	_, k.subnet, _ = net.ParseCIDR("172.17.0.0/16")
	k.gw = net.IPv4(172, 17, 0, 1).To4()
	if err := k.host.AddrAdd(br, &netlink.Addr{IPNet: &net.IPNet{IP: k.gw, Mask: k.subnet.Mask}}); err != nil {
		return nil, fmt.Errorf("adding the gateway address: %w", err)
	}
	if err := k.host.LinkSetUp(br); err != nil {
		return nil, fmt.Errorf("bringing the bridge up: %w", err)
	}
	if err := k.setHostSysctl("/proc/sys/net/ipv4/ip_forward", "1"); err != nil {
		return nil, fmt.Errorf("turning IP forwarding on: %w", err)
	}
	k.nsRel = &nsRelease{}
	k.vethReap = newVethReaper(k.host)
	return k, nil
}

// close releases what the run holds; the namespace goes with the process.
func (k *kernelBench) close() {
	if k.vethReap != nil {
		k.vethReap.close()
	}
	if k.nsRel != nil {
		k.nsRel.close()
	}
	if k.raw != nil {
		k.raw.Close()
	}
	if k.host != nil {
		k.host.Close()
	}
	if k.hostFd >= 0 {
		unix.Close(k.hostFd)
	}
}

// onThread runs fn on a new goroutine locked to its OS thread, as osl's
// onThread; a thread fn left switched is not unlocked, so it ends.
func onThread(fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		err := fn()
		if !errors.Is(err, errTainted) {
			runtime.UnlockOSThread()
		}
		done <- err
	}()
	return <-done
}

// errTainted wraps the error of an onThread function that could not switch
// its thread back.
var errTainted = errors.New("thread left in another network namespace")

// newNamespace is osl.NewNamespace: the file, then on a thread: unshare,
// bind mount, netlink sockets inside, lo up, switch back; then open it.
func (sb *sandbox) newNamespace() (retErr error) {
	sb.fd = -1
	if err := os.MkdirAll(filepath.Dir(sb.path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(sb.path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return err
	}
	f.Close()
	err = onThread(func() error {
		orig, err := unix.Open(threadNetnsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(orig)
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return err
		}
		err = unix.Mount(threadNetnsPath, sb.path, "", unix.MS_BIND, "")
		if err == nil {
			sb.handle, err = netlink.NewHandle()
		}
		if err == nil {
			err = sb.handle.LinkSetUp(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: "lo", Index: 1}})
		}
		if rerr := unix.Setns(orig, unix.CLONE_NEWNET); rerr != nil {
			return fmt.Errorf("%w: %w", errTainted, rerr)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("creating namespace %s: %w", sb.path, err)
	}
	sb.fd, err = unix.Open(sb.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	return err
}

// addVeth is the bridge driver's createVethAtOnce: osl.Namespace.AddVeth
// (one RTM_NEWLINK on the host namespace's raw socket, echoed), then
// noIPv6 through the host namespace's SetSysctl. ICC is on, so the port is
// not isolated.
func (k *kernelBench) addVeth(sb *sandbox) error {
	ip4 := sb.addr.IP.To4()
	peerMAC := net.HardwareAddr{0x02, 0x42, ip4[0], ip4[1], ip4[2], ip4[3]}
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK|unix.NLM_F_ECHO)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Flags, msg.Change = unix.IFF_UP, unix.IFF_UP
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(sb.hostVeth)))
	req.AddData(nl.NewRtAttr(unix.IFLA_MTU, nl.Uint32Attr(bridgeMTU)))
	req.AddData(nl.NewRtAttr(unix.IFLA_ADDRESS, k.brMAC))
	req.AddData(nl.NewRtAttr(unix.IFLA_MASTER, nl.Uint32Attr(uint32(k.brIndex))))
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("veth"))
	data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
	peer := data.AddRtAttr(nl.VETH_INFO_PEER, nil)
	nl.NewIfInfomsgChild(peer, unix.AF_UNSPEC)
	peer.AddRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated("eth0"))
	peer.AddRtAttr(unix.IFLA_MTU, nl.Uint32Attr(bridgeMTU))
	peer.AddRtAttr(unix.IFLA_ADDRESS, peerMAC)
	peer.AddRtAttr(unix.IFLA_NET_NS_FD, nl.Uint32Attr(uint32(sb.fd)))
	req.AddData(info)
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: k.raw}
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil {
		return fmt.Errorf("creating veth %s: %w", sb.hostVeth, err)
	}
	for _, m := range msgs {
		if len(m) >= unix.SizeofIfInfomsg {
			sb.hostIndex = int(nl.DeserializeIfInfomsg(m).Index)
		}
	}
	if sb.hostIndex == 0 {
		return fmt.Errorf("veth %s: no echo", sb.hostVeth)
	}
	return k.setHostSysctl("/proc/sys/net/ipv6/conf/"+sb.hostVeth+"/disable_ipv6", "1")
}

// setHostSysctl is osl.Namespace.SetSysctl of the host's namespace: on a
// thread switched into it (Do), open, truncate, write.
func (k *kernelBench) setHostSysctl(path, value string) error {
	return onThread(func() error {
		orig, err := unix.Open(threadNetnsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(orig)
		if err := unix.Setns(k.hostFd, unix.CLONE_NEWNET); err != nil {
			return err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
		if err == nil {
			_, err = f.WriteString(value)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if rerr := unix.Setns(orig, unix.CLONE_NEWNET); rerr != nil {
			return fmt.Errorf("%w: %w", errTainted, rerr)
		}
		return err
	})
}

// configureInterface is osl.Namespace.ConfigureInterface for the bridge's
// endpoint: no IPv6, so addr_gen_mode none; no MTU change (0); the IPv4
// address; up; no routes.
func (sb *sandbox) configureInterface() error {
	h := sb.handle
	link, err := h.LinkByName("eth0")
	if err != nil {
		return err
	}
	const in6AddrGenModeNone = 1
	if err := h.LinkSetIP6AddrGenMode(link, in6AddrGenModeNone); err != nil {
		return fmt.Errorf("addr_gen_mode: %w", err)
	}
	if err := h.AddrAdd(link, &netlink.Addr{IPNet: sb.addr}); err != nil {
		return fmt.Errorf("adding %s: %w", sb.addr, err)
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(link); err != nil {
			return fmt.Errorf("up: %w", err)
		}
	}
	return nil
}

// setDefaultGateway is osl.Namespace.SetDefaultGateway.
func (sb *sandbox) setDefaultGateway(gw net.IP) error {
	link, err := sb.handle.LinkByName("eth0")
	if err != nil {
		return err
	}
	dst := &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
	return sb.handle.RouteReplace(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst, Gw: gw})
}

// unsetDefaultGateway is osl.Namespace.UnsetDefaultGateway for IPv4: the
// controller's Leave moves the gateway first, and with no other endpoint
// it removes the default route.
func (sb *sandbox) unsetDefaultGateway() error {
	route := &netlink.Route{Table: unix.RT_TABLE_MAIN, Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}}
	for range 64 {
		err := sb.handle.RouteDel(route)
		if errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return errors.New("more than 64 default routes")
}

// retireInterface is osl.Namespace.RetireInterface of eth0.
func (sb *sandbox) retireInterface(tombstone string) error {
	h := sb.handle
	link, err := h.LinkByName("eth0")
	if err != nil {
		return err
	}
	if link.Attrs().Flags&net.FlagUp != 0 {
		if err := h.LinkSetDown(link); err != nil {
			return fmt.Errorf("down: %w", err)
		}
	}
	var addrs []netlink.Addr
	for range 5 {
		addrs, err = h.AddrList(link, netlink.FAMILY_ALL)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("listing addresses: %w", err)
	}
	for i := range addrs {
		if err := h.AddrDel(link, &addrs[i]); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("removing %s: %w", addrs[i].IPNet, err)
		}
	}
	return h.LinkSetName(link, tombstone)
}

// destroyHold is osl.Namespace.DestroyHold: keep a descriptor, close the
// sockets and the descriptor, unmount, remove the file.
func (sb *sandbox) destroyHold() (int, error) {
	hold, err := unix.FcntlInt(uintptr(sb.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	sb.handle.Close()
	unix.Close(sb.fd)
	if err := unix.Unmount(sb.path, unix.MNT_DETACH); err != nil {
		unix.Close(hold)
		return -1, err
	}
	if err := os.Remove(sb.path); err != nil {
		unix.Close(hold)
		return -1, err
	}
	return hold, nil
}

// nsRelease holds the last descriptors of destroyed namespaces and closes
// them in batches, as the controller's nsReaper: once deletes pause
// (nsReleaseQuiet) or the oldest waited nsReleaseMaxWait.
type nsRelease struct {
	mu     sync.Mutex
	fds    []int
	oldest time.Time
	timer  *time.Timer
	closed bool
}

func (r *nsRelease) hold(fd int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		unix.Close(fd)
		return
	}
	now := time.Now()
	if len(r.fds) == 0 {
		r.oldest = now
	}
	r.fds = append(r.fds, fd)
	wait := min(nsReleaseQuiet, nsReleaseMaxWait-now.Sub(r.oldest))
	if r.timer == nil {
		r.timer = time.AfterFunc(wait, r.release)
	} else {
		r.timer.Reset(wait)
	}
}

func (r *nsRelease) release() {
	r.mu.Lock()
	fds := r.fds
	r.fds = nil
	r.mu.Unlock()
	for _, fd := range fds {
		unix.Close(fd)
	}
}

func (r *nsRelease) close() {
	r.mu.Lock()
	r.closed = true
	if r.timer != nil {
		r.timer.Stop()
	}
	r.mu.Unlock()
	r.release()
}

// vethReaper is the bridge driver's reaper: vethReapGrace after a leave it
// looks the host side up and deletes it if it is still there (usually the
// kernel removed it with the namespace).
type vethReaper struct {
	host  *netlink.Handle
	queue chan reapItem
	stop  chan struct{}
	done  chan struct{}
}

type reapItem struct {
	name  string
	index int
	due   time.Time
}

func newVethReaper(host *netlink.Handle) *vethReaper {
	r := &vethReaper{host: host, queue: make(chan reapItem, maxKernelN), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		// One grace for all: the queue is in due order.
		for {
			var it reapItem
			select {
			case <-r.stop:
				return
			case it = <-r.queue:
			}
			select {
			case <-r.stop:
				return
			case <-time.After(time.Until(it.due)):
			}
			l, err := r.host.LinkByIndex(it.index)
			if err == nil && l.Attrs().Name == it.name {
				_ = r.host.LinkDel(l)
			}
		}
	}()
	return r
}

func (r *vethReaper) add(name string, index int) {
	r.queue <- reapItem{name: name, index: index, due: time.Now().Add(vethReapGrace)}
}

// close stops the reaper without waiting for the grace periods; what is
// left goes with the process's namespace.
func (r *vethReaper) close() {
	close(r.stop)
	<-r.done
}

func randomHex(n int) string {
	b := make([]byte, n/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// randomMAC is the bridge driver's randomMAC.
func randomMAC() net.HardwareAddr {
	mac := make(net.HardwareAddr, 6)
	_, _ = rand.Read(mac)
	mac[0] = (mac[0] &^ 0x01) | 0x02
	return mac
}
