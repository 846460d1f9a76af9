package libnetwork

import (
	"encoding/json"
	"maps"
	"net"
	"net/netip"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/ipamutils"
	"github.com/netkit/libnetwork/types"
)

// IpamConf contains all the ipam related configurations for a network.
type IpamConf struct {
	// The master address pool for containers and network interfaces
	PreferredPool string
	// A subset of the master pool. If specified,
	// this becomes the container pool
	SubPool string
	// Preferred Network Gateway address (optional)
	Gateway string
	// Auxiliary addresses for network driver. Must be within the master pool.
	// libnetwork will reserve them if they fall into the container pool
	AuxAddresses map[string]string
}

// Validate checks whether the configuration is valid: a pool is a CIDR
// that can be right for a network (ipamutils.CheckPool: no /0, no
// loopback, link-local, multicast or unspecified range, room for a host
// beside the gateway), a sub-pool lies inside the pool and leaves a host
// room, the gateway is an address of the pool that can be given out, and
// auxiliary addresses are addresses inside the pool.
func (c *IpamConf) Validate() error {
	if c.PreferredPool == "" {
		if c.SubPool != "" || c.Gateway != "" || len(c.AuxAddresses) > 0 {
			return types.BadRequestErrorf("ipam configuration: sub-pool, gateway and auxiliary addresses need a pool")
		}
		return nil
	}
	_, pool, err := net.ParseCIDR(c.PreferredPool)
	if err != nil {
		return types.BadRequestErrorf("ipam configuration: invalid pool %q: %v", c.PreferredPool, err)
	}
	poolPrefix, err := netip.ParsePrefix(c.PreferredPool)
	if err != nil {
		return types.BadRequestErrorf("ipam configuration: invalid pool %q: %v", c.PreferredPool, err)
	}
	if err := ipamutils.CheckPool(poolPrefix); err != nil {
		return types.BadRequestErrorf("ipam configuration: %w", err)
	}
	var gw netip.Addr
	if c.Gateway != "" {
		ip := net.ParseIP(c.Gateway)
		if ip == nil {
			return types.BadRequestErrorf("ipam configuration: invalid gateway address %q", c.Gateway)
		}
		if !pool.Contains(ip) {
			return types.BadRequestErrorf("ipam configuration: gateway %s is outside pool %s", c.Gateway, c.PreferredPool)
		}
		gw, _ = netip.AddrFromSlice(ip)
		gw = gw.Unmap()
		if first, last := ipamutils.HostRange(poolPrefix); gw.Less(first) || last.Less(gw) {
			return types.BadRequestErrorf("ipam configuration: gateway %s is the network or broadcast address of pool %s", c.Gateway, c.PreferredPool)
		}
	}
	if c.SubPool != "" {
		_, sub, err := net.ParseCIDR(c.SubPool)
		if err != nil {
			return types.BadRequestErrorf("ipam configuration: invalid sub-pool %q: %v", c.SubPool, err)
		}
		pl, _ := pool.Mask.Size()
		sl, _ := sub.Mask.Size()
		if !pool.Contains(sub.IP) || sl < pl || len(sub.IP) != len(pool.IP) {
			return types.BadRequestErrorf("ipam configuration: sub-pool %s is not inside pool %s", c.SubPool, c.PreferredPool)
		}
		subPrefix, err := netip.ParsePrefix(c.SubPool)
		if err != nil {
			return types.BadRequestErrorf("ipam configuration: invalid sub-pool %q: %v", c.SubPool, err)
		}
		if err := ipamutils.CheckSubPool(poolPrefix, subPrefix, gw); err != nil {
			return types.BadRequestErrorf("ipam configuration: %w", err)
		}
	}
	for name, a := range c.AuxAddresses {
		ip := net.ParseIP(a)
		if ip == nil {
			return types.BadRequestErrorf("ipam configuration: invalid auxiliary address %s=%q", name, a)
		}
		if !pool.Contains(ip) {
			return types.BadRequestErrorf("ipam configuration: auxiliary address %s=%s is outside pool %s", name, a, c.PreferredPool)
		}
	}
	return nil
}

// CopyTo deep copies to the destination IpamConfig.
func (c *IpamConf) CopyTo(dstC *IpamConf) error {
	dstC.PreferredPool = c.PreferredPool
	dstC.SubPool = c.SubPool
	dstC.Gateway = c.Gateway
	dstC.AuxAddresses = maps.Clone(c.AuxAddresses)
	return nil
}

// IpamInfo contains all the ipam related operational info for a network.
type IpamInfo struct {
	PoolID string
	Meta   map[string]string
	driverapi.IPAMData
}

// CopyTo deep copies to the destination IpamInfo.
func (i *IpamInfo) CopyTo(dstI *IpamInfo) error {
	dstI.PoolID = i.PoolID
	dstI.Meta = maps.Clone(i.Meta)
	dstI.AddressSpace = i.AddressSpace
	dstI.Pool = types.GetIPNetCopy(i.Pool)
	dstI.Gateway = types.GetIPNetCopy(i.Gateway)
	dstI.AuxAddresses = nil
	if i.AuxAddresses != nil {
		dstI.AuxAddresses = make(map[string]*net.IPNet, len(i.AuxAddresses))
		for k, v := range i.AuxAddresses {
			dstI.AuxAddresses[k] = types.GetIPNetCopy(v)
		}
	}
	return nil
}

type ipamInfoJSON struct {
	PoolID       string
	Meta         map[string]string `json:",omitempty"`
	AddressSpace string
	Pool         string
	Gateway      string            `json:",omitempty"`
	AuxAddresses map[string]string `json:",omitempty"`
}

// MarshalJSON encodes IpamInfo into json message.
func (i *IpamInfo) MarshalJSON() ([]byte, error) {
	j := ipamInfoJSON{PoolID: i.PoolID, Meta: i.Meta, AddressSpace: i.AddressSpace}
	if i.Pool != nil {
		j.Pool = i.Pool.String()
	}
	if i.Gateway != nil {
		j.Gateway = i.Gateway.String()
	}
	if len(i.AuxAddresses) > 0 {
		j.AuxAddresses = make(map[string]string, len(i.AuxAddresses))
		for k, v := range i.AuxAddresses {
			j.AuxAddresses[k] = v.String()
		}
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes json message into PoolData.
func (i *IpamInfo) UnmarshalJSON(data []byte) error {
	var j ipamInfoJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	*i = IpamInfo{PoolID: j.PoolID, Meta: j.Meta}
	i.AddressSpace = j.AddressSpace
	var err error
	if j.Pool != "" {
		if _, i.Pool, err = net.ParseCIDR(j.Pool); err != nil {
			return types.BadRequestErrorf("ipam info: invalid pool %q: %v", j.Pool, err)
		}
	}
	if j.Gateway != "" {
		if i.Gateway, err = types.ParseCIDR(j.Gateway); err != nil {
			return err
		}
	}
	if len(j.AuxAddresses) > 0 {
		i.AuxAddresses = make(map[string]*net.IPNet, len(j.AuxAddresses))
		for k, v := range j.AuxAddresses {
			if i.AuxAddresses[k], err = types.ParseCIDR(v); err != nil {
				return err
			}
		}
	}
	return nil
}
