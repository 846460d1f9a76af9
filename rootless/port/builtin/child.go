package builtin

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/netkit/libnetwork/rootless/port"
	"github.com/netkit/libnetwork/types"
)

// childDriver answers the parent's requests inside the child namespace.
type childDriver struct {
	logger *slog.Logger
}

// NewChildDriver returns the child half of the driver. Run it in the
// rootless network namespace with the parent's OpaqueForChild. A nil
// logger discards.
func NewChildDriver(logger *slog.Logger) port.ChildDriver {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &childDriver{logger: logger}
}

// RunChildDriver listens on the socket opaque names and serves the parent
// until quit is signaled; then it closes the socket (and removes its file)
// and the requests in flight, and returns nil. Sockets already passed to
// the parent are the parent's: they stay open.
func (c *childDriver) RunChildDriver(opaque map[string]string, quit <-chan struct{}) error {
	path := opaque[OpaqueSocketPath]
	if path == "" {
		return types.BadRequestErrorf("builtin port child driver: no %q in the parent's opaque data", OpaqueSocketPath)
	}
	ln, err := listenChild(path)
	if err != nil {
		return err
	}
	c.logger.Info("builtin port child driver listening", "socket", path)

	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		conns   = map[*net.UnixConn]struct{}{}
		closing bool
		done    = make(chan struct{})
	)
	go func() {
		select {
		case <-quit:
		case <-done:
		}
		mu.Lock()
		closing = true
		for conn := range conns {
			conn.Close()
		}
		mu.Unlock()
		ln.Close()
	}()
	defer func() {
		close(done)
		wg.Wait()
	}()
	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			mu.Lock()
			quitting := closing
			mu.Unlock()
			if quitting {
				return nil
			}
			return types.InternalErrorf("builtin port child driver: accepting on %s: %w", path, err)
		}
		mu.Lock()
		if closing {
			mu.Unlock()
			conn.Close()
			continue
		}
		conns[conn] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.serve(conn)
			mu.Lock()
			delete(conns, conn)
			mu.Unlock()
			conn.Close()
		}()
	}
}

// listenChild listens on path. A socket file left by a child that died is
// replaced; one a live child answers on is not.
func listenChild(path string) (*net.UnixListener, error) {
	addr := &net.UnixAddr{Name: path, Net: "unixpacket"}
	ln, err := net.ListenUnix("unixpacket", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		c, derr := net.DialUnix("unixpacket", nil, addr)
		if derr == nil {
			c.Close()
			return nil, types.ForbiddenErrorf("builtin port child driver: another child driver listens on %s", path)
		}
		if !errors.Is(derr, syscall.ECONNREFUSED) {
			return nil, types.InternalErrorf("builtin port child driver: listening on %s: %w (and it does not answer: %v)", path, err, derr)
		}
		if rerr := os.Remove(path); rerr != nil {
			return nil, types.InternalErrorf("builtin port child driver: removing the stale socket %s: %w", path, rerr)
		}
		ln, err = net.ListenUnix("unixpacket", addr)
	}
	if err != nil {
		return nil, types.InternalErrorf("builtin port child driver: listening on %s: %w", path, err)
	}
	// Whoever may connect may open sockets in the child's namespace.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, types.InternalErrorf("builtin port child driver: restricting %s: %w", path, err)
	}
	return ln, nil
}

// serve answers the one request of a connection.
func (c *childDriver) serve(conn *net.UnixConn) {
	_ = conn.SetDeadline(time.Now().Add(childDialTimeout + 5*time.Second))
	buf := make([]byte, maxPacket)
	n, err := conn.Read(buf)
	if err != nil {
		c.logger.Debug("builtin port child driver: reading a request", "error", err)
		return
	}
	var req request
	if err := json.Unmarshal(buf[:n], &req); err != nil {
		c.reply(conn, req, fmt.Errorf("malformed request: %w", err), nil)
		return
	}
	// Hang up only after the parent has. A non-blocking SEQPACKET
	// recvmsg that finds the queue empty and then the peer shut down
	// reports EOF; an answer queued between the two checks is lost to
	// the reader. Closing right after answering lost about one answer in
	// 50,000 (Linux 6.18, a parent and a child process pinging).
	defer func() { _, _ = conn.Read(buf) }()
	switch req.Op {
	case opPing:
		c.reply(conn, req, nil, nil)
	case opCheck:
		c.reply(conn, req, check(req), nil)
	case opConnect:
		sock, err := connect(req)
		c.reply(conn, req, err, sock)
		if sock != nil {
			sock.Close()
		}
	default:
		c.reply(conn, req, fmt.Errorf("unknown request %q", req.Op), nil)
	}
}

func (c *childDriver) reply(conn *net.UnixConn, req request, failure error, sock net.Conn) {
	rep := reply{Version: protocolVersion}
	if failure != nil {
		rep.Error = failure.Error()
		c.logger.Debug("builtin port child driver: refusing a request", "op", req.Op, "error", failure)
	}
	var sc syscall.Conn
	if sock != nil {
		sc = sock.(syscall.Conn)
	}
	if err := answer(conn, rep, sc); err != nil {
		c.logger.Warn("builtin port child driver: answering the parent", "op", req.Op, "error", err)
	}
}

// target is the address a request names, with the default child IP.
func target(req request) (string, error) {
	if req.Proto != "tcp" && req.Proto != "udp" {
		return "", fmt.Errorf("unknown proto %q", req.Proto)
	}
	if req.Port < 1 || req.Port > 65535 {
		return "", fmt.Errorf("port %d not in 1..65535", req.Port)
	}
	ip := req.IP
	if ip == "" {
		ip = defaultChildIP
	}
	if net.ParseIP(ip) == nil {
		return "", fmt.Errorf("invalid IP %q", ip)
	}
	return net.JoinHostPort(ip, strconv.Itoa(req.Port)), nil
}

// check tells whether the child's namespace has a route to the target: a
// UDP socket's connect looks the route up and sends nothing.
func check(req request) error {
	addr, err := target(req)
	if err != nil {
		return err
	}
	c, err := net.Dial("udp", addr)
	if err != nil {
		return fmt.Errorf("the child namespace cannot reach %s: %w", addr, err)
	}
	c.Close()
	return nil
}

// connect returns a socket connected to the target, in the child's
// namespace.
func connect(req request) (net.Conn, error) {
	addr, err := target(req)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: childDialTimeout}
	c, err := d.Dial(req.Proto, addr)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s/%s in the child namespace: %w", addr, req.Proto, err)
	}
	return c, nil
}
