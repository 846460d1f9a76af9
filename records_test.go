package libnetwork

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/netkit/libnetwork/config"
	"github.com/netkit/libnetwork/datastore"
)

// badRecord is a record forged into a store between Stop and New, with the
// words its quarantine reason must contain.
type badRecord struct {
	kind, key string
	rec       any    // written with Put when raw is empty
	raw       string // written as is with PutRaw
	reason    string
}

// forge writes recs into the stopped controller's stores with the
// datastore API, as a damaged disk or a hostile local user could.
func (e *testEnv) forge(t *testing.T, recs []badRecord) {
	t.Helper()
	for _, db := range []struct {
		path  string
		kinds []string
	}{
		{filepath.Join(e.dataDir, "network.db"), []string{kindNetwork, "controller"}},
		{filepath.Join(e.execRoot, "state.db"), []string{kindEndpoint, kindSandbox}},
	} {
		s, err := datastore.Open(db.path, datastore.Options{})
		mustf(t, err, "opening %s", db.path)
		err = s.Update(func(tx *datastore.Tx) error {
			for _, r := range recs {
				if !slices.Contains(db.kinds, r.kind) {
					continue
				}
				var err error
				if r.raw != "" {
					err = tx.PutRaw(r.kind, r.key, []byte(r.raw))
				} else {
					err = tx.Put(r.kind, r.key, r.rec)
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
		mustf(t, err, "forging records in %s", db.path)
		mustf(t, s.Close(), "closing %s", db.path)
	}
}

// syncBuffer is a log sink safe for the controller's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// checkQuarantined checks that each of recs is in quarantine with its
// reason and named by exactly one log line, and that nothing else is.
func checkQuarantined(t *testing.T, c *controller, logs string, recs []badRecord) {
	t.Helper()
	var got []datastore.Quarantined
	for _, s := range []*datastore.Store{c.store, c.state} {
		q, err := datastore.ListQuarantined(s)
		mustf(t, err, "listing quarantine of %s", s.Path())
		got = append(got, q...)
	}
	if len(got) != len(recs) {
		t.Errorf("%d records in quarantine, want %d: %+v", len(got), len(recs), got)
	}
	for _, r := range recs {
		found := false
		for _, q := range got {
			if q.Kind != r.kind || q.ID != r.key {
				continue
			}
			found = true
			if !strings.Contains(q.Reason, r.reason) {
				t.Errorf("%s %q quarantined for %q, want a reason with %q", r.kind, r.key, q.Reason, r.reason)
			}
			if r.raw != "" && string(q.Raw) != r.raw {
				t.Errorf("%s %q quarantined as %q, want the stored bytes %q", r.kind, r.key, q.Raw, r.raw)
			}
		}
		if !found {
			t.Errorf("%s %q not in quarantine", r.kind, r.key)
		}
		n := 0
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, "quarantine") && strings.Contains(line, " kind="+r.kind+" id="+quoteIfNeeded(r.key)+" ") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d log lines name quarantined %s %q, want 1:\n%s", n, r.kind, r.key, logs)
		}
	}
	for _, kind := range []string{kindNetwork, kindEndpoint, kindSandbox} {
		s := c.state
		if kind == kindNetwork {
			s = c.store
		}
		left, err := datastore.List[map[string]any](s, kind)
		mustf(t, err, "listing %s records after restore", kind)
		for _, r := range recs {
			if _, ok := left[r.key]; ok && r.kind == kind {
				t.Errorf("%s %q still among the records", kind, r.key)
			}
		}
	}
}

// quoteIfNeeded renders s as slog's text handler does.
func quoteIfNeeded(s string) string {
	for _, ch := range s {
		if ch <= ' ' || ch == '=' || ch == '"' || ch > '~' {
			return `"` + s + `"`
		}
	}
	if s == "" {
		return `""`
	}
	return s
}

// goodState makes a network with an endpoint joined to a sandbox, and
// returns a check that they are all restored, still joined.
func goodState(t *testing.T, c *controller) func(c *controller) {
	t.Helper()
	n, err := c.NewNetwork("bridge", "good", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.141.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	ep, _ := joined(t, c, n, "a")
	addr := ep.Info().Iface().Address().String()
	return func(c *controller) {
		t.Helper()
		ep, err := mustNetwork(t, c, "good").EndpointByName("a")
		mustf(t, err, "good endpoint after restart")
		if ep.Info().Sandbox() == nil || ep.Info().Iface().Address().String() != addr {
			t.Errorf("good endpoint after restart: joined to %v with %s, want joined with %s", ep.Info().Sandbox(), ep.Info().Iface().Address(), addr)
		}
		if len(c.Sandboxes()) != 1 {
			t.Errorf("sandboxes after restart: %v, want the good one", c.Sandboxes())
		}
	}
}

// restartWith stops c, forges recs into its stores and starts a new
// controller, which must come up, quarantine each of recs and keep the
// good state.
func restartWith(t *testing.T, e *testEnv, recs []badRecord) (*controller, string) {
	t.Helper()
	return restartWithFunc(t, e, func(*controller) []badRecord { return recs })
}

// restartWithFunc is restartWith with records made from the controller
// that holds the good state.
func restartWithFunc(t *testing.T, e *testEnv, forged func(c *controller) []badRecord) (*controller, string) {
	t.Helper()
	nc, err := New(e.options()...)
	mustf(t, err, "New")
	c := nc.(*controller)
	check := goodState(t, c)
	recs := forged(c)
	c.Stop()
	e.forge(t, recs)

	var logs syncBuffer
	c = e.start(config.OptionLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	check(c)
	checkQuarantined(t, c, logs.String(), recs)
	return c, logs.String()
}

const (
	idA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	idB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	idC = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
	idD = "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
	idE = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
)

// TestRestoreQuarantinesBadNetworks: a network record that does not decode
// (a version this build does not read, no version, not JSON) or that the
// API could not have made no longer keeps New from starting (nor panics
// it): each goes to quarantine and the good network comes back.
func TestRestoreQuarantinesBadNetworks(t *testing.T) {
	e := newEnv(t)
	restartWith(t, e, []badRecord{
		{kind: kindNetwork, key: idA, raw: `{"v":2}`, reason: "version 2"},
		{kind: kindNetwork, key: idB, raw: `{"v":0}`, reason: "version 0"},
		{kind: kindNetwork, key: idC, raw: `not json`, reason: "corrupt"},
		{kind: kindNetwork, key: idD, rec: networkRecord{ID: idD, Name: "nilconf", Type: "bridge", IpamV4Config: []*IpamConf{nil}}, reason: "IPAM"},
		{kind: kindNetwork, key: idE, rec: networkRecord{ID: idE, Name: "", Type: "bridge"}, reason: "network name"},
		{kind: kindNetwork, key: "short", rec: networkRecord{ID: "short", Name: "short", Type: "bridge"}, reason: "hex"},
		{kind: kindNetwork, key: idA[:63] + "A", rec: networkRecord{ID: idA[:63] + "A", Name: "upper", Type: "bridge"}, reason: "hex"},
		{kind: kindNetwork, key: idA[:63] + "f", rec: networkRecord{ID: idB, Name: "moved", Type: "bridge"}, reason: "stored under key"},
	})
}

// TestRestoreQuarantinesShortSandboxIDs: a sandbox record with a short or
// empty ID used to panic New (the key path takes the ID's first 12
// characters); now it is quarantined.
func TestRestoreQuarantinesShortSandboxIDs(t *testing.T) {
	e := newEnv(t)
	restartWith(t, e, []badRecord{
		{kind: kindSandbox, key: "abc", rec: sandboxRecord{ID: "abc", ContainerID: "ctr-short", Key: "/x"}, reason: "hex"},
		{kind: kindSandbox, key: "empty", rec: sandboxRecord{ID: "", ContainerID: "ctr-empty", Key: "/x"}, reason: "hex"},
		{kind: kindSandbox, key: idA, rec: sandboxRecord{ID: idA, ContainerID: "ctr-key", Key: "/tmp/elsewhere"}, reason: "exec root"},
		{kind: kindSandbox, key: idB, rec: sandboxRecord{ID: idB, Config: sandboxConfig{UseExternalKey: true}}, reason: "container"},
		{kind: kindSandbox, key: idC, rec: sandboxRecord{ID: idC, ContainerID: "ctr-rel", Config: sandboxConfig{UseExternalKey: true, HostsPath: "hosts"}}, reason: "absolute"},
		{kind: kindSandbox, key: idD, raw: `{"v":1,"data":[]}`, reason: "corrupt"},
	})
}

// TestRestoreQuarantinesEscapingSandbox: a sandbox record whose ID walks
// out of the exec root ("../../victim") is quarantined, so nothing (not
// the restore, not Sandbox.Delete, not a second restart) removes the
// directory it names outside the exec root.
func TestRestoreQuarantinesEscapingSandbox(t *testing.T) {
	e := newEnv(t)
	victim := filepath.Join(filepath.Dir(e.execRoot), "victim")
	mustf(t, os.MkdirAll(victim, 0o755), "victim dir")
	mustf(t, os.WriteFile(filepath.Join(victim, "precious"), []byte("keep me"), 0o644), "victim file")
	if got := filepath.Join(e.execRoot, "files", "../../victim"); got != victim {
		t.Fatalf("test set-up: the forged ID reaches %s, not the victim %s", got, victim)
	}

	c, _ := restartWith(t, e, []badRecord{
		{kind: kindSandbox, key: "../../victim", rec: sandboxRecord{ID: "../../victim", ContainerID: "ctr-evil", Config: sandboxConfig{UseExternalKey: true}}, reason: "hex"},
		{kind: kindSandbox, key: idA, rec: sandboxRecord{ID: "../../victim", ContainerID: "ctr-evil2", Config: sandboxConfig{UseExternalKey: true}}, reason: "hex"},
	})
	for _, ctr := range []string{"ctr-evil", "ctr-evil2"} {
		mustf(t, c.SandboxDestroy(ctr), "destroying the forged container %s's sandbox", ctr)
	}
	if _, err := c.SandboxByID("../../victim"); err == nil {
		t.Errorf("the forged sandbox was restored")
	}
	c.Stop()
	e.start()
	if b, err := os.ReadFile(filepath.Join(victim, "precious")); err != nil || string(b) != "keep me" {
		t.Fatalf("the victim outside the exec root was touched: %q, %v", b, err)
	}
}

// TestRestoreQuarantinesBadEndpoints: endpoint records whose references
// (network, joined sandbox) are not IDs, or whose addresses, MAC or
// interface name do not parse, are quarantined; the good endpoint stays.
func TestRestoreQuarantinesBadEndpoints(t *testing.T) {
	e := newEnv(t)
	restartWith(t, e, []badRecord{
		{kind: kindEndpoint, key: idA, rec: endpointRecord{ID: idA, Name: "x", NetworkID: "../x"}, reason: "network ID"},
		{kind: kindEndpoint, key: idB, rec: endpointRecord{ID: idB, Name: "x", NetworkID: idE, Join: &joinRecord{SandboxID: "../../victim"}}, reason: "sandbox ID"},
		{kind: kindEndpoint, key: idC, rec: endpointRecord{ID: idC, Name: "x", NetworkID: idE, Addr: "10.141.0.300/24"}, reason: "address"},
		{kind: kindEndpoint, key: idD, rec: endpointRecord{ID: idD, Name: "x", NetworkID: idE, MAC: "zz"}, reason: "MAC"},
		{kind: kindEndpoint, key: idE, rec: endpointRecord{ID: idE, Name: "x", NetworkID: idE, Join: &joinRecord{SandboxID: idA, IfName: "eth%d"}}, reason: "interface name"},
		{kind: kindEndpoint, key: "ep", rec: endpointRecord{ID: "ep", Name: "x", NetworkID: idE}, reason: "hex"},
		{kind: kindEndpoint, key: idA[:63] + "0", rec: endpointRecord{ID: idA[:63] + "0", Name: "", NetworkID: idE}, reason: "endpoint name"},
		{kind: kindEndpoint, key: idA[:63] + "1", raw: `{"v":1,"data":{"ID":7}}`, reason: "corrupt"},
	})
}

// TestRestoreQuarantinesDuplicates: a second record with the name of a
// network, of an endpoint in its network, or with the container of a
// sandbox (which the API refuses) is quarantined; the first stays.
func TestRestoreQuarantinesDuplicates(t *testing.T) {
	e := newEnv(t)
	last := strings.Repeat("f", 64) // after every other ID: the good ones come first
	restartWithFunc(t, e, func(c *controller) []badRecord {
		n := mustNetwork(t, c, "good")
		return []badRecord{
			{kind: kindNetwork, key: last, rec: networkRecord{ID: last, Name: "good", Type: "bridge"}, reason: "second network name"},
			{kind: kindEndpoint, key: last, rec: endpointRecord{ID: last, Name: "a", NetworkID: n.ID()}, reason: "second endpoint name"},
			{kind: kindSandbox, key: last, rec: sandboxRecord{ID: last, ContainerID: "ctr-a", Config: sandboxConfig{UseExternalKey: true}}, reason: "second container"},
		}
	})
}

// TestRestoreQuarantinesBadControllerID: a controller ID record that does
// not decode no longer keeps New from starting; it is quarantined and a
// new ID is made.
func TestRestoreQuarantinesBadControllerID(t *testing.T) {
	for _, raw := range []string{`{"v":2}`, `{"v":1,"data":"../x"}`} {
		e := newEnv(t)
		restartWith(t, e, []badRecord{{kind: "controller", key: "id", raw: raw, reason: map[bool]string{true: "version", false: "hex"}[raw == `{"v":2}`]}})
	}
}

// TestQuarantinedNetworkKeepsItsEndpoints: the endpoints of a network whose
// record is quarantined keep their records, so putting the network's
// record back (datastore PutRaw) brings the network back with them.
func TestQuarantinedNetworkKeepsItsEndpoints(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	n, err := c.NewNetwork("bridge", "qnet", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.84.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	ep, err := n.CreateEndpoint("qep")
	mustf(t, err, "endpoint")
	nid := n.ID()
	var good networkRecord
	mustf(t, c.store.View(func(tx *datastore.Tx) error { return tx.Get(kindNetwork, nid, &good) }), "reading the network's record")
	c.Stop()
	// A record this build cannot read.
	e.forge(t, []badRecord{{kind: kindNetwork, key: nid, raw: `{"v":2}`}})

	c = e.start()
	if _, err := c.NetworkByID(nid); err == nil {
		t.Fatal("the network with a bad record was restored")
	}
	eps, err := datastore.List[map[string]any](c.state, kindEndpoint)
	mustf(t, err, "listing endpoint records")
	if _, ok := eps[ep.ID()]; !ok {
		t.Fatal("the endpoint of the quarantined network lost its record")
	}
	c.Stop()

	// The operator puts the good record back.
	e.forge(t, []badRecord{{kind: kindNetwork, key: nid, rec: good}})
	c = e.start()
	n2, err := c.NetworkByID(nid)
	mustf(t, err, "network after its record came back")
	if _, err := n2.EndpointByID(ep.ID()); err != nil {
		t.Errorf("endpoint after its network's record came back: %v", err)
	}
}

// TestRestoreQuarantinesInjectingRecords: a stored hostname, DNS entry or
// alias that would inject lines into a sandbox's files is quarantined.
func TestRestoreQuarantinesInjectingRecords(t *testing.T) {
	e := newEnv(t)
	restartWith(t, e, []badRecord{
		{kind: kindSandbox, key: idA, rec: sandboxRecord{ID: idA, ContainerID: "ctr-nl", Config: sandboxConfig{UseExternalKey: true, HostName: "web\n10.0.0.1 victim"}}, reason: "control characters"},
		{kind: kindSandbox, key: idB, rec: sandboxRecord{ID: idB, ContainerID: "ctr-dns", Config: sandboxConfig{UseExternalKey: true, DNSSearchList: []string{"a.example nameserver"}}}, reason: "whitespace"},
		{kind: kindEndpoint, key: idC, rec: endpointRecord{ID: idC, NetworkID: idD, Name: "ep", MyAliases: []string{"x\ny"}}, reason: "control characters"},
	})
}
