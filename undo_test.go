package libnetwork

import (
	"errors"
	"slices"
	"testing"
)

func TestUndoRollsBackNewestFirst(t *testing.T) {
	c := &controller{}
	var order []string
	run := func(fail bool) (err error) {
		u := c.newUndo()
		defer u.rollback(&err)
		u.add(func() { order = append(order, "a") })
		u.add(nil)
		if err := u.step("after-b", func() { order = append(order, "b") }); err != nil {
			return err
		}
		if fail {
			return errors.New("failed")
		}
		return nil
	}
	if err := run(false); err != nil || len(order) != 0 {
		t.Fatalf("a success rolled back: %v %v", err, order)
	}
	if err := run(true); err == nil || !slices.Equal(order, []string{"b", "a"}) {
		t.Fatalf("rollback order %v, want [b a]", order)
	}
	order = nil
	injected := errors.New("injected")
	c.failPoint = func(p string) error {
		if p == "after-b" {
			return injected
		}
		return nil
	}
	if err := run(false); !errors.Is(err, injected) || !slices.Equal(order, []string{"b", "a"}) {
		t.Fatalf("fail point: %v, rolled back %v", err, order)
	}
}

// A rename that cannot be done for every endpoint is done for none.
func TestRenameAllOrNothing(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	n1, err := c.NewNetwork("bridge", "r1", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.81.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	n2, err := c.NewNetwork("bridge", "r2", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.82.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	sb, err := c.NewSandbox("ctr")
	mustf(t, err, "sandbox")
	ep1, err := n1.CreateEndpoint("old")
	mustf(t, err, "endpoint")
	ep2, err := n2.CreateEndpoint("old")
	mustf(t, err, "endpoint")
	mustf(t, ep1.Join(sb), "join")
	mustf(t, ep2.Join(sb), "join")
	// "new" is taken in the second network only.
	_, err = n2.CreateEndpoint("new")
	mustf(t, err, "blocker")
	if err := sb.Rename("new"); err == nil {
		t.Fatal("rename into a taken name succeeded")
	}
	for _, ep := range []Endpoint{ep1, ep2} {
		if ep.Name() != "old" {
			t.Errorf("endpoint renamed to %q by a failed rename", ep.Name())
		}
	}
	if _, err := n1.CreateEndpoint("new"); err != nil {
		t.Errorf("the failed rename kept the name reserved in the first network: %v", err)
	}
	mustf(t, sb.Rename("fresh"), "rename")
	c.Stop()
	c2 := e.start()
	for _, name := range []string{"r1", "r2"} {
		n, err := c2.NetworkByName(name)
		mustf(t, err, "network after restart")
		if _, err := n.EndpointByName("fresh"); err != nil {
			t.Errorf("network %s after restart: %v", name, err)
		}
		if _, err := n.EndpointByName("old"); err == nil {
			t.Errorf("network %s still has the old name after restart", name)
		}
	}
}
