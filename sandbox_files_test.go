package libnetwork

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	mustf(t, err, "reading %s", path)
	return string(b)
}

func TestSandboxFiles(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	n, err := c.NewNetwork("bridge", "net", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.97.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	dir := t.TempDir()
	hostsPath := filepath.Join(dir, "hosts")
	resolvPath := filepath.Join(dir, "resolv.conf")
	ep, err := n.CreateEndpoint("web")
	mustf(t, err, "endpoint")
	sb, err := c.NewSandbox("web", OptionHostname("web"), OptionDomainname("example.org"),
		OptionHostsPath(hostsPath), OptionResolvConfPath(resolvPath),
		OptionExtraHost("db", "192.0.2.10"),
		OptionDNS("192.0.2.53"), OptionDNSSearch("example.org"), OptionDNSOptions("ndots:2"))
	mustf(t, err, "sandbox")
	mustf(t, ep.Join(sb), "join")

	hosts := readFile(t, hostsPath)
	addr := ep.Info().Iface().Address().IP.String()
	for _, want := range []string{"127.0.0.1\tlocalhost", "192.0.2.10\tdb", addr + "\tweb.example.org web"} {
		if !strings.Contains(hosts, want) {
			t.Errorf("hosts lacks %q:\n%s", want, hosts)
		}
	}
	rc := readFile(t, resolvPath)
	// The embedded DNS server answers; the sandbox's servers are its
	// upstreams; the user's ndots stays (no ndots:0 added).
	for _, want := range []string{"nameserver 127.0.0.11\n", "search example.org\n", "options ndots:2\n"} {
		if !strings.Contains(rc, want) {
			t.Errorf("resolv.conf lacks %q:\n%s", want, rc)
		}
	}
	if got := upstreamsOf(sb); !slices.Equal(got, []string{"192.0.2.53:53"}) {
		t.Errorf("resolver upstreams %v, want the OptionDNS server", got)
	}

	// Leave removes the sandbox's own line; join puts it back.
	mustf(t, ep.Leave(sb), "leave")
	if strings.Contains(readFile(t, hostsPath), addr) {
		t.Errorf("hosts keeps %s after leave", addr)
	}
	mustf(t, ep.Join(sb), "join again")
	if !strings.Contains(readFile(t, hostsPath), addr) {
		t.Errorf("hosts lacks %s after rejoin", addr)
	}

	// A file the user edited is never overwritten.
	edited := readFile(t, hostsPath) + "10.0.0.9\tmine\n"
	mustf(t, os.WriteFile(hostsPath, []byte(edited), 0o644), "editing hosts")
	mustf(t, ep.Leave(sb), "leave after edit")
	if got := readFile(t, hostsPath); got != edited {
		t.Errorf("edited hosts file was rewritten:\n%s", got)
	}

	// Files at chosen paths stay when the sandbox goes; its own files go.
	mustf(t, sb.Delete(), "delete")
	if _, err := os.Stat(hostsPath); err != nil {
		t.Errorf("caller's hosts file removed: %v", err)
	}
}

func TestSandboxFilesDefaultsAndOrigin(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	dir := t.TempDir()
	originHosts := filepath.Join(dir, "origin-hosts")
	originResolv := filepath.Join(dir, "origin-resolv")
	mustf(t, os.WriteFile(originHosts, []byte("127.0.0.1 localhost\n198.51.100.7 origin\n"), 0o644), "origin hosts")
	mustf(t, os.WriteFile(originResolv, []byte("nameserver 198.51.100.53\nsearch origin.test\n"), 0o644), "origin resolv")

	sb, err := c.NewSandbox("o", OptionOriginHostsPath(originHosts), OptionOriginResolvConfPath(originResolv))
	mustf(t, err, "sandbox with origins")
	s := sb.(*sandbox)
	if h := readFile(t, s.hostsPath()); !strings.Contains(h, "198.51.100.7 origin") {
		t.Errorf("hosts not copied from origin:\n%s", h)
	}
	if r := readFile(t, s.resolvConfPath()); !strings.Contains(r, "nameserver 198.51.100.53") || !strings.Contains(r, "search origin.test") {
		t.Errorf("resolv.conf not copied from origin:\n%s", r)
	}
	if !strings.HasPrefix(s.hostsPath(), e.execRoot) {
		t.Errorf("default hosts path %s is not under the exec root", s.hostsPath())
	}

	// Without options, resolv.conf is the host's without loopback servers.
	sb2, err := c.NewSandbox("d")
	mustf(t, err, "sandbox with defaults")
	r := readFile(t, sb2.(*sandbox).resolvConfPath())
	if strings.Contains(r, "nameserver 127.") || !strings.Contains(r, "nameserver ") {
		t.Errorf("default resolv.conf:\n%s", r)
	}
	dir2 := filepath.Dir(sb2.(*sandbox).hostsPath())
	mustf(t, sb2.Delete(), "delete")
	if _, err := os.Stat(dir2); !os.IsNotExist(err) {
		t.Errorf("sandbox files dir %s left after delete", dir2)
	}
}

func TestParentUpdate(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	n, err := c.NewNetwork("bridge", "net", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.98.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	parent, err := c.NewSandbox("parent", OptionExtraHost("child", "10.98.0.200"))
	mustf(t, err, "parent")
	ep, err := n.CreateEndpoint("child")
	mustf(t, err, "endpoint")
	child, err := c.NewSandbox("child", OptionParentUpdate("parent", "child", ""))
	mustf(t, err, "child")
	mustf(t, ep.Join(child), "join")
	h := readFile(t, parent.(*sandbox).hostsPath())
	if want := ep.Info().Iface().Address().IP.String() + "\tchild"; !strings.Contains(h, want) {
		t.Errorf("parent's hosts lacks %q:\n%s", want, h)
	}
}
