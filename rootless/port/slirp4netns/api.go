package slirp4netns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/netkit/libnetwork/types"
)

// The commands of slirp4netns's API socket.
const (
	cmdAdd    = "add_hostfwd"
	cmdList   = "list_hostfwd"
	cmdRemove = "remove_hostfwd"
)

// callTimeout bounds a call whose context has no earlier deadline: the API
// is served by slirp4netns's packet loop, and a wedged slirp4netns must not
// hang its caller.
const callTimeout = 10 * time.Second

// maxAnswer bounds an answer. A list of a thousand forwards is about 110 KB.
const maxAnswer = 4 << 20

// maxRequest is the size of slirp4netns's read buffer: it reads a request
// with one read(2) into 4096 bytes and refuses one that fills it.
const maxRequest = 4095

// request is one command. slirp4netns reads it with a single read(2), so it
// is written with a single write.
type request struct {
	Execute   string `json:"execute"`
	Arguments any    `json:"arguments,omitempty"`
}

// hostfwd is a forward as add_hostfwd takes it and list_hostfwd shows it.
// slirp4netns 1.2 forwards IPv4 only.
type hostfwd struct {
	ID        int    `json:"id,omitempty"`
	Proto     string `json:"proto"` // "tcp" or "udp"
	HostAddr  string `json:"host_addr"`
	HostPort  int    `json:"host_port"`
	GuestAddr string `json:"guest_addr"`
	GuestPort int    `json:"guest_port"`
}

type removeArgs struct {
	ID int `json:"id"`
}

// answer is {"return": {...}} or {"error": {"desc": ...}}. list_hostfwd in
// slirp4netns up to at least 1.3 answers {"entries": [...]} without the
// "return" its manual shows, so both places are read.
type answer struct {
	Return *struct {
		ID      *int      `json:"id"`
		Entries []hostfwd `json:"entries"`
	} `json:"return"`
	Entries []hostfwd `json:"entries"`
	Error   *struct {
		Desc string `json:"desc"`
	} `json:"error"`
}

// call sends one request on a new connection, as slirp4netns serves one
// request per connection, and decodes the answer. An {"error": ...} answer
// is returned as a *RefusedError; the other errors are classed: no socket
// or no answer is types.NoServiceError, an ended context
// types.TimeoutError, a malformed answer types.InternalError.
func (m *Manager) call(ctx context.Context, req request) (*answer, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	body, err := json.Marshal(req)
	if err != nil {
		return nil, types.InternalErrorf("slirp4netns API %s: %s: encoding the request: %w", m.socket, req.Execute, err)
	}
	if len(body) > maxRequest {
		return nil, types.BadRequestErrorf("slirp4netns API %s: %s: request of %d bytes is over slirp4netns's limit of %d", m.socket, req.Execute, len(body), maxRequest)
	}
	conn, err := m.dial(ctx)
	if err != nil {
		return nil, m.transportError(ctx, req.Execute, "cannot reach slirp4netns", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if _, err := conn.Write(body); err != nil {
		return nil, m.transportError(ctx, req.Execute, "sending the request", err)
	}
	// slirp4netns does not wait for the end of the request, but telling it
	// costs nothing and keeps a future version that does from hanging.
	_ = conn.CloseWrite()
	raw, err := io.ReadAll(io.LimitReader(conn, maxAnswer+1))
	if err != nil {
		return nil, m.transportError(ctx, req.Execute, "reading the answer", err)
	}
	if len(raw) > maxAnswer {
		return nil, types.InternalErrorf("slirp4netns API %s: %s: answer over %d bytes", m.socket, req.Execute, maxAnswer)
	}
	if len(raw) == 0 {
		// slirp4netns closes without answering when it cannot read the
		// request, or when it dies.
		return nil, types.NoServiceErrorf("slirp4netns API %s: %s: connection closed without an answer", m.socket, req.Execute)
	}
	var ans answer
	if err := json.Unmarshal(raw, &ans); err != nil {
		return nil, types.InternalErrorf("slirp4netns API %s: %s: bad answer %q: %w", m.socket, req.Execute, raw, err)
	}
	if ans.Error != nil {
		return nil, &RefusedError{Socket: m.socket, Execute: req.Execute, Desc: ans.Error.Desc}
	}
	if ans.Return == nil && ans.Entries == nil {
		return nil, types.InternalErrorf("slirp4netns API %s: %s: answer %q has neither return nor error", m.socket, req.Execute, raw)
	}
	return &ans, nil
}

// dial connects to the API socket. slirp4netns listens with a backlog of
// 0, so a connection made while it serves another may be refused with
// EAGAIN; that is retried until ctx ends.
func (m *Manager) dial(ctx context.Context) (*net.UnixConn, error) {
	var d net.Dialer
	wait := time.Millisecond
	for {
		c, err := d.DialContext(ctx, "unix", m.socket)
		if err == nil {
			return c.(*net.UnixConn), nil
		}
		if !errors.Is(err, syscall.EAGAIN) {
			return nil, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// transportError classes a failure to talk to slirp4netns: a timeout when
// the context ended, no service otherwise.
func (m *Manager) transportError(ctx context.Context, execute, what string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return types.TimeoutErrorf("slirp4netns API %s: %s: %s: %w", m.socket, execute, what, errors.Join(ctxErr, err))
	}
	return types.NoServiceErrorf("slirp4netns API %s: %s: %s: %w", m.socket, execute, what, err)
}

// list returns slirp4netns's forwards, in the order it keeps them (by ID).
func (m *Manager) list(ctx context.Context) ([]hostfwd, error) {
	ans, err := m.call(ctx, request{Execute: cmdList})
	if err != nil {
		var refused *RefusedError
		if errors.As(err, &refused) {
			return nil, types.InternalErrorf("%w", err)
		}
		return nil, err
	}
	if ans.Return != nil && ans.Return.Entries != nil {
		return ans.Return.Entries, nil
	}
	return ans.Entries, nil
}

// add asks slirp4netns for a forward and returns its ID.
func (m *Manager) add(ctx context.Context, fwd hostfwd) (int, error) {
	ans, err := m.call(ctx, request{Execute: cmdAdd, Arguments: fwd})
	if err != nil {
		return 0, err
	}
	if ans.Return == nil || ans.Return.ID == nil {
		return 0, types.InternalErrorf("slirp4netns API %s: %s: answer without an id", m.socket, cmdAdd)
	}
	return *ans.Return.ID, nil
}

// remove asks slirp4netns to drop a forward.
func (m *Manager) remove(ctx context.Context, id int) error {
	_, err := m.call(ctx, request{Execute: cmdRemove, Arguments: removeArgs{ID: id}})
	return err
}

// String shows a forward as "tcp 127.0.0.1:8080 -> 10.0.2.100:80".
func (f hostfwd) String() string {
	return fmt.Sprintf("%s %s -> %s", f.Proto,
		net.JoinHostPort(f.HostAddr, fmt.Sprint(f.HostPort)),
		net.JoinHostPort(f.GuestAddr, fmt.Sprint(f.GuestPort)))
}
