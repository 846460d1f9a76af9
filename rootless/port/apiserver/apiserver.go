// Package apiserver serves a rootless port manager over HTTP with the
// routes and JSON of rootlesskit's API socket (API 1.1): GET /v1/info,
// GET /v1/ports, POST /v1/ports and DELETE /v1/ports/{id}. A parent process
// that runs the built-in driver (rootless/port/builtin) serves it to the
// controller inside the rootless namespaces, which uses it as it would use
// rootlesskit's own socket (rootless/port/apiclient).
package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"syscall"

	"github.com/netkit/libnetwork/rootless/api"
	"github.com/netkit/libnetwork/rootless/port"
	"github.com/netkit/libnetwork/types"
)

// APIVersion is the version of rootlesskit's API the handler speaks.
const APIVersion = "1.1.1"

// maxBody bounds a request body: a port.Spec is a few hundred bytes.
const maxBody = 64 << 10

// infoer is a manager that describes itself (a port.ParentDriver).
type infoer interface {
	Info(ctx context.Context) (*api.PortDriverInfo, error)
}

// NewHandler returns the API handler of m.
func NewHandler(m port.Manager) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/info", func(w http.ResponseWriter, r *http.Request) {
		info := map[string]any{"apiVersion": APIVersion, "version": "netkit-libnetwork"}
		if in, ok := m.(infoer); ok {
			pd, err := in.Info(r.Context())
			if err != nil {
				writeError(w, err, http.StatusInternalServerError)
				return
			}
			info["portDriver"] = pd
		}
		writeJSON(w, http.StatusOK, info)
	})
	mux.HandleFunc("GET /v1/ports", func(w http.ResponseWriter, r *http.Request) {
		ports, err := m.ListPorts(r.Context())
		if err != nil {
			writeError(w, err, http.StatusInternalServerError)
			return
		}
		if ports == nil {
			ports = []port.Status{}
		}
		writeJSON(w, http.StatusOK, ports)
	})
	mux.HandleFunc("POST /v1/ports", func(w http.ResponseWriter, r *http.Request) {
		var spec port.Spec
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&spec); err != nil {
			writeError(w, err, http.StatusBadRequest)
			return
		}
		st, err := m.AddPort(r.Context(), spec)
		switch {
		case errors.Is(err, syscall.EADDRINUSE):
			writeError(w, err, http.StatusConflict)
			return
		case types.IsBadRequest(err):
			writeError(w, err, http.StatusBadRequest)
			return
		case err != nil:
			writeError(w, err, http.StatusInternalServerError)
			return
		}
		writeJSON(w, http.StatusCreated, st)
	})
	mux.HandleFunc("DELETE /v1/ports/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.Atoi(r.PathValue("id"))
		if err != nil {
			writeError(w, err, http.StatusBadRequest)
			return
		}
		if err := m.RemovePort(r.Context(), id); err != nil {
			writeError(w, err, http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	return mux
}

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError writes err as rootlesskit does: {"message": ...}.
func writeError(w http.ResponseWriter, err error, status int) {
	writeJSON(w, status, map[string]string{"message": strings.TrimSpace(err.Error())})
}
