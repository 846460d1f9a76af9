package builtin

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/netkit/libnetwork/rootless/port"
)

// maxDatagram is the largest UDP payload.
const maxDatagram = 65535

// udpForwarder relays datagrams between the parent address and
// ChildIP:ChildPort. Each client address is a flow with its own socket in
// the child, connected to the target, so that the target's replies go
// back to the client that sent; a flow with no datagram either way for
// idle is dropped.
type udpForwarder struct {
	d    *parentDriver
	spec port.Spec
	pc   *net.UDPConn
	idle time.Duration
	// ctx ends the requests to the child when the port is removed.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	flows  map[netip.AddrPort]*udpFlow
	closed bool
}

// udpFlow is one client's flow.
type udpFlow struct {
	client netip.AddrPort
	// conn is the flow's socket in the child namespace, connected to the
	// target.
	conn *net.UDPConn
	// last is when a datagram last went either way, in UnixNano.
	last atomic.Int64
}

func startUDP(d *parentDriver, spec port.Spec, pc *net.UDPConn, idle time.Duration) *udpForwarder {
	ctx, cancel := context.WithCancel(context.Background())
	f := &udpForwarder{d: d, spec: spec, pc: pc, idle: idle, ctx: ctx, cancel: cancel, flows: map[netip.AddrPort]*udpFlow{}}
	f.wg.Add(1)
	go f.serve()
	return f
}

// serve reads the clients' datagrams and sends each into its flow.
func (f *udpForwarder) serve() {
	defer f.wg.Done()
	buf := make([]byte, maxDatagram)
	for {
		n, client, err := f.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if f.ctx.Err() == nil {
				f.d.logger.Error("builtin port driver: receiving stopped", "spec", f.spec.String(), "error", err)
			}
			return
		}
		fl := f.flow(client)
		if fl == nil {
			continue
		}
		fl.last.Store(time.Now().UnixNano())
		// A refused earlier datagram (nothing listens in the child yet)
		// fails this write; the datagram is lost, as it would be.
		if _, err := fl.conn.Write(buf[:n]); err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
			f.d.logger.Debug("builtin port driver: sending a datagram into the child", "spec", f.spec.String(), "client", client.String(), "error", err)
		}
	}
}

// flow returns client's flow, making it if need be; nil if the child
// gives no socket (the datagram is dropped).
func (f *udpForwarder) flow(client netip.AddrPort) *udpFlow {
	f.mu.Lock()
	fl := f.flows[client]
	f.mu.Unlock()
	if fl != nil {
		return fl
	}
	_, file, err := call(f.ctx, f.d.socketPath, childRequest(opConnect, f.spec))
	if err != nil {
		f.d.logger.Warn("builtin port driver: no UDP socket in the child", "spec", f.spec.String(), "client", client.String(), "error", err)
		return nil
	}
	if file == nil {
		f.d.logger.Error("builtin port driver: the child answered without a socket", "spec", f.spec.String())
		return nil
	}
	c, err := net.FileConn(file) // a dup of file
	file.Close()
	if err != nil {
		f.d.logger.Error("builtin port driver: the child's socket", "spec", f.spec.String(), "error", err)
		return nil
	}
	conn, ok := c.(*net.UDPConn)
	if !ok {
		c.Close()
		f.d.logger.Error("builtin port driver: the child passed a socket that is not UDP", "spec", f.spec.String())
		return nil
	}
	fl = &udpFlow{client: client, conn: conn}
	fl.last.Store(time.Now().UnixNano())
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		conn.Close()
		return nil
	}
	f.flows[client] = fl
	f.wg.Add(1)
	f.mu.Unlock()
	go f.reply(fl)
	return fl
}

// reply sends the target's datagrams of a flow back to its client, and
// drops the flow when it has been idle.
func (f *udpForwarder) reply(fl *udpFlow) {
	defer f.wg.Done()
	defer f.drop(fl)
	buf := make([]byte, maxDatagram)
	for {
		_ = fl.conn.SetReadDeadline(time.Unix(0, fl.last.Load()).Add(f.idle))
		n, err := fl.conn.Read(buf)
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			// The target did not listen when a datagram came; it may
			// later.
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
			if time.Since(time.Unix(0, fl.last.Load())) >= f.idle {
				f.d.logger.Debug("builtin port driver: UDP flow idle, dropped", "spec", f.spec.String(), "client", fl.client.String())
				return
			}
			continue
		case err != nil:
			return
		}
		fl.last.Store(time.Now().UnixNano())
		if _, err := f.pc.WriteToUDPAddrPort(buf[:n], fl.client); err != nil {
			f.d.logger.Debug("builtin port driver: sending a datagram to a client", "spec", f.spec.String(), "client", fl.client.String(), "error", err)
		}
	}
}

// drop forgets the flow and closes its socket.
func (f *udpForwarder) drop(fl *udpFlow) {
	f.mu.Lock()
	if f.flows[fl.client] == fl {
		delete(f.flows, fl.client)
	}
	f.mu.Unlock()
	fl.conn.Close()
}

// flowCount is the number of live flows.
func (f *udpForwarder) flowCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.flows)
}

func (f *udpForwarder) close(ctx context.Context) error {
	f.cancel()
	f.mu.Lock()
	f.closed = true
	flows := f.flows
	f.flows = map[netip.AddrPort]*udpFlow{}
	f.mu.Unlock()
	err := f.pc.Close()
	for _, fl := range flows {
		fl.conn.Close()
	}
	return errors.Join(err, wait(ctx, &f.wg))
}
