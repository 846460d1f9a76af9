package pluginutil

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCallLog: protocol calls are logged with their raw body, in order,
// one JSON line each; the handler still gets the body; activation and the
// examples' own endpoints are not logged.
func TestCallLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "calls.log")
	l, err := OpenCallLog(path)
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	h := l.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b))
	}))
	calls := []struct{ path, body string }{
		{"/Plugin.Activate", ""},
		{"/NetworkDriver.CreateNetwork", `{"NetworkID":"n1","IPv4Data":[{"Pool":"10.0.0.0/24"}]}`},
		{"/Example.HandlerTime", ""},
		{"/IpamDriver.GetCapabilities", ""},
		{"/NetworkDriver.Join", "not json"},
	}
	for _, c := range calls {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", c.path, strings.NewReader(c.body)))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for i, c := range calls {
		if bodies[i] != c.body {
			t.Errorf("%s: the handler got %q, want %q", c.path, bodies[i], c.body)
		}
	}

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	for s := bufio.NewScanner(f); s.Scan(); {
		lines = append(lines, s.Text())
	}
	want := []string{
		`{"method":"NetworkDriver.CreateNetwork","request":{"NetworkID":"n1","IPv4Data":[{"Pool":"10.0.0.0/24"}]}}`,
		`{"method":"IpamDriver.GetCapabilities","request":null}`,
		`{"method":"NetworkDriver.Join","request":"not json"}`,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("log:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	for _, line := range lines {
		var rec CallRecord
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("line %s: %v", line, err)
		}
	}

	// Appended, not truncated, when opened again.
	l, err = OpenCallLog(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Record("IpamDriver.RequestPool", []byte(`{"Pool":""}`)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	b, _ := os.ReadFile(path)
	if n := strings.Count(string(b), "\n"); n != 4 {
		t.Errorf("after reopening: %d lines, want 4", n)
	}
}

func TestNilCallLog(t *testing.T) {
	l, err := OpenCallLog("")
	if l != nil || err != nil {
		t.Fatalf("OpenCallLog(\"\") = %v, %v", l, err)
	}
	called := false
	next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true })
	l.Middleware(next).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/NetworkDriver.Join", nil))
	if !called || l.Record("x", nil) != nil || l.Close() != nil {
		t.Error("a nil CallLog does not pass calls through quietly")
	}
}

func TestHandlerTime(t *testing.T) {
	var ht HandlerTime
	for range 3 {
		ht.Track()()
	}
	for _, method := range []string{"GET", "POST"} {
		w := httptest.NewRecorder()
		ht.ServeHTTP(w, httptest.NewRequest(method, HandlerTimePath, nil))
		var got map[string]int64
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != 200 {
			t.Fatalf("%s: %d %s", method, w.Code, w.Body)
		}
		if got["Calls"] != 3 || got["Nanoseconds"] <= 0 || len(got) != 2 {
			t.Errorf("%s: %v, want Calls 3 and some Nanoseconds", method, got)
		}
	}
	w := httptest.NewRecorder()
	ht.ServeHTTP(w, httptest.NewRequest("DELETE", HandlerTimePath, nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("DELETE: %d", w.Code)
	}
}

// TestListenAndServe: a stale socket is replaced, a regular file refused;
// the socket is removed once Serve returns.
func TestListenAndServe(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "p.sock")
	os.Mkdir(filepath.Dir(path), 0o755)
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()

	l, err := ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err = Serve(l, func(l net.Listener) error {
		c, err := net.Dial("unix", path)
		if err != nil {
			return err
		}
		c.Close()
		l.Close()
		return boom
	}, nil)
	if err != boom {
		t.Errorf("Serve returned %v, want serve's error", err)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}

	regular := filepath.Join(dir, "regular")
	os.WriteFile(regular, nil, 0o644)
	if _, err := ListenUnix(regular); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("ListenUnix over a regular file: %v", err)
	}

	l, err = ListenUnix(filepath.Join(dir, "made", "q.sock"))
	if err != nil {
		t.Fatalf("ListenUnix in a missing directory: %v", err)
	}
	l.Close()

	f := Flags{Name: "x"}
	if f.SocketPath() != "/run/docker/plugins/x.sock" {
		t.Errorf("default socket %s", f.SocketPath())
	}
}
