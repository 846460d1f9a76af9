package libnetwork

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netkit/libnetwork/datastore"
)

// recordSeeds are stored values as restore reads them: valid records of
// each kind and the bad ones of issue 14.
var recordSeeds = []struct {
	kind byte
	val  string
}{
	{0, `{"v":1,"data":{"ID":"` + idA + `","Name":"web","Type":"bridge","IpamType":"default","AddrSpace":"LocalDefault","IpamV4Config":[{"PreferredPool":"10.1.0.0/24","Gateway":"10.1.0.1"}],"IpamV4Info":[{"PoolID":"p","AddressSpace":"LocalDefault","Pool":"10.1.0.0/24","Gateway":"10.1.0.1/24"}],"Scope":"local","Created":1}}`},
	{1, `{"v":1,"data":{"ID":"` + idB + `","Name":"ep","NetworkID":"` + idA + `","MAC":"02:42:0a:01:00:02","Addr":"10.1.0.2/24","AddrV6":"fd00::2/64","Join":{"SandboxID":"` + idC + `","IfName":"eth0","Gateway":"10.1.0.1","StaticRoutes":[{"Destination":{"IP":"10.2.0.0","Mask":"//8AAA=="},"RouteType":1}]}}}`},
	{2, `{"v":1,"data":{"ID":"` + idC + `","ContainerID":"ctr","Key":"/run/fuzz-exec/netns/cccccccccccc","Config":{"HostName":"h","HostsPath":"/var/lib/c/hosts"}}}`},
	{2, `{"v":1,"data":{"ID":"` + idC + `","ContainerID":"ctr","Config":{"UseExternalKey":true}}}`},
	{0, `{"v":2}`},
	{0, `{"v":0}`},
	{0, `not json`},
	{2, `{"v":1,"data":{"ID":"abc","ContainerID":"ctr","Key":"/x"}}`},
	{2, `{"v":1,"data":{"ID":"","ContainerID":"ctr","Key":"/x"}}`},
	{2, `{"v":1,"data":{"ID":"../../victim","ContainerID":"ctr","Config":{"UseExternalKey":true}}}`},
	{0, `{"v":1,"data":{"ID":"` + idA + `","Name":"n","Type":"bridge","IpamV4Config":[null],"IpamV4Info":[null]}}`},
	{1, `{"v":1,"data":{"ID":"` + idB + `","Name":"ep","NetworkID":"../x","Join":{"SandboxID":"../../victim","IfName":"a%d"}}}`},
}

// FuzzRecords feeds stored values to the decoding and checks restore runs
// first. Nothing may panic, and a record the checks accept has IDs that
// are IDs, derives paths inside the exec root, has addresses that parse,
// and is still accepted after a round trip through its stored form. The
// seeds run in every plain `go test`.
func FuzzRecords(f *testing.F) {
	for _, s := range recordSeeds {
		f.Add(s.kind, []byte(s.val))
	}
	const execRoot = "/run/fuzz-exec"
	c := &controller{execRoot: execRoot}
	within := func(t *testing.T, p string) {
		rel, err := filepath.Rel(execRoot, p)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") || !strings.HasPrefix(p, execRoot+"/") {
			t.Fatalf("derived path %q is outside the exec root", p)
		}
	}
	f.Fuzz(func(t *testing.T, kind byte, val []byte) {
		switch kind % 3 {
		case 0:
			var r networkRecord
			if datastore.Decode(val, &r) != nil || checkNetworkRecord(r.ID, &r) != nil {
				return
			}
			if !isID(r.ID) {
				t.Fatalf("accepted network ID %q", r.ID)
			}
			var back networkRecord
			roundTrip(t, &r, &back)
			if err := checkNetworkRecord(back.ID, &back); err != nil {
				t.Fatalf("network record refused after a round trip: %v", err)
			}
		case 1:
			var r endpointRecord
			if datastore.Decode(val, &r) != nil || checkEndpointRecord(r.ID, &r) != nil {
				return
			}
			if !isID(r.ID) || !isID(r.NetworkID) || (r.Join != nil && !isID(r.Join.SandboxID)) {
				t.Fatalf("accepted endpoint references %q %q %+v", r.ID, r.NetworkID, r.Join)
			}
			for _, a := range []string{r.Addr, r.AddrV6} {
				if _, err := parseAddr(a); a != "" && err != nil {
					t.Fatalf("accepted address %q: %v", a, err)
				}
			}
			var back endpointRecord
			roundTrip(t, &r, &back)
			if err := checkEndpointRecord(back.ID, &back); err != nil {
				t.Fatalf("endpoint record refused after a round trip: %v", err)
			}
		case 2:
			var r sandboxRecord
			if datastore.Decode(val, &r) != nil || c.checkSandboxRecord(r.ID, &r) != nil {
				return
			}
			sb := &sandbox{ctrl: c, id: r.ID}
			within(t, c.sandboxKeyPath(r.ID))
			within(t, sb.filesDir())
			if r.Key != "" && !r.Config.UseDefaultSandbox {
				within(t, r.Key)
			}
			var back sandboxRecord
			roundTrip(t, &r, &back)
			if err := c.checkSandboxRecord(back.ID, &back); err != nil {
				t.Fatalf("sandbox record refused after a round trip: %v", err)
			}
		}
	})
}

// roundTrip stores rec as Put does and decodes it into back.
func roundTrip(t *testing.T, rec, back any) {
	t.Helper()
	data, err := json.Marshal(rec)
	if err != nil {
		t.Fatalf("encoding an accepted record: %v", err)
	}
	env, _ := json.Marshal(map[string]any{"v": datastore.SchemaVersion, "data": json.RawMessage(data)})
	if err := datastore.Decode(env, back); err != nil {
		t.Fatalf("decoding an accepted record again: %v", err)
	}
}

// TestRecordChecks: the valid seeds of FuzzRecords pass the decoding and
// the checks, and each bad one is refused by one or the other.
func TestRecordChecks(t *testing.T) {
	c := &controller{execRoot: "/run/fuzz-exec"}
	for i, s := range recordSeeds {
		var err error
		switch s.kind {
		case 0:
			var r networkRecord
			if err = datastore.Decode([]byte(s.val), &r); err == nil {
				err = checkNetworkRecord(r.ID, &r)
			}
		case 1:
			var r endpointRecord
			if err = datastore.Decode([]byte(s.val), &r); err == nil {
				err = checkEndpointRecord(r.ID, &r)
			}
		case 2:
			var r sandboxRecord
			if err = datastore.Decode([]byte(s.val), &r); err == nil {
				err = c.checkSandboxRecord(r.ID, &r)
			}
		}
		if valid := i < 4; valid != (err == nil) {
			t.Errorf("seed %d %s: accepted=%v (%v), want %v", i, s.val, err == nil, err, valid)
		}
	}
}
