package datastore

import "github.com/netkit/libnetwork/types"

// These errors are returned by the store's operations, wrapped with the path,
// kind or ID they concern; test for them with errors.Is. Each also belongs to
// an error class of package types, so callers may test with errors.As too.
var (
	// ErrLocked is returned by Open when another process (or another Store
	// in this process) holds the database file's lock and does not release
	// it within Options.Timeout. It is a types.ForbiddenError.
	ErrLocked = types.ForbiddenErrorf("database is locked by another process")

	// ErrNotFound is returned by Tx.Get when no record of the kind has the
	// ID. It is a types.NotFoundError.
	ErrNotFound = types.NotFoundErrorf("record not found")

	// ErrSchema is returned when a record was written with a schema version
	// newer than SchemaVersion (by a newer version of the library) or carries
	// no valid version. It is a types.InternalError.
	ErrSchema = types.InternalErrorf("unsupported record schema version")

	// ErrCorrupt is returned when a record cannot be decoded. It is a
	// types.InternalError. (A database whose file is corrupt is not an error:
	// Open moves it aside and starts afresh.)
	ErrCorrupt = types.InternalErrorf("corrupt record")
)
