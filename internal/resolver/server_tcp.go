package resolver

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// acceptTCP takes the server's TCP connections until the listener is
// closed.
func (s *Server) acceptTCP() {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		c, err := s.tcp.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors or memory: wait a little, as
			// net/http does, rather than spin.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.logger.Warn("resolver: accepting a TCP connection", "error", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		tc := &tcpConn{s: s, c: c}
		s.mu.Lock()
		full := len(s.conns) >= maxTCPConns
		if s.stopping || full {
			s.mu.Unlock()
			if full {
				s.logger.Debug("resolver: too many TCP connections, closing a new one", "max", maxTCPConns, "client", c.RemoteAddr())
			}
			_ = c.Close()
			continue
		}
		s.conns[tc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go tc.serve()
	}
}

// tcpConn is one client's TCP connection. Its goroutine reads the queries
// one after the other and hands each to the handler with a tcpWriter;
// replies go out as they are written, in any order.
type tcpConn struct {
	s *Server
	c *net.TCPConn

	// wmu serializes the writes of replies.
	wmu sync.Mutex

	mu sync.Mutex
	// pending counts the queries read whose reply is not written yet.
	pending int
	// readDone is set when the client sent its last query (or stayed idle
	// past the timeout): the connection closes once nothing is pending.
	readDone bool
	closed   bool
}

// serve reads queries until the client closes the connection, stays idle,
// or sends something that is not a query stream.
func (tc *tcpConn) serve() {
	defer tc.s.wg.Done()
	r := bufio.NewReaderSize(tc.c, 1024)
	var (
		length [2]byte
		buf    []byte
	)
	for {
		if err := tc.c.SetReadDeadline(time.Now().Add(tcpIdleTimeout)); err != nil {
			break
		}
		if _, err := io.ReadFull(r, length[:]); err != nil {
			// EOF or idle: the client is done; the replies it is owed
			// still go out. Anything else: the connection is gone.
			if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrDeadlineExceeded) {
				tc.close()
			}
			break
		}
		n := int(binary.BigEndian.Uint16(length[:]))
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			tc.close()
			break
		}
		tc.mu.Lock()
		tc.pending++
		tc.mu.Unlock()
		// The message is unpacked into a new *dns.Msg that copies what it
		// keeps, so buf is free again when serve returns.
		tc.s.stats.Queries.Add(1)
		tc.s.serve(buf[:n], &tcpWriter{tc: tc}, false)
	}
	tc.mu.Lock()
	tc.readDone = true
	idle := tc.pending == 0
	tc.mu.Unlock()
	if idle {
		tc.close()
		return
	}
	// A reply that never comes (a forwarder's bug) must not keep the
	// connection forever.
	time.AfterFunc(tcpIdleTimeout, tc.close)
}

// done records that the reply to one query was written or given up.
func (tc *tcpConn) done() {
	tc.mu.Lock()
	tc.pending--
	last := tc.readDone && tc.pending == 0
	tc.mu.Unlock()
	if last {
		tc.close()
	}
}

// close closes the connection and forgets it; closing twice is harmless.
func (tc *tcpConn) close() {
	tc.mu.Lock()
	closed := tc.closed
	tc.closed = true
	tc.mu.Unlock()
	if closed {
		return
	}
	_ = tc.c.Close()
	tc.s.mu.Lock()
	delete(tc.s.conns, tc)
	tc.s.mu.Unlock()
}

// write sends one length-prefixed message.
func (tc *tcpConn) write(b []byte) (int, error) {
	if len(b) > dns.MaxMsgSize {
		return 0, errors.New("reply larger than 65535 bytes")
	}
	tc.wmu.Lock()
	defer tc.wmu.Unlock()
	if err := tc.c.SetWriteDeadline(time.Now().Add(tcpWriteTimeout)); err != nil {
		return 0, err
	}
	bufs := net.Buffers{{byte(len(b) >> 8), byte(len(b))}, b}
	if _, err := bufs.WriteTo(tc.c); err != nil {
		return 0, err
	}
	return len(b), nil
}

// tcpWriter writes the reply to one query read from a TCP connection. It
// stays valid after the handler returns.
type tcpWriter struct {
	tc *tcpConn
	// finished is set by the first Write, Close or Hijack: the query no
	// longer holds the connection open.
	finished atomic.Bool
}

var _ writer = (*tcpWriter)(nil)

func (w *tcpWriter) finish() {
	if !w.finished.Swap(true) {
		w.tc.done()
	}
}

// LocalAddr returns the server's TCP address (network "tcp", which the
// handler reads to size its reply).
func (w *tcpWriter) LocalAddr() net.Addr { return w.tc.s.tcpLocal }

// RemoteAddr returns the client's address.
func (w *tcpWriter) RemoteAddr() net.Addr { return w.tc.c.RemoteAddr() }

// WriteMsg packs m, compressed, and sends it.
func (w *tcpWriter) WriteMsg(m *dns.Msg) error {
	m.Compress = true
	b, err := m.Pack()
	if err != nil {
		w.finish()
		return err
	}
	_, err = w.Write(b)
	return err
}

// Write sends b, a packed message, with its length prefix.
func (w *tcpWriter) Write(b []byte) (int, error) {
	defer w.finish()
	return w.tc.write(b)
}

// Close closes the connection, as with miekg's server: the client sees at
// once that no reply comes. Other queries pending on it lose theirs.
func (w *tcpWriter) Close() error {
	w.finish()
	w.tc.close()
	return nil
}

// TsigStatus returns nil: the server does not check TSIG.
func (w *tcpWriter) TsigStatus() error { return nil }

// TsigTimersOnly does nothing.
func (w *tcpWriter) TsigTimersOnly(bool) {}

// Hijack says the handler writes no reply through w: the connection no
// longer waits for one.
func (w *tcpWriter) Hijack() { w.finish() }

func (w *tcpWriter) drop() { w.finish() }
