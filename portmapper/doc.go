// Package portmapper is the registry of port mappers: what turns the
// published ports of an endpoint into host ports and the NAT rules that
// reach them. A controller owns one Registry; Registry.Mapper returns the
// mapper a network (driver option) or a request (label) names, and every
// mapper speaks the Go form of spec/portmapper-plugin-api.txt (package
// portmapper/api).
//
// A MapPortsRequest is one group: the requests of one container port that
// must share one host port when an ephemeral port or a range is asked (the
// IPv4 and IPv6 bindings of a dual-stack publication, say). Callers send one
// MapPortsRequest per group and get one PortBinding per request, in order.
// A request's FrontendIP left zero means every address of its backend's
// family. Requests are validated the same way for every mapper before
// anything is done (ValidateRequest): a bad one is a types.BadRequestError
// naming the binding.
//
// The mappers:
//
//   - "nat" (also the empty name) reserves the host port with the
//     controller's portallocator.Allocator, one Allocate per group, so a
//     port another program holds is refused (*portallocator.PortInUseError)
//     and nothing is left reserved. Each binding asks the library to
//     program a NAT rule from the reserved host address and port to the
//     container, and to allow forwarding to it. The mapper remembers the
//     allocation of every binding it returned: UnmapPorts given the same
//     bindings releases it once every binding of the group is unmapped,
//     and ignores bindings it does not know.
//   - "routed" maps nothing: the container is reached at its own address
//     on its own port, so each binding is the backend itself with
//     AllowForwarding, and no host port is reserved. It cannot translate, so
//     a request for a host port or host address other than the container's
//     is refused.
//   - any other name is a remote port-mapper plugin, found and activated
//     through the controller's plugins.Registry. Its calls are bounded by
//     Config.CallTimeout and take no lock of the Registry, so a dead or slow
//     plugin delays only the callers of that plugin. Its answers are
//     checked strictly (ValidateResponse); when a call fails after the
//     plugin may have acted on it, or its answer is refused, the mapper
//     sends the plugin a best-effort UnmapPorts so nothing stays mapped
//     there, and returns a *PluginError.
//
// Labels are passed to remote mappers unchanged; the built-in mappers
// ignore them.
package portmapper
