package resolvconf

import "github.com/netkit/libnetwork/internal/ownedfile"

// ErrUserModified reports that a resolv.conf was not rewritten because its
// content no longer matches what this package last wrote: the user or the
// container edited it, removed it, or it was never written here (no hash
// sidecar beside it). The file is left untouched. Callers test for it with
// errors.Is, log, and carry on; the error is also classified as
// types.ForbiddenError.
var ErrUserModified = ownedfile.ErrUserModified
