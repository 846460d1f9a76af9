package libnetwork

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
)

// TestSetKeyRefusesOwnNamespace checks that no key, however spelled, makes
// the controller adopt the namespace it programs or the process's own: the
// endpoint would be configured there and the host's default route replaced.
func TestSetKeyRefusesOwnNamespace(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	n, err := c.NewNetwork("bridge", "net", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.98.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	ep, err := n.CreateEndpoint("ext")
	mustf(t, err, "endpoint")
	sb, err := c.NewSandbox("ext", OptionUseExternalKey())
	mustf(t, err, "sandbox")
	mustf(t, ep.Join(sb), "join before SetKey")

	self, err := osl.CurrentNamespace()
	mustf(t, err, "the process's namespace")
	defer self.Close()
	dir := t.TempDir()
	link := filepath.Join(dir, "innocent")
	mustf(t, os.Symlink("/proc/self/ns/net", link), "symlink")
	hostLink := filepath.Join(dir, "host")
	mustf(t, os.Symlink(e.host.Path(), hostLink), "symlink")
	regular := filepath.Join(dir, "regular")
	mustf(t, os.WriteFile(regular, nil, 0o600), "regular file")

	cases := []struct {
		name, key string
		check     func(error) bool
		class     string
	}{
		{"the process's namespace", "/proc/self/ns/net", types.IsForbidden, "Forbidden"},
		{"the process's namespace by thread", "/proc/thread-self/ns/net", types.IsForbidden, "Forbidden"},
		{"the controller's namespace", e.host.Path(), types.IsForbidden, "Forbidden"},
		{"a symlink to the process's namespace", link, types.IsForbidden, "Forbidden"},
		{"a symlink to the controller's namespace", hostLink, types.IsForbidden, "Forbidden"},
		{"relative", "../../../proc/self/ns/net", types.IsBadRequest, "BadRequest"},
		{"relative to a container", "proc/1/ns/net", types.IsBadRequest, "BadRequest"},
		{"absolute with ..", "/tmp/../proc/self/ns/net", types.IsBadRequest, "BadRequest"},
		{"a control character", "/proc/self/ns/net\n", types.IsBadRequest, "BadRequest"},
		{"a regular file", regular, types.IsBadRequest, "BadRequest"},
		{"another namespace kind", "/proc/self/ns/mnt", types.IsBadRequest, "BadRequest"},
		{"missing", filepath.Join(dir, "missing"), types.IsNotFound, "NotFound"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.snapshot(c)
			selfBefore := ifaceNames(t, self)
			err := sb.SetKey(tc.key)
			if err == nil {
				t.Fatalf("SetKey(%q) accepted; want %s", tc.key, tc.class)
			}
			if !tc.check(err) {
				t.Errorf("SetKey(%q): %q (%T) is not %s", tc.key, err, err, tc.class)
			}
			t.Logf("error: %v", err)
			e.requireSame(before, e.snapshot(c), tc.name)
			if got := ifaceNames(t, self); !slices.Equal(got, selfBefore) {
				t.Errorf("the process's namespace changed: %v, was %v", got, selfBefore)
			}
			if sb.Key() != "" {
				t.Errorf("key %q set after a refused SetKey", sb.Key())
			}
		})
	}

	// Through the set-key socket, a relative key would be resolved in the
	// controller's working directory.
	before := e.snapshot(c)
	err = SetExternalKeyAt(e.execRoot, c.ID(), "ext", "../../../proc/self/ns/net")
	if err == nil || !strings.Contains(err.Error(), "relative") {
		t.Errorf("relative key through the socket: %v, want it refused as relative", err)
	}
	e.requireSame(before, e.snapshot(c), "relative key through the socket")
	if sb.Key() != "" {
		t.Errorf("key %q set through the socket", sb.Key())
	}

	// A real container's namespace is still taken, and a later key naming
	// the host is refused without giving up the one the sandbox has.
	_, key := containerProcess(t)
	mustf(t, sb.SetKey(key), "SetKey of the container's namespace")
	ctr := nsOf(t, sb)
	if got := ifaceNames(t, ctr); !slices.Equal(got, []string{"eth0", "lo"}) {
		t.Fatalf("container namespace has %v, want eth0 and lo", got)
	}
	adopted := sb.Key()
	if err := sb.SetKey("/proc/self/ns/net"); !types.IsForbidden(err) {
		t.Errorf("second SetKey to the process's namespace: %v, want Forbidden", err)
	}
	if sb.Key() != adopted {
		t.Errorf("key changed to %q after a refused SetKey", sb.Key())
	}
	if got := ifaceNames(t, ctr); !slices.Equal(got, []string{"eth0", "lo"}) {
		t.Errorf("container namespace has %v after a refused SetKey, want eth0 and lo", got)
	}
}
