package plugins

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netkit/libnetwork/internal/testutil"
)

// The tests use unix sockets in temporary directories and TCP on
// 127.0.0.1; as root they run in a throwaway network namespace all the
// same, as every test of the repository does.
func TestMain(m *testing.M) { testutil.Main(m) }

// testDirs is a socket directory and a spec directory for one test.
type testDirs struct {
	sock, spec string
}

func newDirs(t *testing.T) testDirs {
	t.Helper()
	root := t.TempDir()
	d := testDirs{sock: filepath.Join(root, "run"), spec: filepath.Join(root, "etc")}
	for _, p := range []string{d.sock, d.spec} {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// registry returns a Registry over d with short timeouts.
func (d testDirs) registry(t *testing.T, mod func(*Config)) *Registry {
	t.Helper()
	cfg := Config{
		SocketDirs:      []string{d.sock},
		SpecDirs:        []string{d.spec},
		CallTimeout:     5 * time.Second,
		ActivateTimeout: 5 * time.Second,
		RetryWindow:     2 * time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	r := NewRegistry(cfg)
	t.Cleanup(r.Close)
	return r
}

// serveHTTP serves h on l until the test ends.
func serveHTTP(t *testing.T, l net.Listener, h http.Handler) {
	t.Helper()
	srv := &http.Server{Handler: h}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
		<-done
	})
}

// serveUnix serves h on a unix socket at path until the test ends.
func serveUnix(t *testing.T, path string, h http.Handler) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	serveHTTP(t, l, h)
}

// fakePlugin is a plugin answering activation with implements and each
// method with the function registered for it; it counts the requests.
type fakePlugin struct {
	implements []string
	mux        *http.ServeMux
	activated  atomic.Int32
}

func newFakePlugin(implements ...string) *fakePlugin {
	p := &fakePlugin{implements: implements, mux: http.NewServeMux()}
	p.mux.HandleFunc("/Plugin.Activate", func(w http.ResponseWriter, _ *http.Request) {
		p.activated.Add(1)
		_ = json.NewEncoder(w).Encode(map[string][]string{"Implements": p.implements})
	})
	return p
}

func (p *fakePlugin) handle(method string, fn http.HandlerFunc) *fakePlugin {
	p.mux.HandleFunc("/"+method, fn)
	return p
}

func (p *fakePlugin) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.mux.ServeHTTP(w, r) }

// reply returns a handler answering status and body.
func reply(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

// asError is errors.As returning the target.
func asError[T error](t *testing.T, err error) T {
	t.Helper()
	var target T
	if !errors.As(err, &target) {
		t.Fatalf("error %v (%T) is not a %T", err, err, target)
	}
	return target
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
