package slirp4netns

import (
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"sync"
	"testing"
)

// fakeSlirp serves slirp4netns's API protocol on a unix socket: one
// request per connection, read with one read as slirp4netns does, answered
// by a function of the test's.
type fakeSlirp struct {
	socket string

	mu       sync.Mutex
	requests []map[string]any
	answer   func(req map[string]any) string
}

func newFakeSlirp(t *testing.T, answer func(req map[string]any) string) *fakeSlirp {
	t.Helper()
	f := &fakeSlirp{socket: filepath.Join(t.TempDir(), "slirp.sock"), answer: answer}
	l, err := net.Listen("unix", f.socket)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { l.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f.serve(c)
		}
	}()
	return f
}

func (f *fakeSlirp) serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		return
	}
	var req map[string]any
	if err := json.Unmarshal(buf[:n], &req); err != nil {
		_, _ = c.Write([]byte(`{"error":{"desc":"bad request: cannot parse JSON"}}`))
		return
	}
	f.mu.Lock()
	f.requests = append(f.requests, req)
	answer := f.answer
	f.mu.Unlock()
	_, _ = c.Write([]byte(answer(req)))
}

// executed returns the commands received, in order.
func (f *fakeSlirp) executed() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.requests {
		s, _ := r["execute"].(string)
		out = append(out, s)
	}
	return out
}

func newManager(t *testing.T, socket string) *Manager {
	t.Helper()
	m, err := New(socket, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// asRefused returns the *RefusedError err wraps, or nil.
func asRefused(err error) *RefusedError {
	var r *RefusedError
	if errors.As(err, &r) {
		return r
	}
	return nil
}

// lockedBuffer collects a process's output, written from exec's copying
// goroutines and read by the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
