package drivertest

import (
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/netkit/libnetwork/osl"
)

// NewNamespace makes a network namespace (a sandbox, a host, a switch)
// destroyed at cleanup.
func NewNamespace(tb testing.TB) *osl.Namespace {
	tb.Helper()
	ns, err := osl.NewNamespace(filepath.Join(tb.TempDir(), "netns"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = ns.Destroy() })
	return ns
}

// CurrentNamespace opens the namespace the test runs in (the throwaway
// one of testutil.Main), closed at cleanup.
func CurrentNamespace(tb testing.TB) *osl.Namespace {
	tb.Helper()
	host, err := osl.CurrentNamespace()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = host.Close() })
	return host
}

// Logger returns a logger writing warnings and errors to the test's
// output.
func Logger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// LinkNames lists the links of the namespace of h as "name/type", sorted
// and joined by spaces: a snapshot to compare before and after an
// operation that must leave nothing.
func LinkNames(tb testing.TB, h *netlink.Handle) string {
	tb.Helper()
	links, err := osl.Dump(h.LinkList)
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, l := range links {
		names = append(names, l.Attrs().Name+"/"+l.Type())
	}
	sort.Strings(names)
	return strings.Join(names, " ")
}

// MustIndex returns the index of link name in the namespace of h.
func MustIndex(tb testing.TB, h *netlink.Handle, name string) int {
	tb.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		tb.Fatal(err)
	}
	return l.Attrs().Index
}
