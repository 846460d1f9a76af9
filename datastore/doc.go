// Package datastore is the library's persistent store: a bbolt database of
// typed, versioned records.
//
// A record is a Go struct marshalled as JSON inside an envelope that carries
// the schema version it was written with ({"v": 1, "data": {...}}). Each kind
// of record (network, endpoint, sandbox, ...) has its own bucket, keyed by the
// object's ID. Every API operation of the controller is one Update, so a
// change is either recorded whole or not at all.
//
// The controller keeps two stores: one in the data dir for durable
// configuration, one under the exec root (on tmpfs) for runtime state, opened
// with NoSync because it vanishes at reboot with the kernel state it
// describes.
//
// Open never panics and never hangs: the bolt file lock is taken with a short
// timeout, so a second process fails fast with ErrLocked, and a corrupt or
// unreadable database is moved aside (with a Warn log line naming both paths)
// and replaced by an empty one.
//
// Stored records are input too: Load decodes a kind's records and runs the
// caller's check on each, and a record that fails either is moved, bytes
// and reason, to the QuarantineKind bucket (with a Warn log line naming it)
// instead of failing the caller's start.
package datastore
