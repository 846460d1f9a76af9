package globalstore

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/netkit/libnetwork/types"
)

// Defaults of Config.
const (
	DefaultPrefix         = "/netkit/libnetwork"
	DefaultDialTimeout    = 5 * time.Second
	DefaultRequestTimeout = 5 * time.Second
	DefaultLeaseTTL       = 15 * time.Second
)

// maxNameLen bounds kinds, IDs and the host name, in bytes.
const maxNameLen = 255

// Config says where the global store is and how to use it.
type Config struct {
	// Endpoints are etcd's client addresses as host:port, without a
	// scheme: https is used when TLS is configured, http otherwise.
	Endpoints []string
	// CAFile, CertFile and KeyFile are PEM files (v0.7's kv.cacertfile,
	// kv.certfile, kv.keyfile). Setting any of them turns TLS on; CertFile
	// and KeyFile go together. Without CAFile the system's roots verify
	// the server. New refuses files it cannot read or parse.
	CAFile, CertFile, KeyFile string
	// Prefix is put before every key; it must start with '/'.
	// Default DefaultPrefix.
	Prefix string
	// DialTimeout bounds establishing a connection. Default 5 s.
	DialTimeout time.Duration
	// RequestTimeout bounds every call of the Store: its deadline is the
	// earlier of the caller's and now+RequestTimeout. Default 5 s.
	RequestTimeout time.Duration
	// LeaseTTL is the TTL of the host lease that leased keys are bound to,
	// rounded up to whole seconds: etcd removes them this long after the
	// host was last heard of. Default 15 s.
	LeaseTTL time.Duration
	// Host names this host. It is required for leased keys (CreateLeased)
	// and appears in log messages.
	Host string
	// Logger receives the store's log; nil discards it.
	Logger *slog.Logger
}

// config is a validated Config with its defaults filled in.
type config struct {
	Config
	urls []string    // endpoints with their scheme
	tls  *tls.Config // nil: plain http
}

// validate checks cfg, fills in defaults and loads the TLS files.
func (cfg Config) validate() (*config, error) {
	c := &config{Config: cfg}
	c.Endpoints = append([]string(nil), cfg.Endpoints...)
	if len(c.Endpoints) == 0 {
		return nil, types.BadRequestErrorf("global store: no endpoint (etcd's host:port)")
	}
	for _, ep := range c.Endpoints {
		if err := validEndpoint(ep); err != nil {
			return nil, err
		}
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if !strings.HasPrefix(c.Prefix, "/") {
		return nil, types.BadRequestErrorf("global store: key prefix %q does not start with '/'", c.Prefix)
	}
	if !printable(c.Prefix) {
		return nil, types.BadRequestErrorf("global store: key prefix %q has unprintable characters", c.Prefix)
	}
	c.Prefix = strings.TrimRight(c.Prefix, "/")
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"dial timeout", &c.DialTimeout, DefaultDialTimeout},
		{"request timeout", &c.RequestTimeout, DefaultRequestTimeout},
		{"lease TTL", &c.LeaseTTL, DefaultLeaseTTL},
	} {
		if *d.v < 0 {
			return nil, types.BadRequestErrorf("global store: negative %s %v", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.Host != "" {
		if err := validName("host", c.Host); err != nil {
			return nil, err
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	scheme := "http://"
	if c.CAFile != "" || c.CertFile != "" || c.KeyFile != "" {
		t, err := loadTLS(c.CAFile, c.CertFile, c.KeyFile)
		if err != nil {
			return nil, err
		}
		c.tls = t
		scheme = "https://"
	}
	for _, ep := range c.Endpoints {
		c.urls = append(c.urls, scheme+ep)
	}
	return c, nil
}

// leaseSeconds is the lease TTL in whole seconds, rounded up.
func (c *config) leaseSeconds() int64 {
	return int64((c.LeaseTTL + time.Second - 1) / time.Second)
}

func validEndpoint(ep string) error {
	if strings.Contains(ep, "://") {
		return types.BadRequestErrorf("global store: endpoint %q: give host:port without a scheme", ep)
	}
	host, port, err := net.SplitHostPort(ep)
	if err != nil {
		return types.BadRequestErrorf("global store: endpoint %q is not host:port: %w", ep, err)
	}
	if host == "" {
		return types.BadRequestErrorf("global store: endpoint %q has no host", ep)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return types.BadRequestErrorf("global store: endpoint %q: port %q is not a number from 1 to 65535", ep, port)
	}
	return nil
}

// loadTLS reads the TLS files into a client config.
func loadTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, types.BadRequestErrorf("global store: CA file (kv.cacertfile): %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, types.BadRequestErrorf("global store: CA file (kv.cacertfile) %s has no PEM certificate", caFile)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, types.BadRequestErrorf("global store: a client certificate needs both a certificate file (kv.certfile, %q) and a key file (kv.keyfile, %q)", certFile, keyFile)
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, types.BadRequestErrorf("global store: client certificate (kv.certfile %s, kv.keyfile %s): %w", certFile, keyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// validName checks a kind, ID or host name: not empty, no '/', printable,
// at most maxNameLen bytes.
func validName(what, s string) error {
	switch {
	case s == "":
		return types.BadRequestErrorf("global store: empty %s", what)
	case len(s) > maxNameLen:
		return types.BadRequestErrorf("global store: %s %.40q... is longer than %d bytes", what, s, maxNameLen)
	case strings.Contains(s, "/"):
		return types.BadRequestErrorf("global store: %s %q contains '/'", what, s)
	case !printable(s):
		return types.BadRequestErrorf("global store: %s %q has unprintable characters", what, s)
	}
	return nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
