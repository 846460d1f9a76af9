package plugins

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// maxNameLen bounds a plugin name so that "<name>/<name>.sock" stays a
// legal file name.
const maxNameLen = 200

// maxSpecSize bounds the spec files read: they hold an address.
const maxSpecSize = 64 << 10

// ValidateName returns a *NameError when name cannot name a plugin. A name
// becomes a file name in the plugin directories, so it is 1 to 200
// characters of [A-Za-z0-9_.-] starting with a letter or digit: no path
// separator, no "..", nothing a shell or URL would read differently.
func ValidateName(name string) error {
	if name == "" {
		return &NameError{Name: name, Reason: "empty"}
	}
	if len(name) > maxNameLen {
		return &NameError{Name: name, Reason: fmt.Sprintf("longer than %d characters", maxNameLen)}
	}
	for i, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case i > 0 && (c == '_' || c == '.' || c == '-'):
		case c == '/' || c == '\\':
			return &NameError{Name: name, Reason: "contains a path separator"}
		case i == 0:
			return &NameError{Name: name, Reason: "must start with a letter or a digit"}
		default:
			return &NameError{Name: name, Reason: fmt.Sprintf("character %q is not one of [A-Za-z0-9_.-]", c)}
		}
	}
	return nil
}

// Endpoint is where a discovered plugin listens.
type Endpoint struct {
	// Name is the plugin's name.
	Name string
	// Network is "unix" or "tcp".
	Network string
	// Address is the socket path (unix) or host:port (tcp).
	Address string
	// TLS, when not nil, is the client TLS configuration for a tcp plugin.
	TLS *tls.Config
	// Source is the socket or spec file the plugin was found through.
	Source string
}

// String returns the endpoint as a URL: unix:///path or tcp://host:port
// (https://host:port with TLS).
func (e Endpoint) String() string {
	switch {
	case e.Network == "unix":
		return "unix://" + e.Address
	case e.TLS != nil:
		return "https://" + e.Address
	default:
		return "tcp://" + e.Address
	}
}

// TLSConfig is the "TLSConfig" object of a .json spec file, as docker
// reads it.
type TLSConfig struct {
	// InsecureSkipVerify turns off the verification of the plugin's
	// certificate. Docker sets it when no CAFile is given; so does this
	// package, to read the same files the same way.
	InsecureSkipVerify bool
	// CAFile is a PEM file of the authorities that sign the plugin's
	// certificate; empty means do not verify.
	CAFile string
	// CertFile and KeyFile are the client certificate and key, both or
	// neither.
	CertFile string
	KeyFile  string
}

// specJSON is a .json spec file.
type specJSON struct {
	Name      string
	Addr      string
	TLSConfig *TLSConfig
}

// discover finds plugin name as docker does: "<name>.sock" and
// "<name>/<name>.sock" in the socket directories, then "<name>.spec",
// "<name>.json" and the same under "<name>/" in the spec directories; the
// first found wins. name must be valid.
func discover(name string, socketDirs, specDirs []string) (Endpoint, error) {
	for _, dir := range socketDirs {
		for _, p := range []string{
			filepath.Join(dir, name+".sock"),
			filepath.Join(dir, name, name+".sock"),
		} {
			fi, err := os.Stat(p)
			if err != nil || fi.Mode()&fs.ModeSocket == 0 {
				continue
			}
			return Endpoint{Name: name, Network: "unix", Address: p, Source: p}, nil
		}
	}
	for _, dir := range specDirs {
		for _, p := range []string{
			filepath.Join(dir, name+".spec"),
			filepath.Join(dir, name+".json"),
			filepath.Join(dir, name, name+".spec"),
			filepath.Join(dir, name, name+".json"),
		} {
			data, err := readSpecFile(p)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return Endpoint{}, &SpecError{Name: name, Path: p, Err: err}
			}
			ep, err := parseSpec(name, p, data)
			if err != nil {
				return Endpoint{}, &SpecError{Name: name, Path: p, Err: err}
			}
			return ep, nil
		}
	}
	dirs := append(append([]string(nil), socketDirs...), specDirs...)
	return Endpoint{}, &NotFoundError{Name: name, Dirs: dirs}
}

func readSpecFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	if fi.Size() > maxSpecSize {
		return nil, fmt.Errorf("larger than %d bytes", maxSpecSize)
	}
	buf := make([]byte, fi.Size())
	if _, err := f.ReadAt(buf, 0); err != nil && fi.Size() > 0 {
		return nil, err
	}
	return buf, nil
}

func parseSpec(name, path string, data []byte) (Endpoint, error) {
	var (
		addr string
		tlsc *TLSConfig
	)
	if strings.HasSuffix(path, ".json") {
		var s specJSON
		dec := json.NewDecoder(bytes.NewReader(data))
		if err := dec.Decode(&s); err != nil {
			return Endpoint{}, fmt.Errorf("malformed JSON: %w", err)
		}
		addr, tlsc = s.Addr, s.TLSConfig
	} else {
		addr = strings.TrimSpace(string(data))
	}
	ep, err := parseAddr(addr, tlsc != nil)
	if err != nil {
		return Endpoint{}, err
	}
	ep.Name, ep.Source = name, path
	if tlsc != nil {
		if ep.Network != "tcp" {
			return Endpoint{}, fmt.Errorf("TLSConfig given for %s, which is not a tcp address", addr)
		}
		if ep.TLS, err = clientTLS(*tlsc, ep.Address); err != nil {
			return Endpoint{}, err
		}
	}
	return ep, nil
}

// parseAddr reads a plugin address: unix:///abs/path, tcp://host:port,
// http://host:port, or https://host:port (TLS with the system's
// authorities unless the .json gives TLSConfig).
func parseAddr(addr string, hasTLS bool) (Endpoint, error) {
	if addr == "" {
		return Endpoint{}, errors.New("no address")
	}
	u, err := url.Parse(addr)
	if err != nil {
		return Endpoint{}, fmt.Errorf("address %q: %w", addr, err)
	}
	switch u.Scheme {
	case "unix":
		p := u.Path
		if u.Host != "" || !filepath.IsAbs(p) {
			return Endpoint{}, fmt.Errorf("address %q: a unix address is unix:///absolute/path", addr)
		}
		return Endpoint{Network: "unix", Address: filepath.Clean(p)}, nil
	case "tcp", "http", "https":
		if u.Path != "" && u.Path != "/" {
			return Endpoint{}, fmt.Errorf("address %q: a %s address has no path", addr, u.Scheme)
		}
		host, port, err := net.SplitHostPort(u.Host)
		if err != nil || host == "" || port == "" {
			return Endpoint{}, fmt.Errorf("address %q: want %s://host:port", addr, u.Scheme)
		}
		ep := Endpoint{Network: "tcp", Address: u.Host}
		if u.Scheme == "https" && !hasTLS {
			ep.TLS = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		}
		return ep, nil
	case "":
		return Endpoint{}, fmt.Errorf("address %q has no scheme (unix://, tcp://, http://, https://)", addr)
	default:
		return Endpoint{}, fmt.Errorf("address %q: scheme %q is not unix, tcp, http or https", addr, u.Scheme)
	}
}

// clientTLS turns a spec file's TLSConfig into a client configuration.
func clientTLS(c TLSConfig, hostport string) (*tls.Config, error) {
	host, _, _ := net.SplitHostPort(hostport)
	cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if c.CAFile == "" || c.InsecureSkipVerify {
		// As docker: no authority given means the plugin's certificate
		// is not verified.
		cfg.InsecureSkipVerify = true
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("TLSConfig.CAFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLSConfig.CAFile %s: no PEM certificate", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, errors.New("TLSConfig: CertFile and KeyFile go together")
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("TLSConfig client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
