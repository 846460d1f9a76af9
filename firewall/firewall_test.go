package firewall

import (
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"

	"github.com/netkit/libnetwork/internal/testutil"
	"github.com/netkit/libnetwork/types"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

func TestMain(m *testing.M) { testutil.Main(m) }

// resetTable removes our table from the test namespace, if it is there.
func resetTable(t testing.TB) {
	t.Helper()
	conn, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	table := &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
	conn.AddTable(table)
	conn.DelTable(table)
	if err := conn.Flush(); err != nil {
		t.Fatalf("removing table: %v", err)
	}
}

// newFirewall returns an initialised Firewall on a fresh table in the test
// namespace.
func newFirewall(t testing.TB) *Firewall {
	t.Helper()
	testutil.RequireRoot(t)
	resetTable(t)
	return openFirewall(t)
}

// openFirewall returns an initialised Firewall on whatever table the test
// namespace holds, as a restarted process would.
func openFirewall(t testing.TB) *Firewall {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	f, err := New(-1, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := f.Init(); err != nil {
		t.Fatal(err)
	}
	return f
}

// nftList runs nft in the namespace of the test, or in the one open as
// nsFile if it is not nil.
func nftList(t testing.TB, nsFile *os.File, args ...string) string {
	t.Helper()
	var cmd *exec.Cmd
	if nsFile == nil {
		cmd = exec.Command("nft", args...)
	} else {
		cmd = exec.Command("nsenter", append([]string{"--net=/proc/self/fd/3", "nft"}, args...)...)
		cmd.ExtraFiles = []*os.File{nsFile}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
	return string(out)
}

// dump returns `nft list table inet libnetwork` of the test namespace,
// with the elements of each set sorted one per line: a hash set lists them
// in an order the kernel chooses.
func dump(t testing.TB) string {
	t.Helper()
	return sortElements(nftList(t, nil, "list", "table", "inet", TableName))
}

var elementsRE = regexp.MustCompile(`(?s)elements = \{ (.*?) \}`)

func sortElements(listing string) string {
	return elementsRE.ReplaceAllStringFunc(listing, func(m string) string {
		body := elementsRE.FindStringSubmatch(m)[1]
		var elems []string
		for _, e := range strings.Split(body, ",") {
			elems = append(elems, strings.TrimSpace(e))
		}
		sort.Strings(elems)
		return "elements = {\n\t\t\t" + strings.Join(elems, ",\n\t\t\t") + "\n\t\t}"
	})
}

// checkGolden compares got with testdata/<name>.golden, or rewrites the file
// under -update.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("ruleset differs from %s (run with -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func mustAdd(t testing.TB, f *Firewall, nets ...NetworkRules) {
	t.Helper()
	for _, r := range nets {
		if err := f.AddNetwork(r); err != nil {
			t.Fatalf("AddNetwork(%+v): %v", r, err)
		}
	}
}

var (
	netDefault = NetworkRules{Bridge: "br-default", Subnets: []netip.Prefix{pfx("172.18.0.0/16")}, ICC: true, Masquerade: true}
	netNoICC   = NetworkRules{Bridge: "br-noicc", Subnets: []netip.Prefix{pfx("172.19.0.0/16")}, Masquerade: true}
	netNoMasq  = NetworkRules{Bridge: "br-nomasq", Subnets: []netip.Prefix{pfx("172.20.0.0/16")}, ICC: true}
	netDual    = NetworkRules{Bridge: "br-dual", Subnets: []netip.Prefix{pfx("fd00:1::/64"), pfx("172.21.0.0/24")}, ICC: true, Masquerade: true}
)

func TestGolden(t *testing.T) {
	tests := []struct {
		name string
		nets []NetworkRules
	}{
		{"init", nil},
		{"icc_masquerade", []NetworkRules{netDefault}},
		{"icc_off", []NetworkRules{netNoICC}},
		{"no_masquerade", []NetworkRules{netNoMasq}},
		{"internal", []NetworkRules{{Bridge: "br-int", Subnets: []netip.Prefix{pfx("10.10.0.0/24")}, ICC: true, Masquerade: true, Internal: true}}},
		{"internal_icc_off", []NetworkRules{{Bridge: "br-int", Subnets: []netip.Prefix{pfx("10.10.0.0/24")}, Internal: true}}},
		{"dual_stack", []NetworkRules{netDual}},
		{"several", []NetworkRules{netDefault, netNoICC, netNoMasq, netDual}},
		{"adjacent_and_edge_subnets", []NetworkRules{
			{Bridge: "br-a", Subnets: []netip.Prefix{pfx("10.0.0.0/24")}, Masquerade: true},
			{Bridge: "br-b", Subnets: []netip.Prefix{pfx("10.0.1.0/24"), pfx("ffff:ffff:ffff:ffff::/64")}, Masquerade: true},
			{Bridge: "br-c", Subnets: []netip.Prefix{pfx("255.255.255.0/24")}, Masquerade: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFirewall(t)
			mustAdd(t, f, tt.nets...)
			checkGolden(t, tt.name, dump(t))
		})
	}
}

func TestDeleteNetworkLeavesInitTable(t *testing.T) {
	f := newFirewall(t)
	empty := dump(t)
	all := []NetworkRules{netDefault, netNoICC, netNoMasq, netDual,
		{Bridge: "br-int", Subnets: []netip.Prefix{pfx("10.10.0.0/24")}, Internal: true}}
	mustAdd(t, f, all...)
	for _, r := range all {
		if err := f.DeleteNetwork(r.Bridge); err != nil {
			t.Fatalf("DeleteNetwork(%s): %v", r.Bridge, err)
		}
	}
	if got := dump(t); got != empty {
		t.Errorf("after deleting every network:\n%s\nwant the table as after Init:\n%s", got, empty)
	}
	// nft hides a stray interval end element; ask the kernel.
	for _, s := range f.sets() {
		elems, err := f.conn.GetSetElements(s)
		if err != nil {
			t.Fatal(err)
		}
		if len(elems) != 0 {
			t.Errorf("set %s still holds %d elements: %+v", s.Name, len(elems), elems)
		}
	}
}

func TestDeleteNetworkKeepsOthers(t *testing.T) {
	f := newFirewall(t)
	mustAdd(t, f, netDefault)
	want := dump(t)
	mustAdd(t, f, netDual)
	if err := f.DeleteNetwork(netDual.Bridge); err != nil {
		t.Fatal(err)
	}
	if got := dump(t); got != want {
		t.Errorf("after adding and deleting %s:\n%s\nwant:\n%s", netDual.Bridge, got, want)
	}
}

func TestDeleteUnknownNetwork(t *testing.T) {
	f := newFirewall(t)
	want := dump(t)
	if err := f.DeleteNetwork("br-nothere"); err != nil {
		t.Fatalf("DeleteNetwork of an unknown bridge: %v", err)
	}
	if got := dump(t); got != want {
		t.Errorf("table changed:\n%s", got)
	}
}

func TestAddNetworkIdempotent(t *testing.T) {
	f := newFirewall(t)
	mustAdd(t, f, netDefault, netDual)
	once := dump(t)
	mustAdd(t, f, netDefault, netDual)
	if got := dump(t); got != once {
		t.Errorf("adding the same networks twice:\n%s\nwant:\n%s", got, once)
	}
}

func TestAddNetworkReplaces(t *testing.T) {
	changed := NetworkRules{Bridge: netDual.Bridge, Subnets: []netip.Prefix{pfx("172.30.0.0/24")}, Masquerade: true}
	tests := []struct {
		name   string
		before NetworkRules
		after  NetworkRules
	}{
		{"subnets and icc change", netDual, changed},
		{"masquerade off", netDual, NetworkRules{Bridge: netDual.Bridge, Subnets: netDual.Subnets, ICC: true}},
		{"becomes internal", netDefault, NetworkRules{Bridge: netDefault.Bridge, Subnets: netDefault.Subnets, Masquerade: true, Internal: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFirewall(t)
			mustAdd(t, f, netNoICC, tt.after)
			want := dump(t)

			f = newFirewall(t)
			mustAdd(t, f, netNoICC, tt.before, tt.after)
			if got := dump(t); got != want {
				t.Errorf("re-adding with new rules:\n%s\nwant as if added fresh:\n%s", got, want)
			}
		})
	}
}

func TestRestart(t *testing.T) {
	f := newFirewall(t)
	mustAdd(t, f, netDefault)
	want := dump(t)
	mustAdd(t, f, netDual)
	before := dump(t)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	// A restarted process keeps the table, and can delete what the first
	// one added (masquerade intervals included) and re-add idempotently.
	g := openFirewall(t)
	if got := dump(t); got != before {
		t.Fatalf("Init changed the existing table:\n%s\nwant:\n%s", got, before)
	}
	if err := g.DeleteNetwork(netDual.Bridge); err != nil {
		t.Fatal(err)
	}
	if got := dump(t); got != want {
		t.Errorf("after restart and DeleteNetwork:\n%s\nwant:\n%s", got, want)
	}
	mustAdd(t, g, netDefault)
	if got := dump(t); got != want {
		t.Errorf("after restart and AddNetwork of an existing network:\n%s\nwant:\n%s", got, want)
	}
}

func TestReconcile(t *testing.T) {
	f := newFirewall(t)
	empty := dump(t)
	mustAdd(t, f, netDefault)
	want := dump(t)
	// A crashed run left netDual and netNoICC behind; only netDefault is on
	// record.
	mustAdd(t, f, netDual, netNoICC)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	g := openFirewall(t)
	if err := g.Reconcile([]NetworkRules{netDefault}); err != nil {
		t.Fatal(err)
	}
	if got := dump(t); got != want {
		t.Errorf("after Reconcile:\n%s\nwant:\n%s", got, want)
	}
	// The firewall knows what it reconciled.
	if err := g.DeleteNetwork(netDefault.Bridge); err != nil {
		t.Fatal(err)
	}
	mustAdd(t, g, netDefault)
	if got := dump(t); got != want {
		t.Errorf("after Reconcile, DeleteNetwork and AddNetwork:\n%s\nwant:\n%s", got, want)
	}
	if err := g.Reconcile(nil); err != nil {
		t.Fatal(err)
	}
	if got := dump(t); got != empty {
		t.Errorf("after Reconcile(nil):\n%s\nwant the table as after Init:\n%s", got, empty)
	}
	dup := []NetworkRules{netDefault, netDefault}
	if err := g.Reconcile(dup); !types.IsBadRequest(err) {
		t.Errorf("Reconcile with a bridge twice: got %v, want an invalid-parameter error", err)
	}
}

func TestOtherTablesUntouched(t *testing.T) {
	testutil.RequireRoot(t)
	resetTable(t)
	other := "table inet other {\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy drop;\n\t\tiifname \"br-default\" accept\n\t}\n}\n"
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(other)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("nft", "delete", "table", "inet", "other").Run() })
	before := nftList(t, nil, "list", "table", "inet", "other")

	f := openFirewall(t)
	mustAdd(t, f, netDefault, netDual)
	if err := f.Reconcile([]NetworkRules{netDual}); err != nil {
		t.Fatal(err)
	}
	if err := f.DeleteNetwork(netDual.Bridge); err != nil {
		t.Fatal(err)
	}
	if got := nftList(t, nil, "list", "table", "inet", "other"); got != before {
		t.Errorf("table inet other changed:\n%s\nwant:\n%s", got, before)
	}
}

func TestOtherNamespace(t *testing.T) {
	testutil.RequireRoot(t)
	resetTable(t)
	ns := newNetNS(t)
	f, err := New(int(ns.Fd()), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	if err := f.Init(); err != nil {
		t.Fatal(err)
	}
	mustAdd(t, f, netDefault)
	got := nftList(t, ns, "list", "table", "inet", TableName)
	if !strings.Contains(got, `"br-default" . "br-default" : accept`) {
		t.Errorf("table in the other namespace lacks the network's icc element:\n%s", got)
	}
	if out := nftList(t, nil, "list", "tables"); strings.Contains(out, TableName) {
		t.Errorf("the test's own namespace got a table: %s", out)
	}
}

// newNetNS creates a network namespace and returns it open; the calling
// thread is back in its namespace when it returns.
func newNetNS(t testing.TB) *os.File {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := netns.Set(orig); err != nil {
		// The thread stays locked and dies with its goroutine.
		runtime.LockOSThread()
		t.Fatalf("switching back to the test namespace: %v", err)
	}
	file := os.NewFile(uintptr(ns), "netns")
	t.Cleanup(func() { _ = file.Close() })
	return file
}

func TestMethodsNeedInit(t *testing.T) {
	testutil.RequireRoot(t)
	f, err := New(-1, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.AddNetwork(netDefault); !types.IsForbidden(err) {
		t.Errorf("AddNetwork before Init: got %v, want a forbidden error", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Init(); !types.IsForbidden(err) {
		t.Errorf("Init after Close: got %v, want a forbidden error", err)
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		name    string
		in      NetworkRules
		want    []netip.Prefix
		wantErr bool
	}{
		{"masks, sorts, dedups", NetworkRules{Bridge: "br0", Subnets: []netip.Prefix{pfx("fd00::1/64"), pfx("10.0.0.5/24"), pfx("10.0.0.0/24")}},
			[]netip.Prefix{pfx("10.0.0.0/24"), pfx("fd00::/64")}, false},
		{"no subnets", NetworkRules{Bridge: "br0"}, []netip.Prefix{}, false},
		{"empty bridge", NetworkRules{}, nil, true},
		{"long bridge", NetworkRules{Bridge: "abcdefghijklmnop"}, nil, true},
		{"slash", NetworkRules{Bridge: "br/0"}, nil, true},
		{"space", NetworkRules{Bridge: "br 0"}, nil, true},
		{"invalid prefix", NetworkRules{Bridge: "br0", Subnets: []netip.Prefix{{}}}, nil, true},
		{"mapped v4", NetworkRules{Bridge: "br0", Subnets: []netip.Prefix{pfx("::ffff:10.0.0.0/120")}}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.normalize()
			if tt.wantErr {
				if !types.IsBadRequest(err) {
					t.Fatalf("got %v, want an invalid-parameter error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got.Subnets) != fmt.Sprint(tt.want) {
				t.Errorf("subnets %v, want %v", got.Subnets, tt.want)
			}
		})
	}
}

func TestInitReplacesIncompatibleTable(t *testing.T) {
	testutil.RequireRoot(t)
	resetTable(t)
	openFirewall(t)
	want := dump(t)
	resetTable(t)
	// A table of the same name with a set of another type, as an older
	// layout might have left.
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader("table inet " + TableName + " {\n\tset bridges { type ipv4_addr; }\n}\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v\n%s", err, out)
	}
	f := openFirewall(t)
	if got := dump(t); got != want {
		t.Errorf("after Init on an incompatible table:\n%s\nwant:\n%s", got, want)
	}
	mustAdd(t, f, netDefault)
}

// TestInitReplacesOlderLayout: a table of the layout with per-network
// forward chains (fwd-in-<bridge> reached by jumps) is recreated, not
// kept half-used beside the fixed rules.
func TestInitReplacesOlderLayout(t *testing.T) {
	testutil.RequireRoot(t)
	resetTable(t)
	openFirewall(t)
	want := dump(t)
	resetTable(t)
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader("table inet " + TableName + " {\n\tset bridges { type ifname; elements = { \"br-a\" }; }\n" +
		"\tmap fwd_in { type ifname : verdict; }\n\tchain fwd-in-br-a { accept; }\n}\n" +
		"add element inet " + TableName + " fwd_in { \"br-a\" : jump fwd-in-br-a }\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v\n%s", err, out)
	}
	f := openFirewall(t)
	if got := dump(t); got != want {
		t.Errorf("after Init on an older layout:\n%s\nwant:\n%s", got, want)
	}
	mustAdd(t, f, netDefault)
}

// TestInitReplacesNATChainLayout: a table of the layout with one
// nat-<bridge> chain per network, reached through the masq4 interval
// verdict map, is recreated too.
func TestInitReplacesNATChainLayout(t *testing.T) {
	testutil.RequireRoot(t)
	resetTable(t)
	openFirewall(t)
	want := dump(t)
	resetTable(t)
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader("table inet " + TableName + " {\n\tset bridges { type ifname; elements = { \"br-a\" }; }\n" +
		"\tmap masq4 { type ipv4_addr : verdict; flags interval; }\n\tchain nat-br-a { oifname != \"br-a\" masquerade; }\n}\n" +
		"add element inet " + TableName + " masq4 { 10.0.0.0/24 : jump nat-br-a }\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v\n%s", err, out)
	}
	f := openFirewall(t)
	if got := dump(t); got != want {
		t.Errorf("after Init on the nat chain layout:\n%s\nwant:\n%s", got, want)
	}
	mustAdd(t, f, netDefault)
}

func TestParseMasqSetName(t *testing.T) {
	for _, tc := range []struct {
		name  string
		k     masqLen
		pairs bool
		ok    bool
	}{
		{"subnets4_24", masqLen{bits: 24}, false, true},
		{"masq4_0", masqLen{bits: 0}, true, true},
		{"masq6_64", masqLen{v6: true, bits: 64}, true, true},
		{"subnets6_128", masqLen{v6: true, bits: 128}, false, true},
		{"masq4", masqLen{}, false, false},
		{"masq6", masqLen{}, false, false},
		{"masq4_33", masqLen{}, false, false},
		{"masq6_129", masqLen{}, false, false},
		{"masq4_024", masqLen{}, false, false},
		{"subnets5_24", masqLen{}, false, false},
		{"bridges", masqLen{}, false, false},
	} {
		k, pairs, ok := parseMasqSetName(tc.name)
		if k != tc.k || pairs != tc.pairs || ok != tc.ok {
			t.Errorf("parseMasqSetName(%q) = %v, %v, %v; want %v, %v, %v", tc.name, k, pairs, ok, tc.k, tc.pairs, tc.ok)
		}
	}
	// Every name masqSets gives parses back.
	f := &Firewall{table: &nftables.Table{Name: TableName}}
	for _, k := range []masqLen{{bits: 8}, {v6: true, bits: 48}} {
		s, p := f.masqSets(k)
		if got, pairs, ok := parseMasqSetName(s.Name); got != k || pairs || !ok {
			t.Errorf("%s parses as %v, %v, %v", s.Name, got, pairs, ok)
		}
		if got, pairs, ok := parseMasqSetName(p.Name); got != k || !pairs || !ok {
			t.Errorf("%s parses as %v, %v, %v", p.Name, got, pairs, ok)
		}
	}
}
