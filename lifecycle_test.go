package libnetwork

import (
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/netkit/libnetwork/config"
	"github.com/netkit/libnetwork/osl"
)

// A deleted network's name must be free again.
func TestRecreateNetworkName(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	n, err := c.NewNetwork("bridge", "again", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.201.0.0/24"}}, nil, nil))
	mustf(t, err, "NewNetwork")
	mustf(t, n.Delete(), "Delete")
	n, err = c.NewNetwork("bridge", "again", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.201.0.0/24"}}, nil, nil))
	mustf(t, err, "NewNetwork with the name of a deleted network")
	mustf(t, n.Delete(), "Delete")
}

// A container whose sandbox was deleted must be able to get a new one
// (docker does this on every container restart).
func TestRecreateSandboxForContainer(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	sb, err := c.NewSandbox("ctr")
	mustf(t, err, "NewSandbox")
	mustf(t, sb.Delete(), "Delete")
	sb, err = c.NewSandbox("ctr")
	mustf(t, err, "NewSandbox for a container whose sandbox was deleted")
	mustf(t, sb.Delete(), "Delete")
}

// ReloadConfiguration replaces c.cfg under c.mu while sandbox paths read
// c.cfg.Daemon.ExecRoot without it. Fails only under -race.
func TestReloadConfigurationRace(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 20; i++ {
			_ = c.ReloadConfiguration(config.OptionLabels([]string{"a=b"}))
		}
	}()
	for i := 0; i < 5; i++ {
		sb, err := c.NewSandbox("race" + string(rune('a'+i)))
		mustf(t, err, "NewSandbox")
		mustf(t, sb.Delete(), "Delete")
	}
	wg.Wait()
}

// A SetKey that fails after setting up a first endpoint must not leave that
// endpoint's interface in the runtime's namespace, which outlives the call.
func TestSetKeyFailureLeavesNoInterface(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	n1, err := c.NewNetwork("bridge", "k1", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.202.0.0/24"}}, nil, nil))
	mustf(t, err, "network 1")
	n2, err := c.NewNetwork("bridge", "k2", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.203.0.0/24"}}, nil, nil))
	mustf(t, err, "network 2")
	ep1, err := n1.CreateEndpoint("e1")
	mustf(t, err, "endpoint 1")
	ep2, err := n2.CreateEndpoint("e2")
	mustf(t, err, "endpoint 2")
	sb, err := c.NewSandbox("ext", OptionUseExternalKey())
	mustf(t, err, "sandbox")
	mustf(t, ep1.Join(sb), "join 1")
	mustf(t, ep2.Join(sb), "join 2")

	_, key := containerProcess(t)
	injected := errors.New("injected")
	calls := 0
	c.failPoint = func(s string) error {
		if s == "join-before-configure" {
			calls++
			if calls == 2 {
				return injected
			}
		}
		return nil
	}
	err = sb.SetKey(key)
	c.failPoint = nil
	if !errors.Is(err, injected) {
		t.Fatalf("SetKey: %v, want the injected failure", err)
	}
	procNS, err := osl.OpenNamespace(key)
	mustf(t, err, "opening the container's namespace")
	defer procNS.Close()
	if got := ifaceNames(t, procNS); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("after a failed SetKey the container namespace has %v, want only lo", got)
	}
}
