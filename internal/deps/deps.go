// Package deps pins the module's dependencies while the packages that use
// them are being written; it is removed once they all have users.
package deps

import (
	_ "github.com/google/nftables"
	_ "github.com/moby/sys/reexec"
	_ "github.com/vishvananda/netlink"
	_ "github.com/vishvananda/netns"
	_ "go.etcd.io/bbolt"
)
