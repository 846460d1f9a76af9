package portmapper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/netkit/libnetwork/plugins"
	"github.com/netkit/libnetwork/portmapper/api"
)

// remoteMapper is a port-mapper plugin. It holds nothing but the plugin:
// what is mapped lives in the plugin, and each call is independent, so
// calls to one plugin never wait for each other or for other mappers.
type remoteMapper struct {
	plugin      *plugins.Plugin
	name        string
	callTimeout time.Duration
	log         *slog.Logger
}

var _ Mapper = (*remoteMapper)(nil)

// MapPorts sends req to the plugin, unchanged (labels included), and
// checks its answer with ValidateResponse. An empty group is not sent.
//
// When the call fails after the request may have reached the plugin (the
// connection dropped, no answer in time, an answer that is not JSON), or
// the answer is refused, MapPorts sends an UnmapPorts, under a fresh
// timeout, of what the plugin answered or else of the bindings the request
// asked for, so that nothing stays mapped in the plugin; then it returns a
// *PluginError saying so. An Err answer needs no undo: by the protocol the
// plugin mapped nothing, and an UnmapPorts of the ports asked for could
// release another endpoint's mapping of them. The same risk remains, and
// is taken, when the answer is lost: a plugin that refused a fixed port
// because another endpoint holds it, and whose refusal never arrived, gets
// an UnmapPorts of that port; a plugin should key its mappings by backend
// as well as by frontend to tell them apart.
func (m *remoteMapper) MapPorts(ctx context.Context, req api.MapPortsRequest) ([]api.PortBinding, error) {
	if err := ValidateRequest(req); err != nil {
		return nil, err
	}
	if len(req.Reqs) == 0 {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		// Not sent: nothing to undo.
		var cause error = &plugins.UnavailableError{Name: m.name, Method: api.MapPortsMethod, Err: err}
		if errors.Is(err, context.DeadlineExceeded) {
			cause = &plugins.TimeoutError{Name: m.name, Method: api.MapPortsMethod, Err: err}
		}
		return nil, (&PluginError{Plugin: m.name, Method: api.MapPortsMethod, Err: cause}).classify()
	}
	var resp api.MapPortsResponse
	cctx, cancel := context.WithTimeout(ctx, m.callTimeout)
	err := m.plugin.Call(cctx, api.MapPortsMethod, req, &resp)
	cancel()
	if err == nil && resp.Err != "" {
		// The client reports an Err field itself; this is a second guard.
		err = &plugins.RemoteError{Name: m.name, Method: api.MapPortsMethod, Status: 200, Msg: resp.Err}
	}
	if err != nil {
		pe := &PluginError{Plugin: m.name, Method: api.MapPortsMethod, Err: err}
		if mayHaveMapped(err) {
			m.undo(ctx, pe, requestedBindings(req), req.Labels)
		}
		return nil, pe.classify()
	}
	if err := ValidateResponse(m.name, req, resp); err != nil {
		pe := &PluginError{Plugin: m.name, Method: api.MapPortsMethod, Err: err}
		m.undo(ctx, pe, mappedBindings(resp.PortBindings), req.Labels)
		return nil, pe.classify()
	}
	for i, b := range resp.PortBindings {
		if b.DiscardReq {
			reason := ""
			if b.Error != nil {
				reason = *b.Error
			}
			m.log.Warn("port mapper plugin discarded a port binding", "plugin", m.name, "request", describeReq(req.Reqs[i]), "reason", reason)
		}
	}
	return resp.PortBindings, nil
}

// UnmapPorts sends the bindings to the plugin, less those it discarded
// (never mapped). Whether unmapping twice is harmless is the plugin's to
// honour; the library only ever unmaps what a MapPorts returned.
func (m *remoteMapper) UnmapPorts(ctx context.Context, req api.UnmapPortsRequest) error {
	req.PortBindings = mappedBindings(req.PortBindings)
	if len(req.PortBindings) == 0 {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, m.callTimeout)
	defer cancel()
	if err := m.plugin.Call(cctx, api.UnmapPortsMethod, req, nil); err != nil {
		return (&PluginError{Plugin: m.name, Method: api.UnmapPortsMethod, Err: err}).classify()
	}
	return nil
}

// undo sends a best-effort UnmapPorts of bindings after a failed MapPorts,
// recording the outcome in pe. It runs under its own timeout, not ctx's
// remaining time, which the failure may have used up; ctx's values are
// kept.
func (m *remoteMapper) undo(ctx context.Context, pe *PluginError, bindings []api.PortBinding, labels map[string]string) {
	if len(bindings) == 0 {
		return
	}
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.callTimeout)
	defer cancel()
	pe.Undone = true
	pe.UndoErr = m.plugin.Call(uctx, api.UnmapPortsMethod, api.UnmapPortsRequest{PortBindings: bindings, Labels: labels}, nil)
	if pe.UndoErr != nil {
		m.log.Warn("port mapper plugin: undoing a failed MapPorts failed; the plugin may still hold the mapping",
			"plugin", m.name, "error", pe.Err, "undo_error", pe.UndoErr)
	}
}

// mayHaveMapped reports whether a failed MapPorts call may have been
// applied by the plugin: it got the request but its answer was lost,
// late, or unreadable.
func mayHaveMapped(err error) bool {
	var (
		ue *plugins.UnavailableError
		te *plugins.TimeoutError
		pe *plugins.ProtocolError
	)
	switch {
	case errors.As(err, &ue):
		return ue.Sent
	case errors.As(err, &te), errors.As(err, &pe):
		return true
	}
	return false
}

// requestedBindings are the bindings req would have yielded, as far as
// the request says: the exact frontend port when one was asked, else 0
// (the plugin's choice is unknown). They let a plugin that keys its
// mappings by backend or by exact port find what it may have mapped.
func requestedBindings(req api.MapPortsRequest) []api.PortBinding {
	out := make([]api.PortBinding, len(req.Reqs))
	for i, r := range req.Reqs {
		out[i] = api.PortBinding{Proto: r.Proto, BackendIP: r.BackendIP, BackendPort: r.BackendPort, FrontendIP: r.FrontendIP}
		if pr := frontendRange(r); pr.begin == pr.end {
			out[i].FrontendPort = pr.begin
		}
	}
	return out
}

// mappedBindings returns the bindings the plugin says it mapped: not
// discarded and without an Error.
func mappedBindings(bs []api.PortBinding) []api.PortBinding {
	out := make([]api.PortBinding, 0, len(bs))
	for _, b := range bs {
		if !b.DiscardReq && b.Error == nil {
			out = append(out, b)
		}
	}
	return out
}

// ValidateResponse checks a plugin's answer to req strictly, as the remote
// mappers do: exactly one binding per request; each for its request's
// protocol, backend address and port; a discarded one without a NAT rule;
// the others without an Error, with a frontend port in the range asked
// (any non-zero port for an ephemeral request), the same port across a
// group that asked for a range or an ephemeral port, the frontend address
// asked for (any address of the backend's family, or none, when all were
// asked for), and a NAT rule, if any, that passes NATRule.Validate, points
// to the request's backend and matches the binding's frontend. A refusal
// (a binding's Error) is a *plugins.RemoteError; anything else wrong is a
// *ResponseError.
func ValidateResponse(plugin string, req api.MapPortsRequest, resp api.MapPortsResponse) error {
	if resp.Err != "" {
		return &plugins.RemoteError{Name: plugin, Method: api.MapPortsMethod, Status: 200, Msg: resp.Err}
	}
	if len(resp.PortBindings) != len(req.Reqs) {
		return &ResponseError{Plugin: plugin, Binding: -1,
			Reason: fmt.Sprintf("%d bindings for %d requests", len(resp.PortBindings), len(req.Reqs))}
	}
	groupPort := uint16(0)
	for i, b := range resp.PortBindings {
		r := req.Reqs[i]
		bad := func(format string, a ...any) error {
			return &ResponseError{Plugin: plugin, Binding: i, What: describeReq(r), Reason: fmt.Sprintf(format, a...)}
		}
		if b.Proto != r.Proto || b.BackendIP != r.BackendIP || b.BackendPort != r.BackendPort {
			return bad("the answer is for %s %s, not the request's backend", b.Proto, netip.AddrPortFrom(b.BackendIP, b.BackendPort))
		}
		if b.DiscardReq {
			if b.NAT != nil {
				return bad("discarded, yet it asks for a NAT rule")
			}
			continue
		}
		if b.Error != nil {
			return &plugins.RemoteError{Name: plugin, Method: api.MapPortsMethod, Status: 200,
				Msg: fmt.Sprintf("binding %d (%s): %s", i, describeReq(r), *b.Error)}
		}
		pr := frontendRange(r)
		if !pr.contains(b.FrontendPort) {
			return bad("frontend port %d is not %s asked for", b.FrontendPort, pr)
		}
		if pr.begin != pr.end || pr.ephemeral() {
			if groupPort != 0 && b.FrontendPort != groupPort {
				return bad("frontend port %d differs from port %d of the group, which must share one port", b.FrontendPort, groupPort)
			}
			groupPort = b.FrontendPort
		}
		if err := checkFrontendAddr(r, b.FrontendIP); err != nil {
			return bad("%v", err)
		}
		if b.NAT == nil {
			continue
		}
		n := *b.NAT
		if err := n.Validate(); err != nil {
			return bad("%v", err)
		}
		if n.Proto != r.Proto || n.BackendIP != r.BackendIP || n.BackendPort != r.BackendPort {
			return bad("NAT rule points to %s %s, not to the request's backend", n.Proto, netip.AddrPortFrom(n.BackendIP, n.BackendPort))
		}
		if n.FrontendPort != b.FrontendPort || !sameFrontend(n.FrontendIP, b.FrontendIP, r.BackendIP) {
			return bad("NAT rule from %s does not match the binding's frontend %s",
				netip.AddrPortFrom(n.FrontendIP, n.FrontendPort), netip.AddrPortFrom(b.FrontendIP, b.FrontendPort))
		}
	}
	return nil
}

// checkFrontendAddr checks the frontend address a plugin chose for r.
func checkFrontendAddr(r api.PortBindingReq, got netip.Addr) error {
	if r.FrontendIP.IsValid() && !r.FrontendIP.IsUnspecified() {
		if got != r.FrontendIP {
			return fmt.Errorf("frontend address %v is not %s asked for", got, r.FrontendIP)
		}
		return nil
	}
	switch {
	case !got.IsValid():
		return nil
	case got.Zone() != "", got.Is4In6(), got.IsMulticast(), got.Is4() != r.BackendIP.Is4():
		return fmt.Errorf("frontend address %s is not a host address of the backend's family", got)
	}
	return nil
}

// sameFrontend reports whether a and b name the same frontend addresses,
// the zero address meaning all addresses of backend's family.
func sameFrontend(a, b, backend netip.Addr) bool {
	norm := func(x netip.Addr) netip.Addr {
		if x.IsValid() {
			return x
		}
		if backend.Is4() {
			return netip.IPv4Unspecified()
		}
		return netip.IPv6Unspecified()
	}
	return norm(a) == norm(b)
}
