package plugins

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/netkit/libnetwork/types"
)

type echoReq struct{ Value string }
type echoResp struct {
	Value       string
	Accept      string
	ContentType string
}

func echo(w http.ResponseWriter, r *http.Request) {
	var req echoReq
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		reply(400, `{"Err":"bad request"}`)(w, r)
		return
	}
	_ = json.NewEncoder(w).Encode(echoResp{Value: req.Value, Accept: r.Header.Get("Accept"), ContentType: r.Header.Get("Content-Type")})
}

func TestActivateAndCall(t *testing.T) {
	d := newDirs(t)
	p := newFakePlugin("NetworkDriver", "PortMapper").handle("PortMapper.Echo", echo)
	serveUnix(t, filepath.Join(d.sock, "pm.sock"), p)
	r := d.registry(t, nil)

	pl, err := r.Get(t.Context(), "pm", "PortMapper")
	if err != nil {
		t.Fatal(err)
	}
	if pl.Name() != "pm" || pl.Endpoint().Network != "unix" || !pl.Implements("NetworkDriver") || pl.Implements("IpamDriver") {
		t.Fatalf("plugin %s at %s implements %v", pl.Name(), pl.Endpoint(), pl.Manifest())
	}
	var resp echoResp
	if err := pl.Call(t.Context(), "PortMapper.Echo", echoReq{"hello"}, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Value != "hello" || resp.Accept != MediaType || resp.ContentType != MediaType {
		t.Fatalf("echo answered %+v", resp)
	}
	// Activation is cached: a second Get, for another interface too,
	// does not activate again.
	if _, err := r.Get(t.Context(), "pm", "NetworkDriver"); err != nil {
		t.Fatal(err)
	}
	if n := p.activated.Load(); n != 1 {
		t.Fatalf("plugin activated %d times, want 1", n)
	}
}

func TestWrongInterface(t *testing.T) {
	d := newDirs(t)
	p := newFakePlugin("NetworkDriver")
	serveUnix(t, filepath.Join(d.sock, "net.sock"), p)
	r := d.registry(t, nil)
	_, err := r.Get(t.Context(), "net", "PortMapper")
	ie := asError[*InterfaceError](t, err)
	if ie.Interface != "PortMapper" || len(ie.Implements) != 1 || ie.Implements[0] != "NetworkDriver" {
		t.Fatalf("InterfaceError %+v", ie)
	}
	if _, ok := err.(types.NotImplementedError); !ok {
		t.Fatalf("%v is not a types.NotImplementedError", err)
	}
	if !strings.Contains(err.Error(), `"net"`) || !strings.Contains(err.Error(), "PortMapper") {
		t.Fatalf("error %q does not name the plugin and the interface", err)
	}
}

func TestActivateFailureIsNotCached(t *testing.T) {
	d := newDirs(t)
	var fail atomic.Bool
	fail.Store(true)
	p := newFakePlugin("PortMapper")
	mux := http.NewServeMux()
	mux.HandleFunc("/Plugin.Activate", func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			reply(500, `{"Err":"starting up"}`)(w, r)
			return
		}
		p.ServeHTTP(w, r)
	})
	serveUnix(t, filepath.Join(d.sock, "flaky.sock"), mux)
	r := d.registry(t, nil)
	_, err := r.Get(t.Context(), "flaky", "PortMapper")
	re := asError[*RemoteError](t, err)
	if re.Method != ActivateMethod || re.Msg != "starting up" || re.Status != 500 {
		t.Fatalf("RemoteError %+v", re)
	}
	fail.Store(false)
	if _, err := r.Get(t.Context(), "flaky", "PortMapper"); err != nil {
		t.Fatalf("second activation: %v", err)
	}
}

// TestErrorAnswers: the plugin's own errors, as an Err or Error field or a
// non-200 status, come back as a RemoteError naming plugin, method and
// message.
func TestErrorAnswers(t *testing.T) {
	d := newDirs(t)
	p := newFakePlugin("PortMapper").
		handle("PortMapper.ErrField", reply(200, `{"PortBindings":null,"Err":"port 80 is taken"}`)).
		handle("PortMapper.ErrorField", reply(200, `{"Error":"no such network"}`)).
		handle("PortMapper.Status500", reply(500, `{"Err":"driver failed"}`)).
		handle("PortMapper.Status404Text", reply(404, "404 page not found\n")).
		handle("PortMapper.Status503Empty", reply(503, "")).
		handle("PortMapper.NestedError", reply(200, `{"Value":"ok","Error":null,"Err":""}`))
	serveUnix(t, filepath.Join(d.sock, "pm.sock"), p)
	pl, err := d.registry(t, nil).Get(t.Context(), "pm", "PortMapper")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method string
		status int
		msg    string
	}{
		{"PortMapper.ErrField", 200, "port 80 is taken"},
		{"PortMapper.ErrorField", 200, "no such network"},
		{"PortMapper.Status500", 500, "driver failed"},
		{"PortMapper.Status404Text", 404, "404 page not found"},
		{"PortMapper.Status503Empty", 503, "Service Unavailable"},
		{"PortMapper.Missing", 404, "404 page not found"},
	} {
		var resp echoResp
		err := pl.Call(t.Context(), tc.method, nil, &resp)
		re := asError[*RemoteError](t, err)
		if re.Name != "pm" || re.Method != tc.method || re.Status != tc.status || re.Msg != tc.msg {
			t.Errorf("%s: RemoteError %+v, want status %d msg %q", tc.method, re, tc.status, tc.msg)
		}
		if !strings.Contains(err.Error(), `"pm"`) || !strings.Contains(err.Error(), tc.method) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: error %q does not name plugin, method and message", tc.method, err)
		}
	}
	// An empty Err or a null Error is no error.
	var resp echoResp
	if err := pl.Call(t.Context(), "PortMapper.NestedError", nil, &resp); err != nil || resp.Value != "ok" {
		t.Fatalf("NestedError: %v, %+v", err, resp)
	}
}

func TestMalformedAnswers(t *testing.T) {
	d := newDirs(t)
	p := newFakePlugin("PortMapper").
		handle("PortMapper.Truncated", reply(200, `{"Value": "x`)).
		handle("PortMapper.NotJSON", reply(200, `<html>hello</html>`)).
		handle("PortMapper.WrongType", reply(200, `{"Value": 42}`)).
		handle("PortMapper.Trailing", reply(200, `{"Value":"x"} {"Value":"y"}`)).
		handle("PortMapper.Empty", reply(200, ``)).
		handle("PortMapper.Huge", reply(200, `{"Value":"`+strings.Repeat("x", 2048)+`"}`))
	serveUnix(t, filepath.Join(d.sock, "pm.sock"), p)
	pl, err := d.registry(t, func(c *Config) { c.MaxResponseSize = 1024 }).Get(t.Context(), "pm", "PortMapper")
	if err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{"PortMapper.Truncated", "PortMapper.NotJSON", "PortMapper.WrongType", "PortMapper.Trailing", "PortMapper.Empty", "PortMapper.Huge"} {
		var resp echoResp
		err := pl.Call(t.Context(), method, nil, &resp)
		pe := asError[*ProtocolError](t, err)
		if pe.Name != "pm" || pe.Method != method {
			t.Errorf("%s: ProtocolError %+v", method, pe)
		}
		if _, ok := err.(types.InternalError); !ok {
			t.Errorf("%s: %v is not a types.InternalError", method, err)
		}
	}
	// Without a value to decode into, a malformed body is still an error.
	if err := pl.Call(t.Context(), "PortMapper.NotJSON", nil, nil); err == nil {
		t.Fatal("malformed body accepted when no answer is wanted")
	}
	// ... and an empty one is fine.
	if err := pl.Call(t.Context(), "PortMapper.Empty", nil, nil); err != nil {
		t.Fatal(err)
	}
}

// TestTimeout: a plugin that does not answer gives a TimeoutError at the
// call timeout, and the request is not sent twice.
func TestTimeout(t *testing.T) {
	d := newDirs(t)
	var calls atomic.Int32
	p := newFakePlugin("PortMapper").handle("PortMapper.Sleep", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	})
	serveUnix(t, filepath.Join(d.sock, "slow.sock"), p)
	pl, err := d.registry(t, func(c *Config) { c.CallTimeout = 300 * time.Millisecond }).Get(t.Context(), "slow", "PortMapper")
	if err != nil {
		t.Fatal(err)
	}
	err = pl.Call(t.Context(), "PortMapper.Sleep", echoReq{"x"}, nil)
	te := asError[*TimeoutError](t, err)
	if te.Method != "PortMapper.Sleep" || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("TimeoutError %+v", te)
	}
	if _, ok := err.(types.TimeoutError); !ok {
		t.Fatalf("%v is not a types.TimeoutError", err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("the plugin got the request %d times, want 1", n)
	}

	// The caller's context bounds the call too.
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	pl2, _ := d.registry(t, nil).Get(t.Context(), "slow", "PortMapper")
	asError[*TimeoutError](t, pl2.Call(ctx, "PortMapper.Sleep", nil, nil))
}

// TestNoRetryOnceSent: a plugin that drops the connection after reading
// the request gets it once; the error says the request may have been
// applied.
func TestNoRetryOnceSent(t *testing.T) {
	d := newDirs(t)
	var calls atomic.Int32
	p := newFakePlugin("PortMapper").handle("PortMapper.Drop", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	serveUnix(t, filepath.Join(d.sock, "drop.sock"), p)
	pl, err := d.registry(t, nil).Get(t.Context(), "drop", "PortMapper")
	if err != nil {
		t.Fatal(err)
	}
	err = pl.Call(t.Context(), "PortMapper.Drop", nil, nil)
	ue := asError[*UnavailableError](t, err)
	if !ue.Sent {
		t.Fatalf("UnavailableError %+v: Sent is false", ue)
	}
	if _, ok := err.(types.NoServiceError); !ok {
		t.Fatalf("%v is not a types.NoServiceError", err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("the plugin got the request %d times, want 1", n)
	}
}

// retryLog is a slog.Handler that signals each retry of a call.
type retryLog struct{ retries chan string }

func (h retryLog) Enabled(context.Context, slog.Level) bool { return true }
func (h retryLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h retryLog) WithGroup(string) slog.Handler            { return h }
func (h retryLog) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "retrying") {
		select {
		case h.retries <- r.Message:
		default:
		}
	}
	return nil
}

// TestRetryUntilListening: a plugin whose socket is missing, or refuses
// connections, when first called is reached by retrying once it listens;
// one that never does fails after the retry window, with Sent false.
func TestRetryUntilListening(t *testing.T) {
	d := newDirs(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.sock")
	refusing := filepath.Join(dir, "refusing.sock")
	writeFile(t, filepath.Join(d.spec, "missing.spec"), "unix://"+missing)
	writeFile(t, filepath.Join(d.spec, "refusing.spec"), "unix://"+refusing)
	// A socket file nobody accepts on: connecting is refused.
	l, err := net.Listen("unix", refusing)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()

	log := retryLog{retries: make(chan string, 1)}
	r := d.registry(t, func(c *Config) {
		c.RetryWindow = 30 * time.Second
		c.ActivateTimeout = 30 * time.Second
		c.Logger = slog.New(log)
	})
	for _, tc := range []struct{ name, path string }{{"missing", missing}, {"refusing", refusing}} {
		done := make(chan error, 1)
		go func() {
			_, err := r.Get(t.Context(), tc.name, "PortMapper")
			done <- err
		}()
		select {
		case <-log.retries:
		case err := <-done:
			t.Fatalf("%s: Get returned %v before any retry", tc.name, err)
		}
		os.Remove(tc.path)
		serveUnix(t, tc.path, newFakePlugin("PortMapper"))
		if err := <-done; err != nil {
			t.Fatalf("%s: Get after the plugin came up: %v", tc.name, err)
		}
	}

	// Never listening: the retries end with the window.
	writeFile(t, filepath.Join(d.spec, "never.spec"), "unix://"+filepath.Join(dir, "never.sock"))
	r2 := d.registry(t, func(c *Config) { c.RetryWindow = 300 * time.Millisecond })
	_, err = r2.Get(t.Context(), "never", "PortMapper")
	ue := asError[*UnavailableError](t, err)
	if ue.Sent || ue.Method != ActivateMethod || !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("UnavailableError %+v (%v)", ue, err)
	}
}

// TestSlowPluginDoesNotBlockOthers: while one plugin hangs in an
// activation and another in a call, a third is activated and called.
func TestSlowPluginDoesNotBlockOthers(t *testing.T) {
	d := newDirs(t)
	release := make(chan struct{})
	entered := make(chan string, 2)
	hang := func(what string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			entered <- what
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	}
	hungActivate := http.NewServeMux()
	hungActivate.HandleFunc("/Plugin.Activate", hang("activate"))
	serveUnix(t, filepath.Join(d.sock, "hangs-activate.sock"), hungActivate)
	serveUnix(t, filepath.Join(d.sock, "hangs-call.sock"), newFakePlugin("PortMapper").handle("PortMapper.Echo", hang("call")))
	serveUnix(t, filepath.Join(d.sock, "fine.sock"), newFakePlugin("PortMapper").handle("PortMapper.Echo", echo))
	r := d.registry(t, func(c *Config) { c.CallTimeout = time.Minute; c.ActivateTimeout = time.Minute })

	slowCall, err := r.Get(t.Context(), "hangs-call", "PortMapper")
	if err != nil {
		t.Fatal(err)
	}
	var pending sync.WaitGroup
	results := make(chan error, 2)
	pending.Add(2)
	go func() {
		defer pending.Done()
		_, err := r.Get(t.Context(), "hangs-activate", "PortMapper")
		results <- err
	}()
	go func() {
		defer pending.Done()
		results <- slowCall.Call(t.Context(), "PortMapper.Echo", echoReq{"slow"}, nil)
	}()
	<-entered
	<-entered

	pl, err := r.Get(t.Context(), "fine", "PortMapper")
	if err != nil {
		t.Fatal(err)
	}
	var resp echoResp
	if err := pl.Call(t.Context(), "PortMapper.Echo", echoReq{"fast"}, &resp); err != nil || resp.Value != "fast" {
		t.Fatalf("call to the healthy plugin: %v %+v", err, resp)
	}
	select {
	case err := <-results:
		t.Fatalf("a hung plugin answered before being released: %v", err)
	default:
	}
	// A caller of the hung plugin with its own deadline stops waiting
	// without ending the activation others share.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	asError[*TimeoutError](t, func() error { _, err := r.Get(ctx, "hangs-activate", "PortMapper"); return err }())

	close(release)
	pending.Wait()
	close(results)
	for err := range results {
		if err != nil && !strings.Contains(err.Error(), "hangs-activate") {
			t.Errorf("released call: %v", err)
		}
	}
}

// TestTCPAndTLS: plugins on TCP, found through a .spec and through a .json
// with a TLSConfig whose CAFile verifies the plugin's certificate.
func TestTCPAndTLS(t *testing.T) {
	d := newDirs(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveHTTP(t, l, newFakePlugin("PortMapper").handle("PortMapper.Echo", echo))
	writeFile(t, filepath.Join(d.spec, "plain.spec"), "tcp://"+l.Addr().String())

	ts := httptest.NewUnstartedServer(newFakePlugin("PortMapper").handle("PortMapper.Echo", echo))
	ts.StartTLS()
	t.Cleanup(ts.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	writeFile(t, ca, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})))
	addr := strings.TrimPrefix(ts.URL, "https://")
	writeFile(t, filepath.Join(d.spec, "secure.json"), `{"Name":"secure","Addr":"tcp://`+addr+`","TLSConfig":{"CAFile":"`+ca+`"}}`)
	// Without the CA, verification fails: TLS is really in use.
	writeFile(t, filepath.Join(d.spec, "unverified.spec"), "https://"+addr)

	r := d.registry(t, nil)
	for _, name := range []string{"plain", "secure"} {
		pl, err := r.Get(t.Context(), name, "PortMapper")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var resp echoResp
		if err := pl.Call(t.Context(), "PortMapper.Echo", echoReq{name}, &resp); err != nil || resp.Value != name {
			t.Fatalf("%s: %v %+v", name, err, resp)
		}
	}
	_, err = r.Get(t.Context(), "unverified", "PortMapper")
	var certErr *tls.CertificateVerificationError
	if !errors.As(err, &certErr) {
		t.Fatalf("https plugin with an unknown authority: %v, want a certificate verification error", err)
	}
}
