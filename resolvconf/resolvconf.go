// Package resolvconf reads the host's resolv.conf and writes a sandbox's
// /etc/resolv.conf.
//
// Every function takes the file's path, so the package needs no root and
// holds no state. Files are replaced atomically (a temporary file in the
// same directory renamed over the old one) with mode 0644.
//
// The package never overwrites a file the user edited. Beside each file it
// writes it keeps a sidecar "<path>.hash" with the sha256 of the content it
// last wrote. Build is the create path: it overwrites unconditionally.
// Write first compares the file with its sidecar and, when they differ (or
// the file exists without a sidecar, or was removed after it was written),
// leaves the file alone and returns an error wrapping ErrUserModified. A
// file that does not exist and has no sidecar is simply created.
//
// The package does not lock: the caller serialises calls for one file.
package resolvconf

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/netkit/libnetwork/internal/ownedfile"

	"github.com/netkit/libnetwork/types"
)

const (
	// HostPath is where the host's resolv.conf usually is.
	HostPath = "/etc/resolv.conf"
	// SystemdResolvedPath is where systemd-resolved lists the real
	// upstream servers when the host's resolv.conf names its stub.
	SystemdResolvedPath = "/run/systemd/resolve/resolv.conf"
	// systemdResolvedStub is the stub listener systemd-resolved puts in
	// the host's resolv.conf.
	systemdResolvedStub = "127.0.0.53"
)

// File is the content of a resolv.conf and its hash.
type File struct {
	// Content is the file's bytes.
	Content []byte
	// Hash is the hex sha256 of Content, the form kept in hash sidecars.
	Hash string
}

// Get reads the resolv.conf at path. A missing file is a NotFound error.
func Get(path string) (*File, error) {
	content, err := os.ReadFile(path)
	if err != nil {
		return nil, readError(path, err)
	}
	return &File{Content: content, Hash: ownedfile.HashOf(content)}, nil
}

// HostResolvConf reads the host's resolv.conf at path, looking through the
// systemd-resolved stub to SystemdResolvedPath as HostResolvConfFrom does.
func HostResolvConf(path string) ([]byte, error) {
	return HostResolvConfFrom(path, SystemdResolvedPath)
}

// HostResolvConfFrom reads the host's resolv.conf at path. When its only
// nameserver is the systemd-resolved stub 127.0.0.53, which a container
// cannot reach, and resolvedPath exists, it returns the content of
// resolvedPath instead: systemd-resolved's list of the real upstreams.
func HostResolvConfFrom(path, resolvedPath string) ([]byte, error) {
	content, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("resolvconf: host resolv.conf: %w", readError(path, err))
	}
	if ns := GetNameservers(content); len(ns) != 1 || ns[0] != systemdResolvedStub {
		return content, nil
	}
	resolved, err := os.ReadFile(resolvedPath)
	if errors.Is(err, fs.ErrNotExist) {
		return content, nil
	}
	if err != nil {
		return nil, fmt.Errorf("resolvconf: host resolv.conf %s names the systemd-resolved stub: %w",
			path, readError(resolvedPath, err))
	}
	return resolved, nil
}

// Build writes a resolv.conf at path: a "search" line for search (omitted
// when empty or just "."), a "nameserver" line for each of dns, and an
// "options" line for options. It overwrites any existing file, edited or
// not, and records the new content's hash.
func Build(path string, dns, search, options []string) error {
	content, err := build(dns, search, options)
	if err != nil {
		return fmt.Errorf("resolvconf: build %s: %w", path, err)
	}
	if err := ownedfile.Write(path, content); err != nil {
		return fmt.Errorf("resolvconf: build %s: %w", path, err)
	}
	return nil
}

// build renders the content Build writes.
func build(dns, search, options []string) ([]byte, error) {
	var buf bytes.Buffer
	if len(search) > 0 && !slices.Equal(search, []string{"."}) {
		if err := writeWords(&buf, "search", search); err != nil {
			return nil, err
		}
	}
	for _, ns := range dns {
		if _, err := netip.ParseAddr(ns); err != nil {
			return nil, types.InvalidParameterErrorf("invalid nameserver %q: %w", ns, err)
		}
		buf.WriteString("nameserver ")
		buf.WriteString(ns)
		buf.WriteByte('\n')
	}
	if len(options) > 0 {
		if err := writeWords(&buf, "options", options); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// writeWords writes one "keyword word word..." line, refusing words that
// would break the line or be read as a comment.
func writeWords(buf *bytes.Buffer, keyword string, words []string) error {
	buf.WriteString(keyword)
	for _, w := range words {
		if w == "" || strings.ContainsAny(w, " \t\r\n#;") {
			return types.InvalidParameterErrorf("invalid %s entry %q", keyword, w)
		}
		buf.WriteByte(' ')
		buf.WriteString(w)
	}
	buf.WriteByte('\n')
	return nil
}

// Write replaces the resolv.conf at path with content. It creates the file
// when neither it nor its sidecar exists, does nothing when the file
// already holds content, and refuses with ErrUserModified when the file was
// edited since it was last written here.
func Write(path string, content []byte) error {
	current, exists, err := ownedfile.Load(path)
	if err != nil {
		return fmt.Errorf("resolvconf: write %s: %w", path, err)
	}
	if exists && bytes.Equal(current, content) {
		return nil
	}
	if err := ownedfile.Write(path, content); err != nil {
		return fmt.Errorf("resolvconf: write %s: %w", path, err)
	}
	return nil
}

// Drop removes the resolv.conf at path and its sidecar, as when the
// sandbox is deleted. Files that are already gone are not an error.
func Drop(path string) error {
	if err := ownedfile.Drop(path); err != nil {
		return fmt.Errorf("resolvconf: drop %s: %w", path, err)
	}
	return nil
}

// readError classifies an error reading path.
func readError(path string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return types.NotFoundErrorf("reading %s: %w", path, err)
	}
	return types.InternalErrorf("reading %s: %w", path, err)
}
