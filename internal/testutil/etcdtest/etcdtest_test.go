package etcdtest

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestRestartKeepsData: a key written before Stop is there after Start, on
// the same endpoint, and Kill stops the process too.
func TestRestartKeepsData(t *testing.T) {
	s := Start(t)
	cli := s.Client()
	if _, err := cli.Put(ctxT(t), "/k", "v"); err != nil {
		t.Fatal(err)
	}
	pid := s.PID()
	s.Stop()
	if s.PID() != 0 {
		t.Fatal("PID after Stop")
	}
	if _, err := os.Stat(filepath.Join("/proc", itoa(pid))); err == nil {
		t.Fatalf("etcd %d still running after Stop", pid)
	}
	s.Start()
	resp, err := cli.Get(ctxT(t), "/k")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("after restart: %v", resp.Kvs)
	}
	s.Kill()
	s.Start()
	if _, err := cli.Get(ctxT(t), "/k"); err != nil {
		t.Fatal(err)
	}
}

// TestTLS: a server made by StartTLS serves https with client certificates.
func TestTLS(t *testing.T) {
	s := StartTLS(t)
	if s.TLS() == nil || s.URLs()[0][:8] != "https://" {
		t.Fatalf("TLS %v URLs %v", s.TLS(), s.URLs())
	}
	if _, err := s.Client().Put(ctxT(t), "/k", "v"); err != nil {
		t.Fatal(err)
	}
}

// TestProxyCut: through a cut proxy a request fails; restored, it works.
func TestProxyCut(t *testing.T) {
	s := Start(t)
	p := NewProxy(t, s.Endpoints()[0])
	srv := &Server{t: t, clientPort: port(t, p.Addr())}
	cli := srv.Client()
	if _, err := cli.Put(ctxT(t), "/k", "v"); err != nil {
		t.Fatal(err)
	}
	p.Cut()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := cli.Get(ctx, "/k"); err == nil {
		t.Fatal("Get through a cut proxy succeeded")
	}
	p.Restore()
	if _, err := cli.Get(ctxT(t), "/k"); err != nil {
		t.Fatal(err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func port(t *testing.T, addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}
