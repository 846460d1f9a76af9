package builtin

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/netkit/libnetwork/rootless/port"
)

// tcpForwarder accepts connections on the parent address and joins each
// to a connection the child makes to ChildIP:ChildPort.
type tcpForwarder struct {
	d    *parentDriver
	spec port.Spec
	ln   *net.TCPListener
	// ctx ends the requests to the child when the port is removed.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu sync.Mutex
	// conns are the open connections of both sides.
	conns  map[*net.TCPConn]struct{}
	closed bool
}

func startTCP(d *parentDriver, spec port.Spec, ln *net.TCPListener) *tcpForwarder {
	ctx, cancel := context.WithCancel(context.Background())
	f := &tcpForwarder{d: d, spec: spec, ln: ln, ctx: ctx, cancel: cancel, conns: map[*net.TCPConn]struct{}{}}
	f.wg.Add(1)
	go f.serve()
	return f
}

func (f *tcpForwarder) serve() {
	defer f.wg.Done()
	delay := 5 * time.Millisecond
	for {
		c, err := f.ln.AcceptTCP()
		if err != nil && outOfResources(err) {
			// As net/http: wait for descriptors or memory to be freed.
			f.d.logger.Warn("builtin port driver: accepting", "spec", f.spec.String(), "error", err)
			select {
			case <-time.After(delay):
			case <-f.ctx.Done():
				return
			}
			delay = min(2*delay, time.Second)
			continue
		}
		delay = 5 * time.Millisecond
		if err != nil {
			if f.ctx.Err() == nil {
				f.d.logger.Error("builtin port driver: accepting stopped", "spec", f.spec.String(), "error", err)
			}
			return
		}
		if !f.track(c) {
			c.Close()
			return
		}
		f.wg.Add(1)
		go f.relay(c)
	}
}

// relay gets the child's connection for client and joins the two. A
// client whose target the child cannot connect to is closed.
func (f *tcpForwarder) relay(client *net.TCPConn) {
	defer f.wg.Done()
	defer f.untrack(client)
	_, file, err := call(f.ctx, f.d.socketPath, childRequest(opConnect, f.spec))
	if err != nil {
		f.d.logger.Warn("builtin port driver: no connection in the child", "spec", f.spec.String(), "client", client.RemoteAddr().String(), "error", err)
		return
	}
	if file == nil {
		f.d.logger.Error("builtin port driver: the child answered without a socket", "spec", f.spec.String())
		return
	}
	c, err := net.FileConn(file) // a dup of file
	file.Close()
	if err != nil {
		f.d.logger.Error("builtin port driver: the child's socket", "spec", f.spec.String(), "error", err)
		return
	}
	child, ok := c.(*net.TCPConn)
	if !ok {
		c.Close()
		f.d.logger.Error("builtin port driver: the child passed a socket that is not TCP", "spec", f.spec.String())
		return
	}
	if !f.track(child) {
		child.Close()
		return
	}
	defer f.untrack(child)
	join(client, child)
}

// join copies between a and b until both directions end. The end of one
// direction (EOF) is passed on as a half-close; a failure of either (a
// reset) closes both, which the peers see as a close.
func join(a, b *net.TCPConn) {
	var wg sync.WaitGroup
	pipe := func(dst, src *net.TCPConn) {
		defer wg.Done()
		if _, err := io.Copy(dst, src); err != nil {
			a.Close()
			b.Close()
			return
		}
		_ = dst.CloseWrite()
	}
	wg.Add(2)
	go pipe(a, b)
	go pipe(b, a)
	wg.Wait()
}

// track adds c to the open connections, or reports false once the
// forwarder is closed.
func (f *tcpForwarder) track(c *net.TCPConn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *tcpForwarder) untrack(c *net.TCPConn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
	c.Close()
}

func (f *tcpForwarder) close(ctx context.Context) error {
	f.cancel()
	f.mu.Lock()
	f.closed = true
	conns := f.conns
	f.conns = map[*net.TCPConn]struct{}{}
	f.mu.Unlock()
	err := f.ln.Close()
	for c := range conns {
		c.Close()
	}
	return errors.Join(err, wait(ctx, &f.wg))
}

// outOfResources tells whether accept failed for want of descriptors or
// memory, which may be freed.
func outOfResources(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// wait waits for wg until ctx is done.
func wait(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
