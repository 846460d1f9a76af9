package globalstore

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netkit/libnetwork/internal/testutil/etcdtest"
	"github.com/netkit/libnetwork/types"
)

// newStore makes a Store on endpoints for t, closed when t ends; mod
// changes the test's defaults first.
func newStore(t testing.TB, endpoints []string, mod func(*Config)) *Store {
	t.Helper()
	cfg := Config{
		Endpoints:      endpoints,
		Prefix:         "/test",
		RequestTimeout: 3 * time.Second,
		LeaseTTL:       2 * time.Second,
		Host:           "h1",
		Logger:         slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// testWriter sends a Store's log to the test's log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// ctxT is a context for one step of a test: generous, so that a slow
// machine does not fail the test, and bounded, so that a bug does not
// hang it.
func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustTxn(t testing.TB, s *Store, ops ...Op) int64 {
	t.Helper()
	rev, err := s.Txn(ctxT(t), ops...)
	if err != nil {
		t.Fatalf("Txn %s: %v", describeOps(ops), err)
	}
	return rev
}

func mustGet(t testing.TB, s *Store, kind, id string) KV {
	t.Helper()
	kv, err := s.Get(ctxT(t), kind, id)
	if err != nil {
		t.Fatalf("Get %s/%s: %v", kind, id, err)
	}
	return kv
}

// deadPort returns a loopback address nobody listens on.
func deadPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestNewRefusesBadConfig: each invalid Config is a BadRequest naming what
// is wrong, found before any connection.
func TestNewRefusesBadConfig(t *testing.T) {
	ep := []string{"127.0.0.1:2379"}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no endpoint", Config{}, "no endpoint"},
		{"scheme", Config{Endpoints: []string{"http://127.0.0.1:2379"}}, "without a scheme"},
		{"no port", Config{Endpoints: []string{"127.0.0.1"}}, "not host:port"},
		{"bad port", Config{Endpoints: []string{"127.0.0.1:99999"}}, "port"},
		{"no host", Config{Endpoints: []string{":2379"}}, "no host"},
		{"prefix", Config{Endpoints: ep, Prefix: "netkit"}, "does not start with '/'"},
		{"timeout", Config{Endpoints: ep, RequestTimeout: -time.Second}, "negative request timeout"},
		{"ttl", Config{Endpoints: ep, LeaseTTL: -time.Second}, "negative lease TTL"},
		{"host", Config{Endpoints: ep, Host: "a/b"}, "host \"a/b\" contains '/'"},
		{"cert without key", Config{Endpoints: ep, CertFile: "/x.pem"}, "both a certificate file"},
		{"missing CA", Config{Endpoints: ep, CAFile: "/nonexistent/ca.pem"}, "kv.cacertfile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.cfg)
			if err == nil {
				s.Close()
				t.Fatal("accepted")
			}
			if !types.IsBadRequest(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v (BadRequest %v), want a BadRequest saying %q", err, types.IsBadRequest(err), tc.want)
			}
		})
	}
}

// TestNewWithoutEtcd: New succeeds with etcd unreachable (a controller
// starts while etcd is down); calls then fail with the typed error naming
// the endpoint, the operation and the key.
func TestNewWithoutEtcd(t *testing.T) {
	addr := deadPort(t)
	s := newStore(t, []string{addr}, func(c *Config) { c.RequestTimeout = 300 * time.Millisecond })
	_, err := s.Get(context.Background(), "network", "n1")
	var ue *UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("Get: %v, want an *UnreachableError", err)
	}
	if _, ok := err.(types.TimeoutError); !ok {
		t.Errorf("%T is not a types.TimeoutError", err)
	}
	for _, want := range []string{"global store at " + addr + " is unreachable", "get network/n1", "connection refused"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// TestBadKeys: kinds and IDs that cannot be keys, and malformed
// transactions, are BadRequests.
func TestBadKeys(t *testing.T) {
	s := newStore(t, []string{deadPort(t)}, func(c *Config) { c.Host = "" })
	ctx := context.Background()
	for _, k := range [][2]string{{"", "x"}, {"net", ""}, {"a/b", "x"}, {"net", "x/y"}, {"net", "x\n"}, {"net", strings.Repeat("x", 256)}, {"net", "\xff"}} {
		if _, err := s.Get(ctx, k[0], k[1]); !types.IsBadRequest(err) {
			t.Errorf("Get(%q, %q): %v, want BadRequest", k[0], k[1], err)
		}
		if _, err := s.Txn(ctx, Create(k[0], k[1], nil)); !types.IsBadRequest(err) {
			t.Errorf("Txn Create(%q, %q): %v, want BadRequest", k[0], k[1], err)
		}
	}
	if _, _, err := s.List(ctx, "a/b"); !types.IsBadRequest(err) {
		t.Errorf("List(a/b): %v", err)
	}
	for name, ops := range map[string][]Op{
		"empty":          nil,
		"update rev 0":   {Update("net", "x", nil, 0)},
		"negative rev":   {Delete("net", "x", -1)},
		"written twice":  {Create("net", "x", nil), Delete("net", "x", 0)},
		"leased no host": {CreateLeased("host", "h1", nil)},
		"zero op":        {{}},
	} {
		if _, err := s.Txn(ctx, ops...); !types.IsBadRequest(err) {
			t.Errorf("%s: Txn: %v, want BadRequest", name, err)
		}
	}
	if _, ok := <-s.Watch(ctx, "a/b"); ok {
		t.Error("Watch of an invalid kind sent an event")
	}
}

// TestCRUD: create, get, list, update and delete with revisions, under the
// prefix and nothing outside it.
func TestCRUD(t *testing.T) {
	srv := etcdtest.Start(t)
	s := newStore(t, srv.Endpoints(), nil)
	ctx := ctxT(t)

	rev := mustTxn(t, s, Create("network", "n1", []byte("one")), Create("network", "n2", []byte("two")))
	kv := mustGet(t, s, "network", "n1")
	if kv.Kind != "network" || kv.ID != "n1" || string(kv.Value) != "one" || kv.ModRev != rev || kv.CreateRev != rev || kv.Lease {
		t.Fatalf("Get: %+v, want network/n1 one at %d", kv, rev)
	}
	if _, err := s.Get(ctx, "network", "n3"); !types.IsNotFound(err) || !strings.Contains(err.Error(), `"n3"`) {
		t.Fatalf("Get of a missing key: %v", err)
	}
	mustTxn(t, s, Create("other", "n1", []byte("x")))

	rev2 := mustTxn(t, s, Update("network", "n1", []byte("uno"), kv.ModRev))
	kv = mustGet(t, s, "network", "n1")
	if string(kv.Value) != "uno" || kv.ModRev != rev2 || kv.CreateRev != rev {
		t.Fatalf("after Update: %+v", kv)
	}
	all, lrev, err := s.List(ctx, "network")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].ID != "n1" || all[1].ID != "n2" || string(all[1].Value) != "two" || lrev < rev2 {
		t.Fatalf("List: %+v at %d", all, lrev)
	}
	mustTxn(t, s, Delete("network", "n1", kv.ModRev), Delete("network", "n2", 0), Delete("network", "never", 0))
	if all, _, err := s.List(ctx, "network"); err != nil || len(all) != 0 {
		t.Fatalf("List after Delete: %v %v", all, err)
	}

	// Keys are <prefix>/<kind>/<id>.
	resp, err := srv.Client().Get(ctx, "/test/other/n1")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "x" {
		t.Fatalf("raw key /test/other/n1: %v %v", resp, err)
	}
}

// TestTxnAllOrNothing: a transaction with one failing compare writes
// nothing, and its ConflictError names the key whose compare failed.
func TestTxnAllOrNothing(t *testing.T) {
	srv := etcdtest.Start(t)
	s := newStore(t, srv.Endpoints(), nil)
	ctx := ctxT(t)
	mustTxn(t, s, Create("ipam", "pool1", []byte("a")))
	p := mustGet(t, s, "ipam", "pool1")
	mustTxn(t, s, Create("ipam", "pool2", []byte("b")))
	q := mustGet(t, s, "ipam", "pool2")

	for _, tc := range []struct {
		name string
		ops  []Op
		want ConflictError
	}{
		{"create existing", []Op{Create("net", "new", []byte("n")), Create("ipam", "pool1", nil)},
			ConflictError{Op: "create", Kind: "ipam", ID: "pool1", Want: 0, Got: p.ModRev}},
		{"stale update", []Op{Create("net", "new", nil), Update("ipam", "pool2", []byte("z"), p.ModRev)},
			ConflictError{Op: "update", Kind: "ipam", ID: "pool2", Want: p.ModRev, Got: q.ModRev}},
		{"update missing", []Op{Update("ipam", "gone", []byte("z"), p.ModRev), Create("net", "new", nil)},
			ConflictError{Op: "update", Kind: "ipam", ID: "gone", Want: p.ModRev, Got: 0}},
		{"check absent", []Op{Delete("ipam", "pool1", p.ModRev), Check("ipam", "pool2", 0)},
			ConflictError{Op: "check", Kind: "ipam", ID: "pool2", Want: 0, Got: q.ModRev}},
		{"stale delete", []Op{Delete("ipam", "pool1", q.ModRev)},
			ConflictError{Op: "delete", Kind: "ipam", ID: "pool1", Want: q.ModRev, Got: p.ModRev}},
		{"exists, absent", []Op{Create("net", "new", nil), Exists("ipam", "pool3")},
			ConflictError{Op: "exists", Kind: "ipam", ID: "pool3", Want: -1, Got: 0}},
		// pool2 was created after pool1: "pool" has a key newer than p.
		{"new under the prefix", []Op{Create("net", "new", nil), NoNewUnder("ipam", "pool", p.ModRev)},
			ConflictError{Op: "no-new-under", Kind: "ipam", ID: "pool", Want: p.ModRev, Got: q.ModRev}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Txn(ctx, tc.ops...)
			var ce *ConflictError
			if !errors.As(err, &ce) {
				t.Fatalf("Txn: %v, want a *ConflictError", err)
			}
			if *ce != tc.want {
				t.Errorf("conflict %+v, want %+v", *ce, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want.Kind+"/"+tc.want.ID) {
				t.Errorf("error %q does not name the key", err)
			}
			if _, ok := err.(types.ForbiddenError); !ok {
				t.Errorf("%T is not a types.ForbiddenError", err)
			}
			if _, ok := err.(types.RetryError); !ok {
				t.Errorf("%T is not a types.RetryError", err)
			}
			// Nothing written.
			if _, err := s.Get(ctx, "net", "new"); !types.IsNotFound(err) {
				t.Errorf("net/new after a failed Txn: %v", err)
			}
			if kv := mustGet(t, s, "ipam", "pool1"); kv.ModRev != p.ModRev || !bytes.Equal(kv.Value, []byte("a")) {
				t.Errorf("pool1 changed: %+v", kv)
			}
			if kv := mustGet(t, s, "ipam", "pool2"); kv.ModRev != q.ModRev {
				t.Errorf("pool2 changed: %+v", kv)
			}
		})
	}
	// A Check that holds lets the writes through.
	mustTxn(t, s, Check("ipam", "pool1", p.ModRev), Check("ipam", "none", 0), Create("net", "new", nil))
	// So do Exists on a key that is there and NoNewUnder on a prefix
	// with nothing newer, or with nothing at all.
	kvs, rev, err := s.ListUnder(ctx, "ipam", "pool")
	if err != nil || len(kvs) != 2 || kvs[0].ID != "pool1" || kvs[1].ID != "pool2" {
		t.Fatalf("ListUnder pool = %+v, %v; want pool1 and pool2", kvs, err)
	}
	if kvs, _, err := s.ListUnder(ctx, "ipam", "pool2"); err != nil || len(kvs) != 1 {
		t.Errorf("ListUnder pool2 = %+v, %v", kvs, err)
	}
	if _, _, err := s.ListUnder(ctx, "ipam", "a/b"); !types.IsBadRequest(err) {
		t.Errorf("ListUnder with a '/' = %v, want BadRequest", err)
	}
	mustTxn(t, s, Exists("ipam", "pool1"), NoNewUnder("ipam", "pool", rev), NoNewUnder("ipam", "none", 1), Create("net", "new2", nil))
	// NoNewUnder's decision holds against a key created after the
	// listing.
	mustTxn(t, s, Create("ipam", "pool9", nil))
	if _, err := s.Txn(ctx, NoNewUnder("ipam", "pool", rev), Create("net", "new3", nil)); !errors.As(err, new(*ConflictError)) {
		t.Errorf("NoNewUnder after a new key: %v, want a *ConflictError", err)
	}
}

// TestTxnRefusedByEtcd: a transaction etcd refuses as malformed (more
// operations than its --max-txn-ops) is a BadRequest quoting etcd, and
// writes nothing.
func TestTxnRefusedByEtcd(t *testing.T) {
	srv := etcdtest.Start(t)
	s := newStore(t, srv.Endpoints(), nil)
	var ops []Op
	for i := range 129 {
		ops = append(ops, Create("ep", strconv.Itoa(i), nil))
	}
	_, err := s.Txn(ctxT(t), ops...)
	if _, ok := err.(types.BadRequestError); !ok || !strings.Contains(err.Error(), "too many operations") {
		t.Fatalf("Txn of 129 ops: %v, want a BadRequest quoting etcd", err)
	}
	if all, _, err := s.List(ctxT(t), "ep"); err != nil || len(all) != 0 {
		t.Fatalf("List after a refused Txn: %v %v", ids(all), err)
	}
}
