package resolver

import (
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"sync"
	"time"
)

const (
	// tcpIdle is the number of idle TCP connections kept per upstream.
	tcpIdle = 4
	// tcpIdleAge is how long an idle TCP connection is kept: then it is
	// closed, so that neither side holds it (dnsmasq keeps a process per
	// connection) for a sandbox that stopped asking (Forwarder field, for
	// tests).
	tcpIdleAge = 10 * time.Second
)

// tcpPool holds the TCP connections to one upstream: one query at a time
// on each, the idle ones kept for the next queries.
type tcpPool struct {
	f *Forwarder

	mu sync.Mutex
	// idle are the connections waiting for a query, the last one used
	// last.
	idle []idleConn
	// expiry closes the connections idle for tcpIdleAge; nil when none
	// is idle.
	expiry *time.Timer
	// open are all the pool's connections, idle or busy, for close.
	open map[net.Conn]struct{}
	// closed: close was called; connections are closed when they come
	// back and none is dialled.
	closed bool
}

// idleConn is an idle connection and when it became idle.
type idleConn struct {
	c     net.Conn
	since time.Time
}

func (p *tcpPool) init(f *Forwarder) {
	p.f = f
	p.open = map[net.Conn]struct{}{}
}

// exchange sends q on an idle connection, or a new one, and reads its
// reply until deadline. A reused connection that fails (the server may have
// closed it while idle) is replaced by a new one once.
func (p *tcpPool) exchange(q *fwdQuery, u *Upstream, deadline time.Time) error {
	c, reused, err := p.get(u, deadline)
	if err != nil {
		return err
	}
	err = roundTripTCP(c, q, deadline)
	if err != nil && reused && !errors.Is(err, errTimeout) && !errors.Is(err, errMalformed) && !p.isClosed() {
		p.discard(c)
		if c, err = p.dial(u, deadline); err != nil {
			return err
		}
		err = roundTripTCP(c, q, deadline)
	}
	if err != nil {
		p.discard(c)
		if p.isClosed() {
			return errSocketClosed
		}
		return err
	}
	p.put(c)
	return nil
}

// roundTripTCP sends q on c with a fresh ID and reads the reply into
// q.reply.
func roundTripTCP(c net.Conn, q *fwdQuery, deadline time.Time) error {
	binary.BigEndian.PutUint16(q.msg(), uint16(rand.Uint32()))
	if err := c.SetDeadline(deadline); err != nil {
		return err
	}
	if _, err := c.Write(q.buf); err != nil {
		return timeoutOr(err)
	}
	if _, err := io.ReadFull(c, q.lenbuf[:]); err != nil {
		return timeoutOr(err)
	}
	n := int(binary.BigEndian.Uint16(q.lenbuf[:]))
	q.reply = slices.Grow(q.reply[:0], n)[:n]
	if _, err := io.ReadFull(c, q.reply); err != nil {
		return timeoutOr(err)
	}
	if !q.matches(q.reply) {
		return errMalformed
	}
	return nil
}

// timeoutOr returns errTimeout for a deadline error, else err.
func timeoutOr(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return errTimeout
	}
	return err
}

// get returns an idle connection (reused true) or dials one.
func (p *tcpPool) get(u *Upstream, deadline time.Time) (c net.Conn, reused bool, err error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		c = p.idle[n-1].c
		p.idle[n-1] = idleConn{}
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return c, true, nil
	}
	p.mu.Unlock()
	c, err = p.dial(u, deadline)
	return c, false, err
}

// dial opens a new connection of the pool.
func (p *tcpPool) dial(u *Upstream, deadline time.Time) (net.Conn, error) {
	if p.isClosed() {
		return nil, errSocketClosed
	}
	c, err := p.f.dial(u, "tcp", deadline)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return nil, errSocketClosed
	}
	p.open[c] = struct{}{}
	return c, nil
}

// put keeps c for the next query, or closes it when enough are idle.
func (p *tcpPool) put(c net.Conn) {
	p.mu.Lock()
	if !p.closed && len(p.idle) < p.f.tcpIdle {
		p.idle = append(p.idle, idleConn{c, time.Now()})
		if p.expiry == nil {
			p.expiry = time.AfterFunc(p.f.tcpIdleAge, p.expire)
		}
		p.mu.Unlock()
		return
	}
	delete(p.open, c)
	p.mu.Unlock()
	c.Close()
}

// expire closes the connections idle for tcpIdleAge, and runs again when
// the next will have been.
func (p *tcpPool) expire() {
	now := time.Now()
	p.mu.Lock()
	i := 0
	for i < len(p.idle) && now.Sub(p.idle[i].since) >= p.f.tcpIdleAge {
		i++
	}
	old := slices.Clone(p.idle[:i])
	p.idle = slices.Delete(p.idle, 0, i)
	for _, ic := range old {
		delete(p.open, ic.c)
	}
	switch {
	case p.closed:
	case len(p.idle) > 0:
		p.expiry.Reset(p.idle[0].since.Add(p.f.tcpIdleAge).Sub(now))
	default:
		p.expiry = nil
	}
	p.mu.Unlock()
	for _, ic := range old {
		ic.c.Close()
	}
}

// discard closes c, which failed.
func (p *tcpPool) discard(c net.Conn) {
	p.mu.Lock()
	delete(p.open, c)
	p.mu.Unlock()
	c.Close()
}

func (p *tcpPool) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// close closes all the pool's connections, idle or busy: the queries on
// busy ones fail with errSocketClosed.
func (p *tcpPool) close() {
	p.mu.Lock()
	p.closed = true
	conns := make([]net.Conn, 0, len(p.open))
	for c := range p.open {
		conns = append(conns, c)
	}
	p.open = map[net.Conn]struct{}{}
	p.idle = nil
	if p.expiry != nil {
		p.expiry.Stop()
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}
