package globalstore

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/netkit/libnetwork/internal/testutil/etcdtest"
)

// eventWait bounds how long a test waits for an event: generous, the
// tests assert what arrives, never how fast.
const eventWait = 20 * time.Second

// next returns the next event of ch, failing t if none comes or ch closes.
func next(t testing.TB, ch <-chan Event) Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return ev
	case <-time.After(eventWait):
		t.Fatalf("no event within %v", eventWait)
	}
	return Event{}
}

// expect reads the next event of ch and checks its type, ID and value.
func expect(t testing.TB, ch <-chan Event, typ EventType, id, val string) Event {
	t.Helper()
	ev := next(t, ch)
	if ev.Type != typ || ev.KV.ID != id || string(ev.KV.Value) != val {
		t.Fatalf("event %v %s=%q, want %v %s=%q", ev.Type, ev.KV.ID, ev.KV.Value, typ, id, val)
	}
	return ev
}

// ids returns "id=value" of each record, in order.
func ids(kvs []KV) []string {
	var out []string
	for _, kv := range kvs {
		out = append(out, fmt.Sprintf("%s=%s", kv.ID, kv.Value))
	}
	return out
}

func expectReset(t testing.TB, ch <-chan Event, want ...string) Event {
	t.Helper()
	ev := next(t, ch)
	if ev.Type != EventReset || !slices.Equal(ids(ev.All), want) {
		t.Fatalf("event %v %v, want a reset with %v", ev.Type, ids(ev.All), want)
	}
	return ev
}

// TestWatchOrder: a reset with the current records first, then puts and
// deletes of the kind (and only of it) in order, each with its revision.
func TestWatchOrder(t *testing.T) {
	srv := etcdtest.Start(t)
	s := newStore(t, srv.Endpoints(), nil)
	mustTxn(t, s, Create("ep", "a", []byte("1")), Create("ep", "b", []byte("2")), Create("other", "x", nil))
	ctx, cancel := context.WithCancel(ctxT(t))
	ch := s.Watch(ctx, "ep")
	expectReset(t, ch, "a=1", "b=2")

	b := mustGet(t, s, "ep", "b")
	rev1 := mustTxn(t, s, Create("ep", "c", []byte("3")), Create("other", "y", nil))
	rev2 := mustTxn(t, s, Update("ep", "b", []byte("22"), b.ModRev))
	rev3 := mustTxn(t, s, Delete("ep", "a", 0))
	if ev := expect(t, ch, EventPut, "c", "3"); ev.KV.ModRev != rev1 || ev.KV.CreateRev != rev1 || ev.KV.Kind != "ep" {
		t.Errorf("put c: %+v, want at %d", ev.KV, rev1)
	}
	if ev := expect(t, ch, EventPut, "b", "22"); ev.KV.ModRev != rev2 {
		t.Errorf("put b: %+v, want at %d", ev.KV, rev2)
	}
	if ev := expect(t, ch, EventDelete, "a", ""); ev.KV.ModRev != rev3 {
		t.Errorf("delete a: %+v, want at %d", ev.KV, rev3)
	}
	cancel()
	for range ch { // closes when ctx is done
	}

	// A second watch starts with the records as they are now; Close ends it.
	ch = s.Watch(ctxT(t), "ep")
	expectReset(t, ch, "b=22", "c=3")
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	for range ch {
	}
	if _, ok := <-s.Watch(ctxT(t), "ep"); ok {
		t.Error("Watch on a closed Store sent an event")
	}
}

// TestWatchSurvivesRestart: etcd stopped and started again under a watch;
// a write after it is delivered on the same channel, without a reset
// (nothing was lost).
func TestWatchSurvivesRestart(t *testing.T) {
	t.Parallel() // mostly waiting on etcd or on a TTL
	srv := etcdtest.Start(t)
	s := newStore(t, srv.Endpoints(), nil)
	ch := s.Watch(ctxT(t), "ep")
	expectReset(t, ch)
	mustTxn(t, s, Create("ep", "a", []byte("1")))
	expect(t, ch, EventPut, "a", "1")

	srv.Stop()
	srv.Start()
	// The Store reconnects by itself: the first write may still wait for
	// it within its request timeout, retried until it goes through.
	writeEventually(t, s, Create("ep", "b", []byte("2")))
	expect(t, ch, EventPut, "b", "2")

	srv.Kill()
	srv.Start()
	writeEventually(t, s, Delete("ep", "a", 0))
	expect(t, ch, EventDelete, "a", "")
}

// writeEventually retries a Txn while etcd is unreachable.
func writeEventually(t testing.TB, s *Store, ops ...Op) int64 {
	t.Helper()
	deadline := time.Now().Add(eventWait)
	for {
		rev, err := s.Txn(context.Background(), ops...)
		if err == nil {
			return rev
		}
		if _, ok := err.(*UnreachableError); !ok || time.Now().After(deadline) {
			t.Fatalf("Txn %s: %v", describeOps(ops), err)
		}
	}
}

// TestWatchCompacted: while a watcher is cut off from etcd, records change
// and the history is compacted; when it is back it cannot resume, so it
// sends a reset with the records as they are, and follows on from there.
func TestWatchCompacted(t *testing.T) {
	srv := etcdtest.Start(t)
	proxy := etcdtest.NewProxy(t, srv.Endpoints()[0])
	writer := newStore(t, srv.Endpoints(), nil)
	watcher := newStore(t, []string{proxy.Addr()}, nil)

	mustTxn(t, writer, Create("ep", "a", []byte("1")), Create("ep", "b", []byte("2")))
	ch := watcher.Watch(ctxT(t), "ep")
	expectReset(t, ch, "a=1", "b=2")
	mustTxn(t, writer, Create("ep", "c", []byte("3")))
	expect(t, ch, EventPut, "c", "3") // the watch is established

	proxy.Cut()
	mustTxn(t, writer, Delete("ep", "a", 0))
	b := mustGet(t, writer, "ep", "b")
	rev := mustTxn(t, writer, Update("ep", "b", []byte("22"), b.ModRev), Create("ep", "d", []byte("4")))
	if _, err := srv.Client().Compact(ctxT(t), rev); err != nil {
		t.Fatal(err)
	}
	proxy.Restore()

	expectReset(t, ch, "b=22", "c=3", "d=4")
	mustTxn(t, writer, Delete("ep", "c", 0))
	expect(t, ch, EventDelete, "c", "")
}

// TestWatchResumesAfterCut: cut off without compaction, the watcher resumes
// after its last revision and delivers what it missed as events, in order.
func TestWatchResumesAfterCut(t *testing.T) {
	srv := etcdtest.Start(t)
	proxy := etcdtest.NewProxy(t, srv.Endpoints()[0])
	writer := newStore(t, srv.Endpoints(), nil)
	watcher := newStore(t, []string{proxy.Addr()}, nil)

	ch := watcher.Watch(ctxT(t), "ep")
	expectReset(t, ch)
	mustTxn(t, writer, Create("ep", "a", []byte("1")))
	expect(t, ch, EventPut, "a", "1")
	proxy.Cut()
	mustTxn(t, writer, Create("ep", "b", []byte("2")))
	mustTxn(t, writer, Delete("ep", "a", 0))
	proxy.Restore()
	expect(t, ch, EventPut, "b", "2")
	expect(t, ch, EventDelete, "a", "")
}
