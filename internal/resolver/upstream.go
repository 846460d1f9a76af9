package resolver

import (
	"context"
	"errors"
	"net"
	"time"
)

// upstreamPool holds the reused sockets to one upstream.
type upstreamPool struct {
	udp udpPool
	tcp tcpPool
}

func newUpstreamPool(f *Forwarder) *upstreamPool {
	p := &upstreamPool{udp: udpPool{f: f}}
	p.tcp.init(f)
	return p
}

// close closes the pool's sockets; queries waiting on them fail with
// errSocketClosed.
func (p *upstreamPool) close() {
	p.udp.close()
	p.tcp.close()
}

var (
	// errSocketClosed fails an attempt whose socket was closed under it
	// by Flush (or whose pool was): the query may be sent again on a
	// new socket.
	errSocketClosed = errors.New("upstream socket closed")
	// errTimeout fails an attempt that got no reply in its share of the
	// timeout.
	errTimeout = errors.New("no reply in time")
)

// dial opens a socket to u on network "udp" or "tcp", giving up at
// deadline or when the forwarder is closed (Close does not wait out a
// connect to a dead upstream).
func (f *Forwarder) dial(u *Upstream, network string, deadline time.Time) (net.Conn, error) {
	ctx, cancel := context.WithDeadline(f.ctx, deadline)
	defer cancel()
	if u.Dial != nil {
		return u.Dial(ctx, network, u.Addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, u.Addr.String())
}
