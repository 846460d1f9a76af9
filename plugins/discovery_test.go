package plugins

import (
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netkit/libnetwork/types"
)

func TestValidateName(t *testing.T) {
	for _, name := range []string{"pm", "my-mapper", "my_mapper.v2", "0day", strings.Repeat("a", 200)} {
		if err := ValidateName(name); err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", name, err)
		}
	}
	for _, name := range []string{"", "../x", "a/b", `a\b`, "..", ".hidden", "-x", "a b", "a:b", "a\x00b", "é", strings.Repeat("a", 201)} {
		err := ValidateName(name)
		ne := asError[*NameError](t, err)
		if ne.Name != name {
			t.Errorf("NameError.Name = %q, want %q", ne.Name, name)
		}
		if _, ok := err.(types.BadRequestError); !ok {
			t.Errorf("ValidateName(%q) = %v: not a types.BadRequestError", name, err)
		}
	}
	// Every entry point refuses the name before touching a file.
	r := newDirs(t).registry(t, nil)
	if _, err := r.Lookup("../../etc/passwd"); err == nil {
		t.Fatal("Lookup accepted a path")
	} else {
		asError[*NameError](t, err)
	}
	if _, err := r.Get(t.Context(), "a/b", "PortMapper"); err == nil {
		t.Fatal("Get accepted a path")
	} else {
		asError[*NameError](t, err)
	}
}

func TestDiscovery(t *testing.T) {
	d := newDirs(t)
	listen := func(path string) {
		l, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
	}
	listen(filepath.Join(d.sock, "flat.sock"))
	writeFile(t, filepath.Join(d.sock, "nested", ".keep"), "")
	listen(filepath.Join(d.sock, "nested", "nested.sock"))
	// A socket wins over a spec file of the same name.
	listen(filepath.Join(d.sock, "both.sock"))
	writeFile(t, filepath.Join(d.spec, "both.spec"), "tcp://127.0.0.1:1")
	// A file that is not a socket is no plugin.
	writeFile(t, filepath.Join(d.sock, "notsock.sock"), "")

	writeFile(t, filepath.Join(d.spec, "unixspec.spec"), "unix:///run/x/unixspec.sock\n")
	writeFile(t, filepath.Join(d.spec, "tcpspec.spec"), "  tcp://127.0.0.1:4321 \n")
	writeFile(t, filepath.Join(d.spec, "httpspec.spec"), "http://localhost:80")
	writeFile(t, filepath.Join(d.spec, "sub", "sub.spec"), "tcp://[::1]:7")
	writeFile(t, filepath.Join(d.spec, "jsonspec.json"), `{"Name":"jsonspec","Addr":"tcp://127.0.0.1:99"}`)
	writeFile(t, filepath.Join(d.spec, "jsonunix.json"), `{"Name":"jsonunix","Addr":"unix:///run/y.sock"}`)
	writeFile(t, filepath.Join(d.spec, "jsontls.json"), `{"Name":"jsontls","Addr":"tcp://127.0.0.1:443","TLSConfig":{"InsecureSkipVerify":true}}`)

	r := d.registry(t, nil)
	for _, tc := range []struct {
		name, network, addr, str string
		tls                      bool
	}{
		{"flat", "unix", filepath.Join(d.sock, "flat.sock"), "", false},
		{"nested", "unix", filepath.Join(d.sock, "nested", "nested.sock"), "", false},
		{"both", "unix", filepath.Join(d.sock, "both.sock"), "", false},
		{"unixspec", "unix", "/run/x/unixspec.sock", "unix:///run/x/unixspec.sock", false},
		{"tcpspec", "tcp", "127.0.0.1:4321", "tcp://127.0.0.1:4321", false},
		{"httpspec", "tcp", "localhost:80", "", false},
		{"sub", "tcp", "[::1]:7", "", false},
		{"jsonspec", "tcp", "127.0.0.1:99", "", false},
		{"jsonunix", "unix", "/run/y.sock", "", false},
		{"jsontls", "tcp", "127.0.0.1:443", "https://127.0.0.1:443", true},
	} {
		ep, err := r.Lookup(tc.name)
		if err != nil {
			t.Errorf("Lookup(%s): %v", tc.name, err)
			continue
		}
		if ep.Name != tc.name || ep.Network != tc.network || ep.Address != tc.addr || (ep.TLS != nil) != tc.tls {
			t.Errorf("Lookup(%s) = %+v, want %s %s tls=%v", tc.name, ep, tc.network, tc.addr, tc.tls)
		}
		if tc.str != "" && ep.String() != tc.str {
			t.Errorf("Lookup(%s).String() = %s, want %s", tc.name, ep, tc.str)
		}
	}

	for _, name := range []string{"notsock", "absent"} {
		_, err := r.Lookup(name)
		nf := asError[*NotFoundError](t, err)
		if _, ok := err.(types.NotFoundError); !ok {
			t.Errorf("Lookup(%s) = %v: not a types.NotFoundError", name, err)
		}
		if len(nf.Dirs) != 2 || !strings.Contains(err.Error(), d.sock) || !strings.Contains(err.Error(), d.spec) {
			t.Errorf("Lookup(%s) = %v: does not name the directories searched", name, err)
		}
	}
}

func TestDiscoveryBadSpec(t *testing.T) {
	d := newDirs(t)
	for name, content := range map[string]string{
		"noscheme.spec": "/run/x.sock",
		"ftp.spec":      "ftp://host:21",
		"relunix.spec":  "unix://relative/x.sock",
		"noport.spec":   "tcp://127.0.0.1",
		"path.spec":     "tcp://127.0.0.1:80/x",
		"empty.spec":    "\n",
		"broken.json":   `{"Addr": `,
		"unixtls.json":  `{"Addr":"unix:///x.sock","TLSConfig":{}}`,
		"noca.json":     `{"Addr":"tcp://127.0.0.1:1","TLSConfig":{"CAFile":"/nonexistent/ca.pem"}}`,
		"halfkey.json":  `{"Addr":"tcp://127.0.0.1:1","TLSConfig":{"CertFile":"/x.pem"}}`,
	} {
		writeFile(t, filepath.Join(d.spec, name), content)
	}
	r := d.registry(t, nil)
	for _, name := range []string{"noscheme", "ftp", "relunix", "noport", "path", "empty", "broken", "unixtls", "noca", "halfkey"} {
		_, err := r.Lookup(name)
		if err == nil {
			t.Errorf("Lookup(%s) accepted a bad spec file", name)
			continue
		}
		se := asError[*SpecError](t, err)
		if se.Name != name || !strings.Contains(err.Error(), se.Path) {
			t.Errorf("Lookup(%s) = %v: does not name the plugin and the file", name, err)
		}
		if _, ok := err.(types.BadRequestError); !ok {
			t.Errorf("Lookup(%s) = %v: not a types.BadRequestError", name, err)
		}
		// Get reports the same, without trying to connect.
		if _, err := r.Get(t.Context(), name, "PortMapper"); err == nil {
			t.Errorf("Get(%s) accepted a bad spec file", name)
		} else {
			asError[*SpecError](t, err)
		}
	}
}
