// Package apiclient is a client of rootlesskit's REST API, the one
// rootlessctl uses: HTTP over the unix socket api.sock in rootlesskit's
// state directory. Its Client is a port.Manager that publishes ports of
// rootlesskit's child namespace through whichever port driver rootlesskit
// runs (--port-driver=builtin or slirp4netns).
//
//	c, err := apiclient.New(filepath.Join(os.Getenv("ROOTLESSKIT_STATE_DIR"), "api.sock"))
//	st, err := c.AddPort(ctx, port.Spec{Proto: "tcp", ParentIP: "127.0.0.1", ParentPort: 8080, ChildPort: 80})
//	...
//	err = c.RemovePort(ctx, st.ID)
//
// The routes, as rootlesskit 1.x serves them (pkg/api/router): GET
// /v1/info answers Info; GET /v1/ports answers []port.Status; POST
// /v1/ports takes a port.Spec and answers 201 with its port.Status; DELETE
// /v1/ports/{id} answers 200. A refusal is a non-2xx status with a body
// {"message": ...}.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/netkit/libnetwork/rootless/port"
	"github.com/netkit/libnetwork/types"
)

// callTimeout bounds a call whose context has no earlier deadline, so that
// a wedged rootlesskit cannot hang its caller.
const callTimeout = 10 * time.Second

// maxAnswer bounds an answer's body.
const maxAnswer = 4 << 20

// maxSocketPath is the room in a unix socket address (sun_path) less its
// terminating NUL.
const maxSocketPath = 107

// Client talks to one rootlesskit API socket. It is safe for concurrent
// use.
type Client struct {
	socket string
	http   *http.Client

	// changeMu serializes this Client's AddPort and RemovePort, so that
	// the list each checks against is not changed by this Client before
	// its own change is made. It is held across calls to rootlesskit.
	changeMu sync.Mutex
}

var _ port.Manager = (*Client)(nil)

// New returns a Client for the rootlesskit API socket at socketPath
// (without a unix:// prefix): the api.sock in rootlesskit's --state-dir.
// New does not contact rootlesskit; a socket that answers nothing makes
// the calls return a types.NoServiceError.
func New(socketPath string) (*Client, error) {
	if socketPath == "" {
		return nil, types.BadRequestErrorf("rootlesskit API client: no socket path")
	}
	if len(socketPath) > maxSocketPath {
		return nil, types.BadRequestErrorf("rootlesskit API client: socket path %s is %d bytes, over the %d a unix socket address holds", socketPath, len(socketPath), maxSocketPath)
	}
	var d net.Dialer
	tr := &http.Transport{
		// Dial the socket whatever the URL says.
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", socketPath)
		},
		MaxIdleConns:    2,
		IdleConnTimeout: 30 * time.Second,
	}
	return &Client{socket: socketPath, http: &http.Client{Transport: tr}}, nil
}

// Info returns what rootlesskit says about itself and its drivers.
func (c *Client) Info(ctx context.Context) (*Info, error) {
	var info Info
	if err := c.do(ctx, http.MethodGet, "/v1/info", nil, &info); err != nil {
		return nil, types.Errorf("rootlesskit API %s: info: %w", c.socket, err)
	}
	return &info, nil
}

// AddPort asks rootlesskit's port driver to publish spec and returns the
// port's Status, as rootlesskit answers it.
//
// An invalid spec (port.Spec.Validate) is a types.BadRequestError, and
// nothing is sent; a spec whose parent address is taken by a port already
// published is a types.ForbiddenError naming that port's ID
// (port.CheckConflict); rootlesskit's refusal (the driver cannot publish
// it, or cannot listen on its parent address) is a types.BadRequestError
// wrapping the *APIError.
func (c *Client) AddPort(ctx context.Context, spec port.Spec) (*port.Status, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	c.changeMu.Lock()
	defer c.changeMu.Unlock()
	existing, err := c.list(ctx)
	if err != nil {
		return nil, types.Errorf("rootlesskit API %s: publishing %s: %w", c.socket, spec, err)
	}
	if err := port.CheckConflict(spec, existing); err != nil {
		return nil, types.Errorf("rootlesskit API %s: %w", c.socket, err)
	}
	body, err := json.Marshal(spec)
	if err != nil {
		return nil, types.InternalErrorf("rootlesskit API %s: publishing %s: %w", c.socket, spec, err)
	}
	var st port.Status
	if err := c.do(ctx, http.MethodPost, "/v1/ports", body, &st); err != nil {
		return nil, types.Errorf("rootlesskit API %s: publishing %s: %w", c.socket, spec, err)
	}
	return &st, nil
}

// ListPorts returns the ports rootlesskit's port driver publishes, whoever
// asked for them, in rootlesskit's order.
func (c *Client) ListPorts(ctx context.Context) ([]port.Status, error) {
	ports, err := c.list(ctx)
	if err != nil {
		return nil, types.Errorf("rootlesskit API %s: listing ports: %w", c.socket, err)
	}
	return ports, nil
}

// RemovePort asks rootlesskit to stop publishing the port with ID id. An
// ID rootlesskit does not list is a types.NotFoundError, and nothing is
// sent to remove it.
func (c *Client) RemovePort(ctx context.Context, id int) error {
	c.changeMu.Lock()
	defer c.changeMu.Unlock()
	ports, err := c.list(ctx)
	if err != nil {
		return types.Errorf("rootlesskit API %s: removing port %d: %w", c.socket, id, err)
	}
	var st *port.Status
	for i := range ports {
		if ports[i].ID == id {
			st = &ports[i]
		}
	}
	if st == nil {
		return types.NotFoundErrorf("rootlesskit API %s: removing port %d: rootlesskit has no port with that ID", c.socket, id)
	}
	if err := c.do(ctx, http.MethodDelete, fmt.Sprintf("/v1/ports/%d", id), nil, nil); err != nil {
		return types.Errorf("rootlesskit API %s: removing port %d (%s): %w", c.socket, id, st.Spec, err)
	}
	return nil
}

func (c *Client) list(ctx context.Context) ([]port.Status, error) {
	var ports []port.Status
	if err := c.do(ctx, http.MethodGet, "/v1/ports", nil, &ports); err != nil {
		return nil, err
	}
	if ports == nil {
		// rootlesskit encodes no ports as null.
		ports = []port.Status{}
	}
	return ports, nil
}

// do makes one request and decodes a successful answer into out (nil: the
// body is ignored). Errors are classed: a non-2xx answer is an *APIError
// wrapped as a types.BadRequestError (4xx) or types.InternalError (other);
// no socket or a lost connection is types.NoServiceError; an ended
// context types.TimeoutError; a malformed answer types.InternalError.
func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://rootlesskit"+path, rd)
	if err != nil {
		return types.InternalErrorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return types.TimeoutErrorf("%s %s: no answer: %w", method, path, errors.Join(ctxErr, err))
		}
		return types.NoServiceErrorf("%s %s: cannot reach rootlesskit: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return types.TimeoutErrorf("%s %s: reading the answer: %w", method, path, errors.Join(ctxErr, err))
		}
		return types.NoServiceErrorf("%s %s: reading the answer: %w", method, path, err)
	}
	if len(raw) > maxAnswer {
		return types.InternalErrorf("%s %s: answer over %d bytes", method, path, maxAnswer)
	}
	if resp.StatusCode/100 != 2 {
		apiErr := &APIError{Method: method, Path: path, StatusCode: resp.StatusCode, Message: errorMessage(raw)}
		if resp.StatusCode/100 == 4 {
			return types.BadRequestErrorf("%w", apiErr)
		}
		return types.InternalErrorf("%w", apiErr)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return types.InternalErrorf("%s %s: bad answer %q: %w", method, path, truncate(raw), err)
	}
	return nil
}

// errorMessage is the message of rootlesskit's {"message": ...} error
// body, or the body's text when it is something else.
func errorMessage(raw []byte) string {
	var e struct {
		Message *string `json:"message"`
	}
	if json.Unmarshal(raw, &e) == nil && e.Message != nil {
		return *e.Message
	}
	if s := strings.TrimSpace(string(truncate(raw))); s != "" {
		return s
	}
	return "no message"
}

// truncate shortens a body for an error message.
func truncate(b []byte) []byte {
	const limit = 512
	if len(b) > limit {
		return append(b[:limit:limit], "..."...)
	}
	return b
}
