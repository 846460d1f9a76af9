package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/netkit/libnetwork/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// TestNetbenchJSON runs netbench briefly and checks the JSON it promises.
// It checks shape, not speed: figures come from real runs, not tests.
func TestNetbenchJSON(t *testing.T) {
	testutil.RequireRoot(t)
	bin := filepath.Join(t.TempDir(), "netbench")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command("unshare", "-n", "-m", bin, "-n", "25", "-json").Output()
	if err != nil {
		t.Fatalf("netbench: %v\n%s", err, out)
	}
	var res result
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("netbench -json printed %q: %v", out, err)
	}
	if res.N != 25 || res.Ports != 0 {
		t.Errorf("n=%d ports=%d", res.N, res.Ports)
	}
	for name, s := range map[string]stats{"attach": res.Attach, "detach": res.Detach} {
		if s.MedianMs <= 0 || s.P99Ms < s.MedianMs || s.First20MedianMs <= 0 || s.Last20MedianMs <= 0 {
			t.Errorf("%s figures %+v", name, s)
		}
		if len(s.TenthsMedianMs) != 10 {
			t.Errorf("%s: %d tenths, want 10: %+v", name, len(s.TenthsMedianMs), s)
		}
	}
	for _, step := range []string{"attach.new_sandbox", "attach.create_endpoint", "attach.join", "detach.leave", "detach.delete_endpoint", "detach.delete_sandbox"} {
		if res.Steps[step].MedianMs <= 0 {
			t.Errorf("step %s missing: %+v", step, res.Steps)
		}
	}
	if err := exec.Command(bin, "-ports", "2").Run(); err == nil {
		t.Error("-ports 2 accepted before port publishing exists")
	}
}

// TestNetbenchKernelJSON runs the kernel-only baseline briefly, plain and
// with -bridge-mtu-user, and checks that every kernel step has figures.
func TestNetbenchKernelJSON(t *testing.T) {
	testutil.RequireRoot(t)
	bin := filepath.Join(t.TempDir(), "netbench")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"-kernel"}, {"-kernel", "-bridge-mtu-user"}} {
		args := append([]string{"-n", "25", "-json"}, args...)
		out, err := exec.Command("unshare", append([]string{"-n", "-m", bin}, args...)...).Output()
		if err != nil {
			t.Fatalf("netbench %v: %v\n%s", args, err, out)
		}
		var res result
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("netbench %v printed %q: %v", args, out, err)
		}
		if res.N != 25 || !res.Kernel || res.BridgeMTUUser != (len(args) == 5) {
			t.Errorf("%v: n=%d kernel=%v bridge_mtu_user=%v", args, res.N, res.Kernel, res.BridgeMTUUser)
		}
		for name, s := range map[string]stats{"attach": res.Attach, "detach": res.Detach} {
			if s.MedianMs <= 0 || s.P99Ms < s.MedianMs || s.First20MedianMs <= 0 || s.Last20MedianMs <= 0 {
				t.Errorf("%v: %s figures %+v", args, name, s)
			}
			if len(s.TenthsMedianMs) != 10 {
				t.Errorf("%v: %s: %d tenths, want 10: %+v", args, name, len(s.TenthsMedianMs), s)
			}
		}
		want := append(append([]string(nil), kernelAttachSteps...), kernelDetachSteps...)
		for _, step := range want {
			s, ok := res.Steps[step]
			if !ok || s.MedianMs <= 0 || s.P99Ms < s.MedianMs || len(s.TenthsMedianMs) != 10 {
				t.Errorf("%v: step %s: %+v", args, step, s)
			}
		}
		if len(res.Steps) != len(want) {
			t.Errorf("%v: steps %v, want exactly %v", args, res.Steps, want)
		}
		// The parts cannot take longer than the whole.
		if j, v := res.Steps["kernel.join"], res.Steps["kernel.veth"]; v.MedianMs > j.MedianMs {
			t.Errorf("%v: kernel.veth median %v > kernel.join median %v", args, v.MedianMs, j.MedianMs)
		}
		if res.Steps["kernel.join"].MedianMs > res.Attach.MedianMs {
			t.Errorf("%v: kernel.join median %v > attach median %v", args, res.Steps["kernel.join"].MedianMs, res.Attach.MedianMs)
		}
	}
	if err := exec.Command(bin, "-bridge-mtu-user").Run(); err == nil {
		t.Error("-bridge-mtu-user accepted without -kernel")
	}
}
