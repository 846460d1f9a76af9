package pluginsdk

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestActivateAndDecode(t *testing.T) {
	h := NewHandler("PortMapper", "NetworkDriver")
	h.HandleFunc("/X.Do", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ N int }
		if DecodeRequest(w, r, &req) != nil {
			return
		}
		EncodeResponse(w, http.StatusOK, struct{ N int }{req.N + 1})
	})
	for _, tc := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"POST", "/Plugin.Activate", "", 200, `{"Implements":["PortMapper","NetworkDriver"]}`},
		{"POST", "/X.Do", `{"N":1}`, 200, `{"N":2}`},
		{"POST", "/X.Do", `{"N":`, 400, `"Err":"/X.Do: decoding the request`},
		{"GET", "/X.Do", ``, 405, `"Err":"/X.Do: method GET, want POST"`},
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body)))
		if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.want) || w.Header().Get("Content-Type") != ContentType {
			t.Errorf("%s %s %s: %d %q (%s), want %d %q", tc.method, tc.path, tc.body, w.Code, w.Body, w.Header().Get("Content-Type"), tc.status, tc.want)
		}
	}
}

// TestServeTCP: the spec file names the address listened on, and goes
// when the plugin stops.
func TestServeTCP(t *testing.T) {
	specDir := filepath.Join(t.TempDir(), "specs")
	h := NewHandler("PortMapper")
	served := make(chan error, 1)
	go func() { served <- h.ServeTCP("tcpplugin", "127.0.0.1:0", specDir, nil) }()
	spec := filepath.Join(specDir, "tcpplugin.spec")
	var url string
	for deadline := time.Now().Add(10 * time.Second); url == ""; time.Sleep(10 * time.Millisecond) {
		if b, err := os.ReadFile(spec); err == nil {
			url = strings.TrimSpace(string(b))
		} else if time.Now().After(deadline) {
			t.Fatal("no spec file written")
		}
	}
	resp, err := http.Post("http://"+strings.TrimPrefix(url, "tcp://")+ActivatePath, ContentType, nil)
	if err != nil {
		t.Fatal(err)
	}
	var m struct{ Implements []string }
	err = json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if err != nil || len(m.Implements) != 1 || m.Implements[0] != "PortMapper" {
		t.Fatalf("activation through %s: %v %+v", url, err, m)
	}
	if err := h.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(spec); !os.IsNotExist(err) {
		t.Fatalf("spec file left behind: %v", err)
	}
}

// TestServeUnixSocketFile: a stale socket is replaced, a regular file in
// the way is refused and left alone, and a relative path is refused.
func TestServeUnixSocketFile(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()

	h := NewHandler("PortMapper")
	served := make(chan error, 1)
	go func() { served <- h.ServeUnix(stale, -1) }()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", stale)
	}}}
	var resp *http.Response
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if resp, err = c.Post("http://plugin"+ActivatePath, ContentType, nil); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	resp.Body.Close()
	c.CloseIdleConnections()
	if err := h.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}

	regular := filepath.Join(dir, "regular.sock")
	if err := os.WriteFile(regular, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := NewHandler().ServeUnix(regular, -1); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("ServeUnix over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(regular); string(b) != "data" {
		t.Fatal("ServeUnix touched the regular file in the way")
	}
	for _, bad := range []string{"", "rel/x.sock", "../x"} {
		if err := NewHandler().ServeUnix(bad, -1); err == nil {
			t.Errorf("ServeUnix(%q) accepted", bad)
		}
	}
}
