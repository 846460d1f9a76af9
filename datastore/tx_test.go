package datastore

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/netkit/libnetwork/types"
)

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "local-kv.db")
	want := network{Name: "web", Driver: "bridge", Subnets: []string{"10.1.0.0/24"}, Labels: map[string]string{"a": "b"}, IPv6: true}

	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(tx *Tx) error { return tx.Put("network", "n1", want) }); err != nil {
		t.Fatalf("Put: %v", err)
	}
	var got network
	if err := s.View(func(tx *Tx) error { return tx.Get("network", "n1", &got) }); err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Get = %+v, want %+v", got, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// The record survives a reopen.
	s = mustOpen(t, path, Options{})
	got = network{}
	if err := s.View(func(tx *Tx) error { return tx.Get("network", "n1", &got) }); err != nil {
		t.Fatalf("Get after reopen: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Get after reopen = %+v, want %+v", got, want)
	}
}

func TestGetNotFound(t *testing.T) {
	s := newStore(t)
	if err := s.Update(func(tx *Tx) error { return tx.Put("network", "n1", network{}) }); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ kind, id string }{
		{"network", "missing"}, // bucket exists
		{"endpoint", "e1"},     // bucket does not
	} {
		err := s.View(func(tx *Tx) error { return tx.Get(tc.kind, tc.id, &network{}) })
		if !errors.Is(err, ErrNotFound) || !types.IsNotFound(err) {
			t.Errorf("Get(%s, %s) = %v, want ErrNotFound (a NotFoundError)", tc.kind, tc.id, err)
		}
	}
}

func TestUpdateAtomic(t *testing.T) {
	s := newStore(t)
	errAbort := errors.New("abort")
	err := s.Update(func(tx *Tx) error {
		if err := tx.Put("network", "n1", network{Name: "one"}); err != nil {
			return err
		}
		if err := tx.Put("endpoint", "e1", network{Name: "ep"}); err != nil {
			return err
		}
		return errAbort
	})
	if err != errAbort {
		t.Fatalf("Update = %v, want fn's error unchanged", err)
	}
	for _, kind := range []string{"network", "endpoint"} {
		got, err := List[network](s, kind)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 0 {
			t.Errorf("after a failed Update, %s holds %v", kind, got)
		}
	}

	// A panicking fn rolls back too.
	func() {
		defer func() { _ = recover() }()
		_ = s.Update(func(tx *Tx) error {
			if err := tx.Put("network", "n2", network{}); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	if got, _ := List[network](s, "network"); len(got) != 0 {
		t.Errorf("after a panicking Update, network holds %v", got)
	}
}

func TestForEachAndList(t *testing.T) {
	s := newStore(t)
	want := map[string]network{}
	err := s.Update(func(tx *Tx) error {
		for i := range 20 {
			id := fmt.Sprintf("n%02d", i)
			rec := network{Name: fmt.Sprintf("net%d", i), Driver: "bridge"}
			want[id] = rec
			if err := tx.Put("network", id, rec); err != nil {
				return err
			}
		}
		return tx.Put("endpoint", "e1", network{Name: "other kind"})
	})
	if err != nil {
		t.Fatal(err)
	}

	got, err := List[network](s, "network")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("List = %v, want %v", got, want)
	}

	var ids []string
	err = s.View(func(tx *Tx) error {
		return tx.ForEach("network", func(id string, decode func(any) error) error {
			var n network
			if err := decode(&n); err != nil {
				return err
			}
			if n.Name != want[id].Name {
				t.Errorf("ForEach %s decoded %+v, want %+v", id, n, want[id])
			}
			ids = append(ids, id)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 20 || ids[0] != "n00" || ids[19] != "n19" {
		t.Errorf("ForEach visited %v, want n00..n19 in order", ids)
	}

	// fn's error stops the walk and comes back unchanged.
	errStop := errors.New("stop")
	visits := 0
	err = s.View(func(tx *Tx) error {
		return tx.ForEach("network", func(string, func(any) error) error { visits++; return errStop })
	})
	if err != errStop || visits != 1 {
		t.Errorf("ForEach returning an error: err %v after %d visits, want %v after 1", err, visits, errStop)
	}

	empty, err := List[network](s, "sandbox")
	if err != nil || len(empty) != 0 {
		t.Errorf("List of an unused kind = %v, %v; want empty, nil", empty, err)
	}
}

func TestDelete(t *testing.T) {
	s := newStore(t)
	err := s.Update(func(tx *Tx) error {
		if err := tx.Put("network", "n1", network{Name: "one"}); err != nil {
			return err
		}
		return tx.Put("network", "n2", network{Name: "two"})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(func(tx *Tx) error {
		for _, k := range [][2]string{{"network", "n1"}, {"network", "missing"}, {"sandbox", "missing"}} {
			if err := tx.Delete(k[0], k[1]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	got, err := List[network](s, "network")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got["n2"].Name != "two" {
		t.Errorf("after Delete(n1): %v, want only n2", got)
	}
}

func TestBadStoredRecords(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want error
	}{
		{"newer schema", `{"v":2,"data":{"name":"future"}}`, ErrSchema},
		{"no version", `{"data":{"name":"x"}}`, ErrSchema},
		{"not json", `garbage`, ErrCorrupt},
		{"data of the wrong type", `{"v":1,"data":"a string"}`, ErrCorrupt},
	}
	s := newStore(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			putRaw(t, s, "network", "bad", tc.raw)
			err := s.View(func(tx *Tx) error { return tx.Get("network", "bad", &network{}) })
			if !errors.Is(err, tc.want) || !types.IsInternal(err) {
				t.Errorf("Get = %v, want %v", err, tc.want)
			}
			_, err = List[network](s, "network")
			if !errors.Is(err, tc.want) {
				t.Errorf("List = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestInvalidArguments(t *testing.T) {
	s := newStore(t)
	tests := []struct {
		name string
		op   func(tx *Tx) error
	}{
		{"put empty kind", func(tx *Tx) error { return tx.Put("", "id", network{}) }},
		{"put empty id", func(tx *Tx) error { return tx.Put("network", "", network{}) }},
		{"put unencodable", func(tx *Tx) error { return tx.Put("network", "id", make(chan int)) }},
		{"get empty id", func(tx *Tx) error { return tx.Get("network", "", &network{}) }},
		{"delete empty kind", func(tx *Tx) error { return tx.Delete("", "id") }},
		{"foreach empty kind", func(tx *Tx) error {
			return tx.ForEach("", func(string, func(any) error) error { return nil })
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.Update(tc.op); !types.IsBadRequest(err) {
				t.Errorf("got %v, want a BadRequestError", err)
			}
		})
	}
}

func TestPutInViewFails(t *testing.T) {
	s := newStore(t)
	err := s.View(func(tx *Tx) error { return tx.Put("network", "n1", network{}) })
	if err == nil {
		t.Fatal("Put in a View transaction succeeded")
	}
}
