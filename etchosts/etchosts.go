// Package etchosts writes and edits a sandbox's /etc/hosts file.
//
// Every function takes the file's path, so the package needs no root and
// holds no state. Files are replaced atomically (a temporary file in the
// same directory renamed over the old one) with mode 0644.
//
// The package never overwrites a file the user edited. Beside each file it
// writes it keeps a sidecar "<path>.hash" with the sha256 of the content it
// last wrote. Build and BuildFrom are the create path: they overwrite
// unconditionally. Add, Delete and Update first compare the file with its
// sidecar and, when they differ (or the file exists without a sidecar, or
// was removed after it was written), leave the file alone and return an
// error wrapping ErrUserModified. A file that does not exist and has no
// sidecar is simply created by Add.
//
// The package does not lock: the caller serialises calls for one file.
package etchosts

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/netkit/libnetwork/internal/ownedfile"

	"github.com/netkit/libnetwork/types"
)

// Record is one line of a hosts file: an address and the names it has.
type Record struct {
	// Hosts holds the names, separated by spaces.
	Hosts string
	// IP is the address the names resolve to.
	IP string
}

// defaultContent is the head of every hosts file Build writes.
const defaultContent = "127.0.0.1\tlocalhost\n" +
	"::1\tlocalhost ip6-localhost ip6-loopback\n" +
	"fe00::0\tip6-localnet\n" +
	"ff00::0\tip6-mcastprefix\n" +
	"ff02::1\tip6-allnodes\n" +
	"ff02::2\tip6-allrouters\n"

// Build writes a fresh hosts file at path: the default localhost and IPv6
// lines followed by extraContent. It overwrites any existing file, edited
// or not, and records the new content's hash.
func Build(path string, extraContent []Record) error {
	if err := validate(extraContent); err != nil {
		return fmt.Errorf("etchosts: build %s: %w", path, err)
	}
	buf := bytes.NewBufferString(defaultContent)
	appendRecords(buf, extraContent)
	if err := ownedfile.Write(path, buf.Bytes()); err != nil {
		return fmt.Errorf("etchosts: build %s: %w", path, err)
	}
	return nil
}

// BuildFrom writes a fresh hosts file at path holding the content of the
// file at originPath followed by extraContent. Like Build, it overwrites
// any existing file and records the new content's hash.
func BuildFrom(path, originPath string, extraContent []Record) error {
	if err := validate(extraContent); err != nil {
		return fmt.Errorf("etchosts: build %s from %s: %w", path, originPath, err)
	}
	origin, err := os.ReadFile(originPath)
	if err != nil {
		if os.IsNotExist(err) {
			return types.NotFoundErrorf("etchosts: build %s from %s: %w", path, originPath, err)
		}
		return types.InternalErrorf("etchosts: build %s from %s: %w", path, originPath, err)
	}
	buf := bytes.NewBuffer(make([]byte, 0, len(origin)+64*len(extraContent)+1))
	buf.Write(origin)
	if len(origin) > 0 && origin[len(origin)-1] != '\n' {
		buf.WriteByte('\n')
	}
	appendRecords(buf, extraContent)
	if err := ownedfile.Write(path, buf.Bytes()); err != nil {
		return fmt.Errorf("etchosts: build %s from %s: %w", path, originPath, err)
	}
	return nil
}

// Add appends recs to the hosts file at path, skipping any record the file
// (or an earlier element of recs) already has with the same address and
// names. It creates the file when neither it nor its sidecar exists, and
// refuses with ErrUserModified when the file was edited since it was last
// written here.
func Add(path string, recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	if err := validate(recs); err != nil {
		return fmt.Errorf("etchosts: add to %s: %w", path, err)
	}
	content, _, err := ownedfile.Load(path)
	if err != nil {
		return fmt.Errorf("etchosts: add to %s: %w", path, err)
	}
	// Only lines with the address of a record to add can duplicate it, so
	// only those are keyed.
	ips := make(map[string]bool, len(recs))
	for _, r := range recs {
		ips[strings.TrimSpace(r.IP)] = true
	}
	seen := make(map[string]bool, len(recs))
	forEachLine(content, func(_ []byte, e entry, ok bool) {
		if ok && ips[e.ip] {
			seen[e.key()] = true
		}
	})
	buf := bytes.NewBuffer(make([]byte, 0, len(content)+64*len(recs)+1))
	buf.Write(content)
	if len(content) > 0 && content[len(content)-1] != '\n' {
		buf.WriteByte('\n')
	}
	added := 0
	for _, r := range recs {
		k := recordEntry(r).key()
		if seen[k] {
			continue
		}
		seen[k] = true
		writeRecord(buf, r)
		added++
	}
	if added == 0 {
		return nil
	}
	if err := ownedfile.Write(path, buf.Bytes()); err != nil {
		return fmt.Errorf("etchosts: add to %s: %w", path, err)
	}
	return nil
}

// Delete removes from the hosts file at path every line whose address and
// names are exactly those of one of recs. Other lines, including comments
// and lines it cannot parse, are kept as they are. A missing file without a
// sidecar has nothing to delete. It refuses with ErrUserModified when the
// file was edited since it was last written here.
func Delete(path string, recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	content, exists, err := ownedfile.Load(path)
	if err != nil {
		return fmt.Errorf("etchosts: delete from %s: %w", path, err)
	}
	if !exists {
		return nil
	}
	drop := make(map[string]bool, len(recs))
	for _, r := range recs {
		drop[recordEntry(r).key()] = true
	}
	buf := bytes.NewBuffer(make([]byte, 0, len(content)))
	removed := 0
	forEachLine(content, func(line []byte, e entry, ok bool) {
		if ok && drop[e.key()] {
			removed++
			return
		}
		buf.Write(line)
	})
	if removed == 0 {
		return nil
	}
	if err := ownedfile.Write(path, buf.Bytes()); err != nil {
		return fmt.Errorf("etchosts: delete from %s: %w", path, err)
	}
	return nil
}

// Update gives the new address ip to every line of the hosts file at path
// that lists hostname among its names, keeping the names and any comment.
// When both addresses parse, only lines of ip's family change, so an
// IPv4 update leaves the name's IPv6 line alone. A missing file without a
// sidecar has nothing to update. It refuses with ErrUserModified when the
// file was edited since it was last written here.
func Update(path, ip, hostname string) error {
	newAddr, err := netip.ParseAddr(ip)
	if err != nil {
		return types.InvalidParameterErrorf("etchosts: update %s in %s: invalid address %q: %w", hostname, path, ip, err)
	}
	if hostname == "" || strings.ContainsAny(hostname, " \t\r\n#") {
		return types.InvalidParameterErrorf("etchosts: update %s: invalid host name %q", path, hostname)
	}
	content, exists, err := ownedfile.Load(path)
	if err != nil {
		return fmt.Errorf("etchosts: update %s in %s: %w", hostname, path, err)
	}
	if !exists {
		return nil
	}
	buf := bytes.NewBuffer(make([]byte, 0, len(content)+len(ip)))
	changed := 0
	forEachLine(content, func(line []byte, e entry, ok bool) {
		if !ok || !e.hasHost(hostname) || e.ip == ip {
			buf.Write(line)
			return
		}
		if old, err := netip.ParseAddr(e.ip); err == nil && old.Unmap().Is4() != newAddr.Unmap().Is4() {
			buf.Write(line)
			return
		}
		buf.Write(line[:e.ipStart])
		buf.WriteString(ip)
		buf.Write(line[e.ipEnd:])
		changed++
	})
	if changed == 0 {
		return nil
	}
	if err := ownedfile.Write(path, buf.Bytes()); err != nil {
		return fmt.Errorf("etchosts: update %s in %s: %w", hostname, path, err)
	}
	return nil
}

// Drop removes the hosts file at path and its sidecar, as when the sandbox
// is deleted. Files that are already gone are not an error.
func Drop(path string) error {
	if err := ownedfile.Drop(path); err != nil {
		return fmt.Errorf("etchosts: drop %s: %w", path, err)
	}
	return nil
}

// validate rejects records that would not make one well-formed line.
func validate(recs []Record) error {
	for _, r := range recs {
		if _, err := netip.ParseAddr(r.IP); err != nil {
			return types.InvalidParameterErrorf("record %q: invalid address %q: %w", r.Hosts, r.IP, err)
		}
		if strings.TrimSpace(r.Hosts) == "" {
			return types.InvalidParameterErrorf("record for %s: no host names", r.IP)
		}
		if strings.ContainsAny(r.Hosts, "\r\n#") {
			return types.InvalidParameterErrorf("record for %s: invalid host names %q", r.IP, r.Hosts)
		}
	}
	return nil
}

// appendRecords writes one line per record.
func appendRecords(buf *bytes.Buffer, recs []Record) {
	for _, r := range recs {
		writeRecord(buf, r)
	}
}

// writeRecord writes r as "IP<tab>name name...\n".
func writeRecord(buf *bytes.Buffer, r Record) {
	buf.WriteString(r.IP)
	buf.WriteByte('\t')
	for i, h := range strings.Fields(r.Hosts) {
		if i > 0 {
			buf.WriteByte(' ')
		}
		buf.WriteString(h)
	}
	buf.WriteByte('\n')
}
