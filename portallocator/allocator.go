package portallocator

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/netkit/libnetwork/types"
	"golang.org/x/sys/unix"
)

// ErrClosed is wrapped by the errors of Allocate after Close.
var ErrClosed = errors.New("port allocator is closed")

// Namespace runs functions on a thread inside the network namespace whose
// ports the Allocator hands out. *osl.Namespace implements it.
type Namespace interface {
	Do(fn func() error) error
}

// Request asks for a host port for one protocol and host address.
type Request struct {
	// Proto is types.TCP, types.UDP or types.SCTP.
	Proto types.Protocol
	// HostIP is the host address to reserve the port on; 0.0.0.0 or :: for
	// every address of its family. It must be valid.
	HostIP netip.Addr
	// HostPort is the port, or the first port of a range, or 0 for an
	// ephemeral port.
	HostPort uint16
	// HostPortEnd is the last port of a range; 0 or HostPort asks for
	// HostPort exactly. It must be 0 when HostPort is.
	HostPortEnd uint16
}

// String returns "tcp on 0.0.0.0".
func (r Request) String() string { return fmt.Sprintf("%s on %s", r.Proto, r.HostIP) }

// Binding is one reserved host port.
type Binding struct {
	Proto  types.Protocol
	HostIP netip.Addr
	Port   uint16
	// NoSocket reports that the kernel has no SCTP, so the port is
	// reserved in the Allocator's table only: no program can take it
	// while the kernel lacks SCTP, but one could if SCTP were loaded
	// later. Callers should log it.
	NoSocket bool
}

// Allocation is the host port reserved for a group of requests, one
// Binding per request in the order given, all with the same Port. Give it
// back with Allocator.Release.
type Allocation struct {
	// Port is the host port every binding got.
	Port uint16
	// Bindings are the reservations, in the order of the requests.
	Bindings []Binding

	// fds holds one socket per binding, -1 for a NoSocket binding; nil
	// once released. Guarded by the Allocator's mu.
	fds []int
	// released is set by Release and Close; guarded by the Allocator's mu.
	released bool
}

// portSpec is what a group asks for: a fixed port (begin == end), a range,
// or an ephemeral port (the range is read from the namespace).
type portSpec struct {
	begin, end uint16
	ephemeral  bool
}

// slotKey identifies the addresses that may conflict on one port: the
// same protocol and address family.
type slotKey struct {
	proto types.Protocol
	v6    bool
	port  uint16
}

// maxCursors bounds the rotating cursors kept for explicit ranges; past it
// they are forgotten (searches then start again at the range's first port).
const maxCursors = 1024

// Allocator hands out host ports in one network namespace. It is safe for
// concurrent use. Allocations run concurrently: the table is locked only
// to check and record reservations, never during a system call. mu and
// sysctls.mu are never held together.
type Allocator struct {
	ns Namespace

	// sctpMissing is set once the kernel refused an SCTP socket as an
	// unsupported protocol, so later requests do not ask again: a
	// refused socket(2) may make the kernel run modprobe each time.
	sctpMissing atomic.Bool

	// sysctls are the namespace's ephemeral-port sysctls.
	sysctls sysctlFiles

	mu sync.Mutex
	// closed is set by Close.
	closed bool
	// table holds the host addresses reserved on each protocol, family
	// and port, whether by a socket or in memory only.
	table map[slotKey][]netip.Addr
	// live holds the allocations not yet released, for Close.
	live map[*Allocation]struct{}
	// cursors holds, per searched range, the port to start the next
	// search at.
	cursors map[portInterval]uint16
}

// New returns an Allocator of host ports in ns, usually the controller's
// *osl.Namespace.
func New(ns Namespace) (*Allocator, error) {
	if ns == nil {
		return nil, types.BadRequestErrorf("creating a port allocator: no namespace")
	}
	return &Allocator{
		ns:      ns,
		table:   make(map[slotKey][]netip.Addr),
		live:    make(map[*Allocation]struct{}),
		cursors: make(map[portInterval]uint16),
	}, nil
}

// Allocate reserves one host port for every request of group, all the
// same port: each request's fixed port, a port of their common range, or
// an ephemeral port. All requests must ask for the same port or range.
// It is all or nothing: on error nothing stays reserved.
//
// A port taken by another program or another allocation fails with a
// *PortInUseError, a range without a port free for the whole group with a
// *NoFreePortError (both types.ForbiddenError); bad requests fail with a
// types.BadRequestError.
func (a *Allocator) Allocate(group ...Request) (*Allocation, error) {
	als, err := a.AllocateGroups(group)
	if err != nil {
		return nil, err
	}
	return als[0], nil
}

// AllocateGroups allocates several groups, each as Allocate does, in one
// switch into the namespace, and returns their allocations in order. It is
// all or nothing: if one group fails, the ones before it are released. An
// endpoint publishing several container ports asks for them together: the
// switch costs about 20 µs here, as much as the rest of an allocation.
func (a *Allocator) AllocateGroups(groups ...[]Request) ([]*Allocation, error) {
	type checked struct {
		members []Request
		spec    portSpec
	}
	todo := make([]checked, len(groups))
	for i, group := range groups {
		members, spec, err := checkGroup(group)
		if err != nil {
			return nil, err
		}
		todo[i] = checked{members, spec}
	}
	als := make([]*Allocation, 0, len(groups))
	// The ephemeral range is read once for the whole call.
	var eph *ephemeralRange
	err := a.ns.Do(func() error {
		for _, c := range todo {
			al, err := a.search(c.members, c.spec, &eph)
			if err != nil {
				return err
			}
			als = append(als, al)
		}
		return nil
	})
	if err != nil {
		for _, al := range als {
			a.Release(al)
		}
		return nil, err
	}
	return als, nil
}

// checkGroup validates group and returns its requests with addresses
// unmapped (::ffff:a.b.c.d is an IPv4 address) and the port it asks for.
func checkGroup(group []Request) ([]Request, portSpec, error) {
	if len(group) == 0 {
		return nil, portSpec{}, types.BadRequestErrorf("allocating a host port: no bindings requested")
	}
	members := make([]Request, len(group))
	var spec portSpec
	for i, r := range group {
		if err := checkRequest(r); err != nil {
			return nil, portSpec{}, err
		}
		r.HostIP = r.HostIP.Unmap()
		members[i] = r
		s := portSpec{begin: r.HostPort, end: max(r.HostPort, r.HostPortEnd), ephemeral: r.HostPort == 0}
		if i == 0 {
			spec = s
		} else if s != spec {
			return nil, portSpec{}, types.BadRequestErrorf("allocating a host port for %s and %s: they ask for different ports (%s and %s) but must share one",
				members[0], r, portText(group[0]), portText(r))
		}
		for _, o := range members[:i] {
			if o.Proto == r.Proto && o.HostIP.Is6() == r.HostIP.Is6() && overlaps(o.HostIP, r.HostIP) {
				return nil, portSpec{}, types.BadRequestErrorf("allocating a host port for %s and %s: the two bindings overlap and cannot share a port", o, r)
			}
		}
	}
	return members, spec, nil
}

func checkRequest(r Request) error {
	switch r.Proto {
	case types.TCP, types.UDP, types.SCTP:
	default:
		return types.BadRequestErrorf("allocating host port %s for protocol %s: only tcp, udp and sctp ports can be published", portText(r), r.Proto)
	}
	switch {
	case !r.HostIP.IsValid():
		return types.BadRequestErrorf("allocating host port %s/%s: no host IP (use 0.0.0.0 or :: for all addresses)", portText(r), r.Proto)
	case r.HostIP.Zone() != "":
		return types.BadRequestErrorf("allocating host port %s/%s on %s: host IPs with a zone are not supported", portText(r), r.Proto, r.HostIP)
	case r.HostPort == 0 && r.HostPortEnd != 0:
		return types.BadRequestErrorf("allocating host port range 0-%d/%s on %s: a range must start at port 1 or above", r.HostPortEnd, r.Proto, r.HostIP)
	case r.HostPortEnd != 0 && r.HostPortEnd < r.HostPort:
		return types.BadRequestErrorf("allocating host port range %d-%d/%s on %s: the range ends before it starts", r.HostPort, r.HostPortEnd, r.Proto, r.HostIP)
	}
	return nil
}

// portText describes the port r asks for: "8080", "8000-8010" or
// "ephemeral".
func portText(r Request) string {
	switch {
	case r.HostPort == 0:
		return "ephemeral"
	case r.HostPortEnd == 0 || r.HostPortEnd == r.HostPort:
		return fmt.Sprint(r.HostPort)
	default:
		return fmt.Sprintf("%d-%d", r.HostPort, r.HostPortEnd)
	}
}

// search finds and reserves a port for members. It runs on a thread in
// the namespace (inside Do) and starts no goroutines. *cached is the
// ephemeral range read earlier in the same call, or nil; search reads and
// sets it when it needs it.
func (a *Allocator) search(members []Request, spec portSpec, cached **ephemeralRange) (*Allocation, error) {
	var eph ephemeralRange
	if spec.ephemeral {
		if *cached == nil {
			r, err := a.sysctls.read()
			if errors.Is(err, ErrClosed) {
				return nil, types.ForbiddenErrorf("allocating an ephemeral host port: %w", err)
			} else if err != nil {
				return nil, types.InternalErrorf("allocating an ephemeral host port for %s: %w", describe(members), err)
			}
			*cached = &r
		}
		eph = **cached
		spec.begin, spec.end = eph.begin, eph.end
	}
	size := int(spec.end) - int(spec.begin) + 1
	start, err := a.searchStart(spec)
	if err != nil {
		return nil, err
	}
	for i := range size {
		port := uint16(int(spec.begin) + (int(start-spec.begin)+i)%size)
		if spec.ephemeral && eph.isReserved(port) {
			continue
		}
		al, err := a.tryPort(members, port)
		if err == nil {
			if size > 1 {
				a.advanceCursor(spec, port)
			}
			return al, nil
		}
		var inUse *PortInUseError
		if (size > 1 || spec.ephemeral) && errors.As(err, &inUse) {
			continue
		}
		return nil, err
	}
	return nil, &NoFreePortError{Begin: spec.begin, End: spec.end, Ephemeral: spec.ephemeral, Bindings: describe(members)}
}

func describe(members []Request) []string {
	s := make([]string, len(members))
	for i, m := range members {
		s[i] = m.String()
	}
	return s
}

// searchStart returns the port a search of spec starts at: the range's
// cursor, else a random port for the ephemeral range and the first port
// for an explicit one.
func (a *Allocator) searchStart(spec portSpec) (uint16, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return 0, types.ForbiddenErrorf("allocating a host port: %w", ErrClosed)
	}
	if c, ok := a.cursors[portInterval{spec.begin, spec.end}]; ok {
		return c, nil
	}
	if spec.ephemeral {
		return spec.begin + uint16(rand.IntN(int(spec.end-spec.begin)+1)), nil
	}
	return spec.begin, nil
}

// advanceCursor makes the next search of spec start after port.
func (a *Allocator) advanceCursor(spec portSpec, port uint16) {
	next := port + 1
	if port == spec.end {
		next = spec.begin
	}
	key := portInterval{spec.begin, spec.end}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.cursors[key]; !ok && len(a.cursors) >= maxCursors {
		clear(a.cursors)
	}
	a.cursors[key] = next
}

// tryPort reserves port for every member, in the table and then in the
// kernel, or fails leaving nothing reserved. It runs inside Do.
func (a *Allocator) tryPort(members []Request, port uint16) (*Allocation, error) {
	if err := a.reserve(members, port); err != nil {
		return nil, err
	}
	bindings, fds, err := a.bindAll(members, port)
	if err != nil {
		a.unreserve(members, port)
		return nil, err
	}
	al := &Allocation{Port: port, Bindings: bindings, fds: fds}
	a.mu.Lock()
	if a.closed {
		// Close ran after reserve: it released only live allocations.
		for _, m := range members {
			a.removeLocked(m.Proto, m.HostIP, port)
		}
		a.mu.Unlock()
		closeAll(fds)
		return nil, types.ForbiddenErrorf("allocating host port %d: %w", port, ErrClosed)
	}
	a.live[al] = struct{}{}
	a.mu.Unlock()
	return al, nil
}

// reserve records port for every member in the table, or records nothing
// and returns a *PortInUseError naming the first member that conflicts with
// an earlier allocation.
func (a *Allocator) reserve(members []Request, port uint16) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return types.ForbiddenErrorf("allocating host port %d: %w", port, ErrClosed)
	}
	for _, m := range members {
		for _, held := range a.table[keyOf(m.Proto, m.HostIP, port)] {
			if overlaps(held, m.HostIP) {
				return &PortInUseError{Proto: m.Proto, HostIP: m.HostIP, Port: port, Allocated: true}
			}
		}
	}
	for _, m := range members {
		k := keyOf(m.Proto, m.HostIP, port)
		a.table[k] = append(a.table[k], m.HostIP)
	}
	return nil
}

// unreserve removes port of every member from the table; entries already
// gone (Close cleared the table) are skipped.
func (a *Allocator) unreserve(members []Request, port uint16) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, m := range members {
		a.removeLocked(m.Proto, m.HostIP, port)
	}
}

// removeLocked removes one reservation of addr from the table. mu must be
// held.
func (a *Allocator) removeLocked(proto types.Protocol, addr netip.Addr, port uint16) {
	k := keyOf(proto, addr, port)
	held := a.table[k]
	i := slices.Index(held, addr)
	if i < 0 {
		return
	}
	held = slices.Delete(held, i, i+1)
	if len(held) == 0 {
		delete(a.table, k)
		return
	}
	a.table[k] = held
}

func keyOf(proto types.Protocol, addr netip.Addr, port uint16) slotKey {
	return slotKey{proto: proto, v6: addr.Is6(), port: port}
}

// overlaps reports whether two host addresses of one family cover a common
// address: the same address, or either one unspecified.
func overlaps(x, y netip.Addr) bool {
	return x == y || x.IsUnspecified() || y.IsUnspecified()
}

// bindAll opens and binds a socket on port for every member, or closes
// what it opened and returns the first error. It runs inside Do.
func (a *Allocator) bindAll(members []Request, port uint16) (_ []Binding, _ []int, retErr error) {
	bindings := make([]Binding, 0, len(members))
	fds := make([]int, 0, len(members))
	defer func() {
		if retErr != nil {
			closeAll(fds)
		}
	}()
	for _, m := range members {
		b := Binding{Proto: m.Proto, HostIP: m.HostIP, Port: port}
		fd, err := a.hold(m, port)
		if err != nil {
			return nil, nil, err
		}
		b.NoSocket = fd < 0
		bindings = append(bindings, b)
		fds = append(fds, fd)
	}
	return bindings, fds, nil
}

// hold opens and binds the socket that holds port for m. It returns -1 and
// no error when the kernel has no SCTP.
func (a *Allocator) hold(m Request, port uint16) (int, error) {
	if m.Proto == types.SCTP && a.sctpMissing.Load() {
		return -1, nil
	}
	fd, err := openSocket(m.Proto, m.HostIP)
	if err != nil {
		if tableOnly(m.Proto, err) {
			a.sctpMissing.Store(true)
			return -1, nil
		}
		return -1, types.InternalErrorf("reserving host port %d/%s on %s: %w", port, m.Proto, m.HostIP, err)
	}
	if err := bindSocket(fd, m.HostIP, port); err != nil {
		unix.Close(fd)
		return -1, bindError(m, port, err)
	}
	return fd, nil
}

// bindError classifies a failed bind of m's port.
func bindError(m Request, port uint16, err error) error {
	switch {
	case errors.Is(err, unix.EADDRINUSE):
		return &PortInUseError{Proto: m.Proto, HostIP: m.HostIP, Port: port, Err: err}
	case errors.Is(err, unix.EADDRNOTAVAIL):
		return types.BadRequestErrorf("reserving host port %d/%s on %s: %s is not an address of this host: %w", port, m.Proto, m.HostIP, m.HostIP, err)
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return types.ForbiddenErrorf("reserving host port %d/%s on %s: not permitted: %w", port, m.Proto, m.HostIP, err)
	default:
		return types.InternalErrorf("reserving host port %d/%s on %s: %w", port, m.Proto, m.HostIP, err)
	}
}

func closeAll(fds []int) {
	for _, fd := range fds {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// Release gives back the ports of al and closes its sockets. Releasing an
// allocation twice, or after Close, does nothing.
func (a *Allocator) Release(al *Allocation) {
	if al == nil {
		return
	}
	a.mu.Lock()
	fds := a.releaseLocked(al)
	a.mu.Unlock()
	closeAll(fds)
}

// releaseLocked marks al released, removes it from the table and returns
// its sockets for the caller to close after unlocking. mu must be held.
func (a *Allocator) releaseLocked(al *Allocation) []int {
	if al.released {
		return nil
	}
	al.released = true
	delete(a.live, al)
	for _, b := range al.Bindings {
		a.removeLocked(b.Proto, b.HostIP, al.Port)
	}
	fds := al.fds
	al.fds = nil
	return fds
}

// Close releases every allocation and makes later Allocate calls fail with
// a types.ForbiddenError wrapping ErrClosed. Closing twice is harmless.
func (a *Allocator) Close() error {
	a.mu.Lock()
	a.closed = true
	var fds []int
	for al := range a.live {
		fds = append(fds, a.releaseLocked(al)...)
	}
	a.mu.Unlock()
	closeAll(fds)
	a.sysctls.close()
	return nil
}
