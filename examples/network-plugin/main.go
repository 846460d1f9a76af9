// Command network-plugin is an example remote network driver built with
// pluginsdk/network: a working veth driver (package vethdriver). Each
// network is a Linux bridge "vpb<network ID[:8]>" holding the network's
// IPv4 gateway; each joined endpoint a veth pair, "vph<endpoint ID[:7]>" on
// the bridge and "vpc<endpoint ID[:7]>" that the library moves into the
// sandbox as eth<n>.
//
// The plugin makes its interfaces in the network namespace it runs in,
// which must be the one the library's controller works in (the host's, or
// the namespace a test runs the controller in). Run it as root where the
// library looks for plugin sockets (config.OptionPluginSocketDirs;
// /run/docker/plugins by default):
//
//	go build ./examples/network-plugin
//	sudo ./network-plugin -socket /run/docker/plugins/veth-example.sock
//
// then create a network whose driver is "veth-example". -log names a file
// to append one JSON line per protocol call to,
// {"method":"NetworkDriver.Join","request":{...}}, for a test to check
// what reached the plugin; /Example.HandlerTime answers {"Calls": n,
// "Nanoseconds": t}, the time spent in the driver's methods, for a
// benchmark. SIGTERM or SIGINT stops the plugin and removes its socket;
// its bridges and veth pairs stay until the library deletes its networks.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/netkit/libnetwork/examples/network-plugin/vethdriver"
	"github.com/netkit/libnetwork/examples/pluginutil"
)

func main() {
	var f pluginutil.Flags
	f.Register(flag.CommandLine, "veth-example")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("plugin", f.Name)
	if err := vethdriver.Serve(f, logger); err != nil {
		fmt.Fprintf(os.Stderr, "network-plugin %s: %v\n", f.Name, err)
		os.Exit(1)
	}
}
