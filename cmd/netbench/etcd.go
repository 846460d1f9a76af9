package main

// The etcd server of an -overlay run: the tests' harness
// (internal/testutil/etcdtest.Launch) starts Debian's etcd-server binary as
// a child process of netbench, on free loopback ports of netbench's own
// namespace, with its data dir in a directory of the run's.

import (
	"errors"

	"github.com/netkit/libnetwork/internal/testutil/etcdtest"
)

// etcdBinary is the etcd server netbench runs (Debian package etcd-server).
const etcdBinary = etcdtest.Binary

var errNoEtcd = errors.New("-overlay needs the etcd server " + etcdBinary + " (Debian package etcd-server)")
