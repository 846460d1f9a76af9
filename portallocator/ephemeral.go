package portallocator

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// The sysctls that define the ephemeral ports of a namespace. They are read
// by a thread inside the namespace: /proc/sys/net shows the network
// namespace of the thread that opens it.
const (
	localPortRangePath     = "/proc/sys/net/ipv4/ip_local_port_range"
	localReservedPortsPath = "/proc/sys/net/ipv4/ip_local_reserved_ports"
)

// portInterval is a closed interval of ports.
type portInterval struct{ lo, hi uint16 }

// ephemeralRange is the namespace's ip_local_port_range and the ports
// ip_local_reserved_ports excludes from it.
type ephemeralRange struct {
	begin, end uint16
	// reserved is sorted and non-overlapping.
	reserved []portInterval
}

// sysctlFiles are the two sysctl files, opened once inside the namespace
// and read again (from offset 0) for each ephemeral request, so a change by
// the administrator applies at once. Opening costs a /proc path lookup each
// time (about 20 µs here, as much as the rest of an allocation); reading an
// open file costs a few µs.
type sysctlFiles struct {
	mu sync.Mutex
	// portRange and reserved are nil until the first ephemeral request,
	// and after close.
	portRange, reserved *os.File
	// buf is reused for each read.
	buf []byte
	// closed is set by close; read then fails with ErrClosed.
	closed bool
}

// firstSysctlRead is the size of the first read of a sysctl; the values
// read here are usually a dozen bytes.
const firstSysctlRead = 1024

// maxSysctlLen bounds a sysctl value. The longest ip_local_reserved_ports
// (every other port) is about 190 kB.
const maxSysctlLen = 1 << 20

// read returns the namespace's ephemeral range. It must run on a thread in
// the namespace (inside Do): /proc/sys/net shows the network namespace of
// the thread that opens it.
func (s *sysctlFiles) read() (ephemeralRange, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ephemeralRange{}, ErrClosed
	}
	if s.portRange == nil {
		f, err := os.Open(localPortRangePath)
		if err != nil {
			return ephemeralRange{}, fmt.Errorf("opening net.ipv4.ip_local_port_range: %w", err)
		}
		g, err := os.Open(localReservedPortsPath)
		if err != nil {
			f.Close()
			return ephemeralRange{}, fmt.Errorf("opening net.ipv4.ip_local_reserved_ports: %w", err)
		}
		s.portRange, s.reserved, s.buf = f, g, make([]byte, firstSysctlRead)
	}
	b, err := s.readLocked(s.portRange)
	if err != nil {
		return ephemeralRange{}, fmt.Errorf("reading net.ipv4.ip_local_port_range: %w", err)
	}
	begin, end, err := parsePortRange(string(b))
	if err != nil {
		return ephemeralRange{}, fmt.Errorf("net.ipv4.ip_local_port_range: %w", err)
	}
	b, err = s.readLocked(s.reserved)
	if err != nil {
		return ephemeralRange{}, fmt.Errorf("reading net.ipv4.ip_local_reserved_ports: %w", err)
	}
	reserved, err := parsePortList(string(b))
	if err != nil {
		return ephemeralRange{}, fmt.Errorf("net.ipv4.ip_local_reserved_ports: %w", err)
	}
	return ephemeralRange{begin: begin, end: end, reserved: reserved}, nil
}

// readLocked reads the whole value of a sysctl file. A sysctl answers only
// the first read at offset 0 and returns nothing at a later offset, so a
// value longer than the buffer would come back cut (os.ReadFile, starting
// with 512 bytes, cuts a long ip_local_reserved_ports): a read that fills
// the buffer is made again with a buffer twice as large. s.mu must be held.
func (s *sysctlFiles) readLocked(f *os.File) ([]byte, error) {
	for {
		n, err := f.ReadAt(s.buf, 0)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		if n < len(s.buf) {
			return s.buf[:n], nil
		}
		if len(s.buf) >= maxSysctlLen {
			return nil, fmt.Errorf("value longer than %d bytes", maxSysctlLen)
		}
		s.buf = make([]byte, 2*len(s.buf))
	}
}

// close closes the files for good.
func (s *sysctlFiles) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.portRange != nil {
		s.portRange.Close()
		s.reserved.Close()
		s.portRange, s.reserved = nil, nil
	}
}

// parsePortRange parses ip_local_port_range: two port numbers separated by
// white space.
func parsePortRange(s string) (begin, end uint16, err error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("%q is not two port numbers", strings.TrimSpace(s))
	}
	b, err1 := strconv.ParseUint(f[0], 10, 16)
	e, err2 := strconv.ParseUint(f[1], 10, 16)
	if err1 != nil || err2 != nil || b == 0 || e < b {
		return 0, 0, fmt.Errorf("%q is not a port range", strings.TrimSpace(s))
	}
	return uint16(b), uint16(e), nil
}

// parsePortList parses ip_local_reserved_ports: a comma-separated list of
// ports and ranges "a-b", possibly empty ("8080,9000-9010"). The result is
// sorted with overlapping and adjacent intervals merged.
func parsePortList(s string) ([]portInterval, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var list []portInterval
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		lo, hi, isRange := strings.Cut(item, "-")
		if !isRange {
			hi = lo
		}
		l, err1 := strconv.ParseUint(lo, 10, 16)
		h, err2 := strconv.ParseUint(hi, 10, 16)
		if err1 != nil || err2 != nil || h < l {
			return nil, fmt.Errorf("%q is not a port or a port range", item)
		}
		list = append(list, portInterval{uint16(l), uint16(h)})
	}
	slices.SortFunc(list, func(a, b portInterval) int { return int(a.lo) - int(b.lo) })
	merged := list[:1]
	for _, iv := range list[1:] {
		last := &merged[len(merged)-1]
		if int(iv.lo) <= int(last.hi)+1 {
			last.hi = max(last.hi, iv.hi)
			continue
		}
		merged = append(merged, iv)
	}
	return merged, nil
}

// isReserved reports whether port is in ip_local_reserved_ports, by binary
// search over the merged intervals.
func (r *ephemeralRange) isReserved(port uint16) bool {
	i, _ := slices.BinarySearchFunc(r.reserved, port, func(iv portInterval, p uint16) int {
		switch {
		case iv.hi < p:
			return -1
		case iv.lo > p:
			return 1
		}
		return 0
	})
	return i < len(r.reserved) && r.reserved[i].lo <= port && port <= r.reserved[i].hi
}
