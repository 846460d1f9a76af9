// Command gphipam is the example IPAM driver (package exampleipam, the
// driver of examples/ipam-plugin) served through
// github.com/docker/go-plugins-helpers/ipam instead of pluginsdk: the tests
// run it to show the library works with plugins built on the ecosystem's
// own helper. Flags and behaviour are those of examples/ipam-plugin
// (-name, -socket, -log, -pools, /Example.HandlerTime, SIGTERM), except
// that the call log holds each request as go-plugins-helpers decoded it
// (see package gphconv).
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/docker/go-plugins-helpers/ipam"

	"github.com/netkit/libnetwork/examples/ipam-plugin/exampleipam"
	"github.com/netkit/libnetwork/examples/pluginutil"
	"github.com/netkit/libnetwork/internal/testplugins/gphconv"
	"github.com/netkit/libnetwork/ipams/remote/api"
)

func main() {
	var f pluginutil.Flags
	f.Register(flag.CommandLine, "ipam-example")
	pools := flag.String("pools", "10.123.0.0/24,10.124.0.0/24", "comma-separated CIDRs handed out to requests without a pool")
	flag.Parse()
	if err := run(f, *pools); err != nil {
		fmt.Fprintf(os.Stderr, "gphipam %s: %v\n", f.Name, err)
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

	h := ipam.NewHandler(&driver{d: d, calls: calls})
	h.HandleFunc(pluginutil.HandlerTimePath, d.HandlerTime().ServeHTTP)
	logger.Info("serving through go-plugins-helpers", "socket", f.SocketPath(), "pools", defaults)
	return gphconv.Serve(f.SocketPath(), h.Serve)
}

// driver is go-plugins-helpers' ipam.Ipam over the example IPAM.
type driver struct {
	d     *exampleipam.IPAM
	calls *pluginutil.CallLog
}

var _ ipam.Ipam = (*driver)(nil)

func (a *driver) GetCapabilities() (*ipam.CapabilitiesResponse, error) {
	if _, err := gphconv.In[struct{}](a.calls, api.GetCapabilities, nil); err != nil {
		return nil, err
	}
	return gphconv.Out[ipam.CapabilitiesResponse](a.d.GetCapabilities())
}

func (a *driver) GetDefaultAddressSpaces() (*ipam.AddressSpacesResponse, error) {
	if _, err := gphconv.In[struct{}](a.calls, api.GetDefaultAddressSpaces, nil); err != nil {
		return nil, err
	}
	return gphconv.Out[ipam.AddressSpacesResponse](a.d.GetDefaultAddressSpaces())
}

func (a *driver) RequestPool(req *ipam.RequestPoolRequest) (*ipam.RequestPoolResponse, error) {
	r, err := gphconv.In[api.RequestPoolRequest](a.calls, api.RequestPool, req)
	if err != nil {
		return nil, err
	}
	return gphconv.Out[ipam.RequestPoolResponse](a.d.RequestPool(r))
}

func (a *driver) ReleasePool(req *ipam.ReleasePoolRequest) error {
	r, err := gphconv.In[api.ReleasePoolRequest](a.calls, api.ReleasePool, req)
	if err != nil {
		return err
	}
	return a.d.ReleasePool(r)
}

func (a *driver) RequestAddress(req *ipam.RequestAddressRequest) (*ipam.RequestAddressResponse, error) {
	r, err := gphconv.In[api.RequestAddressRequest](a.calls, api.RequestAddress, req)
	if err != nil {
		return nil, err
	}
	return gphconv.Out[ipam.RequestAddressResponse](a.d.RequestAddress(r))
}

func (a *driver) ReleaseAddress(req *ipam.ReleaseAddressRequest) error {
	r, err := gphconv.In[api.ReleaseAddressRequest](a.calls, api.ReleaseAddress, req)
	if err != nil {
		return err
	}
	return a.d.ReleaseAddress(r)
}
