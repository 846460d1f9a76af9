package libnetwork

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/moby/sys/reexec"
	"github.com/netkit/libnetwork/config"
)

// setKeyPeer is a re-executed test binary that calls SetExternalKeyAt
// with its arguments (exec root, controller ID, container ID, key) and
// prints the error it gets.
const setKeyPeer = "libnetwork-test-setkey-peer"

func init() {
	reexec.Register(setKeyPeer, func() {
		if len(os.Args) != 5 {
			fmt.Println("usage: exec-root controller-id container-id key")
			os.Exit(2)
		}
		err := SetExternalKeyAt(os.Args[1], os.Args[2], os.Args[3], os.Args[4])
		fmt.Printf("uid %d: %v\n", os.Getuid(), err)
		os.Exit(0)
	})
}

// TestSetKeySocketMode: under umask 0, and with an sk/ that another user
// owns with a loose mode, the socket is 0600 and sk/ root's 0700.
func TestSetKeySocketMode(t *testing.T) {
	e := newEnv(t)
	sk := filepath.Join(e.execRoot, "sk")
	mustf(t, os.MkdirAll(sk, 0o777), "sk")
	mustf(t, os.Chmod(sk, 0o777), "chmod sk")
	mustf(t, os.Chown(sk, 65534, 65534), "chown sk")
	old := syscall.Umask(0)
	c := e.start()
	syscall.Umask(old)
	mustBeOwnDir(t, sk)
	fi, err := os.Lstat(setKeySocketPath(e.execRoot, c.ID()))
	mustf(t, err, "socket")
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("set-key socket has mode %v, want a socket with 0600", fi.Mode())
	}
}

// TestSetKeyRefusesUnprivilegedPeer: a peer whose SO_PEERCRED uid is
// neither root nor the controller's is refused with an error reply and a
// log line, even when it reaches the socket (here through a hard link in
// a directory it may enter, and a mode loosened by hand: what a umask of 0
// gave before), and the sandbox gets no key.
func TestSetKeyRefusesUnprivilegedPeer(t *testing.T) {
	e := newEnv(t)
	var logMu sync.Mutex
	var logs strings.Builder
	c := e.start(config.OptionLogger(slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))))
	n, err := c.NewNetwork("bridge", "net", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.106.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	ep, err := n.CreateEndpoint("ep")
	mustf(t, err, "endpoint")
	sb, err := c.NewSandbox("ctr", OptionUseExternalKey())
	mustf(t, err, "sandbox")
	mustf(t, ep.Join(sb), "join")
	_, key := containerProcess(t)

	pub, err := os.MkdirTemp("", "setkey-peer")
	mustf(t, err, "public dir")
	t.Cleanup(func() { _ = os.RemoveAll(pub) })
	mustf(t, os.Mkdir(filepath.Join(pub, "sk"), 0o755), "public sk")
	mustf(t, os.Chmod(pub, 0o755), "chmod")
	sock := setKeySocketPath(e.execRoot, c.ID())
	mustf(t, os.Link(sock, setKeySocketPath(pub, c.ID())), "linking the socket")
	mustf(t, os.Chmod(sock, 0o666), "loosening the socket")

	run := func(uid uint32) string {
		cmd := reexec.Command(setKeyPeer, pub, c.ID(), "ctr", key)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		out, err := cmd.CombinedOutput()
		mustf(t, err, "peer as uid %d: %s", uid, out)
		return string(out)
	}
	out := run(65534)
	if !strings.Contains(out, "uid 65534: ") || !strings.Contains(out, "permission denied") {
		t.Errorf("unprivileged peer got %q, want a permission denied reply", out)
	}
	if k := sb.Key(); k != "" {
		t.Errorf("unprivileged peer set the key: %s", k)
	}
	logMu.Lock()
	logged := logs.String()
	logMu.Unlock()
	if !strings.Contains(logged, "refusing a peer") || !strings.Contains(logged, "uid=65534") {
		t.Errorf("no log line for the refused peer:\n%s", logged)
	}
	// Root, through the same link, is served.
	if out := run(0); !strings.Contains(out, "uid 0: <nil>") {
		t.Errorf("root peer got %q, want success", out)
	}
	if sb.Key() == "" {
		t.Error("root peer did not set the key")
	}
}
