package pluginutil

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
)

// CallLog appends one JSON line per protocol call to a file:
//
//	{"method":"NetworkDriver.CreateNetwork","request":{...}}
//
// request is the JSON body of the call as the plugin received it (a body
// that is not JSON is logged as a JSON string). Each line is written with
// one write to a file opened for appending, so it is in the file before
// the plugin answers. A nil *CallLog logs nothing.
type CallLog struct {
	mu sync.Mutex
	f  *os.File
}

// CallRecord is one line of a CallLog.
type CallRecord struct {
	// Method is the protocol method called ("IpamDriver.RequestPool").
	Method string `json:"method"`
	// Request is the request's JSON body.
	Request json.RawMessage `json:"request"`
}

// OpenCallLog opens (creating it if needed) the log file at path for
// appending. An empty path gives a nil *CallLog, which logs nothing.
func OpenCallLog(path string) (*CallLog, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("call log: %w", err)
	}
	return &CallLog{f: f}, nil
}

// Record appends the line of a call of method with the request body
// request (nil or empty is logged as null).
func (l *CallLog) Record(method string, request []byte) error {
	if l == nil {
		return nil
	}
	line, err := json.Marshal(CallRecord{Method: method, Request: rawJSON(request)})
	if err != nil {
		return fmt.Errorf("call log: %s: %w", method, err)
	}
	line = append(line, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.f.Write(line); err != nil {
		return fmt.Errorf("call log: %s: %w", method, err)
	}
	return nil
}

// Close closes the file.
func (l *CallLog) Close() error {
	if l == nil {
		return nil
	}
	return l.f.Close()
}

// rawJSON returns body as a JSON value: itself when it is JSON, null when
// empty, a JSON string otherwise.
func rawJSON(body []byte) json.RawMessage {
	body = bytes.TrimSpace(body)
	switch {
	case len(body) == 0:
		return json.RawMessage("null")
	case json.Valid(body):
		return json.RawMessage(body)
	}
	s, _ := json.Marshal(string(body))
	return json.RawMessage(s)
}

// Middleware logs the protocol calls that go through next: requests to
// "/<Interface>.<Method>" other than /Plugin.Activate and the examples'
// own /Example.* endpoints. The body is read whole (up to maxBody, the
// bound the plugin applies anyway), logged, and handed on unchanged. A
// failure to write the log fails the call, so a test never misses one.
func (l *CallLog) Middleware(next http.Handler) http.Handler {
	if l == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method, ok := protocolMethod(r.URL.Path)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
		r.Body.Close()
		if err == nil {
			err = l.Record(method, body)
		}
		if err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			_ = json.NewEncoder(w).Encode(struct{ Err string }{err.Error()})
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// maxBody bounds the body the middleware reads: that of pluginsdk.
const maxBody = 4 << 20

// protocolMethod returns the method of a protocol call's path and whether
// the path is one to log.
func protocolMethod(path string) (string, bool) {
	method := strings.TrimPrefix(path, "/")
	iface, _, ok := strings.Cut(method, ".")
	if !ok || iface == "" || iface == "Plugin" || iface == "Example" || strings.Contains(method, "/") {
		return "", false
	}
	return method, true
}
