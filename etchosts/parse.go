package etchosts

import (
	"bytes"
	"strings"
)

// entry is a parsed hosts line: an address and its names, with the byte
// span of the address in the line so it can be replaced in place.
type entry struct {
	ip             string
	hosts          []string
	ipStart, ipEnd int
}

// key identifies an entry by its address and names, whatever the spacing.
func (e entry) key() string {
	return e.ip + "\x00" + strings.Join(e.hosts, " ")
}

// hasHost reports whether name is one of the entry's names.
func (e entry) hasHost(name string) bool {
	for _, h := range e.hosts {
		if h == name {
			return true
		}
	}
	return false
}

// recordEntry returns the entry a Record would be written as.
func recordEntry(r Record) entry {
	return entry{ip: strings.TrimSpace(r.IP), hosts: strings.Fields(r.Hosts)}
}

// parseLine parses one hosts line (without regard to its newline). It
// returns ok=false for blank lines, comments, and lines with an address but
// no names, which callers keep untouched.
func parseLine(line []byte) (e entry, ok bool) {
	if i := bytes.IndexByte(line, '#'); i >= 0 {
		line = line[:i]
	}
	fields := strings.Fields(string(line))
	if len(fields) < 2 {
		return entry{}, false
	}
	start := bytes.Index(line, []byte(fields[0]))
	return entry{
		ip:      fields[0],
		hosts:   fields[1:],
		ipStart: start,
		ipEnd:   start + len(fields[0]),
	}, true
}

// forEachLine calls fn for every line of content, newline included (the
// last line may lack one), with its parsed entry.
func forEachLine(content []byte, fn func(line []byte, e entry, ok bool)) {
	for len(content) > 0 {
		n := bytes.IndexByte(content, '\n') + 1
		if n == 0 {
			n = len(content)
		}
		line := content[:n]
		e, ok := parseLine(line)
		fn(line, e, ok)
		content = content[n:]
	}
}
