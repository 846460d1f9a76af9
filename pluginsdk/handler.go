// Package pluginsdk is the plugin side of the remote plugin protocol: an
// HTTP handler that answers /Plugin.Activate with the plugin's manifest
// and serves the protocol's methods, and the listeners a plugin serves
// on (a unix socket in the plugin socket directory, or TCP with a spec
// file). The per-protocol packages (pluginsdk/portmapper, and those of
// network and IPAM drivers) build on it, so a plugin author only writes
// the driver.
package pluginsdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
)

// ContentType is the Content-Type of the answers, the media type the
// library's client sends.
const ContentType = "application/vnd.docker.plugins.v1.2+json"

// ActivatePath is the path every plugin answers with its manifest.
const ActivatePath = "/Plugin.Activate"

// MaxRequestSize bounds the body of a request.
const MaxRequestSize = 4 << 20

// Handler serves the protocol methods registered with HandleFunc, and
// /Plugin.Activate with the manifest. It is an http.Handler.
type Handler struct {
	mux *http.ServeMux

	mu sync.Mutex
	// server is the server of Serve, nil before it.
	server *http.Server
	// shut is set by Shutdown, so that a Serve that starts after it
	// returns at once.
	shut bool
}

// NewHandler returns a Handler that answers /Plugin.Activate with
// {"Implements": implements}.
func NewHandler(implements ...string) *Handler {
	if implements == nil {
		implements = []string{}
	}
	manifest, _ := json.Marshal(struct{ Implements []string }{implements})
	return NewManifestHandler(ContentType, manifest)
}

// NewManifestHandler returns a Handler that answers /Plugin.Activate with
// manifest verbatim, of Content-Type contentType. It is for protocol
// packages that answer byte for byte as another implementation does
// (pluginsdk/network and pluginsdk/ipam answer as go-plugins-helpers).
func NewManifestHandler(contentType string, manifest []byte) *Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(ActivatePath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", contentType)
		_, _ = w.Write(manifest)
	})
	return &Handler{mux: mux}
}

// HandleFunc registers fn for path ("/<Interface>.<Method>").
func (h *Handler) HandleFunc(path string, fn func(w http.ResponseWriter, r *http.Request)) {
	h.mux.HandleFunc(path, fn)
}

// ServeHTTP serves one request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mux.ServeHTTP(w, r)
}

// Serve serves requests on l until Shutdown, then returns nil; it returns
// the error that stopped it otherwise. It closes l.
func (h *Handler) Serve(l net.Listener) error {
	srv := &http.Server{Handler: h.mux}
	h.mu.Lock()
	if h.shut {
		h.mu.Unlock()
		l.Close()
		return nil
	}
	h.server = srv
	h.mu.Unlock()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops Serve: it stops accepting, waits for the requests in
// progress until ctx ends, and makes Serve return.
func (h *Handler) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.shut = true
	srv := h.server
	h.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Shutdown(ctx)
}

// ErrorResponse is the body of a failed call: the library reads Err.
type ErrorResponse struct {
	Err string
}

// DecodeRequest decodes the JSON body of r into req. On failure it answers
// 400 with an ErrorResponse and returns the error; the handler then
// returns.
func DecodeRequest(w http.ResponseWriter, r *http.Request, req any) error {
	if r.Method != http.MethodPost {
		err := fmt.Errorf("%s: method %s, want POST", r.URL.Path, r.Method)
		EncodeResponse(w, http.StatusMethodNotAllowed, ErrorResponse{Err: err.Error()})
		return err
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxRequestSize))
	if err := dec.Decode(req); err != nil {
		err = fmt.Errorf("%s: decoding the request: %w", r.URL.Path, err)
		EncodeResponse(w, http.StatusBadRequest, ErrorResponse{Err: err.Error()})
		return err
	}
	return nil
}

// EncodeResponse answers status with res as JSON.
func EncodeResponse(w http.ResponseWriter, status int, res any) {
	body, err := json.Marshal(res)
	if err != nil {
		status = http.StatusInternalServerError
		body, _ = json.Marshal(ErrorResponse{Err: "encoding the answer: " + err.Error()})
	}
	w.Header().Set("Content-Type", ContentType)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
