package remote

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/netkit/libnetwork/plugins"
	"github.com/netkit/libnetwork/types"
)

// PluginError is returned when a call to the plugin fails: it could not
// be reached, did not answer in time, refused the request, or answered
// something the adapter refuses (a *ResponseError). Err is the cause. The
// error returned to the caller has the class of Err (from package
// plugins: types.NoServiceError, types.TimeoutError, types.InternalError;
// types.InternalError for a *ResponseError), except that a refusal by the
// plugin (*plugins.RemoteError) is a types.ForbiddenError, or a
// types.NotImplementedError when the plugin has no such method (HTTP 404).
//
// When an answer was refused after the plugin had reserved what it
// answered, the adapter released it again: Rollback names the method it
// sent (api.ReleasePool or api.ReleaseAddress), RollbackErr why that
// failed (nil if it succeeded).
type PluginError struct {
	// Plugin is the name of the IPAM plugin.
	Plugin string
	// Method is the method called, as api.RequestPool.
	Method string
	// Request says what was asked ("any IPv4 pool in space \"local\"").
	Request string
	// Err is why the call failed.
	Err error
	// Rollback is the method sent to release what a refused answer
	// reserved, "" when none was sent.
	Rollback string
	// RollbackErr is the failure of that release, if it failed.
	RollbackErr error
}

// Error reads "IPAM plugin <name>: <Method> (<request>): <cause>", and
// says whether a refused answer was rolled back.
func (e *PluginError) Error() string {
	msg := fmt.Sprintf("IPAM plugin %q: %s", e.Plugin, shortMethod(e.Method))
	if e.Request != "" {
		msg += " (" + e.Request + ")"
	}
	msg += ": " + causeText(e.Err)
	switch {
	case e.Rollback != "" && e.RollbackErr != nil:
		msg += fmt.Sprintf("; releasing it again with %s failed too, the plugin may still hold it: %s",
			shortMethod(e.Rollback), causeText(e.RollbackErr))
	case e.Rollback != "":
		msg += "; released again with " + shortMethod(e.Rollback)
	}
	return msg
}

// Unwrap returns the cause.
func (e *PluginError) Unwrap() error { return e.Err }

// classify gives e the class its cause says (see PluginError).
func (e *PluginError) classify() error {
	var re *plugins.RemoteError
	if errors.As(e.Err, &re) {
		if re.Status == http.StatusNotFound {
			return types.NotImplementedErrorf("%w", e)
		}
		return types.ForbiddenErrorf("%w", e)
	}
	return types.Errorf("%w", e)
}

// ResponseError is an answer the adapter refuses: a pool that is not a
// CIDR, of the other family, or not the pool asked for; an address outside
// its pool or not the one asked for; an empty pool ID or address space.
// Its class is types.InternalError, as for an answer that breaks the
// protocol: the fault is the plugin's, not the caller's. Err is the
// ipamapi error it amounts to (ipamapi.ErrInvalidPool,
// ipamapi.ErrIPOutOfRange), when one fits, so that errors.Is finds it.
type ResponseError struct {
	// Reason says what is wrong with the answer.
	Reason string
	// Err is the ipamapi sentinel, or nil.
	Err error
}

// Error says what is wrong with the answer.
func (e *ResponseError) Error() string { return "invalid answer: " + e.Reason }

// Unwrap returns the ipamapi sentinel, if any.
func (e *ResponseError) Unwrap() error { return e.Err }

// Internal marks the error as a types.InternalError.
func (e *ResponseError) Internal() {}

// badAnswer returns a *ResponseError.
func badAnswer(sentinel error, format string, a ...any) *ResponseError {
	return &ResponseError{Reason: fmt.Sprintf(format, a...), Err: sentinel}
}

// causeText is the text of a call's failure without the plugin's name and
// method, which the errors of package plugins repeat and PluginError
// already says.
func causeText(err error) string {
	switch e := err.(type) {
	case *plugins.RemoteError:
		if e.Status != http.StatusOK {
			return fmt.Sprintf("%s (HTTP %d)", e.Msg, e.Status)
		}
		return e.Msg
	case *plugins.TimeoutError:
		return fmt.Sprintf("no answer in time: %v", e.Err)
	case *plugins.UnavailableError:
		if e.Sent {
			return fmt.Sprintf("connection lost before an answer: %v", e.Err)
		}
		return fmt.Sprintf("cannot reach the plugin: %v", e.Err)
	case *plugins.ProtocolError:
		return fmt.Sprintf("bad answer: %v", e.Err)
	case nil:
		return "unknown error"
	}
	return err.Error()
}

// shortMethod is method without its interface: "RequestPool".
func shortMethod(method string) string {
	_, m, ok := strings.Cut(method, ".")
	if !ok {
		return method
	}
	return m
}
