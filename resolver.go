package libnetwork

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/netkit/libnetwork/internal/ownedfile"
	"github.com/netkit/libnetwork/internal/resolver"
	"github.com/netkit/libnetwork/resolvconf"
	"github.com/netkit/libnetwork/types"
)

// Resolver represents the embedded DNS server in Docker. It operates by
// listening on container's loopback interface for DNS queries.
//
// Every sandbox with a namespace of its own gets one at the first join of
// an endpoint that wants name resolution (not CreateOptionDisableResolution,
// not a host or null network); the controller starts and stops it, and
// embedders need not use this interface. The server listens inside the
// sandbox's namespace on 127.0.0.11, UDP and TCP, on random ports that
// nftables rules in that namespace bring port 53 to, answers the names of
// the sandbox's networks (see Sandbox.ResolveName) and forwards the rest
// to the sandbox's upstream servers.
type Resolver interface {
	// Start starts the name server for the container
	Start() error
	// Stop stops the name server for the container. Stopped resolver
	// can be reused after running the SetupFunc again.
	Stop()
	// SetupFunc() provides the setup function that should be run
	// in the container's network namespace.
	SetupFunc() func()
	// NameServer() returns the IP of the DNS resolver for the
	// containers.
	NameServer() string
	// SetExtServers configures the external nameservers the resolver
	// should use to forward queries
	SetExtServers([]string)
	// FlushExtServers clears the cached UDP connections to external
	// nameservers
	FlushExtServers()
	// ResolverOptions returns resolv.conf options that should be set
	ResolverOptions() []string
}

// resolverIP is where the embedded DNS server listens in every sandbox.
var resolverIP = netip.AddrFrom4([4]byte{127, 0, 0, 11})

// maxUpstreams is how many upstream servers a query may be tried on, as
// many as a resolv.conf's resolver uses.
const maxUpstreams = 3

// defaultClientTimeout is the resolver library's timeout for one try when
// resolv.conf sets none (glibc's and musl's RES_TIMEOUT).
const defaultClientTimeout = 5 * time.Second

// NewResolver returns a resolver for the sandbox, not started. The
// controller makes and runs each sandbox's resolver itself; this is the
// v0.7 constructor, for embedders that drive one by hand. It returns nil
// for a nil sandbox.
func NewResolver(sb *sandbox) Resolver {
	if sb == nil {
		return nil
	}
	return newSandboxResolver(sb)
}

// sandboxResolver is a sandbox's embedded DNS server: a resolver.Server in
// the sandbox's namespace with a handler answering from the sandbox's name
// table and a forwarder to its upstreams.
type sandboxResolver struct {
	sb *sandbox

	// mu guards the fields below it. It is never held while the server
	// or the forwarder is stopped: their queries in flight call
	// upstreams, which takes it.
	mu     sync.Mutex
	server *resolver.Server
	fwd    *resolver.Forwarder
	ext    []string // SetExtServers; nil: the sandbox's own upstreams
	extSet bool

	// cache is the current upstream list; cacheMu serialises its
	// rebuilds (readers only load it).
	cacheMu sync.Mutex
	cache   atomic.Pointer[upstreamCache]
}

var _ Resolver = (*sandboxResolver)(nil)

func newSandboxResolver(sb *sandbox) *sandboxResolver {
	return &sandboxResolver{sb: sb}
}

// Start binds the server's sockets inside the sandbox's namespace,
// installs the port-53 redirect there and starts serving. Starting a
// running resolver does nothing.
func (r *sandboxResolver) Start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.server != nil {
		return nil
	}
	sb := r.sb
	ns := sb.namespace()
	if ns == nil {
		return types.ForbiddenErrorf("sandbox %s: starting its DNS resolver: no network namespace yet (external key not set)", sb.id)
	}
	if sb.hostNet {
		return types.ForbiddenErrorf("sandbox %s uses the host's network namespace; it has no embedded DNS resolver", sb.id)
	}
	logger := sb.ctrl.logger.With("sandbox", sb.id)
	d, _ := sb.dnsConfig()
	fwd := resolver.NewForwarder(resolver.ForwarderConfig{
		Upstreams: r.upstreams,
		Timeout:   clientTimeout(d.options),
		Stats:     &sb.dnsStats,
		Logger:    logger,
	})
	h := resolver.NewHandler(sandboxNames{sb}, nil, logger)
	h.SetForwarder(fwd)
	h.SetStats(&sb.dnsStats)
	// Queries for names that are not the sandbox's leave only while it is
	// on a network that is not internal.
	h.SetForwardGate(func() bool { return sb.names().forward })
	srv, err := resolver.StartServer(resolver.ServerConfig{
		Addr:     resolverIP,
		Handler:  h,
		Do:       ns.Do,
		NsFd:     ns.Fd(),
		Redirect: true,
		Stats:    &sb.dnsStats,
		Logger:   logger,
	})
	if err != nil {
		fwd.Close()
		return types.Errorf("sandbox %s: starting its DNS resolver: %w", sb.id, err)
	}
	r.server, r.fwd = srv, fwd
	udp, tcp := srv.Ports()
	logger.Debug("DNS resolver started", "udp_port", udp, "tcp_port", tcp)
	return nil
}

// Stop stops serving, removes the redirect and closes every socket.
func (r *sandboxResolver) Stop() { r.stop(false) }

// stop stops serving and closes every socket; keepRedirect leaves the
// port-53 redirect in the namespace (see resolver.Server.StopLeavingRedirect).
func (r *sandboxResolver) stop(keepRedirect bool) {
	r.mu.Lock()
	server, fwd := r.server, r.fwd
	r.server, r.fwd = nil, nil
	r.mu.Unlock()
	if server == nil {
		return
	}
	if keepRedirect {
		server.StopLeavingRedirect()
	} else {
		server.Stop()
	}
	fwd.Close()
}

// setClientTimeout gives the forwarder the timeout of the resolv.conf
// options the sandbox's clients now read.
func (r *sandboxResolver) setClientTimeout(opts []string) {
	r.mu.Lock()
	fwd := r.fwd
	r.mu.Unlock()
	if fwd != nil {
		fwd.SetTimeout(clientTimeout(opts))
	}
}

// SetupFunc returns a function that does nothing: Start enters the
// sandbox's namespace itself to bind the sockets and install the rules.
func (r *sandboxResolver) SetupFunc() func() { return func() {} }

// NameServer returns the address the resolver listens on, 127.0.0.11.
func (r *sandboxResolver) NameServer() string { return resolverIP.String() }

// SetExtServers replaces the upstream servers: each an address, with an
// optional port ("1.2.3.4", "[::1]:5353"). Entries that do not parse are
// ignored. A nil list goes back to the sandbox's own upstreams.
func (r *sandboxResolver) SetExtServers(servers []string) {
	r.mu.Lock()
	r.ext, r.extSet = slices.Clone(servers), servers != nil
	fwd := r.fwd
	r.mu.Unlock()
	r.cacheMu.Lock()
	r.cache.Store(nil)
	r.cacheMu.Unlock()
	if fwd != nil {
		fwd.Flush()
	}
}

// FlushExtServers closes the sockets kept open to the upstream servers.
func (r *sandboxResolver) FlushExtServers() {
	r.mu.Lock()
	fwd := r.fwd
	r.mu.Unlock()
	if fwd != nil {
		fwd.Flush()
	}
}

// ResolverOptions returns the resolv.conf options a sandbox with the
// resolver gets: ndots:0, so a single-label name (a container's) is tried
// as given before any search domain.
func (r *sandboxResolver) ResolverOptions() []string { return []string{"ndots:0"} }

// upstreamCache is the upstream list of one sandbox, kept until what it is
// made from changes: the host's resolv.conf, the sandbox's joins (its IPv6)
// and configuration (nameGen), the origin file, SetExtServers.
type upstreamCache struct {
	hostVersion uint64
	nameGen     uint64
	origin      string
	originKey   fileKey
	list        []resolver.Upstream
}

// upstreams returns the servers a forwarded query is tried on, in order:
// SetExtServers's, else the sandbox's OptionDNS servers, else those of its
// OptionOriginResolvConfPath file, else the host's resolv.conf (read again
// when it changes, so an edit reaches the next query). Servers on the
// host's loopback (systemd-resolved's 127.0.0.53, a local dnsmasq) are
// dialled from the controller's namespace; the others from the sandbox's,
// and IPv6 ones only when the sandbox has IPv6. At most three. It is called
// for every forwarded query: the list is rebuilt only when what it is made
// from changed, and reading it takes no lock.
func (r *sandboxResolver) upstreams() []resolver.Upstream {
	sb := r.sb
	c := sb.ctrl
	_, hostVersion, _ := c.hostDNS.get()
	gen := c.nameGen.Load()
	fresh := func(uc *upstreamCache) bool {
		return uc != nil && uc.hostVersion == hostVersion && uc.nameGen == gen &&
			(uc.origin == "" || statKey(uc.origin) == uc.originKey)
	}
	if uc := r.cache.Load(); fresh(uc) {
		return uc.list
	}
	r.cacheMu.Lock()
	defer r.cacheMu.Unlock()
	if uc := r.cache.Load(); fresh(uc) {
		return uc.list
	}
	r.mu.Lock()
	servers, extSet := r.ext, r.extSet
	r.mu.Unlock()
	uc := &upstreamCache{hostVersion: hostVersion, nameGen: gen}
	if !extSet {
		d, err := sb.dnsConfig()
		if d.origin != "" {
			uc.origin, uc.originKey = d.origin, statKey(d.origin)
		}
		if err != nil {
			// Logged once per change of the file, as the list is
			// rebuilt.
			c.logger.Warn("reading the sandbox's DNS configuration for its upstream servers", "sandbox", sb.id, "error", err)
		}
		servers = d.servers
	}
	v6 := sb.ipv6Enabled()
	for _, s := range servers {
		ap, ok := parseUpstream(s)
		if !ok {
			continue
		}
		u := resolver.Upstream{Addr: ap}
		switch {
		case ap.Addr().IsLoopback():
			// The host's loopback is the controller's namespace's.
			u.Key = "host/" + ap.String()
			if c.Config().Daemon.NetworkNamespace != "" {
				u.Dial = c.dialHostNS
			}
		case ap.Addr().Is6() && !v6:
			continue
		default:
			u.Key = "sandbox/" + ap.String()
			u.Dial = sb.dialUpstream
		}
		uc.list = append(uc.list, u)
		if len(uc.list) == maxUpstreams {
			break
		}
	}
	r.cache.Store(uc)
	return uc.list
}

// parseUpstream parses "addr" or "addr:port" / "[v6]:port" (port 53 when
// none), with an optional zone for link-local IPv6.
func parseUpstream(s string) (netip.AddrPort, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a.Unmap(), 53), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Port() != 0 {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
	}
	return netip.AddrPort{}, false
}

// dialUpstream opens a socket to an upstream server in the sandbox's
// namespace.
func (sb *sandbox) dialUpstream(ctx context.Context, network string, addr netip.AddrPort) (net.Conn, error) {
	ns := sb.namespace()
	if ns == nil {
		return nil, types.ForbiddenErrorf("sandbox %s has no network namespace", sb.id)
	}
	return dialIn(ctx, ns, network, addr)
}

// dialHostNS opens a socket to an upstream server in the controller's
// namespace, when that is not the process's own
// (config.OptionNetworkNamespace); otherwise the forwarder's own
// goroutines are there already.
func (c *controller) dialHostNS(ctx context.Context, network string, addr netip.AddrPort) (net.Conn, error) {
	return dialIn(ctx, c.hostNS, network, addr)
}

// clientTimeout is how long a resolver library with resolv.conf options
// opts waits for one try: the "timeout:" option, 5 s by default.
func clientTimeout(opts []string) time.Duration {
	timeout := defaultClientTimeout
	for _, o := range opts {
		if v, ok := strings.CutPrefix(o, "timeout:"); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				timeout = time.Duration(min(n, 30)) * time.Second
			}
		}
	}
	return timeout
}

// wantsResolver reports whether the sandbox should run a resolver: it has
// a namespace of its own and an endpoint that wants name resolution on a
// network with interfaces of its own.
func (sb *sandbox) wantsResolver() bool {
	if sb.hostNet || sb.namespace() == nil {
		return false
	}
	for _, ep := range sb.joined() {
		if !ep.disableResolution && !ep.network.hasSpecialDriver() {
			return true
		}
	}
	return false
}

// hadResolver reports whether the sandbox ran a resolver before a restart
// (its resolv.conf names it): a restored sandbox with no endpoint left
// keeps answering as before. Only the restore asks, so joins do not read
// the file.
func (sb *sandbox) hadResolver() bool {
	if sb.hostNet || sb.namespace() == nil {
		return false
	}
	content, exists, err := ownedfile.Load(sb.resolvConfPath())
	return err == nil && exists && slices.Contains(resolvconf.GetNameservers(content), resolverIP.String())
}

// resolverRunning reports whether the sandbox's resolver is serving.
func (sb *sandbox) resolverRunning() bool { return sb.runningResolver() != nil }

// runningResolver returns the sandbox's resolver if it is serving, or nil.
func (sb *sandbox) runningResolver() *sandboxResolver {
	sb.mu.Lock()
	r := sb.resolver
	sb.mu.Unlock()
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.server == nil {
		return nil
	}
	return r
}

// ensureResolver starts the sandbox's resolver if it wants one and has
// none running, and then points its resolv.conf at it. sb.opMu must be
// held.
func (sb *sandbox) ensureResolver() error {
	if sb.resolverRunning() || !sb.wantsResolver() {
		return nil
	}
	return sb.startResolver()
}

// startResolver starts the sandbox's resolver and points its resolv.conf
// at it. sb.opMu must be held.
func (sb *sandbox) startResolver() error {
	sb.mu.Lock()
	r := sb.resolver
	if r == nil {
		r = newSandboxResolver(sb)
		sb.resolver = r
	}
	sb.mu.Unlock()
	if err := r.Start(); err != nil {
		return err
	}
	sb.rewriteResolvConf()
	return nil
}

// stopResolver stops the sandbox's resolver, if any. sb.opMu must be held
// (or the controller stopping). The redirect stays in a namespace of the
// library's own (it goes with the namespace, or the next controller
// replaces it) unless removeRedirect: an adopted namespace is the
// runtime's and outlives the sandbox.
func (sb *sandbox) stopResolver(removeRedirect bool) {
	sb.mu.Lock()
	r := sb.resolver
	sb.mu.Unlock()
	if r != nil {
		r.stop(!removeRedirect)
	}
}

// rewriteResolvConf writes the sandbox's resolv.conf again, unless the
// user edited it.
func (sb *sandbox) rewriteResolvConf() {
	path := sb.resolvConfPath()
	if _, _, err := ownedfile.Load(path); err != nil {
		sb.fileError("resolv.conf", err)
		return
	}
	sb.fileError("resolv.conf", sb.buildResolvConf())
}

// hostDNS is the host's resolv.conf as the resolvers see it, read again
// when the file (or systemd-resolved's, when the host's names its stub)
// changes. Every forwarded query asks for it: the files are looked at (two
// stat calls) at most once per hostDNSRecheck, and reading it takes no
// lock.
type hostDNS struct {
	mu      sync.Mutex
	snap    atomic.Pointer[hostDNSSnap]
	checked atomic.Int64 // unix nanoseconds of the last look at the files
}

// hostDNSRecheck is how long a look at the host's files stays good: a
// change reaches the queries sent after it by at most this much.
const hostDNSRecheck = 5 * time.Millisecond

// hostDNSSnap is the host's resolv.conf at one version.
type hostDNSSnap struct {
	// paths are the host's resolv.conf and systemd-resolved's (tests
	// point them elsewhere).
	paths [2]string
	// read is false until the files at paths were read.
	read    bool
	keys    [2]fileKey
	content []byte
	version uint64
	err     error
}

// fileKey tells whether a file changed: replaced (inode), written (size,
// times) or gone.
type fileKey struct {
	ok               bool
	dev, ino         uint64
	size             int64
	mtimeNs, ctimeNs int64
}

func statKey(path string) fileKey {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return fileKey{}
	}
	return fileKey{ok: true, dev: st.Dev, ino: st.Ino, size: st.Size,
		mtimeNs: st.Mtim.Nano(), ctimeNs: st.Ctim.Nano()}
}

// setPaths makes the host's files paths, read at the next get.
func (h *hostDNS) setPaths(paths [2]string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var version uint64
	if s := h.snap.Load(); s != nil {
		version = s.version
	}
	h.snap.Store(&hostDNSSnap{paths: paths, version: version})
	h.checked.Store(0)
}

// get returns the host's resolv.conf content (systemd-resolved's when the
// host's names only its stub), a version that changes with it, and the
// error of reading it (a missing file is no error: no content).
func (h *hostDNS) get() ([]byte, uint64, error) {
	now := time.Now().UnixNano()
	if s := h.current(now); s != nil {
		return s.content, s.version, s.err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if s := h.current(now); s != nil {
		// Another caller read the files meanwhile.
		return s.content, s.version, s.err
	}
	next := &hostDNSSnap{paths: [2]string{hostResolvConfPath, resolvedResolvConf}, read: true, version: 1}
	if s := h.snap.Load(); s != nil {
		next.paths, next.version = s.paths, s.version+1
	}
	next.keys = [2]fileKey{statKey(next.paths[0]), statKey(next.paths[1])}
	next.content, next.err = resolvconf.HostResolvConfFrom(next.paths[0], next.paths[1])
	if errors.Is(next.err, os.ErrNotExist) {
		next.err = nil
	}
	h.snap.Store(next)
	h.checked.Store(now)
	return next.content, next.version, next.err
}

// current returns the snapshot if the files did not change since it was
// read: looked at less than hostDNSRecheck ago, or stat'ed again now. It
// returns nil when they must be read.
func (h *hostDNS) current(now int64) *hostDNSSnap {
	s := h.snap.Load()
	if s == nil || !s.read {
		return nil
	}
	if now-h.checked.Load() < int64(hostDNSRecheck) {
		return s
	}
	if [2]fileKey{statKey(s.paths[0]), statKey(s.paths[1])} != s.keys {
		return nil
	}
	h.checked.Store(now)
	return s
}

// startRestoredResolvers starts the DNS servers of the sandboxes New
// restored (the old process's went with it; the new ones listen on new
// ports, and the redirect in each namespace is replaced in one batch). A
// failure is logged: the sandbox keeps its network without the server.
func (c *controller) startRestoredResolvers() {
	c.namesChanged()
	c.mu.Lock()
	sbs := make([]*sandbox, 0, len(c.sandboxes))
	for _, sb := range c.sandboxes {
		sbs = append(sbs, sb)
	}
	c.mu.Unlock()
	for _, sb := range sbs {
		sb.opMu.Lock()
		var err error
		if sb.wantsResolver() || sb.hadResolver() {
			err = sb.startResolver()
		}
		if err != nil {
			c.logger.Error("restarting the sandbox's DNS resolver", "sandbox", sb.id, "error", err)
		}
		sb.opMu.Unlock()
	}
}

// ResolverStatistics are the counters of a sandbox's embedded DNS server,
// from the sandbox's creation (or its restore by New) on.
type ResolverStatistics struct {
	// Queries counts the queries received, over UDP and TCP.
	Queries uint64
	// Local counts the queries answered from the sandbox's own names
	// (and the NXDOMAIN answers of a sandbox that does not forward).
	Local uint64
	// Forwarded counts the queries sent to upstream servers.
	Forwarded uint64
	// UpstreamFailures counts the upstream tries that failed: timeouts,
	// transport errors, SERVFAIL or REFUSED answers, bad replies.
	UpstreamFailures uint64
	// Refused counts the queries refused because the sandbox had as many
	// forwarded queries in flight as it may.
	Refused uint64
	// Malformed counts packets that were not well-formed queries.
	Malformed uint64
	// LocalLatency and ForwardedLatency are the time from a query's
	// receipt to its reply, for local and forwarded answers.
	LocalLatency, ForwardedLatency LatencyHistogram
}

// LatencyHistogram counts durations in power-of-two microsecond buckets;
// its Quantile method gives an upper bound of a quantile.
type LatencyHistogram = resolver.HistogramSnapshot

// SandboxResolverStatistics returns the embedded DNS server's counters of
// a sandbox made by this library. A sandbox that never ran a server has
// all counters zero.
func SandboxResolverStatistics(sbox Sandbox) (ResolverStatistics, error) {
	sb, ok := sbox.(*sandbox)
	if !ok || sb == nil {
		return ResolverStatistics{}, types.InvalidParameterErrorf("resolver statistics: %T is not a sandbox of this library", sbox)
	}
	s := sb.dnsStats.Snapshot()
	return ResolverStatistics{
		Queries: s.Queries, Local: s.Local, Forwarded: s.Forwarded,
		UpstreamFailures: s.UpstreamFailures, Refused: s.Refused, Malformed: s.Malformed,
		LocalLatency: s.LocalLatency, ForwardedLatency: s.ForwardedLatency,
	}, nil
}
