package apiserver

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/netkit/libnetwork/rootless/api"
	"github.com/netkit/libnetwork/rootless/port"
	"github.com/netkit/libnetwork/rootless/port/apiclient"
	"github.com/netkit/libnetwork/types"
)

// memManager is a port.ParentDriver's Manager half in memory.
type memManager struct {
	mu    sync.Mutex
	next  int
	ports []port.Status
}

func (m *memManager) AddPort(_ context.Context, s port.Spec) (*port.Status, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if err := port.CheckConflict(s, m.ports); err != nil {
		return nil, err
	}
	m.next++
	st := port.Status{ID: m.next, Spec: s}
	m.ports = append(m.ports, st)
	return &st, nil
}

func (m *memManager) ListPorts(context.Context) ([]port.Status, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.ports), nil
}

func (m *memManager) RemovePort(_ context.Context, id int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, st := range m.ports {
		if st.ID == id {
			m.ports = slices.Delete(m.ports, i, i+1)
			return nil
		}
	}
	return types.NotFoundErrorf("no port %d", id)
}

func (m *memManager) Info(context.Context) (*api.PortDriverInfo, error) {
	return &api.PortDriverInfo{Driver: "mem", Protos: port.Protos}, nil
}

// TestClientAndServer: the handler speaks the API the client (written
// against rootlesskit's own socket) expects.
func TestClientAndServer(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "api.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: NewHandler(&memManager{})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	c, err := apiclient.New(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	info, err := c.Info(ctx)
	if err != nil || info.APIVersion != APIVersion || info.PortDriver == nil || info.PortDriver.Driver != "mem" {
		t.Fatalf("info %+v, %v", info, err)
	}
	spec := port.Spec{Proto: "tcp4", ParentIP: "127.0.0.1", ParentPort: 18080, ChildIP: "127.0.0.1", ChildPort: 80}
	st, err := c.AddPort(ctx, spec)
	if err != nil || st.ID != 1 || st.Spec != spec {
		t.Fatalf("AddPort: %+v, %v", st, err)
	}
	if _, err := c.AddPort(ctx, spec); err == nil {
		t.Fatal("a conflicting AddPort succeeded")
	}
	ports, err := c.ListPorts(ctx)
	if err != nil || len(ports) != 1 || ports[0] != *st {
		t.Fatalf("ListPorts: %v, %v", ports, err)
	}
	if err := c.RemovePort(ctx, st.ID); err != nil {
		t.Fatalf("RemovePort: %v", err)
	}
	if err := c.RemovePort(ctx, st.ID); !types.IsNotFound(err) {
		t.Fatalf("RemovePort of a removed port: %v, want NotFound", err)
	}
	if ports, _ := c.ListPorts(ctx); len(ports) != 0 {
		t.Fatalf("ports left: %v", ports)
	}
}
