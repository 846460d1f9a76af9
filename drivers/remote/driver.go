// Package remote makes a network driver plugin (the remote network driver
// protocol, spec/remote-network-driver-api.txt, wire structs in
// drivers/remote/api) look like a built-in driver: a *Driver implements
// driverapi.Driver and driverapi.Capable by calling the plugin.
//
// The driver keeps no state of its own beyond the plugin's capabilities:
// the plugin owns its networks and endpoints, every call is independent
// and calls never wait for each other, so a *Driver is safe for
// concurrent use. Each call is bounded by the plugins registry's call
// timeout (plugins.Plugin.Call).
//
// Errors say "network plugin <name>: <Method> <what>: <cause>" and keep
// the class of their cause (package types): a plugin that cannot be
// reached is a types.NoServiceError, one that does not answer in time a
// types.TimeoutError, an answer that breaks the protocol (malformed JSON,
// a value that does not parse) a types.InternalError. A refusal by the
// plugin (an Err answer, whatever its HTTP status) is a
// types.ForbiddenError, as for remote port mappers: the request was
// valid, the plugin would not fulfil it; except that a 404, the answer of
// a plugin that does not implement the method, is a
// types.NotImplementedError. Options that cannot be sent as JSON are a
// types.BadRequestError.
//
// A call that creates something (CreateNetwork, AllocateNetwork,
// CreateEndpoint, Join, ProgramExternalConnectivity) and fails after the
// plugin may have done it (no answer in time, connection lost after
// sending, an answer that breaks the protocol or that the driver refuses)
// is undone with the inverse call before the error is returned, so that a
// failure leaves nothing behind in the plugin. A refusal needs no undo: by
// the protocol the plugin did nothing.
package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/drivers/remote/api"
	"github.com/netkit/libnetwork/plugins"
	"github.com/netkit/libnetwork/types"
)

// Config is what a Driver needs besides its plugin.
type Config struct {
	// Logger receives the failures of undo calls (Warn) and the methods
	// a plugin does not implement where that is tolerated (Debug). Nil
	// discards.
	Logger *slog.Logger
}

// Driver is a network driver plugin seen as a driverapi.Driver. Its fields
// are set by New and never change.
type Driver struct {
	plugin     *plugins.Plugin
	name       string
	capability driverapi.Capability
	log        *slog.Logger
}

var (
	_ driverapi.Driver  = (*Driver)(nil)
	_ driverapi.Capable = (*Driver)(nil)
)

// New returns the driver of plugin p, which must implement
// driverapi.NetworkPluginEndpointType. It asks the plugin its capabilities
// once: a scope other than "local" or "global" is a
// types.BadRequestError.
func New(p *plugins.Plugin, cfg Config) (*Driver, error) {
	if p == nil {
		return nil, types.BadRequestErrorf("network plugin: no plugin given")
	}
	if !p.Implements(driverapi.NetworkPluginEndpointType) {
		return nil, types.NotImplementedErrorf("network plugin %s: it does not implement %s (it implements %q)",
			p.Name(), driverapi.NetworkPluginEndpointType, p.Manifest())
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Driver{plugin: p, name: p.Name(), log: log}

	var resp api.CapabilitiesResponse
	if err := d.call(api.GetCapabilities, "", nil, &resp); err != nil {
		return nil, err
	}
	if !validScope(resp.Scope) {
		return nil, types.BadRequestErrorf("network plugin %s: GetCapabilities: invalid Scope %q: want %q or %q",
			d.name, resp.Scope, api.LocalScope, api.GlobalScope)
	}
	conn := resp.ConnectivityScope
	if conn == "" {
		conn = resp.Scope
	}
	if !validScope(conn) {
		return nil, types.BadRequestErrorf("network plugin %s: GetCapabilities: invalid ConnectivityScope %q: want %q, %q or none",
			d.name, resp.ConnectivityScope, api.LocalScope, api.GlobalScope)
	}
	d.capability = driverapi.Capability{
		DataScope:         resp.Scope,
		ConnectivityScope: conn,
		Attachment:        driverapi.AttachInterface,
	}
	return d, nil
}

func validScope(s string) bool { return s == api.LocalScope || s == api.GlobalScope }

// Type returns the plugin's name.
func (d *Driver) Type() string { return d.name }

// Capability returns the scopes the plugin reported at New (an empty
// ConnectivityScope made its DataScope); its endpoints attach an
// interface.
func (d *Driver) Capability() driverapi.Capability { return d.capability }

// DiscoverNew tells the plugin of a discovery event. Every event the
// controller sends is forwarded, data as JSON; the controller chooses what
// to send. A plugin that does not implement the method (404) is not an
// error: the notification is for the plugin's benefit.
func (d *Driver) DiscoverNew(dType int, data interface{}) error {
	return d.notify(api.DiscoverNew, dType, data)
}

// DiscoverDelete tells the plugin that what a DiscoverNew announced is
// gone; as DiscoverNew.
func (d *Driver) DiscoverDelete(dType int, data interface{}) error {
	return d.notify(api.DiscoverDelete, dType, data)
}

func (d *Driver) notify(method string, dType int, data interface{}) error {
	what := fmt.Sprintf("type %d", dType)
	err := d.call(method, what, api.DiscoveryNotification{DiscoveryType: dType, DiscoveryData: data}, nil)
	return d.tolerateNotImplemented(method, what, err)
}

// call calls method of the plugin with a background context (the
// registry's timeout bounds it) and returns its error described by what
// (the object of the call) and classified (see the package doc).
func (d *Driver) call(method, what string, req, resp any) error {
	err := d.plugin.Call(context.Background(), method, req, resp)
	if err == nil {
		return nil
	}
	return d.wrap(method, what, err)
}

// wrap returns err prefixed with the plugin, the method and what, in the
// class of the package doc.
func (d *Driver) wrap(method, what string, err error) error {
	prefix := "network plugin " + d.name + ": " + shortMethod(method)
	if what != "" {
		prefix += " " + what
	}
	var (
		re *plugins.RemoteError
		ut *json.UnsupportedTypeError
		uv *json.UnsupportedValueError
		me *json.MarshalerError
	)
	// The errors of package plugins start with the plugin and the method
	// too: say them once.
	ce := &callError{
		msg:   prefix + ": " + strings.TrimPrefix(err.Error(), fmt.Sprintf("plugin %q: %s: ", d.name, method)),
		cause: err,
	}
	switch {
	case errors.As(err, &re) && re.Status == http.StatusNotFound:
		return types.NotImplementedErrorf("%w", ce)
	case errors.As(err, &re):
		return types.ForbiddenErrorf("%w", ce)
	// The request could not be encoded, so it was not sent: the
	// caller's options are at fault, not the plugin.
	case errors.As(err, &ut):
		return types.BadRequestErrorf("%s: the request cannot be sent as JSON: %w", prefix, ut)
	case errors.As(err, &uv):
		return types.BadRequestErrorf("%s: the request cannot be sent as JSON: %w", prefix, uv)
	case errors.As(err, &me):
		return types.BadRequestErrorf("%s: the request cannot be sent as JSON: %w", prefix, me)
	}
	return types.Errorf("%w", ce)
}

// callError is a failed call: its message is the driver's, its cause the
// error of package plugins.
type callError struct {
	msg   string
	cause error
}

func (e *callError) Error() string { return e.msg }
func (e *callError) Unwrap() error { return e.cause }

func shortMethod(method string) string {
	return strings.TrimPrefix(method, driverapi.NetworkPluginEndpointType+".")
}

// notImplemented reports whether err is the 404 of a plugin that does not
// implement the method called.
func notImplemented(err error) bool {
	var re *plugins.RemoteError
	return errors.As(err, &re) && re.Status == http.StatusNotFound
}

// tolerateNotImplemented returns nil for the 404 of a method the plugin
// need not implement, err otherwise.
func (d *Driver) tolerateNotImplemented(method, what string, err error) error {
	if err != nil && notImplemented(err) {
		d.log.Debug("network plugin does not implement an optional method", "plugin", d.name, "method", method, "target", what)
		return nil
	}
	return err
}

// mayHaveApplied reports whether a failed call may have taken effect in
// the plugin: the request may have reached it, and it did not refuse.
func mayHaveApplied(err error) bool {
	var (
		te *plugins.TimeoutError
		ue *plugins.UnavailableError
		pe *plugins.ProtocolError
	)
	switch {
	case errors.As(err, &te):
		return true
	case errors.As(err, &ue):
		return ue.Sent
	case errors.As(err, &pe):
		// A request that could not be encoded was never sent.
		var (
			ut *json.UnsupportedTypeError
			uv *json.UnsupportedValueError
			me *json.MarshalerError
		)
		return !errors.As(err, &ut) && !errors.As(err, &uv) && !errors.As(err, &me)
	}
	return false
}

// undoIfApplied undoes a creating call whose failure err may have left
// something in the plugin (see undo), and returns err as it is otherwise.
func (d *Driver) undoIfApplied(err error, what, undoMethod string, undoReq any) error {
	if !mayHaveApplied(err) {
		return err
	}
	return d.undo(err, what, undoMethod, undoReq)
}

// undo sends the inverse call (undoMethod with undoReq) of a creating call
// that failed with err, and returns err saying whether it was undone. The
// undo's failure is logged at Warn and appended to the error, whose class
// stays err's.
func (d *Driver) undo(err error, what, undoMethod string, undoReq any) error {
	uerr := d.plugin.Call(context.Background(), undoMethod, undoReq, nil)
	if uerr != nil {
		d.log.Warn("undoing a failed call of a network plugin failed; the plugin may keep what it made",
			"plugin", d.name, "undo", undoMethod, "target", what, "cause", err, "error", uerr)
		return types.Errorf("%w; undoing it with %s failed too: %v", err, shortMethod(undoMethod), uerr)
	}
	return types.Errorf("%w; undone with %s", err, shortMethod(undoMethod))
}

// answerError marks an error about a success answer of the plugin that
// the driver refuses (a value that does not parse, or that contradicts
// the request). Its class is types.InternalError: the plugin broke the
// protocol.
type answerError struct{ msg string }

func (e *answerError) Error() string { return e.msg }

// Internal marks the error as a types.InternalError.
func (e *answerError) Internal() {}

// badAnswer returns an *answerError for method of the plugin.
func (d *Driver) badAnswer(method, what, format string, a ...any) error {
	prefix := "network plugin " + d.name + ": " + shortMethod(method)
	if what != "" {
		prefix += " " + what
	}
	return &answerError{msg: prefix + ": invalid answer: " + fmt.Sprintf(format, a...)}
}
