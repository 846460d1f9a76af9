// Command ipam-plugin is an example remote IPAM driver built with
// pluginsdk/ipam (the rules are those of package exampleipam). Its address
// spaces are ExampleLocal and ExampleGlobal; a network that asks for no
// pool gets the next free one of -pools; the gateway is the pool's first
// host address and endpoints get the next free ones. It asks the library
// for each endpoint's MAC address and refuses an endpoint address request
// without it.
//
// Run it where the library looks for plugin sockets
// (config.OptionPluginSocketDirs; /run/docker/plugins by default):
//
//	go build ./examples/ipam-plugin
//	./ipam-plugin -socket /run/docker/plugins/ipam-example.sock -pools 10.123.0.0/24,10.124.0.0/24
//
// then create a network whose IPAM driver is "ipam-example". -log names a
// file to append one JSON line per protocol call to,
// {"method":"IpamDriver.RequestAddress","request":{...}}, for a test to
// check what reached the plugin; /Example.HandlerTime answers {"Calls": n,
// "Nanoseconds": t}, the time spent in the driver's methods, for a
// benchmark. SIGTERM or SIGINT stops the plugin and removes its socket.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/netkit/libnetwork/examples/ipam-plugin/exampleipam"
	"github.com/netkit/libnetwork/examples/pluginutil"
	"github.com/netkit/libnetwork/pluginsdk/ipam"
)

func main() {
	var f pluginutil.Flags
	f.Register(flag.CommandLine, "ipam-example")
	pools := flag.String("pools", "10.123.0.0/24,10.124.0.0/24", "comma-separated CIDRs handed out to requests without a pool")
	flag.Parse()
	if err := run(f, *pools); err != nil {
		fmt.Fprintf(os.Stderr, "ipam-plugin %s: %v\n", f.Name, err)
		os.Exit(1)
	}
}

func run(f pluginutil.Flags, pools string) error {
	defaults, err := exampleipam.ParsePools(pools)
	if err != nil {
		return fmt.Errorf("-pools: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("plugin", f.Name)
	d, err := exampleipam.New(defaults)
	if err != nil {
		return err
	}
	calls, err := pluginutil.OpenCallLog(f.Log)
	if err != nil {
		return err
	}
	defer calls.Close()

	l, err := pluginutil.ListenUnix(f.SocketPath())
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: pluginutil.Wrap(ipam.NewHandler(d), calls, d.HandlerTime())}
	logger.Info("serving", "socket", f.SocketPath(), "pools", defaults)
	if err := pluginutil.Serve(l, srv.Serve, srv.Shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
