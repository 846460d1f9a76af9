package libnetwork

import (
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/netkit/libnetwork/config"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/rootless/port"
	"github.com/netkit/libnetwork/types"
)

// fakeManager is a port.Manager in memory, for the controller's logic: what
// it is asked to expose, and a refusal on request. The real managers are
// tested with real parents in package rootless/port/... and
// TestRootlessController.
type fakeManager struct {
	mu     sync.Mutex
	next   int
	ports  []port.Status
	refuse int // a ParentPort AddPort refuses
}

func (f *fakeManager) AddPort(_ context.Context, s port.Spec) (*port.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if s.ParentPort == f.refuse {
		return nil, errors.New("port taken on the host")
	}
	if err := port.CheckConflict(s, f.ports); err != nil {
		return nil, err
	}
	f.next++
	st := port.Status{ID: f.next, Spec: s}
	f.ports = append(f.ports, st)
	return &st, nil
}

func (f *fakeManager) ListPorts(context.Context) ([]port.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ports), nil
}

func (f *fakeManager) RemovePort(_ context.Context, id int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, st := range f.ports {
		if st.ID == id {
			f.ports = slices.Delete(f.ports, i, i+1)
			return nil
		}
	}
	return types.NotFoundErrorf("no port %d", id)
}

// specs returns the exposed ports as "proto parent -> child" strings.
func (f *fakeManager) specs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, st := range f.ports {
		s := st.Spec
		out = append(out, s.Proto+" "+net.JoinHostPort(s.ParentIP, strconv.Itoa(s.ParentPort))+" -> "+net.JoinHostPort(s.ChildIP, strconv.Itoa(s.ChildPort)))
	}
	slices.Sort(out)
	return out
}

// TestRootlessPortManagerLogic: with a rootless port manager, every port a
// container publishes is exposed through it (host address and port on the
// parent side, the same port on loopback or the binding's address inside),
// removed at leave, refused publishes are undone, and a restart makes the
// manager expose exactly the published ports.
func TestRootlessPortManagerLogic(t *testing.T) {
	e := newEnv(t)
	m := &fakeManager{refuse: 18999}
	c := e.start(config.OptionRootlessPortManager(m))
	n, err := c.NewNetwork("bridge", "rl", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.81.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	_, sb := joined(t, c, n, "web", OptionPortMapping([]types.PortBinding{
		{Proto: types.TCP, Port: 80, HostPort: 18080},
		{Proto: types.UDP, Port: 53, HostPort: 18053, HostIP: net.ParseIP("127.0.0.1")},
	}))
	want := []string{"tcp4 0.0.0.0:18080 -> 127.0.0.1:18080", "udp4 127.0.0.1:18053 -> 127.0.0.1:18053"}
	if got := m.specs(); !slices.Equal(got, want) {
		t.Fatalf("exposed %v, want %v", got, want)
	}

	// A port the manager refuses: the join fails, nothing is published.
	_, err = n.CreateEndpoint("refused")
	mustf(t, err, "endpoint")
	sb2, err := c.NewSandbox("refused", OptionPortMapping([]types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 18999}}))
	mustf(t, err, "sandbox")
	ep2, _ := n.EndpointByName("refused")
	if err := ep2.Join(sb2); err == nil || !strings.Contains(err.Error(), "18999") {
		t.Fatalf("join whose port the manager refuses: %v", err)
	}
	if strings.Contains(e.nft(), "18999") {
		t.Errorf("the refused port is still in the ruleset")
	}
	if got := m.specs(); !slices.Equal(got, want) {
		t.Errorf("after the refused join the manager exposes %v, want %v", got, want)
	}

	// Restart with a stale port in the manager: it goes, the published
	// ones stay (with their IDs).
	c.Stop()
	_, _ = m.AddPort(context.Background(), port.Spec{Proto: "tcp4", ParentIP: "0.0.0.0", ParentPort: 17777, ChildIP: "127.0.0.1", ChildPort: 17777})
	c = e.start(config.OptionRootlessPortManager(m))
	if got := m.specs(); !slices.Equal(got, want) {
		t.Errorf("after restart the manager exposes %v, want %v", got, want)
	}
	n, _ = c.NetworkByName("rl")
	ep, _ := n.EndpointByName("web")
	sb, _ = c.SandboxByID(sb.ID())
	di, err := ep.DriverInfo()
	mustf(t, err, "driver info")
	if _, ok := di[netlabel.PortMap]; !ok {
		t.Errorf("the endpoint publishes nothing after restart")
	}
	mustf(t, ep.Leave(sb), "leave")
	if got := m.specs(); len(got) != 0 {
		t.Errorf("after leave the manager exposes %v", got)
	}
}
