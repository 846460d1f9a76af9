package pluginutil

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// HandlerTimePath is the examples' own endpoint (not part of any plugin
// protocol) answering the HandlerTime of the plugin's driver, to GET or
// POST.
const HandlerTimePath = "/Example.HandlerTime"

// HandlerTime adds up the time spent inside a driver's methods, so a
// benchmark can tell the plugin's share of an operation from the
// library's. The zero value is ready; it is safe for concurrent use.
type HandlerTime struct {
	mu    sync.Mutex
	calls int64
	total time.Duration
}

// HandlerTimeStats is the answer of HandlerTimePath.
type HandlerTimeStats struct {
	// Calls is the number of driver calls measured.
	Calls int64
	// Nanoseconds is the time spent in them, in total.
	Nanoseconds int64
}

// Track starts measuring one call and returns the function that ends it:
//
//	defer d.time.Track()()
func (t *HandlerTime) Track() func() {
	start := time.Now()
	return func() {
		d := time.Since(start)
		t.mu.Lock()
		t.calls++
		t.total += d
		t.mu.Unlock()
	}
}

// Stats returns the calls measured so far and their total time.
func (t *HandlerTime) Stats() HandlerTimeStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return HandlerTimeStats{Calls: t.calls, Nanoseconds: t.total.Nanoseconds()}
}

// ServeHTTP answers the Stats as JSON, to GET and POST.
func (t *HandlerTime) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "want GET or POST", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(t.Stats())
}

// Wrap returns the handler a plugin serves: h for the protocol, each call
// logged to calls first, and HandlerTimePath answered from ht.
func Wrap(h http.Handler, calls *CallLog, ht *HandlerTime) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(HandlerTimePath, ht)
	mux.Handle("/", calls.Middleware(h))
	return mux
}
