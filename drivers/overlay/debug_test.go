package overlay

import (
	"os/exec"
	"path/filepath"
	"testing"
)

func dumpNS(t testing.TB, label, path string, cmds ...string) {
	for _, c := range cmds {
		out, _ := exec.Command("nsenter", "--net="+path, "sh", "-c", c).CombinedOutput()
		t.Logf("%s: %s:\n%s", label, c, out)
	}
}

func (h *testHost) dump(t testing.TB, nid string) {
	dumpNS(t, "host "+h.vtep.String(), h.ns.Path(), "ip -s link", "ip neigh", "ss -uan")
	dumpNS(t, "overlay ns "+h.vtep.String(), filepath.Join(h.nsDir, nid), "ip -s -d link", "bridge fdb", "ip neigh")
}
