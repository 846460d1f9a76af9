package datastore

import (
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/netkit/libnetwork/types"
)

// Tx is a transaction on a Store, valid only inside the function passed to
// Update or View. Records are kept one bucket per kind, keyed by ID.
type Tx struct {
	tx *bolt.Tx
}

// Put stores rec, marshalled as JSON in an envelope of SchemaVersion, as the
// record id of kind, replacing any record already there. The kind's bucket is
// created on first use. Put fails in a View transaction.
func (tx *Tx) Put(kind, id string, rec any) error {
	if err := checkKey(kind, id); err != nil {
		return fmt.Errorf("put %s %q: %w", kind, id, err)
	}
	val, err := encodeRecord(rec)
	if err != nil {
		return types.InvalidParameterErrorf("put %s %q: encode record: %w", kind, id, err)
	}
	b, err := tx.tx.CreateBucketIfNotExists([]byte(kind))
	if err != nil {
		return types.InternalErrorf("put %s %q: bucket: %w", kind, id, err)
	}
	if err := b.Put([]byte(id), val); err != nil {
		return types.InternalErrorf("put %s %q: %w", kind, id, err)
	}
	return nil
}

// Get decodes the record id of kind into rec, which must be a pointer. It
// returns an error wrapping ErrNotFound if there is no such record, and one
// wrapping ErrSchema if the record was written by a newer schema.
func (tx *Tx) Get(kind, id string, rec any) error {
	if err := checkKey(kind, id); err != nil {
		return fmt.Errorf("get %s %q: %w", kind, id, err)
	}
	var val []byte
	if b := tx.tx.Bucket([]byte(kind)); b != nil {
		val = b.Get([]byte(id))
	}
	if val == nil {
		return fmt.Errorf("get %s %q: %w", kind, id, ErrNotFound)
	}
	if err := decodeRecord(val, rec); err != nil {
		return fmt.Errorf("get %s %q: %w", kind, id, err)
	}
	return nil
}

// Delete removes the record id of kind. Deleting a missing record is not an
// error. Delete fails in a View transaction.
func (tx *Tx) Delete(kind, id string) error {
	if err := checkKey(kind, id); err != nil {
		return fmt.Errorf("delete %s %q: %w", kind, id, err)
	}
	b := tx.tx.Bucket([]byte(kind))
	if b == nil {
		return nil
	}
	if err := b.Delete([]byte(id)); err != nil {
		return types.InternalErrorf("delete %s %q: %w", kind, id, err)
	}
	return nil
}

// ForEach calls fn for each record of kind in ID order, stopping at the
// first error fn returns (which ForEach returns unchanged). decode decodes
// the record as Get does; it is valid only during that call of fn. fn must
// not Put or Delete records of the same kind.
func (tx *Tx) ForEach(kind string, fn func(id string, decode func(rec any) error) error) error {
	if kind == "" {
		return types.InvalidParameterErrorf("list records: empty kind")
	}
	b := tx.tx.Bucket([]byte(kind))
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, v []byte) error {
		id := string(k)
		if v == nil {
			// A nested bucket; the store never creates one.
			return nil
		}
		return fn(id, func(rec any) error {
			if err := decodeRecord(v, rec); err != nil {
				return fmt.Errorf("decode %s %q: %w", kind, id, err)
			}
			return nil
		})
	})
}

// checkKey rejects an empty kind or ID, which bolt cannot store.
func checkKey(kind, id string) error {
	if kind == "" {
		return types.InvalidParameterErrorf("empty kind")
	}
	if id == "" {
		return types.InvalidParameterErrorf("empty id")
	}
	return nil
}

// OnCommit has fn called once the transaction commits, and never if it
// fails or rolls back.
func (tx *Tx) OnCommit(fn func()) { tx.tx.OnCommit(fn) }
