// Package testutil puts tests into throwaway namespaces: Main re-executes
// the test binary in a new network and mount namespace, so nothing a test
// does to the kernel is visible in the host's namespace.
package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// envInNS marks the re-executed test binary.
const envInNS = "LIBNETWORK_TEST_IN_NETNS"

// Main runs the tests of a package. As root it re-executes the test binary
// in a new network and mount namespace (with a fresh sysfs and loopback up)
// and exits with its status; otherwise it runs the tests as they are, and
// tests that need root skip through RequireRoot.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { testutil.Main(m) }
func Main(m *testing.M) {
	if os.Geteuid() != 0 {
		os.Exit(m.Run())
	}
	if os.Getenv(envInNS) == "" {
		os.Exit(reexec())
	}
	if slices.Contains(os.Args[1:], "-test.fuzzworker") {
		// `go test -fuzz` starts its workers from the re-executed
		// binary, so they are in its namespaces, already set up.
		os.Exit(m.Run())
	}
	if err := setupNamespace(); err != nil {
		fmt.Fprintf(os.Stderr, "testutil: setting up the test namespace: %v\n", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func reexec() int {
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Env = append(os.Environ(), envInNS+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWNET | unix.CLONE_NEWNS,
		Pdeathsig:  syscall.SIGKILL,
	}
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		fmt.Fprintf(os.Stderr, "testutil: re-executing the tests in a new namespace: %v\n", err)
		return 1
	}
	return 0
}

func setupNamespace() error {
	// Keep our mounts (sysfs, netns bind mounts) out of the host's mount
	// namespace.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making / private: %w", err)
	}
	// The host's /sys shows the host's interfaces; mount one for this netns.
	if err := unix.Mount("sysfs", "/sys", "sysfs", 0, ""); err != nil {
		return fmt.Errorf("mounting sysfs: %w", err)
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("finding lo: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("bringing lo up: %w", err)
	}
	return nil
}

// InTestNamespace reports whether the process runs in the namespace Main
// made.
func InTestNamespace() bool { return os.Getenv(envInNS) != "" }

// RequireRoot skips t unless it runs as root inside the test namespace Main
// made. Under CI=true a skip would hide an untested privileged path, so it
// fails instead.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 && InTestNamespace() {
		return
	}
	msg := "needs root inside the test namespace (run as root; TestMain must call testutil.Main)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
