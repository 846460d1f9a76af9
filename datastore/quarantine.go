package datastore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/netkit/libnetwork/types"
)

// QuarantineKind is the bucket that Load moves bad records to. Its records
// are keyed "<kind>/<id>" and hold a Quarantined value; nothing reads them
// back by itself, so an operator can inspect a record (ListQuarantined) and
// put it back with Tx.PutRaw once it is fixed.
const QuarantineKind = "quarantine"

// Quarantined is a record Load refused: its kind and ID, why it was refused,
// and its stored bytes exactly as they were.
type Quarantined struct {
	Kind   string
	ID     string
	Reason string
	Raw    []byte
	// Time is when the record was moved, in Unix nanoseconds.
	Time int64
}

// Load returns every record of kind in s, decoded into T and keyed by ID,
// like List, except that a record that does not decode, or that check
// refuses, does not fail the call: it is moved whole (one Update for all)
// to the QuarantineKind bucket with the reason, and a Warn line names it.
// Stored records are input like any other: check should refuse whatever
// the caller could not have created through its API. check may be nil.
func Load[T any](s *Store, kind string, check func(id string, rec *T) error) (map[string]T, error) {
	out := make(map[string]T)
	var bad []Quarantined
	// Read in a View: a start with nothing to quarantine writes nothing.
	err := s.View(func(tx *Tx) error {
		b := tx.tx.Bucket([]byte(kind))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				return nil
			}
			id := string(k)
			var rec T
			err := decodeRecord(v, &rec)
			if err == nil && check != nil {
				err = check(id, &rec)
			}
			if err != nil {
				// v is valid only during the transaction; keep a copy.
				bad = append(bad, Quarantined{Kind: kind, ID: id, Reason: err.Error(), Raw: bytes.Clone(v)})
				return nil
			}
			out[id] = rec
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	if len(bad) == 0 {
		return out, nil
	}
	moved := bad[:0:0]
	err = s.Update(func(tx *Tx) error {
		moved = moved[:0]
		now := time.Now().UnixNano()
		b := tx.tx.Bucket([]byte(kind))
		for _, q := range bad {
			// Move only what was read: a record rewritten since is
			// left to the next Load.
			if b == nil || !bytes.Equal(b.Get([]byte(q.ID)), q.Raw) {
				continue
			}
			q.Time = now
			if err := tx.quarantine(&q); err != nil {
				return err
			}
			moved = append(moved, q)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, q := range moved {
		s.log.Warn("datastore: bad record moved to quarantine", "store", s.path, "kind", q.Kind, "id", q.ID, "reason", q.Reason)
	}
	return out, nil
}

// quarantine moves q's record from its kind's bucket to QuarantineKind.
func (tx *Tx) quarantine(q *Quarantined) error {
	val, err := json.Marshal(q)
	if err != nil {
		return types.InternalErrorf("quarantine %s %q: %w", q.Kind, q.ID, err)
	}
	qb, err := tx.tx.CreateBucketIfNotExists([]byte(QuarantineKind))
	if err != nil {
		return types.InternalErrorf("quarantine %s %q: bucket: %w", q.Kind, q.ID, err)
	}
	if err := qb.Put([]byte(q.Kind+"/"+q.ID), val); err != nil {
		return types.InternalErrorf("quarantine %s %q: %w", q.Kind, q.ID, err)
	}
	if err := tx.tx.Bucket([]byte(q.Kind)).Delete([]byte(q.ID)); err != nil {
		return types.InternalErrorf("quarantine %s %q: delete: %w", q.Kind, q.ID, err)
	}
	return nil
}

// ListQuarantined returns the records Load has moved to quarantine, in key
// order.
func ListQuarantined(s *Store) ([]Quarantined, error) {
	var out []Quarantined
	err := s.View(func(tx *Tx) error {
		b := tx.tx.Bucket([]byte(QuarantineKind))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var q Quarantined
			if err := json.Unmarshal(v, &q); err != nil {
				return fmt.Errorf("%w: quarantined %q: %w", ErrCorrupt, k, err)
			}
			out = append(out, q)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PutRaw stores val as the record id of kind exactly as given, without an
// envelope or any check. It is for tools that move stored records as they
// are, such as putting a quarantined record back; Put is the way to write a
// record. PutRaw fails in a View transaction.
func (tx *Tx) PutRaw(kind, id string, val []byte) error {
	if err := checkKey(kind, id); err != nil {
		return fmt.Errorf("put %s %q: %w", kind, id, err)
	}
	b, err := tx.tx.CreateBucketIfNotExists([]byte(kind))
	if err != nil {
		return types.InternalErrorf("put %s %q: bucket: %w", kind, id, err)
	}
	if err := b.Put([]byte(id), bytes.Clone(val)); err != nil {
		return types.InternalErrorf("put %s %q: %w", kind, id, err)
	}
	return nil
}

// Decode decodes a stored record value, as Get does, into rec (a pointer).
// It fails with an error wrapping ErrCorrupt if val is not a record
// envelope, and ErrSchema if its version is not one this build reads.
func Decode(val []byte, rec any) error {
	return decodeRecord(val, rec)
}
