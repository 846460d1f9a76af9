package globalstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netkit/libnetwork/types"
)

type opType int

const (
	opCreate opType = iota + 1
	opUpdate
	opDelete
	opCheck
	opPut
	opExists
	opNoNewUnder
)

func (t opType) String() string {
	switch t {
	case opCreate:
		return "create"
	case opUpdate:
		return "update"
	case opDelete:
		return "delete"
	case opCheck:
		return "check"
	case opPut:
		return "put"
	case opExists:
		return "exists"
	case opNoNewUnder:
		return "no-new-under"
	}
	return "op?"
}

// Op is one operation of a transaction on a key: a compare (except for Put
// and unconditional Delete) and a write (except for Check). Make it with
// Create, CreateLeased, Update, UpdateLeased, Delete, Check, Put or
// PutLeased.
type Op struct {
	typ    opType
	kind   string
	id     string
	val    []byte
	modRev int64
	leased bool
}

// Create puts kind/id with val if the key does not exist.
func Create(kind, id string, val []byte) Op {
	return Op{typ: opCreate, kind: kind, id: id, val: val}
}

// CreateLeased is Create with the key bound to the host lease (granted at
// the first use; Config.Host is required): etcd removes the key when the
// host is gone for longer than the lease TTL, and the Store puts it back if
// it lost its lease but is alive.
func CreateLeased(kind, id string, val []byte) Op {
	return Op{typ: opCreate, kind: kind, id: id, val: val, leased: true}
}

// Update puts val in kind/id if the key's mod revision is modRev (from Get,
// List or Watch), that is if nobody wrote it since it was read. A key this
// Store created with CreateLeased stays bound to the host lease.
func Update(kind, id string, val []byte, modRev int64) Op {
	return Op{typ: opUpdate, kind: kind, id: id, val: val, modRev: modRev}
}

// UpdateLeased is Update with the key bound to the host lease, as
// CreateLeased binds it: a host taking back a key it wrote before a
// restart (under a lease that may still run) binds it to its new lease.
func UpdateLeased(kind, id string, val []byte, modRev int64) Op {
	return Op{typ: opUpdate, kind: kind, id: id, val: val, modRev: modRev, leased: true}
}

// Put puts val in kind/id whatever the key holds: for a key only one host
// writes.
func Put(kind, id string, val []byte) Op {
	return Op{typ: opPut, kind: kind, id: id, val: val}
}

// PutLeased is Put with the key bound to the host lease.
func PutLeased(kind, id string, val []byte) Op {
	return Op{typ: opPut, kind: kind, id: id, val: val, leased: true}
}

// Delete deletes kind/id if its mod revision is modRev; with modRev 0 it
// deletes it whatever its revision, and succeeds if it does not exist.
func Delete(kind, id string, modRev int64) Op {
	return Op{typ: opDelete, kind: kind, id: id, modRev: modRev}
}

// Check writes nothing: the transaction goes through only if kind/id is at
// mod revision modRev, or with modRev 0 does not exist.
func Check(kind, id string, modRev int64) Op {
	return Op{typ: opCheck, kind: kind, id: id, modRev: modRev}
}

// Exists writes nothing: the transaction goes through only if kind/id
// exists, whatever its revision.
func Exists(kind, id string) Op {
	return Op{typ: opExists, kind: kind, id: id}
}

// NoNewUnder writes nothing: the transaction goes through only if no key
// of kind whose ID starts with idPrefix was created after store revision
// rev (as List returns it). Listing, then writing with NoNewUnder, is a
// decision on the keys under idPrefix that no key created meanwhile
// escapes.
func NoNewUnder(kind, idPrefix string, rev int64) Op {
	return Op{typ: opNoNewUnder, kind: kind, id: idPrefix, modRev: rev}
}

// String describes the operation, as errors do: "create network/n1".
func (o Op) String() string { return o.typ.String() + " " + o.kind + "/" + o.id }

// want is the mod revision the op's compare requires (0: absent), and
// whether it has a compare at all.
func (o Op) want() (int64, bool) {
	switch o.typ {
	case opCreate:
		return 0, true
	case opDelete:
		return o.modRev, o.modRev != 0
	case opPut:
		return 0, false
	case opExists, opNoNewUnder:
		return -1, true
	}
	return o.modRev, true
}

// writes reports whether the op writes its key.
func (o Op) writes() bool {
	return o.typ != opCheck && o.typ != opExists && o.typ != opNoNewUnder
}

// cmp returns the op's compare on key k (its prefix, for NoNewUnder).
func (o Op) cmp(k string) clientv3.Cmp {
	switch o.typ {
	case opExists:
		return clientv3.Compare(clientv3.CreateRevision(k), ">", 0)
	case opNoNewUnder:
		// Every key in the range passes, and an empty range compares
		// as a key of revision 0.
		return clientv3.Compare(clientv3.CreateRevision(k), "<", o.modRev+1).WithPrefix()
	}
	want, _ := o.want()
	return clientv3.Compare(clientv3.ModRevision(k), "=", want)
}

func (o Op) validate() error {
	if err := validKey(o.kind, o.id); err != nil {
		return err
	}
	switch {
	case o.typ == 0:
		return types.BadRequestErrorf("global store: an Op not made by Create, Update, Delete or Check")
	case o.modRev < 0:
		return types.BadRequestErrorf("global store: %s: negative mod revision %d", o, o.modRev)
	case o.typ == opUpdate && o.modRev == 0:
		return types.BadRequestErrorf("global store: %s: an update needs the mod revision the key was read at", o)
	}
	return nil
}

// describeOps names the ops of a transaction for errors, the first few.
func describeOps(ops []Op) string {
	const most = 3
	var b strings.Builder
	b.WriteString("[")
	for i, o := range ops {
		if i == most {
			fmt.Fprintf(&b, ", and %d more", len(ops)-most)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(o.String())
	}
	b.WriteString("]")
	return b.String()
}

// Txn runs ops as one etcd transaction: either every compare holds and
// every write is done, or nothing is written. It returns the store
// revision of the write. When a compare fails it returns a *ConflictError
// naming the first key whose compare fails when read back. A key written
// twice in one transaction is a types.BadRequestError.
//
// A leased key this Store deletes, or tries to delete, is no longer its to
// put back when the lease is lost, even if the transaction failed: when
// etcd's answer is lost the delete may have happened.
func (s *Store) Txn(ctx context.Context, ops ...Op) (int64, error) {
	desc := describeOps(ops)
	if len(ops) == 0 {
		return 0, types.BadRequestErrorf("global store: empty transaction")
	}
	needLease := false
	written := map[string]bool{}
	for _, o := range ops {
		if err := o.validate(); err != nil {
			return 0, err
		}
		if !o.writes() {
			continue
		}
		k := s.key(o.kind, o.id)
		if written[k] {
			return 0, types.BadRequestErrorf("global store: txn %s writes %s/%s twice", desc, o.kind, o.id)
		}
		written[k] = true
		needLease = needLease || o.leased
	}
	if needLease && s.cfg.Host == "" {
		return 0, types.BadRequestErrorf("global store: txn %s: a leased key needs the host's name (Config.Host)", desc)
	}
	if s.isClosed() {
		return 0, errClosed("txn", desc)
	}
	cctx, cancel := s.callCtx(ctx)
	defer cancel()

	s.txnMu.RLock()
	defer s.txnMu.RUnlock()
	done := false
	defer func() {
		if !done {
			s.forgetDeleted(ops)
		}
	}()
	// A lease can be lost between granting it and using it; then it is
	// granted again once.
	for attempt := 0; ; attempt++ {
		leased := s.leasedKeys(ops)
		var lease clientv3.LeaseID
		if needLease || len(leased) > 0 {
			var err error
			if lease, err = s.ensureLease(cctx); err != nil {
				return 0, s.callError(ctx, cctx, "txn", desc, err)
			}
		}
		cmps, writes := s.build(ops, lease, leased)
		resp, err := s.cli.Txn(cctx).If(cmps...).Then(writes...).Commit()
		if errors.Is(err, rpctypes.ErrLeaseNotFound) && attempt == 0 {
			s.leaseLost(lease)
			continue
		}
		if err != nil {
			return 0, s.callError(ctx, cctx, "txn", desc, err)
		}
		if !resp.Succeeded {
			return 0, s.conflict(cctx, ops)
		}
		s.recordLeased(ops, leased)
		done = true
		return resp.Header.Revision, nil
	}
}

// leasedKeys returns the keys that ops put bound to the lease: those of
// CreateLeased and those of Update on a key this Store holds leased.
func (s *Store) leasedKeys(ops []Op) map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := map[string]bool{}
	for _, o := range ops {
		k := s.key(o.kind, o.id)
		if _, held := s.leased[k]; o.leased || (o.typ == opUpdate && held) {
			keys[k] = true
		}
	}
	return keys
}

// build returns the compares and writes of ops.
func (s *Store) build(ops []Op, lease clientv3.LeaseID, leased map[string]bool) ([]clientv3.Cmp, []clientv3.Op) {
	var cmps []clientv3.Cmp
	var writes []clientv3.Op
	for _, o := range ops {
		k := s.key(o.kind, o.id)
		if _, ok := o.want(); ok {
			cmps = append(cmps, o.cmp(k))
		}
		switch o.typ {
		case opCreate, opUpdate, opPut:
			if leased[k] {
				writes = append(writes, clientv3.OpPut(k, string(o.val), clientv3.WithLease(lease)))
			} else {
				writes = append(writes, clientv3.OpPut(k, string(o.val)))
			}
		case opDelete:
			writes = append(writes, clientv3.OpDelete(k))
		}
	}
	return cmps, writes
}

// recordLeased notes the keys ops wrote: those put bound to the lease are
// remembered with their value, any other written key is forgotten.
func (s *Store) recordLeased(ops []Op, leased map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range ops {
		k := s.key(o.kind, o.id)
		switch {
		case !o.writes():
		case leased[k]:
			s.leased[k] = append([]byte(nil), o.val...)
		default:
			delete(s.leased, k)
		}
	}
}

// forgetDeleted forgets the keys that ops delete, after a transaction
// that failed: one whose answer was lost may have deleted them, and a key
// the caller meant to delete must not be put back when the lease is lost.
func (s *Store) forgetDeleted(ops []Op) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range ops {
		if o.typ == opDelete {
			delete(s.leased, s.key(o.kind, o.id))
		}
	}
}

// conflict reads back the keys of a failed transaction and returns a
// *ConflictError for the first op whose compare fails now.
func (s *Store) conflict(ctx context.Context, ops []Op) error {
	var gets []clientv3.Op
	var first *ConflictError
	for _, o := range ops {
		if o.typ == opNoNewUnder {
			// The newest key under the prefix.
			gets = append(gets, clientv3.OpGet(s.key(o.kind, o.id), clientv3.WithPrefix(),
				clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortDescend), clientv3.WithLimit(1)))
		} else {
			gets = append(gets, clientv3.OpGet(s.key(o.kind, o.id)))
		}
		if want, ok := o.want(); ok && first == nil {
			first = &ConflictError{Op: o.typ.String(), Kind: o.kind, ID: o.id, Want: want, Got: -1}
		}
	}
	resp, err := s.cli.Txn(ctx).Then(gets...).Commit()
	if err != nil {
		s.log.Debug("global store: reading back the keys of a failed transaction", "error", err)
		return first
	}
	for i, o := range ops {
		want, ok := o.want()
		if !ok {
			continue
		}
		var got, created int64
		if kvs := resp.Responses[i].GetResponseRange().GetKvs(); len(kvs) > 0 {
			got, created = kvs[0].ModRevision, kvs[0].CreateRevision
		}
		switch o.typ {
		case opExists:
			if got == 0 {
				return &ConflictError{Op: o.typ.String(), Kind: o.kind, ID: o.id, Want: -1, Got: 0}
			}
			continue
		case opNoNewUnder:
			if created > o.modRev {
				return &ConflictError{Op: o.typ.String(), Kind: o.kind, ID: o.id, Want: o.modRev, Got: created}
			}
			continue
		}
		if got != want {
			return &ConflictError{Op: o.typ.String(), Kind: o.kind, ID: o.id, Want: want, Got: got}
		}
		if first.Got < 0 { // the first op with a compare
			first.Got = got
		}
	}
	return first
}
