package libnetwork

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// A real container, as a runtime starts one: runc makes the container's
// namespaces, runs the libnetwork-setkey prestart hook (the test binary,
// under that name) with the OCI state, and the container's processes use
// the sandbox's resolv.conf and hosts through bind mounts made before the
// hook ran. The container sees only the host's /usr, read-only.

// runcContainer is a container the test runs with runc.
type runcContainer struct {
	t    *testing.T
	root string // runc's state directory
	id   string
}

// startRuncContainer runs a container with id (the sandbox's container ID)
// whose resolv.conf and hosts are the sandbox's files, its network set up
// by the hook for controller c with exec root execRoot. It is deleted when
// the test ends.
func startRuncContainer(t *testing.T, c *controller, execRoot, id, resolvConf, hosts string) *runcContainer {
	t.Helper()
	runc, err := exec.LookPath("runc")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("runc is missing (Debian package runc): %v", err)
		}
		t.Skipf("needs runc (Debian package runc): %v", err)
	}
	mustf(t, cgroupsForRunc(), "making the cgroup hierarchies visible to runc")
	exe, err := os.Executable()
	mustf(t, err, "the test binary's path")
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	for _, d := range []string{"proc", "dev", "usr", "etc", "tmp"} {
		mustf(t, os.MkdirAll(filepath.Join(rootfs, d), 0o755), "rootfs dir %s", d)
	}
	for _, l := range []string{"bin", "sbin", "lib", "lib64"} {
		mustf(t, os.Symlink("usr/"+l, filepath.Join(rootfs, l)), "rootfs link %s", l)
	}
	for name, content := range map[string]string{
		"etc/resolv.conf":   "",
		"etc/hosts":         "",
		"etc/nsswitch.conf": "hosts: files dns\n",
	} {
		mustf(t, os.WriteFile(filepath.Join(rootfs, name), []byte(content), 0o644), "rootfs %s", name)
	}
	spec := map[string]any{
		"ociVersion": "1.0.2",
		"process": map[string]any{
			"user": map[string]any{"uid": 0, "gid": 0},
			"args": []string{"/bin/sleep", "600"},
			"env":  []string{"PATH=/usr/sbin:/usr/bin"},
			"cwd":  "/",
		},
		"root":     map[string]any{"path": rootfs},
		"hostname": id,
		"mounts": []map[string]any{
			{"destination": "/proc", "type": "proc", "source": "proc"},
			{"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": []string{"nosuid", "mode=755", "size=1m"}},
			{"destination": "/usr", "type": "bind", "source": "/usr", "options": []string{"rbind", "ro"}},
			{"destination": "/etc/resolv.conf", "type": "bind", "source": resolvConf, "options": []string{"bind", "ro"}},
			{"destination": "/etc/hosts", "type": "bind", "source": hosts, "options": []string{"bind", "ro"}},
		},
		"hooks": map[string]any{
			"prestart": []map[string]any{{
				"path": exe,
				"args": []string{"libnetwork-setkey", "-exec-root", execRoot, id, c.ID()},
			}},
		},
		"linux": map[string]any{
			"namespaces": []map[string]any{
				{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
			},
		},
	}
	b, err := json.Marshal(spec)
	mustf(t, err, "OCI config")
	mustf(t, os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644), "writing config.json")

	rc := &runcContainer{t: t, root: filepath.Join(dir, "runc"), id: id}
	// The container keeps runc's stdio: a file, not a pipe the test would
	// wait on.
	logf, err := os.Create(filepath.Join(dir, "container.log"))
	mustf(t, err, "container log")
	defer logf.Close()
	cmd := exec.Command(runc, "--root", rc.root, "run", "--detach", "--bundle", dir, id)
	cmd.Stdout, cmd.Stderr = logf, logf
	t.Cleanup(func() {
		_ = exec.Command(runc, "--root", rc.root, "delete", "--force", id).Run()
	})
	if err := cmd.Run(); err != nil {
		out, _ := os.ReadFile(logf.Name())
		t.Fatalf("runc run: %v\n%s", err, out)
	}
	return rc
}

var (
	cgroupsOnce sync.Once
	cgroupsErr  error
)

// cgroupsForRunc makes the machine's cgroup hierarchies visible at
// /sys/fs/cgroup again, where runc looks for them: the test namespace
// (testutil.Main) mounted a sysfs of its own over /sys, which hides them.
// Each hierarchy the process belongs to (/proc/self/cgroup) is mounted
// again there, in the test's private mount namespace only.
func cgroupsForRunc() error {
	cgroupsOnce.Do(func() { cgroupsErr = mountCgroups() })
	return cgroupsErr
}

func mountCgroups() error {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		return err
	}
	if st.Type != unix.SYSFS_MAGIC {
		return nil // mounted already
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return err
	}
	type hierarchy struct{ dir, fstype, opts string }
	var hs []hierarchy
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		switch {
		case f[0] == "0" && f[1] == "":
			hs = append(hs, hierarchy{"unified", "cgroup2", ""})
		case strings.HasPrefix(f[1], "name="):
			hs = append(hs, hierarchy{strings.TrimPrefix(f[1], "name="), "cgroup", "none," + f[1]})
		default:
			hs = append(hs, hierarchy{f[1], "cgroup", f[1]})
		}
	}
	if len(hs) == 1 && hs[0].fstype == "cgroup2" {
		// A cgroup v2 machine: the one hierarchy is /sys/fs/cgroup.
		return unix.Mount("cgroup2", "/sys/fs/cgroup", "cgroup2", 0, "")
	}
	if err := unix.Mount("tmpfs", "/sys/fs/cgroup", "tmpfs", 0, "mode=755"); err != nil {
		return err
	}
	for _, h := range hs {
		dir := filepath.Join("/sys/fs/cgroup", h.dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := unix.Mount("cgroup", dir, h.fstype, 0, h.opts); err != nil {
			return fmt.Errorf("mounting the %s hierarchy: %w", h.dir, err)
		}
	}
	return nil
}

// exec runs argv inside the container and returns its output.
func (rc *runcContainer) exec(argv ...string) string {
	rc.t.Helper()
	out, err := exec.Command("runc", append([]string{"--root", rc.root, "exec", rc.id}, argv...)...).CombinedOutput()
	if err != nil {
		rc.t.Fatalf("in the container, %v: %v\n%s", argv, err, out)
	}
	return string(out)
}

// TestRuncContainer: a container started by runc gets its interface at the
// hook, resolves other containers' names and forwarded names through the
// embedded DNS server with glibc's own resolver, and sees the sandbox's
// files as they change after it started (the files are rewritten in
// place, so the bind mounts made at create time stay current).
func TestRuncContainer(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	setHostResolvConf(t, c, "nameserver 127.0.0.53\nsearch example.org\n")
	startDnsmasq(t, e.host.Path(), "127.0.0.53", "--address=/example.test/192.0.2.1")

	front, err := c.NewNetwork("bridge", "front", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.97.0.0/24"}}, nil, nil))
	mustf(t, err, "network front")
	back, err := c.NewNetwork("bridge", "back", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.96.0.0/24"}}, nil, nil))
	mustf(t, err, "network back")

	// A peer, attached the plain way.
	peerSb, err := c.NewSandbox("peer")
	mustf(t, err, "peer sandbox")
	peer, err := front.CreateEndpoint("peer")
	mustf(t, err, "peer endpoint")
	mustf(t, peer.Join(peerSb), "peer join")

	// The container: its sandbox and endpoint exist before runc makes its
	// namespace, as a runtime does it.
	dir := t.TempDir()
	resolvConf, hosts := filepath.Join(dir, "resolv.conf"), filepath.Join(dir, "hosts")
	sb, err := c.NewSandbox("ctr", OptionUseExternalKey(), OptionHostname("ctr"),
		OptionResolvConfPath(resolvConf), OptionHostsPath(hosts))
	mustf(t, err, "container sandbox")
	ep, err := front.CreateEndpoint("web", CreateOptionMyAlias("www"))
	mustf(t, err, "container endpoint")
	mustf(t, ep.Join(sb), "container join before its namespace exists")

	ctr := startRuncContainer(t, c, e.execRoot, "ctr", resolvConf, hosts)

	if out := ctr.exec("ip", "-4", "-o", "addr", "show", "eth0"); !strings.Contains(out, ipOf(ep)+"/24") {
		t.Errorf("the container's eth0 lacks %s:\n%s", ipOf(ep), out)
	}
	// The resolver started at the hook, after runc bind-mounted the file:
	// the container must see the rewritten one.
	rc := ctr.exec("cat", "/etc/resolv.conf")
	if !strings.Contains(rc, "nameserver 127.0.0.11") || strings.Contains(rc, "127.0.0.53") || !strings.Contains(rc, "search example.org") {
		t.Errorf("the container's resolv.conf does not name the embedded server:\n%s", rc)
	}
	getent := func(name string) string {
		t.Helper()
		return strings.Join(strings.Fields(ctr.exec("getent", "ahostsv4", name)), " ")
	}
	for name, want := range map[string]string{
		"peer":         ipOf(peer),
		"peer.front":   ipOf(peer),
		"www":          ipOf(ep),
		"example.test": "192.0.2.1",
	} {
		if got := getent(name); !strings.HasPrefix(got, want+" ") {
			t.Errorf("getent %s in the container: %q, want %s", name, got, want)
		}
	}

	// A network joined while the container runs: a second interface, a
	// name on it, and the hosts file as it is now.
	late, err := back.CreateEndpoint("late")
	mustf(t, err, "late endpoint")
	mustf(t, late.Join(sb), "join a running container")
	other, err := c.NewSandbox("other")
	mustf(t, err, "other sandbox")
	otherEp, err := back.CreateEndpoint("other")
	mustf(t, err, "other endpoint")
	mustf(t, otherEp.Join(other), "other join")
	if got := getent("other"); !strings.HasPrefix(got, ipOf(otherEp)+" ") {
		t.Errorf("getent other after a late join: %q, want %s", got, ipOf(otherEp))
	}
	if out := ctr.exec("cat", "/etc/hosts"); !strings.Contains(out, ipOf(late)) {
		t.Errorf("the container's hosts file lacks the late address %s:\n%s", ipOf(late), out)
	}
	// A name that goes away.
	mustf(t, otherEp.Leave(other), "other leave")
	if out, err := exec.Command("runc", "--root", ctr.root, "exec", ctr.id, "getent", "ahostsv4", "other").CombinedOutput(); err == nil {
		t.Errorf("getent other after it left: %s", out)
	}
}
