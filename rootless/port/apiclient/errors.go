package apiclient

import (
	"fmt"
	"net/http"
)

// APIError is a non-2xx answer of rootlesskit's API. It has no class of
// its own; the Client wraps it in the class of its status: rootlesskit
// answers 400 when a port driver refuses a spec or an ID (a
// types.BadRequestError), 5xx when it fails (a types.InternalError).
type APIError struct {
	// Method and Path are the request's, as "POST" and "/v1/ports".
	Method, Path string
	// StatusCode is the answer's HTTP status.
	StatusCode int
	// Message is the "message" of rootlesskit's {"message": ...} body,
	// or the body itself when it is not that JSON (as the "404 page not
	// found" of a rootlesskit without the route).
	Message string
}

// Error gives the request, the status and rootlesskit's message.
func (e *APIError) Error() string {
	return fmt.Sprintf("rootlesskit answered %s %s with HTTP %d %s: %s", e.Method, e.Path, e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}
