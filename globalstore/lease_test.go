package globalstore

import (
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netkit/libnetwork/internal/testutil/etcdtest"
	"github.com/netkit/libnetwork/types"
)

// TestLeaseHolderGone: a host that dies (no Close, no revoke) has its
// leased keys removed by etcd after the TTL; another host's watch sees the
// deletes. Its keys that are not leased stay.
func TestLeaseHolderGone(t *testing.T) {
	t.Parallel() // mostly waiting on etcd or on a TTL
	srv := etcdtest.Start(t)
	h1 := newStore(t, srv.Endpoints(), func(c *Config) { c.Host = "h1" })
	h2 := newStore(t, srv.Endpoints(), func(c *Config) { c.Host = "h2" })
	mustTxn(t, h1, CreateLeased("peer", "h1-a", []byte("a")), CreateLeased("peer", "h1-b", []byte("b")), Create("network", "n1", nil))
	mustTxn(t, h2, CreateLeased("peer", "h2-a", []byte("x")))
	if kv := mustGet(t, h2, "peer", "h1-a"); !kv.Lease {
		t.Errorf("h1-a not leased: %+v", kv)
	}

	ch := h2.Watch(ctxT(t), "peer")
	expectReset(t, ch, "h1-a=a", "h1-b=b", "h2-a=x")
	h1.abandon()
	got := map[string]EventType{}
	for len(got) < 2 {
		ev := next(t, ch)
		got[ev.KV.ID] = ev.Type
	}
	if got["h1-a"] != EventDelete || got["h1-b"] != EventDelete {
		t.Fatalf("events after h1 died: %v, want deletes of h1-a and h1-b", got)
	}
	mustGet(t, h2, "peer", "h2-a")
	mustGet(t, h2, "network", "n1")
}

// TestLeaseClose: Close revokes the lease, so the leased keys go at once.
func TestLeaseClose(t *testing.T) {
	srv := etcdtest.Start(t)
	h1 := newStore(t, srv.Endpoints(), func(c *Config) { c.LeaseTTL = time.Hour })
	h2 := newStore(t, srv.Endpoints(), nil)
	mustTxn(t, h1, CreateLeased("peer", "h1", nil))
	ch := h2.Watch(ctxT(t), "peer")
	expectReset(t, ch, "h1=")
	h1.Close()
	expect(t, ch, EventDelete, "h1", "")
}

// TestLeaseRevokedComesBack: when the host lease is revoked behind the
// Store's back (as etcd does when it expires), the Store grants a new one
// and puts back the keys it holds leased, with their latest values; a key
// it deleted stays deleted; an update keeps a key leased.
func TestLeaseRevokedComesBack(t *testing.T) {
	t.Parallel() // mostly waiting on etcd or on a TTL
	srv := etcdtest.Start(t)
	h1 := newStore(t, srv.Endpoints(), nil)
	h2 := newStore(t, srv.Endpoints(), func(c *Config) { c.Host = "h2" })
	mustTxn(t, h1, CreateLeased("peer", "a", []byte("1")), CreateLeased("peer", "b", []byte("2")), CreateLeased("peer", "c", []byte("3")))
	a := mustGet(t, h1, "peer", "a")
	mustTxn(t, h1, Update("peer", "a", []byte("11"), a.ModRev), Delete("peer", "c", 0))
	if kv := mustGet(t, h1, "peer", "a"); !kv.Lease {
		t.Fatalf("updated leased key lost its lease: %+v", kv)
	}
	// A delete that fails still gives the key up: its outcome may be
	// unknown, and the caller meant it gone.
	mustTxn(t, h1, CreateLeased("peer", "f", nil))
	if _, err := h1.Txn(ctxT(t), Delete("peer", "f", 1)); !errors.As(err, new(*ConflictError)) {
		t.Fatalf("Delete with a stale revision: %v", err)
	}
	h1.mu.Lock()
	_, held := h1.leased[h1.key("peer", "f")]
	h1.mu.Unlock()
	if held {
		t.Error("peer/f still held for re-put after a delete of it failed")
	}

	ch := h2.Watch(ctxT(t), "peer")
	expectReset(t, ch, "a=11", "b=2", "f=")
	old := h1.currentLease()
	if _, err := srv.Client().Revoke(ctxT(t), old); err != nil {
		t.Fatal(err)
	}
	// Deleted with the lease, then put back; f stays deleted.
	want := map[string]string{"a": "11", "b": "2"}
	deleted, put := map[string]bool{}, map[string]bool{}
	for len(put) < 2 {
		ev := next(t, ch)
		switch {
		case ev.Type == EventDelete && !put[ev.KV.ID]:
			deleted[ev.KV.ID] = true
		case ev.Type == EventPut && deleted[ev.KV.ID] && string(ev.KV.Value) == want[ev.KV.ID] && ev.KV.Lease:
			put[ev.KV.ID] = true
		default:
			t.Fatalf("unexpected event %v %+v", ev.Type, ev.KV)
		}
	}
	for _, id := range []string{"c", "f"} {
		if _, err := h2.Get(ctxT(t), "peer", id); !types.IsNotFound(err) {
			t.Errorf("peer/%s, deleted by its holder, came back: %v", id, err)
		}
	}
	if id := h1.currentLease(); id == old || id == 0 {
		t.Errorf("lease %x after revoking %x", id, old)
	}
	// The new lease is kept alive: writes with it work.
	mustTxn(t, h1, CreateLeased("peer", "d", nil))
	// A leased write racing the loss of the lease is retried with a new one.
	if _, err := srv.Client().Revoke(ctxT(t), h1.currentLease()); err != nil {
		t.Fatal(err)
	}
	mustTxn(t, h1, CreateLeased("peer", "e", nil))
}

// TestLeaseLostInPartition: a host cut off from etcd for longer than the
// TTL loses its leased keys (the other hosts see them go); when it is back
// it puts them back by itself, without a restart.
func TestLeaseLostInPartition(t *testing.T) {
	t.Parallel() // mostly waiting on etcd or on a TTL
	srv := etcdtest.Start(t)
	proxy := etcdtest.NewProxy(t, srv.Endpoints()[0])
	h1 := newStore(t, []string{proxy.Addr()}, nil)
	h2 := newStore(t, srv.Endpoints(), func(c *Config) { c.Host = "h2" })
	mustTxn(t, h1, CreateLeased("peer", "h1", []byte("vtep1")))
	ch := h2.Watch(ctxT(t), "peer")
	expectReset(t, ch, "h1=vtep1")

	proxy.Cut()
	expect(t, ch, EventDelete, "h1", "")
	proxy.Restore()
	if ev := expect(t, ch, EventPut, "h1", "vtep1"); !ev.KV.Lease {
		t.Errorf("put back without a lease: %+v", ev.KV)
	}
}

// TestLeaseLostKeyTakenMeanwhile: a key of a host cut off for longer than
// its TTL goes with its lease; another host takes it (the same address,
// say). When the first host is back it puts back its other keys but
// leaves that one to its new holder, and stops minding it.
func TestLeaseLostKeyTakenMeanwhile(t *testing.T) {
	t.Parallel() // mostly waiting on etcd or on a TTL
	srv := etcdtest.Start(t)
	proxy := etcdtest.NewProxy(t, srv.Endpoints()[0])
	h1 := newStore(t, []string{proxy.Addr()}, nil)
	h2 := newStore(t, srv.Endpoints(), func(c *Config) { c.Host = "h2" })
	mustTxn(t, h1, CreateLeased("addr", "10.0.0.2", []byte("h1")), CreateLeased("addr", "10.0.0.3", []byte("h1")))
	ch := h2.Watch(ctxT(t), "addr")
	expectReset(t, ch, "10.0.0.2=h1", "10.0.0.3=h1")

	proxy.Cut()
	expect(t, ch, EventDelete, "10.0.0.2", "")
	expect(t, ch, EventDelete, "10.0.0.3", "")
	mustTxn(t, h2, CreateLeased("addr", "10.0.0.2", []byte("h2")))
	expect(t, ch, EventPut, "10.0.0.2", "h2")
	proxy.Restore()
	expect(t, ch, EventPut, "10.0.0.3", "h1")
	if kv := mustGet(t, h2, "addr", "10.0.0.2"); string(kv.Value) != "h2" {
		t.Errorf("10.0.0.2 = %q after host 1 came back, want h2's", kv.Value)
	}
	h1.mu.Lock()
	_, held := h1.leased[h1.key("addr", "10.0.0.2")]
	h1.mu.Unlock()
	if held {
		t.Error("host 1 still minds a key another host holds")
	}
}

// TestLeaseOutlivesEtcdRestart: etcd down for longer than the TTL. etcd
// extends leases when it restarts, so the keys survive; the Store, which
// heard nothing for a TTL, moves them to a new lease it keeps alive, and
// lets the old one go.
func TestLeaseOutlivesEtcdRestart(t *testing.T) {
	t.Parallel() // mostly waiting on etcd or on a TTL
	srv := etcdtest.Start(t)
	h1 := newStore(t, srv.Endpoints(), nil)
	mustTxn(t, h1, CreateLeased("peer", "h1", []byte("vtep1")))
	old := h1.currentLease()
	// Let a keep-alive answer first (they go every TTL/3): before the first
	// answer, the client waits its first-keep-alive timeout (longer than
	// the outage below) before it calls the lease lost, and would never
	// move the key. CI hit that once, stopping etcd 2 ms after the grant.
	time.Sleep(time.Second)
	srv.Stop()
	time.Sleep(3 * time.Second) // longer than the 2 s TTL
	srv.Start()

	cli := srv.Client()
	deadline := time.Now().Add(eventWait)
	for {
		resp, err := cli.Get(ctxT(t), "/test/peer/h1")
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("peer/h1 after the restart: %v %v", resp, err)
		}
		lease := clientv3.LeaseID(resp.Kvs[0].Lease)
		if lease != old {
			ttl, err := cli.TimeToLive(ctxT(t), lease)
			if err != nil || ttl.TTL <= 0 {
				t.Fatalf("new lease %x: %+v %v", lease, ttl, err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("peer/h1 still on lease %x", old)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The old lease goes; the key stays.
	for {
		ttl, err := cli.TimeToLive(ctxT(t), old)
		if err != nil {
			t.Fatal(err)
		}
		if ttl.TTL == -1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("old lease %x still there: TTL %d", old, ttl.TTL)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if kv := mustGet(t, h1, "peer", "h1"); string(kv.Value) != "vtep1" || !kv.Lease {
		t.Errorf("peer/h1: %+v", kv)
	}
}
