package main

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/netkit/libnetwork/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// TestReadmeCommand builds the README program and runs it as README.md
// says, inside namespaces of its own, and checks its line.
func TestReadmeCommand(t *testing.T) {
	testutil.RequireRoot(t)
	bin := filepath.Join(t.TempDir(), "readme")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	script := "mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /var/lib && mount -t sysfs sysfs /sys && ip link set lo up && " + bin
	out, err := exec.Command("unshare", "-n", "-m", "sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("README program: %v\n%s", err, out)
	}
	want := regexp.MustCompile(`^Joined endpoint Endpoint1 \(([0-9a-f]{2}:){5}[0-9a-f]{2}\) to sandbox container1 \(/run/libnetwork/netns/[0-9a-f]{12}\)\n$`)
	if !want.Match(out) {
		t.Errorf("README program printed %q", out)
	}
}
