package portmapper

import (
	"errors"
	"fmt"

	"github.com/netkit/libnetwork/plugins"
	"github.com/netkit/libnetwork/types"
)

// PluginError is returned when a remote mapper's call fails: the plugin
// could not be reached, did not answer in time, refused the request, or
// answered something the library refuses (a *ResponseError). Err is the
// cause; the error returned to the caller has the class of Err (from
// package plugins: types.NoServiceError, types.TimeoutError,
// types.InternalError), except that a refusal by the plugin
// (*plugins.RemoteError, its Err field or a binding's Error) is a
// types.ForbiddenError: the request was valid but the mapper would not
// fulfil it.
//
// When the plugin may have mapped something before the failure, the
// mapper sent it an UnmapPorts to undo it: Undone reports that it was sent,
// UndoErr why it failed (nil if it succeeded).
type PluginError struct {
	// Plugin is the name of the remote mapper.
	Plugin string
	// Method is api.MapPortsMethod or api.UnmapPortsMethod.
	Method string
	// Err is why the call failed.
	Err error
	// Undone reports that an UnmapPorts was sent after a failed MapPorts.
	Undone bool
	// UndoErr is the failure of that UnmapPorts, if it failed.
	UndoErr error
}

// Error names the plugin, the method and the cause, and says whether the
// failure was undone.
func (e *PluginError) Error() string {
	// The errors of package plugins and ResponseError already name the
	// plugin and the method.
	msg := "port mapper " + e.Err.Error()
	var re *ResponseError
	if !errors.As(e.Err, &re) && !isPluginsError(e.Err) {
		msg = fmt.Sprintf("port mapper plugin %q: %s: %v", e.Plugin, e.Method, e.Err)
	}
	switch {
	case e.Undone && e.UndoErr != nil:
		msg += fmt.Sprintf("; undoing it with UnmapPorts failed too, the plugin may still hold the mapping: %v", e.UndoErr)
	case e.Undone:
		msg += "; undone with UnmapPorts"
	}
	return msg
}

// Unwrap returns the cause.
func (e *PluginError) Unwrap() error { return e.Err }

// isPluginsError reports whether err is one of package plugins' call
// errors, whose text already names the plugin and the method.
func isPluginsError(err error) bool {
	var (
		re *plugins.RemoteError
		te *plugins.TimeoutError
		ue *plugins.UnavailableError
		pe *plugins.ProtocolError
	)
	return errors.As(err, &re) || errors.As(err, &te) || errors.As(err, &ue) || errors.As(err, &pe)
}

// classify gives e the class its cause says (see PluginError).
func (e *PluginError) classify() error {
	var re *plugins.RemoteError
	if errors.As(e.Err, &re) {
		return types.ForbiddenErrorf("%w", e)
	}
	return types.Errorf("%w", e)
}

// ResponseError is a MapPorts answer the library refuses: the wrong
// number of bindings, or a binding that does not match its request, is
// outside the port range asked for, or carries a NAT rule the library
// cannot program or that points elsewhere than the request's backend. Its
// class is types.InternalError, as for an answer that breaks the
// protocol.
type ResponseError struct {
	// Plugin is the name of the remote mapper.
	Plugin string
	// Binding is the index of the binding at fault, -1 for the answer as
	// a whole.
	Binding int
	// What is the text of the binding or the request at fault.
	What string
	// Reason says what is wrong.
	Reason string
}

// Error names the plugin, the binding and what is wrong with it.
func (e *ResponseError) Error() string {
	if e.Binding < 0 {
		return fmt.Sprintf("plugin %q: PortMapper.MapPorts: invalid answer: %s", e.Plugin, e.Reason)
	}
	return fmt.Sprintf("plugin %q: PortMapper.MapPorts: invalid answer: binding %d (%s): %s", e.Plugin, e.Binding, e.What, e.Reason)
}

// Internal marks the error as a types.InternalError.
func (e *ResponseError) Internal() {}
