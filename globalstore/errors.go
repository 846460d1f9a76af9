package globalstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/netkit/libnetwork/types"
)

// The errors of a Store, by class (package types):
//
//   - BadRequest: an invalid Config, kind, ID or transaction (New, and any
//     call given bad input), or one etcd refuses as malformed (too many
//     operations, too large).
//   - NotFound: Get of a key that does not exist.
//   - Forbidden and Retry: a *ConflictError, a transaction whose compare
//     failed; read again and retry.
//   - Timeout: an *UnreachableError, etcd did not answer within the
//     request timeout (down, partitioned, no leader, TLS handshake
//     refused).
//   - Forbidden: a call on a closed Store.
//   - Internal: any other error etcd returns.
//
// A caller's own cancellation comes back unclassified, wrapping
// context.Canceled.

// UnreachableError is the error of a call that etcd did not answer within
// its deadline: etcd is down or cut off, has no leader, or refuses the TLS
// handshake (the cause says which when gRPC knows). It is a
// types.TimeoutError; the Store keeps reconnecting, so the same call may
// succeed later.
type UnreachableError struct {
	Endpoints []string // etcd's endpoints as configured
	Op        string   // what was asked: "get", "list", "txn", "lease grant"
	Key       string   // kind/id, the kind for a list, the ops of a txn
	Err       error    // the cause
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("global store at %s is unreachable: %s %s: %v", strings.Join(e.Endpoints, ","), e.Op, e.Key, e.Err)
}

// Unwrap returns the cause.
func (e *UnreachableError) Unwrap() error { return e.Err }

// Timeout marks the error as a types.TimeoutError.
func (e *UnreachableError) Timeout() {}

// ConflictError is the error of a transaction whose compare failed: a key
// that had to be absent exists, or one that had to be at a mod revision is
// absent or at another. Nothing of the transaction was written. It names
// the first operation whose compare fails when the keys are read back
// after the failure. It is a types.ForbiddenError (the request is valid but
// the store's state refuses it) and a types.RetryError (read again and
// retry); types.Errorf, which keeps one class, keeps Forbidden.
type ConflictError struct {
	Op   string // "create", "update", "delete", "check", "exists" or "no-new-under"
	Kind string
	ID   string
	// Want is the mod revision the operation required, 0 for "absent";
	// -1 for "exists"; for "no-new-under", the revision after which no
	// key may have been created.
	Want int64
	// Got is the key's mod revision when read back, 0 when absent, -1 when
	// it could not be read back; for "no-new-under", the create revision
	// of the newest key under the prefix.
	Got int64
}

func (e *ConflictError) Error() string {
	var why string
	switch {
	case e.Op == opExists.String() && e.Got == 0:
		why = "does not exist"
	case e.Op == opNoNewUnder.String() && e.Got > 0:
		why = fmt.Sprintf("a key under it was created at revision %d, after %d", e.Got, e.Want)
	case e.Got < 0:
		why = "a compare failed (the key could not be read back)"
	case e.Got == e.Want:
		why = fmt.Sprintf("changed during the transaction (mod revision %d now)", e.Got)
	case e.Want == 0:
		why = fmt.Sprintf("already exists (mod revision %d)", e.Got)
	case e.Got == 0:
		why = fmt.Sprintf("does not exist (expected mod revision %d)", e.Want)
	default:
		why = fmt.Sprintf("mod revision is %d, expected %d", e.Got, e.Want)
	}
	return fmt.Sprintf("global store: %s %s/%s: conflict: %s", e.Op, e.Kind, e.ID, why)
}

// Forbidden marks the error as a types.ForbiddenError.
func (e *ConflictError) Forbidden() {}

// Retry marks the error as a types.RetryError.
func (e *ConflictError) Retry() {}

var (
	_ types.TimeoutError   = (*UnreachableError)(nil)
	_ types.ForbiddenError = (*ConflictError)(nil)
	_ types.RetryError     = (*ConflictError)(nil)
)

// callError classifies err, the failure of op on key. caller is the
// caller's context, to tell its cancellation from etcd's silence; call is
// the call's, from callCtx.
func (s *Store) callError(caller, call context.Context, op, key string, err error) error {
	if s.isClosed() {
		return errClosed(op, key)
	}
	if errors.Is(caller.Err(), context.Canceled) {
		return fmt.Errorf("global store: %s %s: %w", op, key, caller.Err())
	}
	code := grpcCode(err)
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		code == codes.Unavailable, code == codes.DeadlineExceeded, code == codes.Canceled:
		return &UnreachableError{Endpoints: s.cfg.Endpoints, Op: op, Key: key, Err: withConnError(err, lastGRPCError(call))}
	case code == codes.InvalidArgument, code == codes.OutOfRange:
		return types.BadRequestErrorf("global store: %s %s: etcd refused it: %w", op, key, err)
	}
	return types.InternalErrorf("global store at %s: %s %s: %w", strings.Join(s.cfg.Endpoints, ","), op, key, err)
}

func errClosed(op, key string) error {
	return types.ForbiddenErrorf("global store: %s %s: the store is closed", op, key)
}

// grpcCode returns the gRPC code of an error from etcd's client.
func grpcCode(err error) codes.Code {
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return ee.Code()
	}
	if st, ok := status.FromError(err); ok {
		return st.Code()
	}
	return codes.Unknown
}

// withConnError adds to err, a call's error, what gRPC said of the
// connection (grpcErr), when that says more.
func withConnError(err, grpcErr error) error {
	st, ok := status.FromError(grpcErr)
	if !ok || grpcErr == err || strings.Contains(err.Error(), st.Message()) {
		return err
	}
	return fmt.Errorf("%w (%s)", err, st.Message())
}
