package builtin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The parent and the child talk over a SOCK_SEQPACKET unix socket that the
// child listens on: one connection per request, one packet each way, so a
// message needs no framing and a descriptor travels with the reply it
// belongs to. A request and its reply are JSON; the reply to opConnect
// carries the connected socket as SCM_RIGHTS.
const (
	// opPing asks the child to answer; RunParentDriver waits for it.
	opPing = "ping"
	// opCheck asks whether the child can route to IP:Port. It does not
	// connect: the service may start after its port is exposed.
	opCheck = "check"
	// opConnect asks for a socket connected to IP:Port (TCP) or to send
	// to it (UDP).
	opConnect = "connect"

	// protocolVersion is in the reply to opPing, so that a parent and a
	// child of different protocols stop at once.
	protocolVersion = 1
	// maxPacket bounds a request or a reply.
	maxPacket = 4096
	// callTimeout bounds an exchange whose context has no deadline.
	callTimeout = 15 * time.Second
	// childDialTimeout bounds the child's connect to ChildIP:ChildPort.
	childDialTimeout = 10 * time.Second
)

type request struct {
	Op    string `json:"op"`
	Proto string `json:"proto,omitempty"` // "tcp" or "udp"
	IP    string `json:"ip,omitempty"`
	Port  int    `json:"port,omitempty"`
}

type reply struct {
	Version int    `json:"version,omitempty"`
	Error   string `json:"error,omitempty"`
}

// childError is an error the child answered with.
type childError struct{ msg string }

func (e *childError) Error() string { return e.msg }

// unreachableError is a failure to reach the child driver at all: it is not
// running, or not listening yet.
type unreachableError struct {
	path string
	err  error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("the child driver does not answer on %s: %v", e.path, e.err)
}

func (e *unreachableError) Unwrap() error { return e.err }

// call sends req to the child listening on path and returns its reply and
// the descriptor that came with it (nil if none). A *childError is the
// child's refusal; an *unreachableError means no child answered.
func call(ctx context.Context, path string, req request) (reply, *os.File, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, callTimeout)
		defer cancel()
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unixpacket", path)
	if err != nil {
		return reply{}, nil, &unreachableError{path, err}
	}
	conn := c.(*net.UnixConn)
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	b, err := json.Marshal(req)
	if err != nil {
		return reply{}, nil, err
	}
	if _, err := conn.Write(b); err != nil {
		return reply{}, nil, &unreachableError{path, fmt.Errorf("sending %s: %w", req.Op, err)}
	}
	buf := make([]byte, maxPacket)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, flags, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return reply{}, nil, &unreachableError{path, fmt.Errorf("waiting for the answer to %s: %w", req.Op, err)}
	}
	files, ferr := filesFromOOB(oob[:oobn])
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	switch {
	case ferr != nil:
		closeAll()
		return reply{}, nil, fmt.Errorf("reading the descriptor in the answer to %s: %w", req.Op, ferr)
	case flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 || len(files) > 1:
		closeAll()
		return reply{}, nil, fmt.Errorf("the answer to %s is too long", req.Op)
	case n == 0:
		closeAll()
		return reply{}, nil, &unreachableError{path, fmt.Errorf("the child closed the connection without answering %s", req.Op)}
	}
	var rep reply
	if err := json.Unmarshal(buf[:n], &rep); err != nil {
		closeAll()
		return reply{}, nil, fmt.Errorf("malformed answer to %s: %w", req.Op, err)
	}
	if rep.Error != "" {
		closeAll()
		return rep, nil, &childError{rep.Error}
	}
	var f *os.File
	if len(files) == 1 {
		f = files[0]
	}
	return rep, f, nil
}

// filesFromOOB returns the descriptors passed in oob.
func filesFromOOB(oob []byte) ([]*os.File, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var files []*os.File
	var errs []error
	for i := range msgs {
		fds, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "child socket"))
		}
	}
	return files, errors.Join(errs...)
}

// answer writes rep, with sock's descriptor if sock is not nil. The
// descriptor is read through SyscallConn, which leaves the socket
// non-blocking (os.File.Fd would make it blocking, for the parent's copy
// too: they share one open file).
func answer(conn *net.UnixConn, rep reply, sock syscall.Conn) error {
	b, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	if sock == nil {
		_, err = conn.Write(b)
		return err
	}
	rc, err := sock.SyscallConn()
	if err != nil {
		return err
	}
	cerr := rc.Control(func(fd uintptr) {
		_, _, err = conn.WriteMsgUnix(b, unix.UnixRights(int(fd)), nil)
	})
	return errors.Join(cerr, err)
}
