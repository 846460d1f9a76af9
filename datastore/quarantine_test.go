package datastore

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/netkit/libnetwork/types"
)

// TestLoadQuarantines: Load returns the good records and moves each bad one
// (undecodable, or refused by the check) whole to the quarantine bucket
// with its reason and one log line; a second Load finds only good ones.
func TestLoadQuarantines(t *testing.T) {
	var logs strings.Builder
	s := newStore(t)
	s.log = slog.New(slog.NewTextHandler(&logs, nil))
	err := s.Update(func(tx *Tx) error {
		if err := tx.Put("network", "good", network{Name: "good"}); err != nil {
			return err
		}
		if err := tx.Put("network", "refused", network{Name: ""}); err != nil {
			return err
		}
		for id, raw := range map[string]string{"v2": `{"v":2}`, "v0": `{"v":0}`, "text": `not json`} {
			if err := tx.PutRaw("network", id, []byte(raw)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	check := func(id string, n *network) error {
		if n.Name == "" {
			return types.InvalidParameterErrorf("no name")
		}
		return nil
	}
	got, err := Load(s, "network", check)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(got) != 1 || got["good"].Name != "good" {
		t.Errorf("Load = %v, want only the good record", got)
	}
	q, err := ListQuarantined(s)
	if err != nil {
		t.Fatalf("ListQuarantined: %v", err)
	}
	want := map[string]string{"refused": "no name", "text": "corrupt", "v0": "version 0", "v2": "version 2"}
	if len(q) != len(want) {
		t.Errorf("quarantined %+v, want %v", q, want)
	}
	for _, r := range q {
		if r.Kind != "network" || !strings.Contains(r.Reason, want[r.ID]) || r.Time == 0 {
			t.Errorf("quarantined %+v, want kind network and a reason with %q", r, want[r.ID])
		}
		if r.ID == "text" && string(r.Raw) != "not json" {
			t.Errorf("quarantined bytes %q, want them as stored", r.Raw)
		}
		if n := strings.Count(logs.String(), "id="+r.ID+" "); n != 1 {
			t.Errorf("%d log lines name %s, want 1:\n%s", n, r.ID, logs.String())
		}
	}
	all, err := List[map[string]any](s, "network")
	if err != nil || len(all) != 1 {
		t.Errorf("records left after Load: %v, %v; want the good one", all, err)
	}
	logs.Reset()
	if got, err := Load(s, "network", check); err != nil || len(got) != 1 || logs.Len() != 0 {
		t.Errorf("second Load = %v, %v, logs %q; want the good record and no log", got, err, logs.String())
	}
	if got, err := Load[network](s, "never-written", nil); err != nil || len(got) != 0 {
		t.Errorf("Load of an unwritten kind = %v, %v", got, err)
	}
}

// TestPutRawRestoresQuarantined: a quarantined record put back with PutRaw
// decodes as it did; Decode reads the stored form as Get does.
func TestPutRawRestoresQuarantined(t *testing.T) {
	s := newStore(t)
	if err := s.Update(func(tx *Tx) error { return tx.Put("network", "n", network{Name: "n"}) }); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(s, "network", func(string, *network) error { return types.InvalidParameterErrorf("refused") }); err != nil {
		t.Fatal(err)
	}
	q, err := ListQuarantined(s)
	if err != nil || len(q) != 1 {
		t.Fatalf("ListQuarantined = %v, %v", q, err)
	}
	var n network
	if err := Decode(q[0].Raw, &n); err != nil || n.Name != "n" {
		t.Errorf("Decode of the quarantined bytes = %+v, %v", n, err)
	}
	if err := s.Update(func(tx *Tx) error { return tx.PutRaw(q[0].Kind, q[0].ID, q[0].Raw) }); err != nil {
		t.Fatal(err)
	}
	n = network{}
	if err := s.View(func(tx *Tx) error { return tx.Get("network", "n", &n) }); err != nil || n.Name != "n" {
		t.Errorf("Get after PutRaw = %+v, %v", n, err)
	}
	if err := Decode([]byte(`{"v":2}`), &n); !errors.Is(err, ErrSchema) {
		t.Errorf("Decode of a newer record = %v, want ErrSchema", err)
	}
	if err := s.Update(func(tx *Tx) error { return tx.PutRaw("network", "", nil) }); !types.IsBadRequest(err) {
		t.Errorf("PutRaw with an empty ID = %v, want an invalid parameter error", err)
	}
}
