package plugins

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// MediaType is the Accept and Content-Type of every request.
const MediaType = "application/vnd.docker.plugins.v1.2+json"

// ActivateMethod is the method every plugin answers with the interfaces
// it implements.
const ActivateMethod = "Plugin.Activate"

// The backoff between attempts to reach a plugin that is not listening:
// it doubles from retryFirst up to retryMax, for at most the retry window.
const (
	retryFirst = 50 * time.Millisecond
	retryMax   = time.Second
)

// maxErrorText bounds the part of a non-JSON error body quoted in an error.
const maxErrorText = 512

// Client talks to one plugin: HTTP POST of JSON to /<Interface>.<Method>.
// It is safe for concurrent use; calls do not wait for each other.
type Client struct {
	ep          Endpoint
	base        string // URL the method paths are appended to
	http        *http.Client
	transport   *http.Transport
	callTimeout time.Duration
	retryWindow time.Duration
	maxBody     int64
	log         *slog.Logger
}

// dialError marks a failure to connect: the request was never sent, so
// trying again cannot apply it twice.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// waitError is returned when the context ended while waiting to retry.
type waitError struct{ ctx, last error }

func (e *waitError) Error() string   { return fmt.Sprintf("%v (last attempt: %v)", e.ctx, e.last) }
func (e *waitError) Unwrap() []error { return []error{e.ctx, e.last} }

func newClient(ep Endpoint, cfg *Config) *Client {
	dialer := &net.Dialer{}
	tr := &http.Transport{
		// Dial the plugin's socket whatever the URL says; never go
		// through an HTTP proxy from the environment.
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			conn, err := dialer.DialContext(ctx, ep.Network, ep.Address)
			if err != nil {
				return nil, &dialError{err}
			}
			return conn, nil
		},
		TLSClientConfig:     ep.TLS,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	base := "http://plugin"
	switch {
	case ep.Network == "tcp" && ep.TLS != nil:
		base = "https://" + ep.Address
	case ep.Network == "tcp":
		base = "http://" + ep.Address
	}
	return &Client{
		ep:        ep,
		base:      base,
		transport: tr,
		http: &http.Client{
			Transport: tr,
			// A plugin answers; it does not send us elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		callTimeout: cfg.CallTimeout,
		retryWindow: cfg.RetryWindow,
		maxBody:     cfg.MaxResponseSize,
		log:         cfg.Logger,
	}
}

// Call POSTs req as JSON to /<method> (method is "<Interface>.<Method>")
// and decodes the answer into resp; a nil req sends {}, a nil resp
// ignores the body of a successful answer. The call is bounded by the
// client's call timeout and by ctx.
//
// Connecting is retried with backoff while the plugin is not listening
// (socket missing, connection refused), within the retry window; once a
// request may have reached the plugin it is never sent again, so a
// non-idempotent call is not applied twice. Errors are *UnavailableError,
// *TimeoutError, *RemoteError (the plugin's own Err or non-200 answer) and
// *ProtocolError.
func (c *Client) Call(ctx context.Context, method string, req, resp any) error {
	return c.call(ctx, strings.TrimPrefix(method, "/"), c.callTimeout, req, resp)
}

func (c *Client) call(ctx context.Context, method string, timeout time.Duration, req, resp any) error {
	body := []byte("{}")
	if req != nil {
		var err error
		if body, err = json.Marshal(req); err != nil {
			return &ProtocolError{Name: c.ep.Name, Method: method, Err: fmt.Errorf("encoding the request: %w", err)}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	hresp, err := c.post(ctx, method, body)
	if err != nil {
		return c.transportError(method, err)
	}
	defer hresp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(hresp.Body, c.maxBody+1))
	if err != nil {
		return c.transportError(method, err)
	}
	if int64(len(data)) > c.maxBody {
		return &ProtocolError{Name: c.ep.Name, Method: method, Err: fmt.Errorf("answer larger than %d bytes", c.maxBody)}
	}
	return c.decode(method, hresp.StatusCode, data, resp)
}

// post sends the request, retrying while it cannot connect.
func (c *Client) post(ctx context.Context, method string, body []byte) (*http.Response, error) {
	retryUntil := time.Now().Add(c.retryWindow)
	wait := retryFirst
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/"+method, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", MediaType)
		req.Header.Set("Content-Type", MediaType)
		resp, err := c.http.Do(req)
		if err == nil {
			return resp, nil
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is made up; the endpoint says more
		}
		var de *dialError
		if !errors.As(err, &de) || ctx.Err() != nil || time.Now().Add(wait).After(retryUntil) {
			return nil, err
		}
		c.log.Debug("plugin not reachable, retrying", "plugin", c.ep.Name, "endpoint", c.ep.String(), "method", method, "wait", wait, "error", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, &waitError{ctx: ctx.Err(), last: err}
		}
		wait = min(2*wait, retryMax)
	}
}

// transportError classifies a failure to get an answer.
func (c *Client) transportError(method string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return &TimeoutError{Name: c.ep.Name, Method: method, Err: err}
	}
	var de *dialError
	sent := !errors.As(err, &de)
	return &UnavailableError{Name: c.ep.Name, Method: method, Sent: sent, Err: err}
}

// errorFields are the fields a plugin reports an error in.
type errorFields struct {
	Err   json.RawMessage
	Error json.RawMessage
}

// message returns the error message of the fields, if one is a non-empty
// string.
func (f errorFields) message() string {
	for _, raw := range []json.RawMessage{f.Err, f.Error} {
		var s string
		if len(raw) > 0 && json.Unmarshal(raw, &s) == nil && s != "" {
			return s
		}
	}
	return ""
}

func (c *Client) decode(method string, status int, data []byte, resp any) error {
	trimmed := bytes.TrimSpace(data)
	var fields errorFields
	isObject := len(trimmed) > 0 && trimmed[0] == '{'
	if status != http.StatusOK {
		msg := ""
		if isObject && json.Unmarshal(trimmed, &fields) == nil {
			msg = fields.message()
		}
		if msg == "" {
			msg = quoteText(trimmed)
		}
		if msg == "" {
			msg = http.StatusText(status)
		}
		return &RemoteError{Name: c.ep.Name, Method: method, Status: status, Msg: msg}
	}
	if len(trimmed) == 0 {
		if resp == nil {
			return nil
		}
		return &ProtocolError{Name: c.ep.Name, Method: method, Err: errors.New("empty answer")}
	}
	if isObject {
		if err := json.Unmarshal(trimmed, &fields); err != nil {
			return &ProtocolError{Name: c.ep.Name, Method: method, Err: fmt.Errorf("malformed JSON: %w", err)}
		}
		if msg := fields.message(); msg != "" {
			return &RemoteError{Name: c.ep.Name, Method: method, Status: status, Msg: msg}
		}
	}
	if resp == nil {
		if !json.Valid(trimmed) {
			return &ProtocolError{Name: c.ep.Name, Method: method, Err: errors.New("malformed JSON")}
		}
		return nil
	}
	if err := json.Unmarshal(trimmed, resp); err != nil {
		return &ProtocolError{Name: c.ep.Name, Method: method, Err: fmt.Errorf("malformed JSON: %w", err)}
	}
	return nil
}

// quoteText returns a non-JSON error body fit to quote in an error: valid
// UTF-8, at most maxErrorText bytes of it.
func quoteText(b []byte) string {
	if len(b) <= maxErrorText {
		return strings.ToValidUTF8(string(b), "?")
	}
	return strings.ToValidUTF8(string(b[:maxErrorText]), "?") + "..."
}

// Endpoint returns where the client connects.
func (c *Client) Endpoint() Endpoint { return c.ep }

// CloseIdleConnections closes the client's kept-alive connections.
func (c *Client) CloseIdleConnections() { c.transport.CloseIdleConnections() }
