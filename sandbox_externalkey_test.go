package libnetwork

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/sys/reexec"
	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
)

// containerProcess starts a process in a network namespace of its own, as a
// runtime would, and returns its netns path.
func containerProcess(t *testing.T) (pid int, key string) {
	t.Helper()
	cmd := exec.Command("unshare", "-n", "sleep", "60")
	mustf(t, cmd.Start(), "starting the container process")
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	key = fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)
	// Wait until unshare has switched namespaces: until then the process
	// is in ours.
	self, err := os.Stat("/proc/self/ns/net")
	mustf(t, err, "stat own netns")
	// Creating a namespace waits for the kernel's lock, which a busy
	// machine's namespace clean-up can hold for seconds.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		if st, err := os.Stat(key); err == nil && !os.SameFile(st, self) {
			return cmd.Process.Pid, key
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("container process never entered its namespace")
	return 0, ""
}

func TestExternalKey(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	n, err := c.NewNetwork("bridge", "net", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.99.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	ep, err := n.CreateEndpoint("ext")
	mustf(t, err, "endpoint")
	sb, err := c.NewSandbox("ext", OptionUseExternalKey())
	mustf(t, err, "sandbox")
	// The runtime joins before the container starts; the interface comes
	// with the key.
	mustf(t, ep.Join(sb), "join before SetKey")
	if sb.Key() != "" {
		t.Errorf("key before SetKey: %q", sb.Key())
	}
	if _, err := sb.Statistics(); !types.IsForbidden(err) {
		t.Errorf("Statistics before SetKey: %v, want Forbidden", err)
	}

	_, key := containerProcess(t)
	mustf(t, sb.SetKey(key), "SetKey")
	procNS, err := osl.OpenNamespace(key)
	mustf(t, err, "opening the container's namespace")
	defer procNS.Close()
	if got := ifaceNames(t, procNS); !slices.Equal(got, []string{"eth0", "lo"}) {
		t.Fatalf("container namespace has %v, want eth0 and lo", got)
	}
	// It is reachable from another sandbox.
	_, sb2 := joined(t, c, n, "peer")
	mustReach(t, nsOf(t, sb2), listen(t, procNS, ep.Info().Iface().Address().IP))

	// A sandbox the library owns refuses a key.
	if err := sb2.SetKey(key); !types.IsForbidden(err) {
		t.Errorf("SetKey on a library sandbox: %v, want Forbidden", err)
	}
	mustf(t, sb.Delete(), "delete")
	if !strings.HasPrefix(key, "/proc/") {
		t.Fatal("unexpected key")
	}
	// The container's namespace lives on (it is the process's), without
	// our interface.
	if got := ifaceNames(t, procNS); slices.Contains(got, "eth0") {
		t.Errorf("eth0 left in the container namespace: %v", got)
	}
}

func TestSetExternalKeyHook(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	n, err := c.NewNetwork("bridge", "net", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.100.0.0/24"}}, nil, nil))
	mustf(t, err, "network")

	// Through the socket, as a library call.
	ep1, _ := n.CreateEndpoint("one")
	sb1, err := c.NewSandbox("ctr-one", OptionUseExternalKey())
	mustf(t, err, "sandbox one")
	mustf(t, ep1.Join(sb1), "join one")
	_, key1 := containerProcess(t)
	mustf(t, SetExternalKeyAt(e.execRoot, c.ID(), "ctr-one", key1), "SetExternalKeyAt")
	if sb1.Key() == "" {
		t.Fatal("SetExternalKeyAt did not set the key")
	}
	if err := SetExternalKeyAt(e.execRoot, c.ID(), "nobody", key1); !types.IsBadRequest(err) {
		t.Errorf("SetExternalKeyAt for an unknown container: %v, want BadRequest", err)
	}
	if err := SetExternalKeyAt(e.execRoot, "0123456789abcdef", "ctr-one", key1); err == nil {
		t.Error("SetExternalKeyAt to a controller that does not exist succeeded")
	}

	// Through the libnetwork-setkey hook a runtime runs, with the OCI state
	// on stdin.
	ep2, _ := n.CreateEndpoint("two")
	sb2, err := c.NewSandbox("ctr-two", OptionUseExternalKey())
	mustf(t, err, "sandbox two")
	mustf(t, ep2.Join(sb2), "join two")
	pid2, key2 := containerProcess(t)
	hook := reexec.Command("libnetwork-setkey", "-exec-root", e.execRoot, "ctr-two", c.ID())
	hook.Stdin = strings.NewReader(fmt.Sprintf(`{"ociVersion":"1.0.2","id":"ctr-two","status":"created","pid":%d}`, pid2))
	out, err := hook.CombinedOutput()
	mustf(t, err, "libnetwork-setkey hook: %s", out)
	ns2, err := osl.OpenNamespace(key2)
	mustf(t, err, "container two namespace")
	defer ns2.Close()
	if got := ifaceNames(t, ns2); !slices.Contains(got, "eth0") {
		t.Errorf("hook did not set up eth0: %v", got)
	}
	// A bad state is refused with a message.
	bad := reexec.Command("libnetwork-setkey", "-exec-root", e.execRoot, "ctr-two", c.ID())
	bad.Stdin = strings.NewReader(`{}`)
	if out, err := bad.CombinedOutput(); err == nil || !strings.Contains(string(out), "pid") {
		t.Errorf("hook with no pid: %v %s", err, out)
	}
}
