package etchosts

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/netkit/libnetwork/internal/ownedfile"
	"github.com/netkit/libnetwork/internal/ownedfile/ownedfiletest"

	"github.com/netkit/libnetwork/types"
)

// owned writes content at a new path as this package would have.
func owned(t *testing.T, content string) string {
	t.Helper()
	return ownedfiletest.Owned(t, "hosts", content)
}

func read(t *testing.T, path string) string { t.Helper(); return ownedfiletest.Read(t, path) }

func checkOwned(t *testing.T, path string) { t.Helper(); ownedfiletest.CheckOwned(t, path) }

func TestParseLine(t *testing.T) {
	tests := []struct {
		name  string
		line  string
		ok    bool
		ip    string
		hosts []string
	}{
		{"tab", "10.0.0.2\tweb\n", true, "10.0.0.2", []string{"web"}},
		{"spaces and tabs", "  10.0.0.2 \t web  web.example.com\t\n", true, "10.0.0.2", []string{"web", "web.example.com"}},
		{"trailing spaces", "fd00::2 db   ", true, "fd00::2", []string{"db"}},
		{"trailing comment", "10.0.0.3 cache # the cache\n", true, "10.0.0.3", []string{"cache"}},
		{"comment glued to name", "10.0.0.3 cache#x\n", true, "10.0.0.3", []string{"cache"}},
		{"comment line", "# 10.0.0.4 old\n", false, "", nil},
		{"blank", "\n", false, "", nil},
		{"whitespace only", " \t \n", false, "", nil},
		{"address without name", "10.0.0.5\n", false, "", nil},
		{"not an address is still a line", "garbage words\n", true, "garbage", []string{"words"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, ok := parseLine([]byte(tt.line))
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			if e.ip != tt.ip || !reflect.DeepEqual(e.hosts, tt.hosts) {
				t.Errorf("got %q %q, want %q %q", e.ip, e.hosts, tt.ip, tt.hosts)
			}
			if got := tt.line[e.ipStart:e.ipEnd]; got != tt.ip {
				t.Errorf("address span = %q, want %q", got, tt.ip)
			}
		})
	}
}

func TestBuild(t *testing.T) {
	tests := []struct {
		name string
		recs []Record
		want string
	}{
		{"defaults only", nil, defaultContent},
		{"records", []Record{{Hosts: "web web.example.com", IP: "10.0.0.2"}, {Hosts: " db\t", IP: "fd00::2"}},
			defaultContent + "10.0.0.2\tweb web.example.com\nfd00::2\tdb\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "hosts")
			if err := Build(path, tt.recs); err != nil {
				t.Fatal(err)
			}
			if got := read(t, path); got != tt.want {
				t.Errorf("content:\n%s\nwant:\n%s", got, tt.want)
			}
			checkOwned(t, path)
		})
	}
}

func TestDefaultContent(t *testing.T) {
	want := []string{
		"127.0.0.1 localhost",
		"::1 localhost ip6-localhost ip6-loopback",
		"fe00::0 ip6-localnet",
		"ff00::0 ip6-mcastprefix",
		"ff02::1 ip6-allnodes",
		"ff02::2 ip6-allrouters",
	}
	var got []string
	forEachLine([]byte(defaultContent), func(_ []byte, e entry, ok bool) {
		if !ok {
			t.Errorf("default line does not parse")
			return
		}
		got = append(got, e.ip+" "+strings.Join(e.hosts, " "))
	})
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults = %q, want %q", got, want)
	}
}

func TestBuildOverwritesEditedFile(t *testing.T) {
	path := owned(t, "10.0.0.9\told\n")
	if err := os.WriteFile(path, []byte("user edit\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Build(path, []Record{{Hosts: "web", IP: "10.0.0.2"}}); err != nil {
		t.Fatal(err)
	}
	if got, want := read(t, path), defaultContent+"10.0.0.2\tweb\n"; got != want {
		t.Errorf("content:\n%s\nwant:\n%s", got, want)
	}
	checkOwned(t, path)
}

func TestBuildFrom(t *testing.T) {
	tests := []struct {
		name   string
		origin string
		recs   []Record
		want   string
	}{
		{"copied verbatim", "# host file\n127.0.0.1\tlocalhost\n\nbad line here\n", nil,
			"# host file\n127.0.0.1\tlocalhost\n\nbad line here\n"},
		{"records after origin", "127.0.0.1 localhost\n", []Record{{Hosts: "web", IP: "10.0.0.2"}},
			"127.0.0.1 localhost\n10.0.0.2\tweb\n"},
		{"origin without final newline", "127.0.0.1 localhost", []Record{{Hosts: "web", IP: "10.0.0.2"}},
			"127.0.0.1 localhost\n10.0.0.2\tweb\n"},
		{"empty origin", "", []Record{{Hosts: "web", IP: "10.0.0.2"}}, "10.0.0.2\tweb\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			origin := filepath.Join(dir, "origin")
			if err := os.WriteFile(origin, []byte(tt.origin), 0o600); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "hosts")
			if err := BuildFrom(path, origin, tt.recs); err != nil {
				t.Fatal(err)
			}
			if got := read(t, path); got != tt.want {
				t.Errorf("content:\n%q\nwant:\n%q", got, tt.want)
			}
			checkOwned(t, path)
		})
	}
}

func TestBuildFromMissingOrigin(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hosts")
	err := BuildFrom(path, filepath.Join(dir, "nope"), nil)
	if !types.IsNotFound(err) {
		t.Fatalf("err = %v, want a NotFound error", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("hosts file written despite the error: %v", err)
	}
}

func TestAdd(t *testing.T) {
	tests := []struct {
		name    string
		initial string
		recs    []Record
		want    string
	}{
		{"append", "127.0.0.1\tlocalhost\n", []Record{{Hosts: "web", IP: "10.0.0.2"}},
			"127.0.0.1\tlocalhost\n10.0.0.2\tweb\n"},
		{"skip existing, spacing ignored", "10.0.0.2  web   web.net # me\n", []Record{{Hosts: "web web.net", IP: "10.0.0.2"}, {Hosts: "db", IP: "10.0.0.3"}},
			"10.0.0.2  web   web.net # me\n10.0.0.3\tdb\n"},
		{"skip duplicates within the call", "", []Record{{Hosts: "db", IP: "10.0.0.3"}, {Hosts: "db", IP: "10.0.0.3"}},
			"10.0.0.3\tdb\n"},
		{"same name other address is not a duplicate", "10.0.0.2\tweb\n", []Record{{Hosts: "web", IP: "fd00::2"}},
			"10.0.0.2\tweb\nfd00::2\tweb\n"},
		{"commented record is not a duplicate", "# 10.0.0.2\tweb\n", []Record{{Hosts: "web", IP: "10.0.0.2"}},
			"# 10.0.0.2\tweb\n10.0.0.2\tweb\n"},
		{"missing final newline", "127.0.0.1 localhost", []Record{{Hosts: "web", IP: "10.0.0.2"}},
			"127.0.0.1 localhost\n10.0.0.2\tweb\n"},
		{"malformed lines kept", "junk\n10.0.0.9\n", []Record{{Hosts: "web", IP: "10.0.0.2"}},
			"junk\n10.0.0.9\n10.0.0.2\tweb\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := owned(t, tt.initial)
			if err := Add(path, tt.recs); err != nil {
				t.Fatal(err)
			}
			if got := read(t, path); got != tt.want {
				t.Errorf("content:\n%q\nwant:\n%q", got, tt.want)
			}
			checkOwned(t, path)
		})
	}
}

func TestAddCreatesMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts")
	if err := Add(path, []Record{{Hosts: "web", IP: "10.0.0.2"}}); err != nil {
		t.Fatal(err)
	}
	if got, want := read(t, path), "10.0.0.2\tweb\n"; got != want {
		t.Errorf("content = %q, want %q", got, want)
	}
	checkOwned(t, path)
}

func TestInvalidRecords(t *testing.T) {
	bad := []Record{
		{Hosts: "web", IP: ""},
		{Hosts: "web", IP: "10.0.0.300"},
		{Hosts: "web", IP: "10.0.0.2\n"},
		{Hosts: "  ", IP: "10.0.0.2"},
		{Hosts: "web\n10.0.0.66 evil", IP: "10.0.0.2"},
		{Hosts: "web # x", IP: "10.0.0.2"},
	}
	for _, r := range bad {
		path := owned(t, defaultContent)
		for name, call := range map[string]func() error{
			"Build": func() error { return Build(path, []Record{r}) },
			"Add":   func() error { return Add(path, []Record{r}) },
		} {
			if err := call(); !types.IsBadRequest(err) {
				t.Errorf("%s(%+v) = %v, want a BadRequest error", name, r, err)
			}
		}
		if got := read(t, path); got != defaultContent {
			t.Errorf("file changed by a rejected call: %q", got)
		}
	}
}

func TestDelete(t *testing.T) {
	tests := []struct {
		name    string
		initial string
		recs    []Record
		want    string
	}{
		{"exact match", "127.0.0.1\tlocalhost\n10.0.0.2\tweb\n10.0.0.3\tdb\n", []Record{{Hosts: "web", IP: "10.0.0.2"}},
			"127.0.0.1\tlocalhost\n10.0.0.3\tdb\n"},
		{"spacing and comments do not matter", "10.0.0.2 \t web  alias \t# c\n10.0.0.3\tdb\n", []Record{{Hosts: "web alias", IP: "10.0.0.2"}},
			"10.0.0.3\tdb\n"},
		{"all copies removed", "10.0.0.2\tweb\n10.0.0.2 web\n", []Record{{Hosts: "web", IP: "10.0.0.2"}}, ""},
		{"subset of names kept", "10.0.0.2\tweb alias\n", []Record{{Hosts: "web", IP: "10.0.0.2"}},
			"10.0.0.2\tweb alias\n"},
		{"other address kept", "10.0.0.2\tweb\nfd00::2\tweb\n", []Record{{Hosts: "web", IP: "10.0.0.2"}},
			"fd00::2\tweb\n"},
		{"comments, blanks and malformed lines kept", "# head\n\njunk\n10.0.0.9\n10.0.0.2\tweb\n  \n# 10.0.0.2\tweb\n", []Record{{Hosts: "web", IP: "10.0.0.2"}},
			"# head\n\njunk\n10.0.0.9\n  \n# 10.0.0.2\tweb\n"},
		{"last line without newline", "10.0.0.3\tdb\n10.0.0.2\tweb", []Record{{Hosts: "web", IP: "10.0.0.2"}},
			"10.0.0.3\tdb\n"},
		{"no match leaves file", "10.0.0.3\tdb\n", []Record{{Hosts: "web", IP: "10.0.0.2"}}, "10.0.0.3\tdb\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := owned(t, tt.initial)
			if err := Delete(path, tt.recs); err != nil {
				t.Fatal(err)
			}
			if got := read(t, path); got != tt.want {
				t.Errorf("content:\n%q\nwant:\n%q", got, tt.want)
			}
			checkOwned(t, path)
		})
	}
}

func TestUpdate(t *testing.T) {
	tests := []struct {
		name     string
		initial  string
		ip, host string
		want     string
	}{
		{"replace address", "127.0.0.1\tlocalhost\n10.0.0.2\tweb web.example.com\n", "10.0.0.7", "web",
			"127.0.0.1\tlocalhost\n10.0.0.7\tweb web.example.com\n"},
		{"any of the names", "10.0.0.2\tweb.example.com web\n", "10.0.0.7", "web",
			"10.0.0.7\tweb.example.com web\n"},
		{"spacing and comment kept", "  10.0.0.2 \t web # me\n", "10.0.0.17", "web",
			"  10.0.0.17 \t web # me\n"},
		{"every line of the name", "10.0.0.2\tweb\n10.0.0.3\tweb alias\n", "10.0.0.7", "web",
			"10.0.0.7\tweb\n10.0.0.7\tweb alias\n"},
		{"prefix of a name does not match", "10.0.0.2\twebserver\n", "10.0.0.7", "web",
			"10.0.0.2\twebserver\n"},
		{"other family kept", "10.0.0.2\tweb\nfd00::2\tweb\n", "fd00::7", "web",
			"10.0.0.2\tweb\nfd00::7\tweb\n"},
		{"commented line kept", "# 10.0.0.2\tweb\n10.0.0.2\tweb\n", "10.0.0.7", "web",
			"# 10.0.0.2\tweb\n10.0.0.7\tweb\n"},
		{"malformed address replaced", "bogus\tweb\n", "10.0.0.7", "web", "10.0.0.7\tweb\n"},
		{"unknown name", "10.0.0.2\tdb\n", "10.0.0.7", "web", "10.0.0.2\tdb\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := owned(t, tt.initial)
			if err := Update(path, tt.ip, tt.host); err != nil {
				t.Fatal(err)
			}
			if got := read(t, path); got != tt.want {
				t.Errorf("content:\n%q\nwant:\n%q", got, tt.want)
			}
			checkOwned(t, path)
		})
	}
}

func TestUpdateInvalid(t *testing.T) {
	path := owned(t, "10.0.0.2\tweb\n")
	for _, c := range []struct{ ip, host string }{{"", "web"}, {"10.0.0", "web"}, {"10.0.0.7", ""}, {"10.0.0.7", "a b"}} {
		if err := Update(path, c.ip, c.host); !types.IsBadRequest(err) {
			t.Errorf("Update(%q, %q) = %v, want a BadRequest error", c.ip, c.host, err)
		}
	}
}

func TestMissingFileWithoutSidecar(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts")
	if err := Delete(path, []Record{{Hosts: "web", IP: "10.0.0.2"}}); err != nil {
		t.Errorf("Delete: %v", err)
	}
	if err := Update(path, "10.0.0.2", "web"); err != nil {
		t.Errorf("Update: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("Delete or Update created the file: %v", err)
	}
}

// TestUserModified checks that every mutating call refuses, and leaves the
// file alone, whenever the file is not what this package last wrote.
func TestUserModified(t *testing.T) {
	const initial = "127.0.0.1\tlocalhost\n10.0.0.2\tweb\n"
	tampers := map[string]func(t *testing.T, path string){
		"edited": func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte(initial+"192.0.2.1\tmine\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		},
		"removed": func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		},
		"no sidecar": func(t *testing.T, path string) {
			if err := os.Remove(ownedfile.SidecarPath(path)); err != nil {
				t.Fatal(err)
			}
		},
		"sidecar corrupt": func(t *testing.T, path string) {
			if err := os.WriteFile(ownedfile.SidecarPath(path), []byte("0000\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		},
	}
	calls := map[string]func(path string) error{
		"Add":    func(p string) error { return Add(p, []Record{{Hosts: "db", IP: "10.0.0.3"}}) },
		"Delete": func(p string) error { return Delete(p, []Record{{Hosts: "web", IP: "10.0.0.2"}}) },
		"Update": func(p string) error { return Update(p, "10.0.0.7", "web") },
	}
	for tname, tamper := range tampers {
		for cname, call := range calls {
			t.Run(tname+"/"+cname, func(t *testing.T) {
				path := owned(t, initial)
				tamper(t, path)
				before, beforeErr := os.ReadFile(path)
				err := call(path)
				if !errors.Is(err, ErrUserModified) {
					t.Fatalf("err = %v, want ErrUserModified", err)
				}
				if !types.IsForbidden(err) {
					t.Errorf("err = %v, want a Forbidden error", err)
				}
				after, afterErr := os.ReadFile(path)
				if string(before) != string(after) || (beforeErr == nil) != (afterErr == nil) {
					t.Errorf("file changed from %q to %q", before, after)
				}
			})
		}
	}
}

func TestUnchangedFileStaysOwned(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts")
	steps := []func() error{
		func() error { return Build(path, nil) },
		func() error { return Add(path, []Record{{Hosts: "web", IP: "10.0.0.2"}}) },
		func() error { return Update(path, "10.0.0.3", "web") },
		func() error { return Add(path, []Record{{Hosts: "db", IP: "10.0.0.4"}}) },
		func() error { return Delete(path, []Record{{Hosts: "web", IP: "10.0.0.3"}}) },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if got, want := read(t, path), defaultContent+"10.0.0.4\tdb\n"; got != want {
		t.Errorf("content:\n%q\nwant:\n%q", got, want)
	}
	checkOwned(t, path)
}

func TestDrop(t *testing.T) {
	path := owned(t, defaultContent)
	if err := Drop(path); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, ownedfile.SidecarPath(path)} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still there: %v", p, err)
		}
	}
	if err := Drop(path); err != nil {
		t.Errorf("second Drop: %v", err)
	}
	// Once dropped, the path is free to be created again.
	if err := Add(path, []Record{{Hosts: "web", IP: "10.0.0.2"}}); err != nil {
		t.Errorf("Add after Drop: %v", err)
	}
}

func TestWriteFailureLeavesNoTempFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hosts")
	// A directory where the file should be makes the rename fail.
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Build(path, nil); !types.IsInternal(err) {
		t.Fatalf("Build over a directory = %v, want an Internal error", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		t.Errorf("files left behind: %v", ents)
	}
}
