package libnetwork

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/netkit/libnetwork/config"
	"github.com/netkit/libnetwork/internal/testutil"
	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
	"golang.org/x/sys/unix"
)

// victimDir makes a directory outside the controller's directories, with
// a file and a subdirectory in it, standing for /etc: nothing the
// controller does may change it.
func victimDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "victim")
	mustf(t, os.MkdirAll(filepath.Join(dir, "sub"), 0o755), "victim dir")
	mustf(t, os.WriteFile(filepath.Join(dir, "passwd"), []byte("root:x:0:0\n"), 0o644), "victim file")
	mustf(t, os.WriteFile(filepath.Join(dir, "sub", "shadow"), []byte("root:*:1\n"), 0o600), "victim file")
	return dir
}

// treeOf lists every path under dir with its content, to compare before
// and after.
func treeOf(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		line := strings.TrimPrefix(p, dir)
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += "=" + string(b)
		}
		out = append(out, line)
		return nil
	})
	mustf(t, err, "walking %s", dir)
	return out
}

func mustBeOwnDir(t *testing.T, path string) {
	t.Helper()
	var st unix.Stat_t
	mustf(t, unix.Lstat(path, &st), "lstat %s", path)
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Errorf("%s is not a directory (mode %#o)", path, st.Mode)
		return
	}
	if st.Mode&0o7777 != 0o700 || st.Uid != 0 {
		t.Errorf("%s has mode %#o, uid %d; want 0700, uid 0", path, st.Mode&0o7777, st.Uid)
	}
}

// TestNewRefusesUnsafeDirs: a data dir or exec root that is a symbolic
// link, a file, or a directory of another user is refused with an
// UnsafeDirError (a Forbidden error) and nothing is written where it
// leads.
func TestNewRefusesUnsafeDirs(t *testing.T) {
	cases := []struct {
		name  string
		setup func(e *testEnv, victim string) string // returns the bad path
	}{
		{"exec root is a symlink", func(e *testEnv, victim string) string {
			mustf(t, os.Symlink(victim, e.execRoot), "symlink")
			return e.execRoot
		}},
		{"data dir is a symlink", func(e *testEnv, victim string) string {
			mustf(t, os.Symlink(victim, e.dataDir), "symlink")
			return e.dataDir
		}},
		{"exec root owned by nobody", func(e *testEnv, victim string) string {
			mustf(t, os.Mkdir(e.execRoot, 0o700), "mkdir")
			mustf(t, os.Chown(e.execRoot, 65534, 65534), "chown")
			return e.execRoot
		}},
		{"data dir owned by nobody", func(e *testEnv, victim string) string {
			mustf(t, os.Mkdir(e.dataDir, 0o700), "mkdir")
			mustf(t, os.Chown(e.dataDir, 65534, 65534), "chown")
			return e.dataDir
		}},
		{"exec root is a file", func(e *testEnv, victim string) string {
			mustf(t, os.WriteFile(e.execRoot, nil, 0o600), "file")
			return e.execRoot
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			victim := victimDir(t)
			before := treeOf(t, victim)
			bad := tc.setup(e, victim)
			nc, err := New(e.options()...)
			if err == nil {
				nc.Stop()
				t.Fatalf("New succeeded")
			}
			var ue *UnsafeDirError
			if !errors.As(err, &ue) || !types.IsForbidden(err) || ue.Path != bad {
				t.Fatalf("New: %v (%T), want an UnsafeDirError for %s classed Forbidden", err, err, bad)
			}
			if after := treeOf(t, victim); !slices.Equal(before, after) {
				t.Errorf("target of the bad path changed:\nbefore %q\nafter  %q", before, after)
			}
			if fi, err := os.Lstat(bad); err == nil && fi.IsDir() {
				if entries, _ := os.ReadDir(bad); len(entries) != 0 {
					t.Errorf("New wrote into the refused directory: %v", entries)
				}
			}
		})
	}
}

// TestNewReplacesSymlinkedSubdirs: netns/, files/ and sk/ as symbolic
// links (to a directory standing for /etc) are replaced by the library's
// own directories; orphan collection removes nothing in their targets.
func TestNewReplacesSymlinkedSubdirs(t *testing.T) {
	e := newEnv(t)
	mustf(t, os.Mkdir(e.execRoot, 0o700), "exec root")
	var victims []string
	var before [][]string
	for _, name := range []string{"netns", "files", "sk"} {
		v := victimDir(t)
		victims = append(victims, v)
		before = append(before, treeOf(t, v))
		mustf(t, os.Symlink(v, filepath.Join(e.execRoot, name)), "symlink %s", name)
	}
	c := e.start()
	sb, err := c.NewSandbox("ctr", OptionHostname("web"))
	mustf(t, err, "sandbox")
	for i, name := range []string{"netns", "files", "sk"} {
		mustBeOwnDir(t, filepath.Join(e.execRoot, name))
		if after := treeOf(t, victims[i]); !slices.Equal(before[i], after) {
			t.Errorf("target of %s changed:\nbefore %q\nafter  %q", name, before[i], after)
		}
	}
	if !strings.HasPrefix(sb.Key(), filepath.Join(e.execRoot, "netns")+"/") {
		t.Errorf("sandbox key %s is not under the exec root's netns/", sb.Key())
	}
	mustBeOwnDir(t, filepath.Join(e.execRoot, "files", sb.ID()))
}

// TestNewEnforcesDirModes: directories that exist with loose modes, or
// owned by another user, are root's 0700 directories after New.
func TestNewEnforcesDirModes(t *testing.T) {
	e := newEnv(t)
	mustf(t, os.Mkdir(e.dataDir, 0o777), "data dir")
	mustf(t, os.Chmod(e.dataDir, 0o777), "chmod") // whatever the umask
	mustf(t, os.Mkdir(e.execRoot, 0o755), "exec root")
	mustf(t, os.Chmod(e.execRoot, 0o755), "chmod")
	for _, name := range []string{"netns", "files", "sk"} {
		p := filepath.Join(e.execRoot, name)
		mustf(t, os.Mkdir(p, 0o777), "mkdir")
		mustf(t, os.Chmod(p, 0o777), "chmod")
		mustf(t, os.Chown(p, 65534, 65534), "chown")
	}
	c := e.start()
	sb, err := c.NewSandbox("ctr")
	mustf(t, err, "sandbox")
	for _, p := range []string{e.dataDir, e.execRoot,
		filepath.Join(e.execRoot, "netns"), filepath.Join(e.execRoot, "files"), filepath.Join(e.execRoot, "sk"),
		filepath.Join(e.execRoot, "files", sb.ID())} {
		mustBeOwnDir(t, p)
	}
}

// TestOrphanCollectionStaysInExecRoot: links in netns/ and files/ are
// removed as links. Neither a mount they point to nor the files there are
// touched, and a live sandbox's files directory replaced by a link is not
// written through.
func TestOrphanCollectionStaysInExecRoot(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	n, err := c.NewNetwork("bridge", "net", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.105.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	ep, err := n.CreateEndpoint("ep")
	mustf(t, err, "endpoint")
	sb, err := c.NewSandbox("ctr", OptionHostname("web"))
	mustf(t, err, "sandbox")
	c.Stop()

	// A mount outside the exec root, and a link to it in netns/.
	mnt := filepath.Join(t.TempDir(), "mnt")
	mustf(t, os.Mkdir(mnt, 0o755), "mount point")
	mustf(t, unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"), "mounting tmpfs")
	t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
	mustf(t, os.WriteFile(filepath.Join(mnt, "marker"), []byte("x"), 0o644), "marker")
	mustf(t, os.Symlink(mnt, filepath.Join(e.execRoot, "netns", "junk")), "netns link")
	victimFile := filepath.Join(victimDir(t), "passwd")
	mustf(t, os.Symlink(victimFile, filepath.Join(e.execRoot, "netns", "junk2")), "netns link")

	// Links in files/: an orphan one, one inside an orphan directory, and
	// one at the live sandbox's place pointing at a copy of its files.
	victim := victimDir(t)
	before := treeOf(t, victim)
	files := filepath.Join(e.execRoot, "files")
	mustf(t, os.Symlink(victim, filepath.Join(files, "orphan")), "files link")
	mustf(t, os.Mkdir(filepath.Join(files, "orphan2"), 0o755), "orphan dir")
	mustf(t, os.Symlink(victimFile, filepath.Join(files, "orphan2", "link")), "link in orphan dir")
	live := filepath.Join(files, sb.ID())
	liveCopy := victimDir(t)
	for _, name := range []string{"hosts", "hosts.hash", "resolv.conf", "resolv.conf.hash"} {
		b, err := os.ReadFile(filepath.Join(live, name))
		mustf(t, err, "reading %s", name)
		mustf(t, os.WriteFile(filepath.Join(liveCopy, name), b, 0o644), "copying %s", name)
	}
	copyBefore := treeOf(t, liveCopy)
	mustf(t, os.RemoveAll(live), "removing live files")
	mustf(t, os.Symlink(liveCopy, live), "live link")

	c = e.start()
	if _, err := os.Stat(filepath.Join(mnt, "marker")); err != nil {
		t.Errorf("the mount a netns/ link pointed to was unmounted: %v", err)
	}
	if _, err := os.Stat(victimFile); err != nil {
		t.Errorf("the file a netns/ link pointed to was removed: %v", err)
	}
	for _, name := range []string{"netns/junk", "netns/junk2", "files/orphan", "files/orphan2"} {
		if _, err := os.Lstat(filepath.Join(e.execRoot, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("orphan %s left: %v", name, err)
		}
	}
	if after := treeOf(t, victim); !slices.Equal(before, after) {
		t.Errorf("target of a files/ link changed:\nbefore %q\nafter  %q", before, after)
	}
	if fi, err := os.Lstat(live); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		t.Errorf("live sandbox's files directory is still a link")
	}
	// A join writes the sandbox's hosts record: not through the link.
	rsb, err := c.SandboxByID(sb.ID())
	mustf(t, err, "restored sandbox")
	rn, err := c.NetworkByID(n.ID())
	mustf(t, err, "restored network")
	rep, err := rn.EndpointByID(ep.ID())
	mustf(t, err, "restored endpoint")
	mustf(t, rep.Join(rsb), "join")
	if after := treeOf(t, liveCopy); !slices.Equal(copyBefore, after) {
		t.Errorf("sandbox files written through a link:\nbefore %q\nafter  %q", copyBefore, after)
	}
}

// TestSandboxFilesDirNotFollowed: a link at a sandbox's files directory
// (files/<id>) is replaced, not written through.
func TestSandboxFilesDirNotFollowed(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	sb := &sandbox{ctrl: c, id: strings.Repeat("ab", 32), containerID: "ctr"}
	victim := victimDir(t)
	before := treeOf(t, victim)
	mustf(t, os.MkdirAll(filepath.Dir(sb.filesDir()), 0o700), "files/")
	mustf(t, os.Symlink(victim, sb.filesDir()), "link")
	mustf(t, sb.setupFiles(), "setupFiles")
	t.Cleanup(sb.dropFiles)
	if after := treeOf(t, victim); !slices.Equal(before, after) {
		t.Errorf("files written through a link:\nbefore %q\nafter  %q", before, after)
	}
	mustBeOwnDir(t, sb.filesDir())
	if _, err := os.Stat(filepath.Join(sb.filesDir(), "hosts")); err != nil {
		t.Errorf("hosts not written: %v", err)
	}
}

// tmpfsDir mounts a tmpfs of its own (in the test's private mount
// namespace) with the given mode at a fresh directory, so a test can give
// the directories on the way to a data dir or exec root any owner and
// mode. Its path is short (not t.TempDir's, which holds the test's
// name), for the set-key socket under it.
func tmpfsDir(t *testing.T, mode uint32) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tmpfs")
	mustf(t, err, "mount point")
	t.Cleanup(func() { _ = os.Remove(dir) })
	mustf(t, unix.Mount("tmpfs", dir, "tmpfs", 0, "size=4m"), "mounting tmpfs")
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	chmod(t, dir, mode)
	return dir
}

// chmod sets the mode of path, sticky bit included, as chmod(2) takes it
// (os.Chmod spells the sticky bit differently).
func chmod(t *testing.T, path string, mode uint32) {
	t.Helper()
	mustf(t, unix.Chmod(path, mode), "chmod %s", path)
}

// mkdirOwned makes dir with mode (umask aside) and owner uid.
func mkdirOwned(t *testing.T, dir string, mode uint32, uid int) {
	t.Helper()
	mustf(t, os.MkdirAll(dir, 0o755), "mkdir %s", dir)
	chmod(t, dir, mode)
	mustf(t, os.Chown(dir, uid, uid), "chown %s", dir)
}

// TestNewChecksDirAncestors: every directory on the way to the data dir
// and the exec root must be root's and writable by root only, or sticky
// with root's entries (like /tmp); links on the way must be root's and
// are followed. Anything else is refused with an UnsafeDirError naming the
// culprit, and New makes neither directory.
func TestNewChecksDirAncestors(t *testing.T) {
	const nobody = 65534
	cases := []struct {
		name string
		// setup returns the data dir and exec root to use (empty for the
		// environment's own), the one expected to be refused (empty if
		// New must succeed), and a part of the reason expected.
		setup func(t *testing.T, base string) (data, exec, bad, reason string)
	}{
		{"group-writable ancestor of the exec root", func(t *testing.T, base string) (string, string, string, string) {
			mkdirOwned(t, filepath.Join(base, "gw"), 0o775, 0)
			exec := filepath.Join(base, "gw", "exec")
			return "", exec, exec, filepath.Join(base, "gw") + " is writable by group or others"
		}},
		{"world-writable ancestor of the data dir", func(t *testing.T, base string) (string, string, string, string) {
			mkdirOwned(t, filepath.Join(base, "ww", "sub"), 0o755, 0)
			chmod(t, filepath.Join(base, "ww"), 0o777)
			data := filepath.Join(base, "ww", "sub", "data")
			return data, "", data, filepath.Join(base, "ww") + " is writable by group or others"
		}},
		{"ancestor owned by nobody", func(t *testing.T, base string) (string, string, string, string) {
			mkdirOwned(t, filepath.Join(base, "u"), 0o755, nobody)
			exec := filepath.Join(base, "u", "exec")
			return "", exec, exec, filepath.Join(base, "u") + " is owned by uid 65534"
		}},
		{"tmpfs root group-writable", func(t *testing.T, base string) (string, string, string, string) {
			chmod(t, base, 0o770)
			exec := filepath.Join(base, "exec")
			return "", exec, exec, base + " is writable by group or others"
		}},
		{"sticky ancestor with a root child", func(t *testing.T, base string) (string, string, string, string) {
			chmod(t, base, 0o1777)
			mkdirOwned(t, filepath.Join(base, "exec"), 0o700, 0)
			// The data dir is missing: New makes it, root's.
			return filepath.Join(base, "data"), filepath.Join(base, "exec"), "", ""
		}},
		{"sticky ancestor with a child of nobody", func(t *testing.T, base string) (string, string, string, string) {
			chmod(t, base, 0o1777)
			mkdirOwned(t, filepath.Join(base, "u"), 0o755, nobody)
			exec := filepath.Join(base, "u", "exec")
			return "", exec, exec, filepath.Join(base, "u") + " is owned by uid 65534"
		}},
		{"sticky ancestor with a link of nobody", func(t *testing.T, base string) (string, string, string, string) {
			chmod(t, base, 0o1777)
			mkdirOwned(t, filepath.Join(base, "real"), 0o755, 0)
			mustf(t, os.Symlink(filepath.Join(base, "real"), filepath.Join(base, "l")), "symlink")
			mustf(t, os.Lchown(filepath.Join(base, "l"), nobody, nobody), "lchown")
			data := filepath.Join(base, "l", "data")
			return data, "", data, filepath.Join(base, "l") + " is a symbolic link owned by uid 65534"
		}},
		{"root's links on the way, relative and absolute", func(t *testing.T, base string) (string, string, string, string) {
			mkdirOwned(t, filepath.Join(base, "run"), 0o755, 0)
			mkdirOwned(t, filepath.Join(base, "var", "lib2"), 0o755, 0)
			mustf(t, os.Symlink("../run", filepath.Join(base, "var", "run")), "symlink")
			mustf(t, os.Symlink(filepath.Join(base, "var", "lib2"), filepath.Join(base, "var", "lib")), "symlink")
			return filepath.Join(base, "var", "lib", "data"), filepath.Join(base, "var", "run", "exec"), "", ""
		}},
		{"link to a directory under a group-writable one", func(t *testing.T, base string) (string, string, string, string) {
			mkdirOwned(t, filepath.Join(base, "gw", "real"), 0o755, 0)
			chmod(t, filepath.Join(base, "gw"), 0o775)
			mustf(t, os.Symlink("gw/real", filepath.Join(base, "l")), "symlink")
			exec := filepath.Join(base, "l", "exec")
			return "", exec, exec, filepath.Join(base, "gw") + " is writable by group or others"
		}},
		{"ancestor is a file", func(t *testing.T, base string) (string, string, string, string) {
			mustf(t, os.WriteFile(filepath.Join(base, "f"), nil, 0o600), "file")
			exec := filepath.Join(base, "f", "exec")
			return "", exec, exec, filepath.Join(base, "f") + " is not a directory"
		}},
		{"link loop on the way", func(t *testing.T, base string) (string, string, string, string) {
			mustf(t, os.Symlink("b", filepath.Join(base, "a")), "symlink")
			mustf(t, os.Symlink("a", filepath.Join(base, "b")), "symlink")
			exec := filepath.Join(base, "a", "exec")
			return "", exec, exec, "too many symbolic links"
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			base := tmpfsDir(t, 0o755)
			data, exec, bad, reason := tc.setup(t, base)
			if data != "" {
				e.dataDir = data
			}
			if exec != "" {
				e.execRoot = exec
			}
			_, dataErr := os.Lstat(e.dataDir)
			_, execErr := os.Lstat(e.execRoot)
			nc, err := New(e.options()...)
			if bad == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				nc.Stop()
				mustBeOwnDir(t, e.dataDir)
				mustBeOwnDir(t, e.execRoot)
				return
			}
			if err == nil {
				nc.Stop()
				t.Fatalf("New succeeded")
			}
			var ue *UnsafeDirError
			if !errors.As(err, &ue) || !types.IsForbidden(err) || ue.Path != bad || !strings.Contains(ue.Reason, reason) {
				t.Fatalf("New: %v (%T), want an UnsafeDirError for %s classed Forbidden, saying %q", err, err, bad, reason)
			}
			// Nothing made: neither the refused directory nor the other.
			for _, c := range []struct {
				dir    string
				before error
			}{{e.dataDir, dataErr}, {e.execRoot, execErr}} {
				if _, err := os.Lstat(c.dir); errors.Is(c.before, os.ErrNotExist) && err == nil {
					t.Errorf("New made %s though it refused to start", c.dir)
				}
			}
		})
	}
}

// victimDirIn is victimDir in the directory base (on the file system of
// the exec root, say).
func victimDirIn(t *testing.T, base string) string {
	t.Helper()
	dir := filepath.Join(base, "victim")
	mustf(t, os.MkdirAll(filepath.Join(dir, "sub"), 0o755), "victim dir")
	mustf(t, os.WriteFile(filepath.Join(dir, "passwd"), []byte("root:x:0:0\n"), 0o644), "victim file")
	mustf(t, os.WriteFile(filepath.Join(dir, "sub", "shadow"), []byte("root:*:1\n"), 0o600), "victim file")
	return dir
}

// TestOrphanCollectionLeavesBindMounts: a bind mount of a directory of the
// exec root's own file system (same st_dev) inside an orphaned sandbox
// files directory is left with everything in it, and reported; so is a
// file bind mount. The rest of the orphan goes, and an orphaned namespace
// mount in netns/ is still unmounted and removed.
func TestOrphanCollectionLeavesBindMounts(t *testing.T) {
	e := newEnv(t)
	base := tmpfsDir(t, 0o755)
	e.execRoot = filepath.Join(base, "exec")
	c := e.start()
	c.Stop()

	// The victim lives on the exec root's tmpfs: st_dev cannot tell the
	// bind mount from the directory it is in.
	victim := victimDirIn(t, base)
	before := treeOf(t, victim)

	orphan := filepath.Join(e.execRoot, "files", "orphan")
	mnt := filepath.Join(orphan, "x")
	fileMnt := filepath.Join(orphan, "hosts")
	mustf(t, os.MkdirAll(mnt, 0o700), "mount point")
	mustf(t, os.WriteFile(fileMnt, nil, 0o644), "file mount point")
	mustf(t, os.WriteFile(filepath.Join(orphan, "junk"), []byte("j"), 0o644), "junk")
	mustf(t, unix.Mount(victim, mnt, "", unix.MS_BIND, ""), "bind mount")
	t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
	mustf(t, unix.Mount(filepath.Join(victim, "passwd"), fileMnt, "", unix.MS_BIND, ""), "file bind mount")
	t.Cleanup(func() { _ = unix.Unmount(fileMnt, unix.MNT_DETACH) })
	var stVictim, stMnt unix.Stat_t
	mustf(t, unix.Stat(victim, &stVictim), "stat")
	mustf(t, unix.Stat(filepath.Join(e.execRoot, "files"), &stMnt), "stat")
	if stVictim.Dev != stMnt.Dev {
		t.Fatalf("the bind mount is on device %d, files/ on %d: the test needs one", stVictim.Dev, stMnt.Dev)
	}

	ns, err := osl.NewNamespace(filepath.Join(e.execRoot, "netns", "deadbeef0000"))
	mustf(t, err, "orphaned namespace")
	_ = ns.Close()

	var logMu sync.Mutex
	var logs strings.Builder
	e.start(config.OptionLogger(slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))))

	if after := treeOf(t, victim); !slices.Equal(before, after) {
		t.Errorf("the bind-mounted directory changed:\nbefore %q\nafter  %q", before, after)
	}
	if after := treeOf(t, mnt); !slices.Equal(before, after) {
		t.Errorf("the bind mount no longer shows the victim:\nbefore %q\nafter  %q", before, after)
	}
	if b, err := os.ReadFile(fileMnt); err != nil || string(b) != "root:x:0:0\n" {
		t.Errorf("the file bind mount: %q, %v", b, err)
	}
	if _, err := os.Lstat(filepath.Join(orphan, "junk")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the rest of the orphan was not removed: %v", err)
	}
	logMu.Lock()
	out := logs.String()
	logMu.Unlock()
	for _, p := range []string{mnt, fileMnt} {
		if !strings.Contains(out, p+" is a mount point") {
			t.Errorf("mount point %s not reported; log:\n%s", p, out)
		}
	}
	if _, err := os.Lstat(filepath.Join(e.execRoot, "netns", "deadbeef0000")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("orphaned namespace file left: %v", err)
	}

	// removeAllAt itself says which mount points it left.
	dir, err := os.Open(filepath.Join(e.execRoot, "files"))
	mustf(t, err, "files/")
	defer dir.Close()
	err = removeAllAt(dir, "orphan")
	var mpe *mountPointError
	if !errors.As(err, &mpe) {
		t.Errorf("removeAllAt: %v, want a mountPointError", err)
	}
	if after := treeOf(t, victim); !slices.Equal(before, after) {
		t.Errorf("the bind-mounted directory changed:\nbefore %q\nafter  %q", before, after)
	}
}

// TestMountIDFallback: the mount ID read from fdinfo (kernels without
// STATX_MNT_ID) is the one statx gives, and tells a bind mount of a
// directory of one file system from that directory.
func TestMountIDFallback(t *testing.T) {
	testutil.RequireRoot(t)
	base := tmpfsDir(t, 0o755)
	src, dst := filepath.Join(base, "src"), filepath.Join(base, "dst")
	mustf(t, os.Mkdir(src, 0o755), "src")
	mustf(t, os.Mkdir(dst, 0o755), "dst")
	mustf(t, unix.Mount(src, dst, "", unix.MS_BIND, ""), "bind mount")
	t.Cleanup(func() { _ = unix.Unmount(dst, unix.MNT_DETACH) })
	var ids [2]uint64
	for i, p := range []string{src, dst} {
		f, err := os.Open(p)
		mustf(t, err, "open %s", p)
		defer f.Close()
		statx, err := mountID(int(f.Fd()))
		mustf(t, err, "mountID %s", p)
		fdinfo, err := mountIDFromFdinfo(int(f.Fd()))
		mustf(t, err, "mountIDFromFdinfo %s", p)
		if statx != fdinfo {
			t.Errorf("%s: statx says mount %d, fdinfo %d", p, statx, fdinfo)
		}
		ids[i] = statx
	}
	if ids[0] == ids[1] {
		t.Errorf("the bind mount and its source share mount ID %d", ids[0])
	}
}

// TestSandboxDeleteLeavesBindMounts: deleting a sandbox removes its files
// directory but not what is bind-mounted in it from the exec root's own
// file system.
func TestSandboxDeleteLeavesBindMounts(t *testing.T) {
	e := newEnv(t)
	base := tmpfsDir(t, 0o755)
	e.execRoot = filepath.Join(base, "exec")
	c := e.start()
	sb, err := c.NewSandbox("ctr", OptionHostname("web"))
	mustf(t, err, "sandbox")
	victim := victimDirIn(t, base)
	before := treeOf(t, victim)
	files := filepath.Join(e.execRoot, "files", sb.ID())
	mnt := filepath.Join(files, "x")
	mustf(t, os.Mkdir(mnt, 0o700), "mount point")
	mustf(t, unix.Mount(victim, mnt, "", unix.MS_BIND, ""), "bind mount")
	t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })

	mustf(t, sb.Delete(), "delete")
	if after := treeOf(t, victim); !slices.Equal(before, after) {
		t.Errorf("the bind-mounted directory changed:\nbefore %q\nafter  %q", before, after)
	}
	if _, err := os.Lstat(filepath.Join(files, "hosts")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the sandbox's hosts file was not removed: %v", err)
	}
}

// TestNewMakesDirsAbsolute: relative data dir and exec root are resolved
// against the working directory once, at New; a later chdir of the
// embedding process does not move them.
func TestNewMakesDirsAbsolute(t *testing.T) {
	e := newEnv(t)
	dir := filepath.Dir(e.execRoot)
	t.Chdir(dir)
	e.dataDir, e.execRoot = "data", "exec"
	c := e.start()
	// The environment's clean-up runs after the working directory is
	// restored; it needs the absolute paths.
	e.dataDir, e.execRoot = filepath.Join(dir, "data"), filepath.Join(dir, "exec")
	t.Chdir(t.TempDir())
	sb, err := c.NewSandbox("ctr", OptionHostname("web"))
	mustf(t, err, "sandbox")
	if want := filepath.Join(dir, "exec", "netns") + "/"; !strings.HasPrefix(sb.Key(), want) {
		t.Errorf("sandbox key %s, want one under %s", sb.Key(), want)
	}
	mustBeOwnDir(t, filepath.Join(dir, "data"))
	mustBeOwnDir(t, filepath.Join(dir, "exec", "files", sb.ID()))
}
