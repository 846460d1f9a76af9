package remote

import (
	"net"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/drivers/remote/api"
)

// CreateNetwork asks the plugin to create network nid. options (the
// controller's generic network options: netlabel.GenericData,
// netlabel.EnableIPv6, netlabel.Internal, ...) are sent as they are, as
// JSON; the pools as CIDR strings. When the outcome is unknown (see the
// package doc) the network is deleted in the plugin again.
func (d *Driver) CreateNetwork(nid string, options map[string]interface{}, ipV4Data, ipV6Data []driverapi.IPAMData) error {
	req := api.CreateNetworkRequest{
		NetworkID: nid,
		Options:   options,
		IPv4Data:  ipamPointers(ipV4Data),
		IPv6Data:  ipamPointers(ipV6Data),
	}
	what := "network " + nid
	if err := d.call(api.CreateNetwork, what, req, nil); err != nil {
		return d.undoIfApplied(err, what, api.DeleteNetwork, api.DeleteNetworkRequest{NetworkID: nid})
	}
	return nil
}

// DeleteNetwork asks the plugin to delete network nid.
func (d *Driver) DeleteNetwork(nid string) error {
	return d.call(api.DeleteNetwork, "network "+nid, api.DeleteNetworkRequest{NetworkID: nid}, nil)
}

// AllocateNetwork asks a global plugin's manager side to allocate the
// resources of network nid, and returns the options the plugin wants in
// the CreateNetwork of every host. A plugin that does not implement it
// answers a types.NotImplementedError: whether that matters is the
// caller's to say, since the answer carries data. When the outcome is
// unknown the network is freed in the plugin again.
func (d *Driver) AllocateNetwork(nid string, options map[string]string, ipV4Data, ipV6Data []driverapi.IPAMData) (map[string]string, error) {
	req := api.AllocateNetworkRequest{
		NetworkID: nid,
		Options:   options,
		IPv4Data:  ipamValues(ipV4Data),
		IPv6Data:  ipamValues(ipV6Data),
	}
	what := "network " + nid
	var resp api.AllocateNetworkResponse
	if err := d.call(api.AllocateNetwork, what, req, &resp); err != nil {
		return nil, d.undoIfApplied(err, what, api.FreeNetwork, api.FreeNetworkRequest{NetworkID: nid})
	}
	return resp.Options, nil
}

// FreeNetwork asks a global plugin's manager side to free what
// AllocateNetwork allocated for nid. A 404 is a types.NotImplementedError,
// as for AllocateNetwork.
func (d *Driver) FreeNetwork(nid string) error {
	return d.call(api.FreeNetwork, "network "+nid, api.FreeNetworkRequest{NetworkID: nid}, nil)
}

// ipamPointers converts the pools for CreateNetworkRequest. The slice is
// never nil, so that the plugin gets [] rather than null.
func ipamPointers(in []driverapi.IPAMData) []*api.IPAMData {
	out := make([]*api.IPAMData, 0, len(in))
	for i := range in {
		v := ipamToWire(&in[i])
		out = append(out, &v)
	}
	return out
}

// ipamValues converts the pools for AllocateNetworkRequest.
func ipamValues(in []driverapi.IPAMData) []api.IPAMData {
	out := make([]api.IPAMData, 0, len(in))
	for i := range in {
		out = append(out, ipamToWire(&in[i]))
	}
	return out
}

// ipamToWire writes a pool's addresses as CIDR strings ("" for none);
// AuxAddresses stays nil when the controller gave none.
func ipamToWire(in *driverapi.IPAMData) api.IPAMData {
	out := api.IPAMData{
		AddressSpace: in.AddressSpace,
		Pool:         cidrString(in.Pool),
		Gateway:      cidrString(in.Gateway),
	}
	if in.AuxAddresses != nil {
		out.AuxAddresses = make(map[string]interface{}, len(in.AuxAddresses))
		for k, v := range in.AuxAddresses {
			out.AuxAddresses[k] = cidrString(v)
		}
	}
	return out
}

// cidrString writes n as "address/prefix-length", the address as given
// (host part kept), or "" for nil.
func cidrString(n *net.IPNet) string {
	if n == nil || n.IP == nil {
		return ""
	}
	return n.String()
}
