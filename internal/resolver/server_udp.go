package resolver

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"unsafe"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// udpBatch is the number of datagrams a UDP loop reads with one recvmmsg,
// and of replies it sends with one sendmmsg. Under load the socket holds
// many queries at once; a batch makes two system calls and one wake-up
// of the goroutine serve them all. The loop holds udpBatch buffers of
// udpQueryMax bytes.
const udpBatch = 8

// rawReplyRoom is the room for each reply the handler makes from a
// query's wire form in the loop's own buffers: an answer of a few
// addresses takes under a hundred bytes.
const rawReplyRoom = 512

// udpLoop is the state of the goroutine reading the UDP socket: the
// buffers and headers recvmmsg fills and sendmmsg reads, reused for every
// batch. The kernel gets pointers into it, so it is allocated once and
// stays put.
//
// One goroutine reads the socket: two loops on one socket take turns
// through the descriptor's read and write locks, and each turn wakes the
// other loop; since the forwarder's replies are written by its own
// goroutines, a second loop adds no parallelism worth that. netbench -dns,
// six runs each alternating, load 2: local names 10.1 us of resolver CPU
// per query with one loop, 11.1 with two; forwarded names the same (20.3,
// 20.7).
type udpLoop struct {
	s  *Server
	rc syscall.RawConn

	bufs  [udpBatch][udpQueryMax]byte
	names [udpBatch]unix.RawSockaddrInet6 // large enough for IPv4 too
	iovs  [udpBatch]unix.Iovec
	hdrs  [udpBatch]unix.Mmsghdr

	// The replies written while their query was served inline, sent
	// together after the batch; outBufs are those from Server.udpBuffer,
	// nil for the replies in rawOut.
	nout    int
	outIovs [udpBatch]unix.Iovec
	outHdrs [udpBatch]unix.Mmsghdr
	outBufs [udpBatch]*[]byte
	// rawOut holds the replies of Server.raw, one per datagram; a larger
	// one (many addresses) is appended to a new buffer.
	rawOut [udpBatch][rawReplyRoom]byte

	// While a datagram is served: its index, its writer if one was made,
	// and newWriterFn, the method value of newWriter made once.
	i           int
	w           *udpWriter
	newWriterFn func() writer

	// The callbacks of RawConn.Read and Write, made once, and their
	// results: the number of messages (n) and the error, and for sendmmsg
	// where it starts (sent).
	recvFn, sendFn func(fd uintptr) bool
	n, sent        int
	errno          syscall.Errno
}

func newUDPLoop(s *Server) (*udpLoop, error) {
	rc, err := s.udp.SyscallConn()
	if err != nil {
		return nil, err
	}
	l := &udpLoop{s: s, rc: rc}
	l.recvFn, l.sendFn, l.newWriterFn = l.recvmmsg, l.sendmmsg, l.newWriter
	for i := range l.hdrs {
		l.iovs[i].Base = &l.bufs[i][0]
		l.iovs[i].SetLen(udpQueryMax)
		h := &l.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&l.names[i]))
		h.Iov = &l.iovs[i]
		h.SetIovlen(1)
	}
	return l, nil
}

// run serves the UDP socket until it is closed.
func (l *udpLoop) run() {
	defer l.s.wg.Done()
	for {
		n, err := l.recv()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// An ICMP error of an earlier reply, a signal: keep reading.
			l.s.logger.Debug("resolver: reading the UDP socket", "error", err)
			continue
		}
		for i := range n {
			h := &l.hdrs[i]
			b, oversized := l.bufs[i][:h.Len], h.Hdr.Flags&unix.MSG_TRUNC != 0
			l.s.stats.Queries.Add(1)
			l.w, l.i = nil, i
			if l.s.raw != nil && !oversized {
				reply, done := l.s.serveRaw(b, l.rawOut[i][:0], l.newWriterFn)
				if reply != nil {
					l.queue(i, reply, nil)
				}
				if done {
					l.collect(i)
					continue
				}
			}
			l.newWriter()
			l.s.serve(b, l.w, oversized)
			l.collect(i)
		}
		l.flush()
	}
}

// newWriter makes the writer of datagram l.i of the batch, for the
// handler to write its reply while the loop serves the query.
func (l *udpLoop) newWriter() writer {
	l.w = &udpWriter{s: l.s, to: sockaddrAddrPort(&l.names[l.i]), inline: true}
	return l.w
}

// collect queues the reply written to the writer of datagram i, if one
// was made, and ends the writer's inline time: a later reply goes out at
// once.
func (l *udpLoop) collect(i int) {
	w := l.w
	if w == nil {
		return
	}
	l.w = nil
	w.mu.Lock()
	w.inline = false
	out, bp := w.out, w.outBuf
	w.out, w.outBuf = nil, nil
	w.mu.Unlock()
	if out != nil {
		l.queue(i, out, bp)
	}
}

// recv reads up to udpBatch datagrams, waiting for the first.
func (l *udpLoop) recv() (int, error) {
	for i := range l.hdrs {
		l.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		l.hdrs[i].Hdr.Flags = 0
	}
	if err := l.rc.Read(l.recvFn); err != nil {
		return 0, err
	}
	if l.errno != 0 {
		return 0, l.errno
	}
	return l.n, nil
}

// recvmmsg is recv's callback for RawConn.Read; it returns false to wait
// until the socket is readable.
func (l *udpLoop) recvmmsg(fd uintptr) bool {
	var ok bool
	l.n, l.errno, ok = mmsg(unix.SYS_RECVMMSG, fd, &l.hdrs[0], udpBatch)
	return ok
}

// queue adds a reply to the client of datagram i of the batch; bp, if
// not nil, goes back to Server.udpBuffer once it is sent.
func (l *udpLoop) queue(i int, b []byte, bp *[]byte) {
	k := l.nout
	l.nout++
	l.outBufs[k] = bp
	l.outIovs[k].Base = &b[0]
	l.outIovs[k].SetLen(len(b))
	h := &l.outHdrs[k].Hdr
	h.Name = (*byte)(unsafe.Pointer(&l.names[i]))
	h.Namelen = l.hdrs[i].Hdr.Namelen
	h.Iov = &l.outIovs[k]
	h.SetIovlen(1)
}

// flush sends the queued replies.
func (l *udpLoop) flush() {
	for l.sent = 0; l.sent < l.nout; {
		if err := l.rc.Write(l.sendFn); err != nil {
			break // closed
		}
		if l.errno != 0 {
			// The first unsent reply failed: skip it.
			l.s.logger.Debug("resolver: sending a UDP reply", "error", l.errno)
			l.n = 1
		}
		l.sent += l.n
	}
	for k := range l.nout {
		if l.outBufs[k] != nil {
			l.s.udpBuffer.Put(l.outBufs[k])
			l.outBufs[k] = nil
		}
		l.outIovs[k].Base = nil
	}
	l.nout = 0
}

// sendmmsg is flush's callback for RawConn.Write; it returns false to
// wait until the socket is writable.
func (l *udpLoop) sendmmsg(fd uintptr) bool {
	var ok bool
	l.n, l.errno, ok = mmsg(unix.SYS_SENDMMSG, fd, &l.outHdrs[l.sent], l.nout-l.sent)
	return ok
}

// mmsg makes the system call trap, recvmmsg or sendmmsg, on fd for the n
// messages from hdrs without blocking, again when a signal interrupts it.
// ok is false when the socket would block: the RawConn callback making the
// call then returns false, to wait for the socket. Otherwise it returns
// the number of messages done, or errno.
func mmsg(trap, fd uintptr, hdrs *unix.Mmsghdr, n int) (done int, errno syscall.Errno, ok bool) {
	for {
		r, _, e := unix.Syscall6(trap, fd, uintptr(unsafe.Pointer(hdrs)), uintptr(n), unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, 0, false
		}
		return int(r), e, true
	}
}

// sockaddrAddrPort returns the address in sa, an IPv4 or IPv6 socket
// address (the scope of an IPv6 address is dropped: the server listens on
// loopback).
func sockaddrAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	port := func(p *uint16) uint16 { return binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(p))[:]) }
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port(&sa4.Port))
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port(&sa.Port))
	}
	return netip.AddrPort{}
}

// udpWriter sends the reply to one UDP query. It stays valid after the
// handler returns: a reply written while the read loop still serves the
// query goes out with the loop's batch, one written later (by the
// forwarder) at once.
type udpWriter struct {
	s  *Server
	to netip.AddrPort

	mu sync.Mutex
	// inline is set while the read loop serves the query; the first reply
	// written meanwhile waits in out (packed into outBuf, from
	// Server.udpBuffer) for the loop.
	inline bool
	out    []byte
	outBuf *[]byte
}

var _ writer = (*udpWriter)(nil)

// LocalAddr returns the server's UDP address (network "udp", which the
// handler reads to size its reply).
func (w *udpWriter) LocalAddr() net.Addr { return w.s.udpLocal }

// RemoteAddr returns the client's address.
func (w *udpWriter) RemoteAddr() net.Addr { return net.UDPAddrFromAddrPort(w.to) }

// WriteMsg packs m, compressed, and sends it.
func (w *udpWriter) WriteMsg(m *dns.Msg) error {
	m.Compress = true
	bp := w.s.udpBuffer.Get().(*[]byte)
	b, err := m.PackBuffer(*bp)
	if err != nil {
		w.s.udpBuffer.Put(bp)
		return err
	}
	_, err = w.send(b, bp)
	return err
}

// Write sends b as it is. Only a reply written while the loop serves
// the query is copied, to wait for the loop's batch; a later one (the
// forwarder's) goes out of b at once.
func (w *udpWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	if w.inline && w.out == nil && len(b) > 0 && len(b) <= maxUDPSize {
		bp := w.s.udpBuffer.Get().(*[]byte)
		w.out, w.outBuf = (*bp)[:copy(*bp, b)], bp
		w.mu.Unlock()
		return len(b), nil
	}
	w.mu.Unlock()
	return w.s.udp.WriteToUDPAddrPort(b, w.to)
}

// send sends b, which is in *bp, and gives bp back to the pool once b is
// sent.
func (w *udpWriter) send(b []byte, bp *[]byte) (int, error) {
	w.mu.Lock()
	if w.inline && w.out == nil && len(b) > 0 {
		w.out, w.outBuf = b, bp
		w.mu.Unlock()
		return len(b), nil
	}
	w.mu.Unlock()
	n, err := w.s.udp.WriteToUDPAddrPort(b, w.to)
	w.s.udpBuffer.Put(bp)
	return n, err
}

// Close does nothing: there is no connection.
func (w *udpWriter) Close() error { return nil }

// TsigStatus returns nil: the server does not check TSIG.
func (w *udpWriter) TsigStatus() error { return nil }

// TsigTimersOnly does nothing.
func (w *udpWriter) TsigTimersOnly(bool) {}

// Hijack does nothing: there is no connection to take over.
func (w *udpWriter) Hijack() {}

func (w *udpWriter) drop() {}
