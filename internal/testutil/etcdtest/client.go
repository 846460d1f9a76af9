package etcdtest

import (
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Client returns an etcd client of the server (with the client certificate
// for a TLS server), closed when the test ends, for tests that look at or
// change etcd behind the back of the code under test: compact, revoke a
// lease, read a key's lease.
func (s *Server) Client() *clientv3.Client {
	s.t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   s.URLs(),
		DialTimeout: 5 * time.Second,
		TLS:         s.ClientTLS(),
		Logger:      zap.NewNop(),
	})
	if err != nil {
		s.t.Fatalf("etcdtest: client: %v", err)
	}
	s.t.Cleanup(func() { cli.Close() })
	return cli
}
