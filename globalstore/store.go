// Package globalstore keeps the global state of multi-host networks in
// etcd: records of any kind under <prefix>/<kind>/<id>, written by
// transactions that compare revisions so that hosts never race, watched
// with a listing that survives outages, and bound to a host lease when they
// describe a host's presence so that etcd removes them when the host is
// gone for good.
//
// A Store does not need etcd to be reachable to be made: a controller
// starts while etcd is down, its calls fail with an *UnreachableError
// until etcd answers, and then succeed on the same Store. Every call is
// bounded by Config.RequestTimeout.
//
// Lock order: txnMu, then grantSem, then mu.
package globalstore

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/netkit/libnetwork/types"
)

// Reconnection backoff of the gRPC connection. gRPC's default grows to two
// minutes, which would leave a host cut off long after etcd is back; etcd
// is a handful of endpoints, so retrying every second at most costs
// nothing.
var reconnectBackoff = backoff.Config{
	BaseDelay:  50 * time.Millisecond,
	Multiplier: 1.6,
	Jitter:     0.2,
	MaxDelay:   time.Second,
}

// Store is a client of the global store. Its methods are safe for
// concurrent use.
type Store struct {
	cfg *config
	cli *clientv3.Client
	log *slog.Logger

	// ctx ends when the Store is closed; it stops the watches and the
	// lease keeper.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // watch and lease goroutines

	// grantSem serializes granting the host lease, so that concurrent
	// transactions and the lease keeper grant one lease, not several.
	grantSem chan struct{}
	// leaseChanged wakes the lease keeper when a new lease was granted.
	leaseChanged chan struct{}

	// txnMu orders transactions against the re-put of leased keys: a
	// transaction holds it shared from its write to its bookkeeping in
	// leased, the re-put holds it exclusively for each key, so a key this
	// Store has just deleted is never put back.
	txnMu sync.RWMutex

	mu sync.Mutex
	// closed is set by Close; no goroutine starts after it.
	closed bool
	// leaseID is the host lease, 0 when none is granted or it was lost.
	leaseID clientv3.LeaseID
	// granted holds every lease this Store was granted, to tell its own
	// keys from others' when it puts them back.
	granted map[clientv3.LeaseID]bool
	// keeper says whether the lease keeper runs.
	keeper bool
	// leased holds the keys this Store wrote bound to its lease and has not
	// deleted, with their values, to put them back under a new lease when
	// the lease is lost.
	leased map[string][]byte
}

// KV is a record of the store.
type KV struct {
	Kind, ID string
	Value    []byte
	// ModRev is the revision of the key's last write: give it to Update,
	// Delete or Check to write only if nobody wrote since.
	ModRev int64
	// CreateRev is the revision that created the key.
	CreateRev int64
	// Lease says whether the key is bound to a host lease.
	Lease bool
}

// New makes a Store for cfg. It validates cfg (a types.BadRequestError
// names what is wrong, including TLS files it cannot read) but does not
// wait for etcd: it connects in the background and reconnects whenever
// the connection is lost.
func New(cfg Config) (*Store, error) {
	c, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            c.urls,
		DialTimeout:          c.DialTimeout,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: c.RequestTimeout,
		TLS:                  c.tls,
		Logger:               zap.NewNop(),
		DialOptions: []grpc.DialOption{
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           reconnectBackoff,
				MinConnectTimeout: c.DialTimeout,
			}),
			grpc.WithChainUnaryInterceptor(noteErrors),
		},
	})
	if err != nil {
		return nil, types.BadRequestErrorf("global store at %s: %w", strings.Join(c.Endpoints, ","), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Store{
		cfg:          c,
		cli:          cli,
		log:          c.Logger.With("globalstore", strings.Join(c.Endpoints, ","), "host", c.Host),
		ctx:          ctx,
		cancel:       cancel,
		grantSem:     make(chan struct{}, 1),
		leaseChanged: make(chan struct{}, 1),
		leased:       map[string][]byte{},
	}, nil
}

// Endpoints returns etcd's endpoints as configured.
func (s *Store) Endpoints() []string { return append([]string(nil), s.cfg.Endpoints...) }

// Prefix returns the key prefix, without a trailing '/'.
func (s *Store) Prefix() string { return s.cfg.Prefix }

// Close revokes the host lease, so that etcd removes this host's leased
// keys at once, stops the watches (closing their channels) and the lease
// keeper, and closes the connection. The revoke is bounded by the request
// timeout and at most 2 s; if etcd is unreachable, the keys go when the
// lease expires. Close is idempotent.
func (s *Store) Close() error {
	return s.shutdown(true)
}

// Detach closes the Store without revoking the host lease: its keys stay
// until the lease expires, so a host whose process restarts within the
// lease's TTL (its kernel state running on meanwhile) is not seen to go
// away. Detach, like Close, is idempotent.
func (s *Store) Detach() error {
	return s.shutdown(false)
}

// abandon closes the Store as if its host had died: the lease is not
// revoked, so its keys stay until the lease expires.
func (s *Store) abandon() {
	_ = s.shutdown(false)
}

// shutdown stops the goroutines (the keeper first, so that it does not
// grant a new lease when it sees the revoke), revokes the lease if asked,
// and closes the connection.
func (s *Store) shutdown(revoke bool) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	s.mu.Lock()
	id := s.leaseID
	s.leaseID = 0
	s.mu.Unlock()
	if revoke && id != 0 {
		ctx, cancel := context.WithTimeout(context.Background(), min(s.cfg.RequestTimeout, 2*time.Second))
		if _, err := s.cli.Revoke(ctx, id); err != nil {
			s.log.Warn("global store: revoking the host lease on close failed; its keys go when it expires", "lease", int64(id), "error", err)
		}
		cancel()
	}
	return s.cli.Close()
}

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// key returns the etcd key of kind and id.
func (s *Store) key(kind, id string) string {
	return s.cfg.Prefix + "/" + kind + "/" + id
}

// kindPrefix returns the prefix of every key of kind.
func (s *Store) kindPrefix(kind string) string {
	return s.cfg.Prefix + "/" + kind + "/"
}

// callCtx bounds a call by the request timeout, and carries a connNote.
func (s *Store) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx = context.WithValue(ctx, connNoteKey{}, new(connNote))
	return context.WithTimeout(ctx, s.cfg.RequestTimeout)
}

// connNote keeps the last gRPC error of a call. etcd's client returns the
// bare context error when a call times out, but gRPC's error says why the
// connection failed (refused, TLS handshake refused): errors quote it.
type connNote struct {
	err atomic.Pointer[error]
}

type connNoteKey struct{}

// noteErrors is a gRPC interceptor, inside etcd's, that keeps each call's
// error in the call's connNote.
func noteErrors(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	if n, ok := ctx.Value(connNoteKey{}).(*connNote); ok && err != nil {
		n.err.Store(&err)
	}
	return err
}

// lastGRPCError returns the last gRPC error noted in ctx, or nil.
func lastGRPCError(ctx context.Context) error {
	if n, ok := ctx.Value(connNoteKey{}).(*connNote); ok {
		if p := n.err.Load(); p != nil {
			return *p
		}
	}
	return nil
}

// kv converts a key-value of kind from etcd.
func (s *Store) kv(kind string, e *mvccpb.KeyValue) KV {
	return KV{
		Kind:      kind,
		ID:        strings.TrimPrefix(string(e.Key), s.kindPrefix(kind)),
		Value:     e.Value,
		ModRev:    e.ModRevision,
		CreateRev: e.CreateRevision,
		Lease:     e.Lease != 0,
	}
}

// Get returns the record kind/id; a types.NotFoundError when there is none.
func (s *Store) Get(ctx context.Context, kind, id string) (KV, error) {
	if err := validKey(kind, id); err != nil {
		return KV{}, err
	}
	if s.isClosed() {
		return KV{}, errClosed("get", kind+"/"+id)
	}
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	resp, err := s.cli.Get(cctx, s.key(kind, id))
	if err != nil {
		return KV{}, s.callError(ctx, cctx, "get", kind+"/"+id, err)
	}
	if len(resp.Kvs) == 0 {
		return KV{}, types.NotFoundErrorf("global store: %s %q not found", kind, id)
	}
	return s.kv(kind, resp.Kvs[0]), nil
}

// List returns every record of kind, ordered by ID, and the store revision
// the listing is a snapshot of.
func (s *Store) List(ctx context.Context, kind string) ([]KV, int64, error) {
	return s.ListUnder(ctx, kind, "")
}

// ListUnder is List of the keys of kind whose ID starts with idPrefix.
func (s *Store) ListUnder(ctx context.Context, kind, idPrefix string) ([]KV, int64, error) {
	if err := validName("kind", kind); err != nil {
		return nil, 0, err
	}
	if strings.Contains(idPrefix, "/") {
		return nil, 0, types.BadRequestErrorf("global store: ID prefix %q contains '/'", idPrefix)
	}
	if s.isClosed() {
		return nil, 0, errClosed("list", kind)
	}
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	resp, err := s.cli.Get(cctx, s.kindPrefix(kind)+idPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, s.callError(ctx, cctx, "list", kind, err)
	}
	kvs := make([]KV, 0, len(resp.Kvs))
	for _, e := range resp.Kvs {
		kvs = append(kvs, s.kv(kind, e))
	}
	return kvs, resp.Header.Revision, nil
}

func validKey(kind, id string) error {
	if err := validName("kind", kind); err != nil {
		return err
	}
	return validName("ID", id)
}
