package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/netkit/libnetwork/firewall"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/options"
	"github.com/netkit/libnetwork/portmapper"
	"github.com/netkit/libnetwork/portmapper/api"
	"github.com/netkit/libnetwork/types"
)

// Port publishing. ProgramExternalConnectivity takes the endpoint's
// bindings (netlabel.PortMap), turns each into a group of port-mapper
// requests that must share one host port (a binding to all addresses on a
// dual-stack endpoint asks for 0.0.0.0 and :: together), has the network's
// port mapper map them (the built-in nat mapper reserves the host ports by
// holding bound sockets), and programs the NAT rules the mapper returns
// into the firewall in one batch, then flushes the UDP conntrack entries of
// the host ports, so a client that spoke to a container that was there
// before reaches the new one. A binding the mapper allows forwarding to
// without NAT (the routed mapper) opens its container port in the firewall
// instead, for routed networks (see GatewayModeRouted); a family the
// network routes takes the routed mapper unless an option or label names
// another. Any failure undoes everything before it.
// RevokeExternalConnectivity undoes it all. Internal networks publish
// nothing.

// PortMapper maps the ports of one endpoint: the built-in nat and routed
// mappers, or a remote port-mapper plugin (package portmapper).
type PortMapper interface {
	MapPorts(ctx context.Context, req api.MapPortsRequest) ([]api.PortBinding, error)
	UnmapPorts(ctx context.Context, req api.UnmapPortsRequest) error
}

// PortMapperOption is the network option naming the network's port
// mapper: "nat" (the default), "routed", or the name of a port-mapper
// plugin. An endpoint's netlabel.PortMapper label overrides it for that
// endpoint's bindings.
const PortMapperOption = OptionPrefix + "portmapper"

// portTimeout bounds one endpoint's port mapping, remote mappers included.
const portTimeout = 30 * time.Second

// published is what ProgramExternalConnectivity did for an endpoint.
type published struct {
	groups   []mappedGroup
	rules    []firewall.PortRule
	open     []firewall.OpenPort
	bindings []types.PortBinding
}

// mappedGroup is one group of bindings a mapper mapped.
type mappedGroup struct {
	mapper PortMapper
	unmap  api.UnmapPortsRequest
}

// ProgramExternalConnectivity publishes the endpoint's ports (options
// netlabel.PortMap, []types.PortBinding) through the network's port mapper
// and the firewall. Called again for an endpoint that publishes, it
// replaces what it published. On error nothing of it stays.
func (d *Driver) ProgramExternalConnectivity(nid, eid string, opts map[string]interface{}) error {
	d.mu.Lock()
	n, ep, err := d.endpointLocked(nid, eid)
	d.mu.Unlock()
	if err != nil {
		return err
	}
	bindings, err := portBindingsOption(opts)
	if err != nil {
		return types.Errorf("publishing ports of endpoint %s: %w", eid, err)
	}
	if err := d.RevokeExternalConnectivity(nid, eid); err != nil {
		return err
	}
	if len(bindings) == 0 {
		return nil
	}
	if n.config.internal {
		d.logger.Info("internal network: ports are not published", "network", nid, "endpoint", eid, "bindings", len(bindings))
		return nil
	}
	mapperName := n.config.portMapper
	if s, ok, err := options.GetString(opts, netlabel.PortMapper); err != nil {
		return types.BadRequestErrorf("publishing ports of endpoint %s: label %s: %v", eid, netlabel.PortMapper, err)
	} else if ok && s != "" {
		mapperName = s
	}
	if d.portMappers == nil {
		return types.NotImplementedErrorf("publishing ports of endpoint %s: the bridge driver was given no port mappers", eid)
	}
	names := n.mapperNames(mapperName)
	var mappers [2]PortMapper
	for i, name := range names {
		if mappers[i], err = d.portMappers(name); err != nil {
			if !strings.Contains(err.Error(), strconv.Quote(name)) {
				// Package portmapper's errors name the mapper already.
				err = fmt.Errorf("port mapper %q: %w", name, err)
			}
			return types.Errorf("publishing ports of endpoint %s: %w", eid, err)
		}
	}
	groups, err := n.portRequests(ep, bindings)
	if err != nil {
		return types.Errorf("publishing ports of endpoint %s: %w", eid, err)
	}
	if names[0] != names[1] {
		groups = splitByFamily(groups)
	}
	labels := stringLabels(opts)
	for i := range groups {
		groups[i].Labels = labels
	}

	ctx, cancel := context.WithTimeout(context.Background(), portTimeout)
	defer cancel()
	p := &published{}
	ok := false
	defer func() {
		if !ok {
			d.unpublish(p)
		}
	}()
	// The groups of each mapper, mapped in one call when the mapper can
	// (the nat mapper reserves all their host ports at once).
	var byMapper [2][]api.MapPortsRequest
	for _, g := range groups {
		fam := 0
		if g.Reqs[0].BackendIP.Is6() {
			fam = 1
		}
		byMapper[fam] = append(byMapper[fam], g)
	}
	for fam, gs := range byMapper {
		if len(gs) == 0 {
			continue
		}
		m, mapperName := mappers[fam], names[fam]
		results, err := mapGroups(ctx, m, gs)
		if err != nil {
			return types.Errorf("publishing ports of endpoint %s: %w", eid, err)
		}
		for gi, res := range results {
			p.groups = append(p.groups, mappedGroup{m, api.UnmapPortsRequest{PortBindings: res, Labels: gs[gi].Labels}})
			d.addMapped(p, eid, mapperName, res)
		}
	}
	return d.programPublished(n, ep, eid, p, &ok)
}

// groupMapper is a PortMapper that maps several groups in one call, all or
// nothing (the built-in nat mapper).
type groupMapper interface {
	MapPortGroups(ctx context.Context, reqs []api.MapPortsRequest) ([][]api.PortBinding, error)
}

// mapGroups maps gs through m: in one call if m can, else group by group,
// undoing the groups mapped before a failure.
func mapGroups(ctx context.Context, m PortMapper, gs []api.MapPortsRequest) ([][]api.PortBinding, error) {
	if gm, ok := m.(groupMapper); ok && len(gs) > 1 {
		return gm.MapPortGroups(ctx, gs)
	}
	out := make([][]api.PortBinding, 0, len(gs))
	for _, g := range gs {
		res, err := m.MapPorts(ctx, g)
		if err != nil {
			for i, done := range out {
				_ = m.UnmapPorts(ctx, api.UnmapPortsRequest{PortBindings: done, Labels: gs[i].Labels})
			}
			return nil, fmt.Errorf("%s: %w", describeGroup(g), err)
		}
		out = append(out, res)
	}
	return out, nil
}

// addMapped records the bindings a mapper returned in p.
func (d *Driver) addMapped(p *published, eid, mapperName string, res []api.PortBinding) {
	for _, b := range res {
		if b.DiscardReq {
			msg := ""
			if b.Error != nil {
				msg = *b.Error
			}
			d.logger.Warn("port mapper discarded a binding", "endpoint", eid, "mapper", mapperName,
				"binding", fmt.Sprintf("%s/%d", b.Proto, b.BackendPort), "reason", msg)
			continue
		}
		p.bindings = append(p.bindings, reportedBinding(b))
		if b.NAT != nil {
			p.rules = append(p.rules, natRule(*b.NAT))
		} else if b.AllowForwarding {
			p.open = appendOpen(p.open, b)
		}
	}
}

// programPublished programs p's firewall rules and records p as ep's; it
// sets *ok when p is recorded (else the caller unpublishes it).
func (d *Driver) programPublished(n *network, ep *endpoint, eid string, p *published, ok *bool) error {
	if len(p.rules) > 0 {
		if d.fw == nil {
			return types.NotImplementedErrorf("publishing ports of endpoint %s: the port mapper asks for NAT but the firewall is off (%s false)", eid, EnableIPTables)
		}
		if err := d.fw.AddPorts(p.rules); err != nil {
			return types.Errorf("publishing ports of endpoint %s: %w", eid, err)
		}
	}
	if len(p.open) > 0 && d.fw != nil {
		if err := d.fw.AddOpenPorts(p.open); err != nil {
			return types.Errorf("publishing ports of endpoint %s: %w", eid, err)
		}
	}
	d.conntrack.published(p.rules)
	d.mu.Lock()
	if cur, found := n.endpoints[eid]; found && cur == ep {
		ep.published = p
		*ok = true
	}
	d.mu.Unlock()
	if !*ok {
		return types.NotFoundErrorf("publishing ports of endpoint %s: it was deleted meanwhile", eid)
	}
	return nil
}

// RevokeExternalConnectivity unpublishes the endpoint's ports. An endpoint
// that publishes nothing is not an error.
func (d *Driver) RevokeExternalConnectivity(nid, eid string) error {
	d.mu.Lock()
	_, ep, err := d.endpointLocked(nid, eid)
	var p *published
	if err == nil {
		p, ep.published = ep.published, nil
	}
	d.mu.Unlock()
	if err != nil {
		return err
	}
	if p == nil {
		return nil
	}
	if err := d.unpublish(p); err != nil {
		return types.Errorf("unpublishing ports of endpoint %s: %w", eid, err)
	}
	return nil
}

// unpublish removes p's firewall rules and releases its mappings.
func (d *Driver) unpublish(p *published) error {
	var errs []error
	if len(p.rules) > 0 && d.fw != nil {
		if err := d.fw.DeletePorts(p.rules); err != nil {
			errs = append(errs, err)
		}
		d.conntrack.unpublished(p.rules)
	}
	if len(p.open) > 0 && d.fw != nil {
		if err := d.fw.DeleteOpenPorts(p.open); err != nil {
			errs = append(errs, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), portTimeout)
	defer cancel()
	for _, g := range p.groups {
		if err := g.mapper.UnmapPorts(ctx, g.unmap); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// publishedRules returns the firewall rules of every endpoint's published
// ports. d.mu must be held.
func (d *Driver) publishedRulesLocked() []firewall.PortRule {
	var rules []firewall.PortRule
	for _, n := range d.networks {
		for _, ep := range n.endpoints {
			if ep.published != nil {
				rules = append(rules, ep.published.rules...)
			}
		}
	}
	return rules
}

// publishedOpenLocked returns the open ports of every endpoint's
// published ports. d.mu must be held.
func (d *Driver) publishedOpenLocked() []firewall.OpenPort {
	var open []firewall.OpenPort
	for _, n := range d.networks {
		for _, ep := range n.endpoints {
			if ep.published != nil {
				open = append(open, ep.published.open...)
			}
		}
	}
	return open
}

// mapperNames returns the port mapper of the endpoint's IPv4 and IPv6
// bindings: name (an option or label) if set, else "routed" for a family
// the network routes and "" (nat) for the other.
func (n *network) mapperNames(name string) [2]string {
	if name != "" {
		return [2]string{name, name}
	}
	var names [2]string
	if n.config.routedV4 {
		names[0] = portmapper.Routed
	}
	if n.config.routedV6 {
		names[1] = portmapper.Routed
	}
	return names
}

// splitByFamily splits each group into its IPv4 and its IPv6 requests,
// for mappers that differ by family (which cannot share a host port).
func splitByFamily(groups []api.MapPortsRequest) []api.MapPortsRequest {
	var out []api.MapPortsRequest
	for _, g := range groups {
		var v4, v6 api.MapPortsRequest
		for _, r := range g.Reqs {
			if r.BackendIP.Is6() {
				v6.Reqs = append(v6.Reqs, r)
			} else {
				v4.Reqs = append(v4.Reqs, r)
			}
		}
		for _, h := range []api.MapPortsRequest{v4, v6} {
			if len(h.Reqs) > 0 {
				out = append(out, h)
			}
		}
	}
	return out
}

// appendOpen appends the open port of binding b, which allows forwarding
// to its backend without NAT, unless open holds it (two bindings of one
// container port, on all addresses and on the container's).
func appendOpen(open []firewall.OpenPort, b api.PortBinding) []firewall.OpenPort {
	o := firewall.OpenPort{Proto: b.Proto, Addr: b.BackendIP.Unmap(), Port: b.BackendPort}
	if slices.Contains(open, o) {
		return open
	}
	return append(open, o)
}

// portBindingsOption returns the bindings under netlabel.PortMap.
func portBindingsOption(opts map[string]interface{}) ([]types.PortBinding, error) {
	v, ok := opts[netlabel.PortMap]
	if !ok || v == nil {
		return nil, nil
	}
	b, ok := v.([]types.PortBinding)
	if !ok {
		return nil, types.BadRequestErrorf("option %s: %T is not a []types.PortBinding", netlabel.PortMap, v)
	}
	return b, nil
}

// stringLabels returns the string-valued options, which a remote port
// mapper receives as its request's labels.
func stringLabels(opts map[string]interface{}) map[string]string {
	var labels map[string]string
	for k, v := range opts {
		if s, ok := v.(string); ok {
			if labels == nil {
				labels = map[string]string{}
			}
			labels[k] = s
		}
	}
	return labels
}

// portRequests turns bindings into groups of requests, one group per
// binding: a binding with no host address asks for every address of each
// family the endpoint has (the network's default binding address instead,
// for IPv4, when one is set), sharing one host port; a binding with a host
// address asks for that address only.
func (n *network) portRequests(ep *endpoint, bindings []types.PortBinding) ([]api.MapPortsRequest, error) {
	var v4, v6 netip.Addr
	if ep.addr != nil {
		v4, _ = netip.AddrFromSlice(ep.addr.IP.To4())
	}
	if ep.addrV6 != nil {
		v6, _ = netip.AddrFromSlice(ep.addrV6.IP.To16())
	}
	var groups []api.MapPortsRequest
	for _, b := range bindings {
		switch b.Proto {
		case types.TCP, types.UDP, types.SCTP:
		default:
			return nil, types.BadRequestErrorf("port binding %s: protocol %s cannot be published (tcp, udp or sctp)", b.String(), b.Proto)
		}
		if b.Port == 0 {
			return nil, types.BadRequestErrorf("port binding %s: container port 0", b.String())
		}
		end := b.HostPortEnd
		if end == 0 {
			end = b.HostPort
		}
		if end < b.HostPort || (b.HostPort == 0 && b.HostPortEnd != 0) {
			return nil, types.BadRequestErrorf("port binding %s: host port range %d-%d is empty", b.String(), b.HostPort, b.HostPortEnd)
		}
		req := func(host, backend netip.Addr) api.PortBindingReq {
			return api.PortBindingReq{Proto: b.Proto, BackendIP: backend, BackendPort: b.Port,
				FrontendIP: host, FrontendPort: b.HostPort, FrontendPortEnd: end}
		}
		var g api.MapPortsRequest
		if len(b.HostIP) == 0 {
			host4 := netip.IPv4Unspecified()
			if n.config.hostBindingIP.IsValid() {
				host4 = n.config.hostBindingIP
			}
			if v4.IsValid() {
				g.Reqs = append(g.Reqs, req(host4, v4))
			}
			if v6.IsValid() && !n.config.hostBindingIP.IsValid() {
				g.Reqs = append(g.Reqs, req(netip.IPv6Unspecified(), v6))
			}
			if len(g.Reqs) == 0 {
				return nil, types.BadRequestErrorf("port binding %s: the endpoint has no address", b.String())
			}
		} else {
			host, ok := netip.AddrFromSlice(b.HostIP)
			if !ok {
				return nil, types.BadRequestErrorf("port binding %s: bad host address", b.String())
			}
			host = host.Unmap()
			backend := v4
			if host.Is6() {
				backend = v6
			}
			if !backend.IsValid() {
				return nil, types.BadRequestErrorf("port binding %s: the endpoint has no address of the host address's family", b.String())
			}
			g.Reqs = append(g.Reqs, req(host, backend))
		}
		groups = append(groups, g)
	}
	return groups, nil
}

// describeGroup names the requests of g for an error.
func describeGroup(g api.MapPortsRequest) string {
	var s []string
	for _, r := range g.Reqs {
		port := fmt.Sprint(r.FrontendPort)
		if r.FrontendPortEnd > r.FrontendPort {
			port += fmt.Sprintf("-%d", r.FrontendPortEnd)
		}
		s = append(s, fmt.Sprintf("%s/%s on %s -> %s", port, r.Proto, r.FrontendIP, netip.AddrPortFrom(r.BackendIP, r.BackendPort)))
	}
	return fmt.Sprint(s)
}

// reportedBinding is what the endpoint's info says of a mapped binding.
func reportedBinding(b api.PortBinding) types.PortBinding {
	var hostIP net.IP
	if b.FrontendIP.IsValid() {
		hostIP = net.IP(b.FrontendIP.AsSlice())
	}
	return types.PortBinding{Proto: b.Proto, IP: net.IP(b.BackendIP.AsSlice()), Port: b.BackendPort,
		HostIP: hostIP, HostPort: b.FrontendPort, HostPortEnd: b.FrontendPort}
}

// natRule is the firewall rule of a mapper's NAT rule; an invalid frontend
// address means every address of the backend's family.
func natRule(r api.NATRule) firewall.PortRule {
	host := r.FrontendIP.Unmap()
	backend := r.BackendIP.Unmap()
	if !host.IsValid() {
		host = netip.IPv4Unspecified()
		if backend.Is6() {
			host = netip.IPv6Unspecified()
		}
	}
	return firewall.PortRule{Proto: r.Proto, HostIP: host, HostPort: r.FrontendPort, ContainerIP: backend, ContainerPort: r.BackendPort}
}

// portMapsOf returns a copy of the endpoint's reported bindings. d.mu must
// be held.
func (ep *endpoint) portMapLocked() []types.PortBinding {
	if ep.published == nil {
		return nil
	}
	return slices.Clone(ep.published.bindings)
}
