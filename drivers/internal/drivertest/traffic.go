package drivertest

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/netkit/libnetwork/osl"
)

// readTimeout bounds the reading of a greeting once connected: a safety
// net (the servers of ListenTCP write at once and close), not a measure.
const readTimeout = 5 * time.Second

// ListenTCP starts a TCP server in ns on addr ("10.0.0.3:0") that greets
// every connection with msg and closes it; it stops at cleanup. It
// returns the server's address.
func ListenTCP(tb testing.TB, ns *osl.Namespace, addr, msg string) string {
	tb.Helper()
	var ln net.Listener
	if err := ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, msg)
			_ = c.Close()
		}
	}()
	return ln.Addr().String()
}

// DialTCP connects from ns to addr, within timeout, and returns what the
// server said before closing.
func DialTCP(ns *osl.Namespace, addr string, timeout time.Duration) (string, error) {
	var c net.Conn
	if err := ns.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, timeout)
		return err
	}); err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(readTimeout))
	b, err := io.ReadAll(c)
	return string(b), err
}

// ListenUDPEcho starts a UDP server in ns on addr ("10.0.0.3:0") that
// sends every datagram back; it stops at cleanup. It returns the server's
// address.
func ListenUDPEcho(tb testing.TB, ns *osl.Namespace, addr string) string {
	tb.Helper()
	var pc net.PacketConn
	if err := ns.Do(func() error {
		var err error
		pc, err = net.ListenPacket("udp", addr)
		return err
	}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, a, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], a)
		}
	}()
	return pc.LocalAddr().String()
}

// UDPEcho sends msg from ns to the echo server at addr and waits for it
// back. UDP is lossy: it tries five times, 300 ms each.
func UDPEcho(ns *osl.Namespace, addr, msg string) error {
	var c net.Conn
	if err := ns.Do(func() error {
		var err error
		c, err = net.Dial("udp", addr)
		return err
	}); err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 2048)
	for range 5 {
		if _, err := io.WriteString(c, msg); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := c.Read(buf)
		if err == nil && string(buf[:n]) == msg {
			return nil
		}
	}
	return fmt.Errorf("no UDP echo from %s", addr)
}
