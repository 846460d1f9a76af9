package globalstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/netkit/libnetwork/internal/testutil/etcdtest"
	"github.com/netkit/libnetwork/types"
)

// TestOutage: with etcd stopped, Get, List and Txn fail with an
// *UnreachableError (types.Timeout) naming the endpoint, the operation and
// the key, and write nothing; once etcd is back the same Store works.
func TestOutage(t *testing.T) {
	t.Parallel() // mostly waiting on etcd or on a TTL
	srv := etcdtest.Start(t)
	s := newStore(t, srv.Endpoints(), func(c *Config) { c.RequestTimeout = 500 * time.Millisecond })
	mustTxn(t, s, Create("network", "n1", []byte("one")))
	ch := s.Watch(ctxT(t), "network")
	expectReset(t, ch, "n1=one")

	srv.Stop()
	ep := srv.Endpoints()[0]
	checks := []struct {
		name string
		call func(ctx context.Context) error
		says string
	}{
		{"get", func(ctx context.Context) error { _, err := s.Get(ctx, "network", "n1"); return err }, "get network/n1"},
		{"list", func(ctx context.Context) error { _, _, err := s.List(ctx, "network"); return err }, "list network"},
		{"txn", func(ctx context.Context) error {
			_, err := s.Txn(ctx, Create("network", "n2", nil))
			return err
		}, "txn [create network/n2]"},
		{"leased txn", func(ctx context.Context) error {
			_, err := s.Txn(ctx, CreateLeased("host", "h1", nil))
			return err
		}, "txn [create host/h1]"},
	}
	for _, c := range checks {
		// The caller's longer deadline is cut to the request timeout.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := c.call(ctx)
		cancel()
		var ue *UnreachableError
		if !errors.As(err, &ue) {
			t.Fatalf("%s with etcd down: %v, want an *UnreachableError", c.name, err)
		}
		if _, ok := err.(types.TimeoutError); !ok {
			t.Errorf("%s: %T is not a types.TimeoutError", c.name, err)
		}
		for _, want := range []string{"global store at " + ep + " is unreachable", c.says} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q does not say %q", c.name, err, want)
			}
		}
	}
	// A caller's own cancellation is not an outage.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := s.Get(ctx, "network", "n1"); !errors.Is(err, context.Canceled) || errors.As(err, new(*UnreachableError)) {
		t.Errorf("Get canceled by its caller: %v", err)
	}

	srv.Start()
	writeEventually(t, s, Create("network", "n3", []byte("three")))
	if kv := mustGet(t, s, "network", "n1"); string(kv.Value) != "one" {
		t.Errorf("n1 after the outage: %+v", kv)
	}
	if _, err := s.Get(ctxT(t), "network", "n2"); !types.IsNotFound(err) {
		t.Errorf("n2, created while etcd was down: %v", err)
	}
	// The watch carried on: it sees the write after the outage.
	expect(t, ch, EventPut, "n3", "three")
	mustTxn(t, s, CreateLeased("host", "h1", nil))
}
