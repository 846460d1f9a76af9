package libnetwork

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/netkit/libnetwork/config"
	"github.com/netkit/libnetwork/datastore"
	"github.com/netkit/libnetwork/types"
)

// TestConcurrentAttachDetach runs container lifecycles from several
// goroutines on two networks at once, then checks that everything is gone
// and the addresses are free again.
func TestConcurrentAttachDetach(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	var nets []Network
	for i, pool := range []string{"10.150.0.0/28", "10.151.0.0/28"} {
		n, err := c.NewNetwork("bridge", fmt.Sprintf("n%d", i), NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: pool}}, nil, nil))
		mustf(t, err, "network")
		nets = append(nets, n)
	}
	before := e.snapshot(c)
	const workers, rounds = 6, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				if err := lifecycle(c, nets, fmt.Sprintf("w%dr%d", w, r)); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Deleted namespaces are released in a batch and the kernel frees
	// their veths asynchronously: wait for that, not a fixed time.
	e.settle(c, before)
	e.requireSame(before, e.snapshot(c), "concurrent lifecycles")
	// A /28 holds 13 endpoints besides the gateway: all free again.
	for i := 0; i < 13; i++ {
		_, err := nets[0].CreateEndpoint(fmt.Sprintf("fill%d", i))
		mustf(t, err, "address %d after the storm", i)
	}
}

// lifecycle attaches a container to both networks, checks the sandbox's
// interfaces, and detaches it.
func lifecycle(c *controller, nets []Network, name string) error {
	sb, err := c.NewSandbox(name)
	if err != nil {
		return err
	}
	var eps []Endpoint
	for _, n := range nets {
		ep, err := n.CreateEndpoint(name)
		if err != nil {
			return err
		}
		if err := ep.Join(sb); err != nil {
			return err
		}
		eps = append(eps, ep)
	}
	if got := len(sb.Endpoints()); got != len(nets) {
		return fmt.Errorf("%s: %d endpoints joined, want %d", name, got, len(nets))
	}
	for _, ep := range eps {
		if err := ep.Leave(sb); err != nil {
			return err
		}
		if err := ep.Delete(false); err != nil {
			return err
		}
	}
	return sb.Delete()
}

func TestSecondControllerOnSameDirsFailsFast(t *testing.T) {
	e := newEnv(t)
	e.start()
	start := time.Now()
	_, err := New(e.options()...)
	if err == nil {
		t.Fatal("a second controller opened the same data dir")
	}
	if !errors.Is(err, datastore.ErrLocked) || !types.IsForbidden(err) {
		t.Errorf("second controller: %v, want datastore.ErrLocked", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second controller took %v to fail", d)
	}
}

// TestOneControllerPerNamespace: a second controller (other directories)
// on a namespace that already has one is refused, and the first one's
// bridge and rules are untouched.
func TestOneControllerPerNamespace(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	n, err := c.NewNetwork("bridge", "first", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.160.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	rules := e.nft()
	dir := t.TempDir()
	_, err = New(config.OptionDataDir(dir+"/data"), config.OptionExecRoot(dir+"/exec"), config.OptionNetworkNamespace(e.host.Path()))
	if !types.IsForbidden(err) {
		t.Fatalf("second controller on the same namespace: %v, want Forbidden", err)
	}
	if _, err := e.host.Handle().LinkByName("br-" + n.ID()[:12]); err != nil {
		t.Errorf("first controller's bridge gone: %v", err)
	}
	if got := e.nft(); got != rules {
		t.Errorf("first controller's rules changed:\n%s", got)
	}
	// Once the first stops, the namespace can be taken.
	c.Stop()
	c2, err := New(e.options()...)
	mustf(t, err, "controller after the first stopped")
	c2.Stop()
}
