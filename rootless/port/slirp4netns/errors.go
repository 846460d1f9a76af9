package slirp4netns

import "fmt"

// RefusedError is slirp4netns's {"error": {"desc": ...}} answer to a
// command. It has no class of its own: the Manager wraps it in the class
// of what it knows about the request (AddPort: types.ForbiddenError, since
// the spec was checked and what is left is a host port slirp4netns could
// not listen on).
type RefusedError struct {
	// Socket is the API socket's path.
	Socket string
	// Execute is the command: add_hostfwd, list_hostfwd or
	// remove_hostfwd.
	Execute string
	// Desc is slirp4netns's description, as "bad request: add_hostfwd:
	// slirp_add_hostfwd failed".
	Desc string
}

// Error names the socket and the command and gives slirp4netns's words.
func (e *RefusedError) Error() string {
	return fmt.Sprintf("slirp4netns API %s: %s refused: %s", e.Socket, e.Execute, e.Desc)
}
