// Package portallocator reserves the host ports of published container
// ports. A controller owns one Allocator for its network namespace; there
// is no package-level state, so several controllers can run in one process.
//
// A host port is reserved by binding a socket to it in the controller's
// namespace and holding the socket for as long as the mapping lives (see
// socket.go for what is bound, per protocol, and why TCP is not listened
// on). The kernel is the judge of "free": a port another program uses makes
// bind fail with EADDRINUSE and the request is refused with a
// *PortInUseError, instead of the port being silently hijacked by NAT
// rules. The sockets are created on a thread in the namespace
// (Namespace.Do, the library's one namespace switch) and stay valid, and in
// that namespace, on every thread.
//
// Besides the sockets, the Allocator keeps a table of what it handed out,
// keyed by protocol, address family and port, each holding the few host
// addresses reserved on that port. The table makes a conflict with one of
// its own mappings a constant-time check without a system call, lets a range
// search skip its own ports cheaply, tells "in use by another published
// port" from "in use by another program", and holds SCTP reservations on a
// kernel without SCTP (Binding.NoSocket). An unspecified host address
// (0.0.0.0, ::) overlaps every address of its family, as in the kernel.
//
// A request asks for a fixed port, a range HostPort..HostPortEnd, or an
// ephemeral port (0), taken from the namespace's ip_local_port_range less
// its ip_local_reserved_ports (explicit ranges, like fixed ports, are
// honoured as asked). Both sysctls are opened once inside the namespace and
// read again on each ephemeral request, so a change by the administrator
// applies at once.
// Requests passed together to Allocate form a group (the IPv4 and IPv6
// bindings of a dual-stack publication, or tcp and udp of one container
// port) that must get one port free for every member: each candidate port
// is reserved in the table for all members and bound for all members, and
// any failure undoes both before the next candidate, so nothing stays
// reserved after an error. AllocateGroups takes the groups of several
// container ports in one namespace switch, all or nothing.
//
// Range and ephemeral searches rotate: each range remembers the port after
// the last one it handed out and the next search starts there, so a port
// just released is reused only after every other port of the range has
// been offered. For UDP this matters: the conntrack entries of the old
// mapping (up to 180 s for a stream) would otherwise keep steering a
// restarted client's datagrams to the old container. The ephemeral cursor
// starts at a random port of the range, so a restarted controller does not
// walk the same sequence again; an explicit range starts at its first port,
// as docker does, so a lone container gets the port a user expects. A
// search tries each port of the range at most once, and costs a system
// call only for ports the table says are free.
//
// A restored mapping (after a controller restart) asks for exactly the
// port it had: a fixed-port request.
package portallocator
