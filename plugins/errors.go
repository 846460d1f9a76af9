package plugins

import (
	"fmt"
	"strings"
)

// The errors of this package are typed, in the shape of net.OpError: each
// carries what was asked (plugin, method) and why it failed, and belongs
// to one of the classes of package types through its marker method, so a
// caller tests the class with a plain type assertion or errors.As.

// NameError is returned for a plugin name that cannot name a plugin: empty,
// too long, or with a path separator or another character outside
// [A-Za-z0-9_.-]. Its class is types.BadRequestError.
type NameError struct {
	Name   string
	Reason string
}

func (e *NameError) Error() string {
	return fmt.Sprintf("invalid plugin name %q: %s", e.Name, e.Reason)
}

// BadRequest marks the error as a types.BadRequestError.
func (e *NameError) BadRequest() {}

// NotFoundError is returned when no socket or spec file of the plugin is
// in the directories searched. Its class is types.NotFoundError.
type NotFoundError struct {
	Name string
	// Dirs are the socket and spec directories that were searched.
	Dirs []string
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("plugin %q not found: no %s.sock, %s.spec or %s.json in %s",
		e.Name, e.Name, e.Name, e.Name, strings.Join(e.Dirs, ", "))
}

// NotFound marks the error as a types.NotFoundError.
func (e *NotFoundError) NotFound() {}

// SpecError is returned for a spec file (.spec or .json) that cannot be
// read or does not give a usable address. Its class is
// types.BadRequestError: the file is configuration given to the library.
type SpecError struct {
	Name string
	Path string
	Err  error
}

func (e *SpecError) Error() string {
	return fmt.Sprintf("plugin %q: spec file %s: %v", e.Name, e.Path, e.Err)
}

func (e *SpecError) Unwrap() error { return e.Err }

// BadRequest marks the error as a types.BadRequestError.
func (e *SpecError) BadRequest() {}

// InterfaceError is returned when a plugin was activated but does not
// implement the interface asked for. Its class is
// types.NotImplementedError.
type InterfaceError struct {
	Name string
	// Interface is the interface that was asked for.
	Interface string
	// Implements is what the plugin said it implements.
	Implements []string
}

func (e *InterfaceError) Error() string {
	return fmt.Sprintf("plugin %q does not implement %s (it implements %q)", e.Name, e.Interface, e.Implements)
}

// NotImplemented marks the error as a types.NotImplementedError.
func (e *InterfaceError) NotImplemented() {}

// UnavailableError is returned when a plugin cannot be reached (its socket
// is missing or refuses connections after the retries) or dropped the
// connection before answering, as when its process dies mid-call. In the
// second case the call may or may not have taken effect in the plugin.
// Its class is types.NoServiceError.
type UnavailableError struct {
	Name   string
	Method string
	// Sent reports whether the request may have reached the plugin.
	Sent bool
	Err  error
}

func (e *UnavailableError) Error() string {
	if e.Sent {
		return fmt.Sprintf("plugin %q: %s: connection lost before an answer: %v", e.Name, e.Method, e.Err)
	}
	return fmt.Sprintf("plugin %q: %s: cannot reach the plugin: %v", e.Name, e.Method, e.Err)
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// NoService marks the error as a types.NoServiceError.
func (e *UnavailableError) NoService() {}

// TimeoutError is returned when a call did not complete before its
// deadline (the client's call or activation timeout, or the caller's
// context). The call may or may not have taken effect in the plugin. Its
// class is types.TimeoutError.
type TimeoutError struct {
	Name   string
	Method string
	Err    error
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("plugin %q: %s: no answer in time: %v", e.Name, e.Method, e.Err)
}

func (e *TimeoutError) Unwrap() error { return e.Err }

// Timeout marks the error as a types.TimeoutError.
func (e *TimeoutError) Timeout() {}

// RemoteError is the error a plugin answered: a non-200 status, or an Err
// (or Error) field in the body. Msg is the plugin's message. It has no
// class of its own: whether the refusal was the caller's fault is for the
// plugin's protocol to say, and a caller wraps it with the class it
// knows.
type RemoteError struct {
	Name   string
	Method string
	// Status is the HTTP status of the answer (200 when the error came in
	// the body of a 200 answer).
	Status int
	Msg    string
}

func (e *RemoteError) Error() string {
	if e.Status != 200 {
		return fmt.Sprintf("plugin %q: %s: %s (HTTP %d)", e.Name, e.Method, e.Msg, e.Status)
	}
	return fmt.Sprintf("plugin %q: %s: %s", e.Name, e.Method, e.Msg)
}

// ProtocolError is returned for an answer that breaks the protocol:
// malformed JSON, a body over the size limit, an empty body where one was
// expected. Its class is types.InternalError.
type ProtocolError struct {
	Name   string
	Method string
	Err    error
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("plugin %q: %s: bad answer: %v", e.Name, e.Method, e.Err)
}

func (e *ProtocolError) Unwrap() error { return e.Err }

// Internal marks the error as a types.InternalError.
func (e *ProtocolError) Internal() {}
