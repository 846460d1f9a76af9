package resolver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/netkit/libnetwork/firewall"
	"github.com/netkit/libnetwork/types"
)

// DefaultAddr is the address the embedded server listens on when
// ServerConfig.Addr is zero, as docker's does.
var DefaultAddr = netip.AddrFrom4([4]byte{127, 0, 0, 11})

// Limits of the server.
const (
	// udpQueryMax is the largest UDP query read; a larger datagram is
	// answered FORMERR. Queries are small: even with EDNS0 options they
	// stay far below the 4096 bytes the handler advertises for replies.
	udpQueryMax = maxUDPSize
	// udpReceiveBuffer is the UDP socket's receive buffer, so that a
	// burst of queries waits in the kernel rather than being dropped:
	// about a thousand small queries, as many as the forwarder takes in
	// flight. It costs memory only while datagrams wait, but a container
	// that floods its resolver can fill it, and it is charged to the
	// controller: 1 MiB, not more (dnsperf with 100 queries outstanding
	// needs under 200 KiB).
	udpReceiveBuffer = 1 << 20
	// tcpIdleTimeout closes a TCP connection without a query for that
	// long (RFC 7766 suggests a few seconds), and bounds how long the
	// replies still owed on a connection the client closed are waited for.
	tcpIdleTimeout = 10 * time.Second
	// tcpWriteTimeout bounds a write to a TCP client that does not read.
	tcpWriteTimeout = 10 * time.Second
	// maxTCPConns bounds the TCP connections of one server; one more is
	// closed as soon as it is accepted.
	maxTCPConns = 256
)

// ServerConfig configures StartServer.
type ServerConfig struct {
	// Addr is the address to listen on; DefaultAddr when zero.
	Addr netip.Addr
	// Handler answers the queries. It is called inline from the loops
	// reading the sockets (one for UDP, one per TCP connection), so it must not block: what takes time (a
	// forwarded query) it hands to another goroutine, which writes the
	// reply later through the ResponseWriter it was given. That writer
	// and the *dns.Msg stay valid after ServeDNS returns.
	Handler dns.Handler
	// Do runs fn on a thread in the sandbox's network namespace (such as
	// osl.Namespace.Do); the server's sockets are opened in fn and stay in
	// that namespace. nil opens them in the caller's namespace.
	Do func(fn func() error) error
	// NsFd is an open file descriptor of the sandbox's network namespace,
	// where the redirect of port 53 is programmed; -1 for the caller's
	// namespace. StartServer keeps a copy of its own until Stop.
	NsFd int
	// Redirect programs firewall.SetDNSRedirect so that the server is
	// reached on port 53 of Addr (true in production). Replies then
	// always leave from port 53, so clients must use it; without the
	// redirect they talk to Ports directly.
	Redirect bool
	// Stats receives the server's counters: Queries and Malformed. nil
	// counts nowhere.
	Stats *Stats
	// Logger receives the server's messages; nil discards.
	Logger *slog.Logger
}

// Server is an embedded DNS server: a UDP socket and a TCP listener on
// random ports of one address inside a sandbox's namespace, reached on
// port 53 through firewall.SetDNSRedirect.
//
// It is not built on miekg's dns.Server, to be lean. A goroutine reads
// the UDP socket in batches (recvmmsg), unpacks each datagram into a new
// *dns.Msg and calls the handler inline with a small writer; the replies
// written during the call go out together after the batch (sendmmsg), and
// one written later (by the forwarder) goes out at once. A local answer
// thus costs no goroutine, channel or contended lock, and under load two
// system calls per batch. TCP has a goroutine per connection, which reads
// length-prefixed queries one after the other while the replies, possibly
// out of order, are written under a mutex; the connection closes once the
// client is done (or idle for tcpIdleTimeout) and every reply it is owed
// was written.
//
// A handler of this package (*Handler) answers most local names from the
// query's wire form, without a dns.Msg (see Handler.serveRaw); what it
// leaves goes the way above.
//
// Every message read counts in Stats.Queries; one that does not unpack
// also in Stats.Malformed, and is answered FORMERR when its header can be
// read and it is not itself a response.
type Server struct {
	handler dns.Handler
	// raw is handler when it answers UDP queries from their wire form
	// too; nil otherwise.
	raw    rawHandler
	stats  *Stats
	logger *slog.Logger

	// Immutable after StartServer.
	udp      *net.UDPConn
	tcp      *net.TCPListener
	udpLocal *net.UDPAddr
	tcpLocal *net.TCPAddr
	addr     netip.Addr
	nsFd     int // our copy of ServerConfig.NsFd, or -1
	// redirected is set once the redirect is programmed, until
	// closeSockets removes it.
	redirected bool
	stopOnce   sync.Once
	wg         sync.WaitGroup // the goroutines reading sockets
	udpBuffer  sync.Pool      // of *[]byte, for packing UDP replies

	mu sync.Mutex
	// conns are the open TCP connections.
	conns map[*tcpConn]struct{}
	// stopping is set by Stop: no connection is taken any more.
	stopping bool
}

// StartServer opens the server's sockets on random UDP and TCP ports of
// cfg.Addr inside the namespace cfg.Do runs in, programs the redirect of
// port 53 to them when cfg.Redirect is set, and starts serving. On failure
// nothing is left: no socket, no table, no goroutine.
func StartServer(cfg ServerConfig) (_ *Server, retErr error) {
	if cfg.Handler == nil {
		return nil, types.InvalidParameterErrorf("resolver: starting the DNS server: no handler")
	}
	addr := cfg.Addr
	if !addr.IsValid() {
		addr = DefaultAddr
	}
	addr = addr.Unmap()
	if cfg.Redirect && cfg.NsFd < -1 {
		return nil, types.InvalidParameterErrorf("resolver: starting the DNS server on %s: invalid netns fd %d (want -1 or an open fd)", addr, cfg.NsFd)
	}
	s := &Server{
		handler: cfg.Handler,
		stats:   cfg.Stats,
		logger:  cfg.Logger,
		addr:    addr,
		nsFd:    -1,
		conns:   map[*tcpConn]struct{}{},
	}
	s.raw, _ = cfg.Handler.(rawHandler)
	if s.stats == nil {
		s.stats = new(Stats)
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	s.udpBuffer.New = func() any { b := make([]byte, maxUDPSize); return &b }
	defer func() {
		if retErr != nil {
			s.closeSockets()
		}
	}()
	if err := s.listen(cfg.Do); err != nil {
		return nil, err
	}
	if cfg.Redirect {
		if err := s.setRedirect(cfg.NsFd); err != nil {
			return nil, err
		}
	}
	loop, err := newUDPLoop(s)
	if err != nil {
		return nil, types.InternalErrorf("resolver: starting the DNS server on %s: %w", addr, err)
	}
	s.wg.Add(2)
	go loop.run()
	go s.acceptTCP()
	s.logger.Debug("resolver: DNS server started", "addr", addr, "udp", s.udpLocal.Port, "tcp", s.tcpLocal.Port, "redirect", cfg.Redirect)
	return s, nil
}

// listen opens the sockets through do.
func (s *Server) listen(do func(fn func() error) error) error {
	network := "4"
	if s.addr.Is6() {
		network = "6"
	}
	bind := func() error {
		var lc net.ListenConfig
		pc, err := lc.ListenPacket(context.Background(), "udp"+network, netip.AddrPortFrom(s.addr, 0).String())
		if err != nil {
			return err
		}
		s.udp = pc.(*net.UDPConn)
		ln, err := lc.Listen(context.Background(), "tcp"+network, netip.AddrPortFrom(s.addr, 0).String())
		if err != nil {
			return err
		}
		s.tcp = ln.(*net.TCPListener)
		return nil
	}
	var err error
	if do == nil {
		err = bind()
	} else {
		err = do(bind)
	}
	if err != nil {
		return types.InternalErrorf("resolver: starting the DNS server: listening on %s: %w", s.addr, err)
	}
	if s.udp == nil || s.tcp == nil {
		// A Do that reports success without running fn.
		return types.InternalErrorf("resolver: starting the DNS server on %s: the namespace's Do did not run the function binding the sockets", s.addr)
	}
	s.udpLocal = s.udp.LocalAddr().(*net.UDPAddr)
	s.tcpLocal = s.tcp.Addr().(*net.TCPAddr)
	if err := setReceiveBuffer(s.udp, udpReceiveBuffer); err != nil {
		s.logger.Debug("resolver: raising the UDP receive buffer", "error", err)
	}
	return nil
}

// setRedirect programs the redirect of port 53 in the namespace nsFd
// refers to, keeping a copy of nsFd for Stop.
func (s *Server) setRedirect(nsFd int) error {
	if nsFd >= 0 {
		fd, err := unix.FcntlInt(uintptr(nsFd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return types.InvalidParameterErrorf("resolver: starting the DNS server on %s: netns fd %d: %w", s.addr, nsFd, err)
		}
		s.nsFd = fd
	}
	if err := firewall.SetDNSRedirect(s.nsFd, s.addr, uint16(s.udpLocal.Port), uint16(s.tcpLocal.Port)); err != nil {
		return fmt.Errorf("resolver: starting the DNS server: %w", err)
	}
	s.redirected = true
	return nil
}

// setReceiveBuffer raises the socket's receive buffer to size, past
// net.core.rmem_max when the process may (CAP_NET_ADMIN, which the library
// has anyway).
func setReceiveBuffer(c *net.UDPConn, size int) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size)
	}); err != nil {
		return err
	}
	if serr != nil {
		return c.SetReadBuffer(size)
	}
	return nil
}

// Ports returns the UDP and TCP ports the server listens on.
func (s *Server) Ports() (udp, tcp uint16) {
	return uint16(s.udpLocal.Port), uint16(s.tcpLocal.Port)
}

// Stop stops serving: it removes the redirect, closes the sockets and the
// TCP connections, and waits for the goroutines reading them. A reply a
// handler writes afterwards fails. Stop may be called more than once.
func (s *Server) Stop() { s.stop(false) }

// StopLeavingRedirect stops the server as Stop does but leaves the
// redirect in the namespace, for two cases where removing it costs and
// serves nothing: a namespace about to be destroyed, which takes its rules
// with it (an explicit delete waits for an RCU grace period, about 14 ms),
// and a controller restarting, whose next server replaces the rules
// (meanwhile a query gets no answer and the client tries again, instead of
// failing at once).
func (s *Server) StopLeavingRedirect() { s.stop(true) }

func (s *Server) stop(keepRedirect bool) {
	s.stopOnce.Do(func() {
		if keepRedirect {
			s.redirected = false
		}
		s.mu.Lock()
		s.stopping = true
		conns := make([]*tcpConn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		s.closeSockets()
		for _, c := range conns {
			c.close()
		}
		s.wg.Wait()
		s.logger.Debug("resolver: DNS server stopped", "addr", s.addr)
	})
}

// closeSockets removes the redirect, closes the sockets and the namespace
// fd, whichever of them are there. The redirect goes first: a query sent
// meanwhile then meets a closed port 53 and fails at once, rather than
// being sent to a closed random port whose ICMP error the client would
// not recognize.
func (s *Server) closeSockets() {
	if s.redirected {
		if err := firewall.DeleteDNSRedirect(s.nsFd); err != nil {
			s.logger.Warn("resolver: removing the DNS redirect", "addr", s.addr, "error", err)
		}
		s.redirected = false
	}
	if s.udp != nil {
		_ = s.udp.Close()
	}
	if s.tcp != nil {
		_ = s.tcp.Close()
	}
	if s.nsFd >= 0 {
		_ = unix.Close(s.nsFd)
		s.nsFd = -1
	}
}

// serve handles one message read from a client (the reader counted it in
// Stats.Queries): it unpacks it into a new *dns.Msg, which the handler then
// owns, and calls the handler.
func (s *Server) serve(b []byte, w writer, oversized bool) {
	m := new(dns.Msg)
	var err error
	if oversized {
		err = errors.New("query too large")
	} else {
		err = m.Unpack(b)
	}
	if err != nil {
		s.stats.Malformed.Add(1)
		if reply := formErr(b); reply != nil {
			_, _ = w.Write(reply)
		} else {
			w.drop()
		}
		return
	}
	defer s.recoverHandler(w, m)
	s.handler.ServeDNS(w, m)
}

// serveRaw gives the UDP query b to the raw handler, which appends the
// reply to out, or forwards b with a writer that newWriter makes. done is
// false when the handler leaves b to ServeDNS; done with a nil reply when
// b was forwarded, or the handler panicked (logged, as recoverHandler
// does).
func (s *Server) serveRaw(b, out []byte, newWriter func() writer) (reply []byte, done bool) {
	var w writer
	defer func() {
		if v := recover(); v != nil {
			s.logger.Error("resolver: handler panicked", "panic", v)
			if w != nil {
				w.drop()
			}
			reply, done = nil, true
		}
	}()
	reply, forward := s.raw.serveRaw(b, out)
	if forward {
		w = newWriter()
		s.raw.forwardRaw(w, b)
		return nil, true
	}
	return reply, reply != nil
}

// recoverHandler, deferred, turns a panic of the handler into a log: a
// handler's bug must not take the sandbox's resolver, or the process, down
// with it.
func (s *Server) recoverHandler(w writer, m *dns.Msg) {
	if v := recover(); v != nil {
		s.logger.Error("resolver: handler panicked", "panic", v, "question", m.Question)
		w.drop()
	}
}

// formErr returns the FORMERR reply to a message that does not unpack,
// made from its header alone, or nil when there is no header or the message
// is a response (answering those could loop between two servers).
func formErr(q []byte) []byte {
	if len(q) < headerLen {
		return nil
	}
	flags := binary.BigEndian.Uint16(q[2:])
	if flags&flagQR != 0 {
		return nil
	}
	flags = flagQR | flags&(flagOpcode|flagRD) | dns.RcodeFormatError
	return []byte{q[0], q[1], byte(flags >> 8), byte(flags), 0, 0, 0, 0, 0, 0, 0, 0}
}

// writer is the server's dns.ResponseWriter.
type writer interface {
	dns.ResponseWriter
	// drop says no reply will be written; after a reply was written it
	// does nothing.
	drop()
}
