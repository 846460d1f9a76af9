package resolver

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The UDP pool's parameters (Forwarder fields, for tests).
const (
	// udpSockets is the number of connected sockets per upstream, used in
	// turn: each has its reader goroutine, so two cores keep busy.
	udpSockets = 4
	// udpRotateQueries and udpRotateAge bound the queries a socket sends
	// and its age; then it is replaced, so the source port changes.
	udpRotateQueries = 10000
	udpRotateAge     = time.Minute
	// udpReadBuffer holds the largest datagram.
	udpReadBuffer = 65535
)

// udpPool holds the connected UDP sockets to one upstream.
type udpPool struct {
	f      *Forwarder
	next   atomic.Uint32
	closed atomic.Bool
	slots  []udpSlot
}

// udpSlot holds one of the pool's sockets, nil until dialled or after it
// was retired.
type udpSlot struct {
	// mu serialises dialling the slot's socket, so that a burst of
	// queries dials once.
	mu   sync.Mutex
	sock atomic.Pointer[udpSocket]
}

// udpSocket is one connected UDP socket and the queries in flight on it;
// its reader hands each reply to the query waiting for it.
type udpSocket struct {
	conn net.Conn
	slot *udpSlot
	born time.Time

	mu sync.Mutex
	// waiters are the queries in flight by the ID they were sent with.
	// A query leaves it when its reply is handed to it (or its failure),
	// or when it gives up waiting.
	waiters map[uint16]*fwdQuery
	// sent counts the queries sent, for rotation.
	sent int
	// retiring: the socket left its slot; it closes when waiters empties.
	retiring bool
	// closing: the forwarder closed the socket (Flush, or retired and
	// empty); closed: the reader is gone. Neither takes queries.
	closing, closed bool
}

func (p *udpPool) init(f *Forwarder) {
	p.f = f
	p.slots = make([]udpSlot, f.udpSockets)
}

// exchange sends q on one of the pool's sockets and waits for its reply
// until deadline. On success the reply is in q.reply.
func (p *udpPool) exchange(q *fwdQuery, u *Upstream, deadline time.Time) error {
	s, err := p.socket(u, deadline)
	if err != nil {
		return err
	}
	if err := s.register(q, p.f); err != nil {
		return err
	}
	if _, err := s.conn.Write(q.msg()); err != nil {
		if s.unregister(q) {
			return err
		}
		// The reader failed the query meanwhile (a refusal, the
		// socket closed): take its verdict.
		return <-q.done
	}
	q.timer.Reset(time.Until(deadline))
	select {
	case err = <-q.done:
	case <-q.timer.C:
		err = errTimeout
		if !s.unregister(q) {
			// The reply (or a failure) came as the time ran out.
			err = <-q.done
		}
	}
	q.timer.Stop()
	return err
}

// socket returns one of the pool's sockets in turn, dialling it if needed.
func (p *udpPool) socket(u *Upstream, deadline time.Time) (*udpSocket, error) {
	sl := &p.slots[p.next.Add(1)%uint32(len(p.slots))]
	if s := sl.sock.Load(); s != nil {
		return s, nil
	}
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if s := sl.sock.Load(); s != nil {
		return s, nil
	}
	if p.closed.Load() {
		return nil, errSocketClosed
	}
	conn, err := dial(u, "udp", deadline)
	if err != nil {
		return nil, err
	}
	s := &udpSocket{conn: conn, slot: sl, born: time.Now(), waiters: map[uint16]*fwdQuery{}}
	sl.sock.Store(s)
	p.f.readers.Add(1)
	go s.read(&p.f.readers)
	return s, nil
}

// close closes the pool's sockets, failing the queries in flight on them
// with errSocketClosed, and keeps it from dialling more. Retired sockets
// still answer their last queries.
func (p *udpPool) close() {
	p.closed.Store(true)
	for i := range p.slots {
		sl := &p.slots[i]
		sl.mu.Lock()
		s := sl.sock.Swap(nil)
		sl.mu.Unlock()
		if s != nil {
			s.shut()
		}
	}
}

// register gives q a random ID unused on s, writes it into q's packet and
// adds q to the waiters. It retires s when s has sent or lived enough.
func (s *udpSocket) register(q *fwdQuery, f *Forwarder) error {
	s.mu.Lock()
	if s.closing || s.closed {
		s.mu.Unlock()
		return errSocketClosed
	}
	// math/rand/v2's top-level source is a ChaCha8 generator per thread
	// seeded by the runtime from the OS: unpredictable off-path.
	id := uint16(rand.Uint32())
	for s.waiters[id] != nil {
		id = uint16(rand.Uint32())
	}
	binary.BigEndian.PutUint16(q.msg(), id)
	s.waiters[id] = q
	s.sent++
	retire := !s.retiring && (s.sent >= f.udpRotateQueries || time.Since(s.born) >= f.udpRotateAge)
	if retire {
		s.retiring = true
	}
	s.mu.Unlock()
	if retire {
		s.slot.sock.CompareAndSwap(s, nil)
	}
	return nil
}

// unregister removes q from the waiters and tells whether it was there;
// when it was not, the reader has sent (or is sending) q its verdict.
func (s *udpSocket) unregister(q *fwdQuery) bool {
	s.mu.Lock()
	id := binary.BigEndian.Uint16(q.msg())
	ok := s.waiters[id] == q
	if ok {
		delete(s.waiters, id)
	}
	shut := s.drainedLocked()
	s.mu.Unlock()
	if shut {
		s.conn.Close()
	}
	return ok
}

// drainedLocked tells whether s was retired and has no query left, marking
// it closing: the caller closes it. s.mu must be held.
func (s *udpSocket) drainedLocked() bool {
	if !s.retiring || s.closing || len(s.waiters) > 0 {
		return false
	}
	s.closing = true
	return true
}

// shut closes s for Flush.
func (s *udpSocket) shut() {
	s.mu.Lock()
	already := s.closing
	s.closing = true
	s.mu.Unlock()
	if !already {
		s.conn.Close()
	}
}

// read hands the replies arriving on s to the queries waiting for them
// until s is closed.
func (s *udpSocket) read(wg *sync.WaitGroup) {
	defer wg.Done()
	buf := make([]byte, udpReadBuffer)
	for {
		n, err := s.conn.Read(buf)
		if err != nil {
			if isUnreachable(err) {
				// An ICMP error for one of the queries sent: which one
				// is not said, but all went to the same server.
				s.failAll(err, false)
				continue
			}
			s.slot.sock.CompareAndSwap(s, nil)
			s.failAll(err, true)
			s.conn.Close()
			return
		}
		s.deliver(buf[:n])
	}
}

// deliver hands reply to the query it answers. A reply that answers none
// in flight (late, or spoofed: wrong ID or question) is dropped.
func (s *udpSocket) deliver(reply []byte) {
	if len(reply) < headerLen {
		return
	}
	s.mu.Lock()
	id := binary.BigEndian.Uint16(reply)
	q := s.waiters[id]
	if q == nil || !q.matches(reply) {
		s.mu.Unlock()
		return
	}
	delete(s.waiters, id)
	q.reply = append(q.reply[:0], reply...)
	q.done <- nil
	shut := s.drainedLocked()
	s.mu.Unlock()
	if shut {
		s.conn.Close()
	}
}

// failAll fails the queries in flight with err, or errSocketClosed if the
// forwarder closed s; final marks s closed.
func (s *udpSocket) failAll(err error, final bool) {
	s.mu.Lock()
	if s.closing {
		err = errSocketClosed
	}
	if final {
		s.closed = true
	}
	for id, q := range s.waiters {
		delete(s.waiters, id)
		q.done <- err
	}
	shut := !final && s.drainedLocked()
	s.mu.Unlock()
	if shut {
		s.conn.Close()
	}
}

// isUnreachable tells whether err is an ICMP error reported on a connected
// UDP socket; the socket stays usable.
func isUnreachable(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH)
}
