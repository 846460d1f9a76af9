package globalstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netkit/libnetwork/internal/testutil/etcdtest"
	"github.com/netkit/libnetwork/types"
)

// TestTLS: with the CA, certificate and key files (kv.cacertfile,
// kv.certfile, kv.keyfile) the Store talks https to an etcd that requires
// client certificates.
func TestTLS(t *testing.T) {
	srv := etcdtest.StartTLS(t)
	f := srv.TLS()
	s := newStore(t, srv.Endpoints(), func(c *Config) {
		c.CAFile, c.CertFile, c.KeyFile = f.CAFile, f.ClientCertFile, f.ClientKeyFile
	})
	mustTxn(t, s, Create("network", "n1", []byte("one")), CreateLeased("peer", "h1", nil))
	if kv := mustGet(t, s, "network", "n1"); string(kv.Value) != "one" {
		t.Fatalf("Get: %+v", kv)
	}
	ch := s.Watch(ctxT(t), "network")
	expectReset(t, ch, "n1=one")
}

// TestTLSRefused: a server certificate from another CA, no client
// certificate, or http to an https server fails every call with an
// *UnreachableError that quotes gRPC's connection error. (Without a client
// certificate, TLS 1.3 reports the refusal after the handshake: the client
// sees "bad certificate" or a broken pipe, whichever comes first.)
func TestTLSRefused(t *testing.T) {
	t.Parallel() // mostly waiting on etcd or on a TTL
	srv := etcdtest.StartTLS(t)
	f := srv.TLS()
	other := etcdtest.NewCertificates(t)
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		says string
	}{
		{"wrong CA", func(c *Config) { c.CAFile, c.CertFile, c.KeyFile = other.CAFile, f.ClientCertFile, f.ClientKeyFile }, "certificate signed by unknown authority"},
		{"no client certificate", func(c *Config) { c.CAFile = f.CAFile }, "latest balancer error"},
		{"plain http", func(c *Config) {}, "error reading server preface"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, srv.Endpoints(), func(c *Config) {
				c.RequestTimeout = time.Second
				tc.mod(c)
			})
			_, err := s.Get(context.Background(), "network", "n1")
			var ue *UnreachableError
			if !errors.As(err, &ue) {
				t.Fatalf("Get: %v, want an *UnreachableError", err)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
			t.Log(err)
		})
	}
}

// TestTLSBadFiles: TLS files that cannot be read or parsed are refused by
// New with a BadRequest naming the file and its option.
func TestTLSBadFiles(t *testing.T) {
	f := etcdtest.NewCertificates(t)
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	ep := []string{"127.0.0.1:2379"}
	for _, tc := range []struct {
		name string
		cfg  Config
		says []string
	}{
		{"missing CA", Config{CAFile: missing}, []string{"kv.cacertfile", missing, "no such file"}},
		{"CA is a directory", Config{CAFile: dir}, []string{"kv.cacertfile", dir}},
		{"CA not PEM", Config{CAFile: garbage}, []string{"kv.cacertfile", garbage, "no PEM certificate"}},
		{"missing cert", Config{CertFile: missing, KeyFile: f.ClientKeyFile}, []string{"kv.certfile", missing}},
		{"key not PEM", Config{CertFile: f.ClientCertFile, KeyFile: garbage}, []string{"kv.keyfile", garbage}},
		{"key of another cert", Config{CertFile: f.ClientCertFile, KeyFile: f.ServerKeyFile}, []string{"kv.certfile", "private key does not match"}},
		{"key without cert", Config{KeyFile: f.ClientKeyFile}, []string{"kv.certfile", "kv.keyfile"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Endpoints = ep
			s, err := New(tc.cfg)
			if err == nil {
				s.Close()
				t.Fatal("accepted")
			}
			if _, ok := err.(types.BadRequestError); !ok {
				t.Errorf("%T is not a types.BadRequestError: %v", err, err)
			}
			for _, want := range tc.says {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}
