// Command gphnet is the example veth network driver (package vethdriver,
// the driver of examples/network-plugin) served through
// github.com/docker/go-plugins-helpers/network instead of pluginsdk: the
// tests run it to show the library works with plugins built on the
// ecosystem's own helper. Flags and behaviour are those of
// examples/network-plugin (-name, -socket, -log, /Example.HandlerTime,
// SIGTERM), except that the call log holds each request as
// go-plugins-helpers decoded it (see package gphconv).
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/netkit/libnetwork/drivers/remote/api"
	"github.com/netkit/libnetwork/examples/network-plugin/vethdriver"
	"github.com/netkit/libnetwork/examples/pluginutil"
	"github.com/netkit/libnetwork/internal/testplugins/gphconv"
)

func main() {
	var f pluginutil.Flags
	f.Register(flag.CommandLine, "veth-example")
	flag.Parse()
	if err := run(f); err != nil {
		fmt.Fprintf(os.Stderr, "gphnet %s: %v\n", f.Name, err)
		os.Exit(1)
	}
}

func run(f pluginutil.Flags) error {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("plugin", f.Name)
	d, err := vethdriver.New(logger)
	if err != nil {
		return err
	}
	defer d.Close()
	calls, err := pluginutil.OpenCallLog(f.Log)
	if err != nil {
		return err
	}
	defer calls.Close()

	h := network.NewHandler(&driver{d: d, calls: calls})
	h.HandleFunc(pluginutil.HandlerTimePath, d.HandlerTime().ServeHTTP)
	logger.Info("serving through go-plugins-helpers", "socket", f.SocketPath())
	return gphconv.Serve(f.SocketPath(), h.Serve)
}

// driver is go-plugins-helpers' network.Driver over the veth driver.
type driver struct {
	d     *vethdriver.Driver
	calls *pluginutil.CallLog
}

var _ network.Driver = (*driver)(nil)

func (a *driver) GetCapabilities() (*network.CapabilitiesResponse, error) {
	if _, err := gphconv.In[struct{}](a.calls, api.GetCapabilities, nil); err != nil {
		return nil, err
	}
	return gphconv.Out[network.CapabilitiesResponse](a.d.GetCapabilities())
}

func (a *driver) CreateNetwork(req *network.CreateNetworkRequest) error {
	r, err := gphconv.In[api.CreateNetworkRequest](a.calls, api.CreateNetwork, req)
	if err != nil {
		return err
	}
	return a.d.CreateNetwork(r)
}

func (a *driver) AllocateNetwork(req *network.AllocateNetworkRequest) (*network.AllocateNetworkResponse, error) {
	r, err := gphconv.In[api.AllocateNetworkRequest](a.calls, api.AllocateNetwork, req)
	if err != nil {
		return nil, err
	}
	return gphconv.Out[network.AllocateNetworkResponse](a.d.AllocateNetwork(r))
}

func (a *driver) DeleteNetwork(req *network.DeleteNetworkRequest) error {
	r, err := gphconv.In[api.DeleteNetworkRequest](a.calls, api.DeleteNetwork, req)
	if err != nil {
		return err
	}
	return a.d.DeleteNetwork(r)
}

func (a *driver) FreeNetwork(req *network.FreeNetworkRequest) error {
	r, err := gphconv.In[api.FreeNetworkRequest](a.calls, api.FreeNetwork, req)
	if err != nil {
		return err
	}
	return a.d.FreeNetwork(r)
}

func (a *driver) CreateEndpoint(req *network.CreateEndpointRequest) (*network.CreateEndpointResponse, error) {
	r, err := gphconv.In[api.CreateEndpointRequest](a.calls, api.CreateEndpoint, req)
	if err != nil {
		return nil, err
	}
	return gphconv.Out[network.CreateEndpointResponse](a.d.CreateEndpoint(r))
}

func (a *driver) DeleteEndpoint(req *network.DeleteEndpointRequest) error {
	r, err := gphconv.In[api.DeleteEndpointRequest](a.calls, api.DeleteEndpoint, req)
	if err != nil {
		return err
	}
	return a.d.DeleteEndpoint(r)
}

func (a *driver) EndpointInfo(req *network.InfoRequest) (*network.InfoResponse, error) {
	r, err := gphconv.In[api.InfoRequest](a.calls, api.EndpointInfo, req)
	if err != nil {
		return nil, err
	}
	return gphconv.Out[network.InfoResponse](a.d.EndpointInfo(r))
}

func (a *driver) Join(req *network.JoinRequest) (*network.JoinResponse, error) {
	r, err := gphconv.In[api.JoinRequest](a.calls, api.Join, req)
	if err != nil {
		return nil, err
	}
	return gphconv.Out[network.JoinResponse](a.d.Join(r))
}

func (a *driver) Leave(req *network.LeaveRequest) error {
	r, err := gphconv.In[api.LeaveRequest](a.calls, api.Leave, req)
	if err != nil {
		return err
	}
	return a.d.Leave(r)
}

func (a *driver) DiscoverNew(req *network.DiscoveryNotification) error {
	r, err := gphconv.In[api.DiscoveryNotification](a.calls, api.DiscoverNew, req)
	if err != nil {
		return err
	}
	return a.d.DiscoverNew(r)
}

func (a *driver) DiscoverDelete(req *network.DiscoveryNotification) error {
	r, err := gphconv.In[api.DiscoveryNotification](a.calls, api.DiscoverDelete, req)
	if err != nil {
		return err
	}
	return a.d.DiscoverDelete(r)
}

func (a *driver) ProgramExternalConnectivity(req *network.ProgramExternalConnectivityRequest) error {
	r, err := gphconv.In[api.ProgramExternalConnectivityRequest](a.calls, api.ProgramExternalConnectivity, req)
	if err != nil {
		return err
	}
	return a.d.ProgramExternalConnectivity(r)
}

func (a *driver) RevokeExternalConnectivity(req *network.RevokeExternalConnectivityRequest) error {
	r, err := gphconv.In[api.RevokeExternalConnectivityRequest](a.calls, api.RevokeExternalConnectivity, req)
	if err != nil {
		return err
	}
	return a.d.RevokeExternalConnectivity(r)
}
