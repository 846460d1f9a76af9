// Package wiretest is what the tests of pluginsdk/network and
// pluginsdk/ipam use to prove them the same on the wire as
// go-plugins-helpers: both handlers served on unix sockets, the same raw
// HTTP requests sent to each, the replies compared byte for byte, and
// JSON round trips between this project's wire structs and
// go-plugins-helpers'. It does not import go-plugins-helpers, which is a
// dependency of those tests only.
package wiretest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"
)

// Serve serves with serve on a new unix socket named name in a temporary
// directory until the test ends, and returns a Client of it. serve is a
// Serve(net.Listener) error method: go-plugins-helpers' ServeUnix would
// make /run/docker/plugins, which a test must not touch, so both
// handlers are given the listener.
func Serve(t *testing.T, name string, serve func(net.Listener) error) *Client {
	t.Helper()
	socket := filepath.Join(t.TempDir(), name+".sock")
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		// go-plugins-helpers' Serve cannot be shut down: closing its
		// listener stops it, with an error that says so.
		_ = serve(l)
	}()
	c := &Client{http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}}
	t.Cleanup(func() {
		c.http.CloseIdleConnections()
		l.Close()
		<-served
	})
	return c
}

// Client sends raw HTTP requests to a plugin on a unix socket.
type Client struct {
	http *http.Client
}

// Reply is what a plugin answered.
type Reply struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r Reply) String() string {
	return fmt.Sprintf("%d %v %q", r.Status, r.Header, r.Body)
}

// Do sends body to path with the HTTP method, and the headers the
// library's client sends.
func (c *Client) Do(t *testing.T, method, path string, body []byte) Reply {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, "http://plugin"+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/vnd.docker.plugins.v1.2+json")
	req.Header.Set("Content-Type", "application/vnd.docker.plugins.v1.2+json")
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	header := resp.Header.Clone()
	// The time of the answer is the one header that may differ.
	if _, err := time.Parse(http.TimeFormat, header.Get("Date")); err != nil {
		t.Errorf("%s %s: Date %q: %v", method, path, header.Get("Date"), err)
	}
	header.Del("Date")
	return Reply{Status: resp.StatusCode, Header: header, Body: data}
}

// Same fails the test unless ours and theirs are the same reply: status,
// headers (Content-Type among them) and body bytes. It returns whether
// they were.
func Same(t *testing.T, what string, ours, theirs Reply) bool {
	t.Helper()
	if ours.Status != theirs.Status || !reflect.DeepEqual(ours.Header, theirs.Header) || !bytes.Equal(ours.Body, theirs.Body) {
		t.Errorf("%s:\n ours   %v\n theirs %v", what, ours, theirs)
		return false
	}
	return true
}

// Convert is v as a T, through JSON: how a test adapts a driver written
// with one side's types to the other side's interface. A nil v (or nil
// pointer) is a nil *T.
func Convert[T any](v any) *T {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	if string(data) == "null" {
		return nil
	}
	out := new(T)
	if err := json.Unmarshal(data, out); err != nil {
		panic(err)
	}
	return out
}

// RoundTrip checks one wire struct against go-plugins-helpers': ours (a
// pointer, every field set, also inside) encodes to JSON that theirs (a
// pointer to the zero value of go-plugins-helpers' struct) decodes,
// re-encodes to the same bytes and that decode back to ours; and the two
// structs have the same fields, JSON names and kinds, but for the
// top-level fields named in extra, ours only, which must be omitempty.
func RoundTrip(t *testing.T, ours, theirs any, extra ...string) {
	t.Helper()
	name := reflect.TypeOf(ours).Elem().Name()
	if path := unset(reflect.ValueOf(ours).Elem(), name); path != "" {
		t.Errorf("%s is not set: set every field", path)
	}
	sameShape(t, name, reflect.TypeOf(ours).Elem(), reflect.TypeOf(theirs).Elem(), extra)

	data, err := json.Marshal(ours)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, theirs); err != nil {
		t.Fatalf("%s: go-plugins-helpers does not decode %s: %v", name, data, err)
	}
	again, err := json.Marshal(theirs)
	if err != nil {
		t.Fatal(err)
	}
	if len(extra) == 0 && !bytes.Equal(data, again) {
		t.Errorf("%s:\n ours   %s\n theirs %s", name, data, again)
	}
	back := reflect.New(reflect.TypeOf(ours).Elem()).Interface()
	if err := json.Unmarshal(again, back); err != nil {
		t.Fatalf("%s: %s does not decode: %v", name, again, err)
	}
	want := ours
	if len(extra) > 0 {
		// Go-plugins-helpers drops our extension fields.
		z := reflect.New(reflect.TypeOf(ours).Elem())
		z.Elem().Set(reflect.ValueOf(ours).Elem())
		for _, f := range extra {
			fv := z.Elem().FieldByName(f)
			fv.Set(reflect.Zero(fv.Type()))
		}
		want = z.Interface()
	}
	if !reflect.DeepEqual(back, want) {
		t.Errorf("%s: %+v came back as %+v", name, want, back)
	}
}

// unset returns the path of a zero field in v, following pointers,
// interfaces, structs and slices (a map is free-form: not followed), or
// "".
func unset(v reflect.Value, path string) string {
	if v.IsZero() {
		return path
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		return unset(v.Elem(), path)
	case reflect.Struct:
		for i := range v.NumField() {
			if p := unset(v.Field(i), path+"."+v.Type().Field(i).Name); p != "" {
				return p
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			if p := unset(v.Index(i), fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	}
	return ""
}

// sameShape fails the test where the two types differ in fields, JSON
// names, or kinds.
func sameShape(t *testing.T, path string, ours, theirs reflect.Type, extra []string) {
	t.Helper()
	if ours.Kind() != theirs.Kind() {
		t.Errorf("%s: ours is a %s, theirs a %s", path, ours.Kind(), theirs.Kind())
		return
	}
	switch ours.Kind() {
	case reflect.Pointer, reflect.Slice:
		sameShape(t, path+"[]", ours.Elem(), theirs.Elem(), nil)
	case reflect.Map:
		sameShape(t, path+"[key]", ours.Key(), theirs.Key(), nil)
		sameShape(t, path+"[]", ours.Elem(), theirs.Elem(), nil)
	case reflect.Struct:
		n := 0
		for i := range ours.NumField() {
			f := ours.Field(i)
			tf, ok := theirs.FieldByName(f.Name)
			if !ok {
				if !slices.Contains(extra, f.Name) {
					t.Errorf("%s.%s: go-plugins-helpers has no such field", path, f.Name)
				} else if f.Tag.Get("json") != ",omitempty" {
					t.Errorf("%s.%s: our extension must be omitempty, so that its zero value is not sent", path, f.Name)
				}
				continue
			}
			n++
			if f.Tag != tf.Tag {
				t.Errorf("%s.%s: tag %q, theirs %q", path, f.Name, f.Tag, tf.Tag)
			}
			sameShape(t, path+"."+f.Name, f.Type, tf.Type, nil)
		}
		if n != theirs.NumField() {
			t.Errorf("%s: go-plugins-helpers has %d fields, we have %d of them", path, theirs.NumField(), n)
		}
	}
}
