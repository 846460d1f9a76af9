// Package netlabel holds the option and label keys of the v0.7 API.
package netlabel

const (
	// Prefix is the prefix of every key the library defines.
	Prefix = "com.docker.network"

	// DriverPrefix is the prefix of driver-specific keys.
	DriverPrefix = Prefix + ".driver"

	// DriverPrivatePrefix marks keys private to a driver.
	DriverPrivatePrefix = DriverPrefix + ".private"

	// GenericData is the key of the options.Generic map of driver options
	// inside a generic option map.
	GenericData = Prefix + ".generic"

	// PortMap is the key of an endpoint's []types.PortBinding.
	PortMap = Prefix + ".portmap"

	// MacAddress is the key of an endpoint's MAC address (net.HardwareAddr).
	MacAddress = Prefix + ".endpoint.macaddress"

	// PortMapper is the label of an endpoint naming the port mapper that
	// publishes its ports ("nat", "routed" or a plugin's name), over the
	// network's.
	PortMapper = Prefix + ".portmapper"

	// ExposedPorts is the key of an endpoint's []types.TransportPort.
	ExposedPorts = Prefix + ".endpoint.exposedports"

	// DNSServers is the key of a sandbox's DNS servers.
	DNSServers = Prefix + ".endpoint.dnsservers"

	// EnableIPv6 is the key of a network's IPv6 switch (bool).
	EnableIPv6 = Prefix + ".enable_ipv6"

	// DriverMTU is the key of a network's MTU (int or string).
	DriverMTU = DriverPrefix + ".mtu"

	// Internal is the key marking a network internal (bool).
	Internal = Prefix + ".internal"

	// OverlayBindInterface is the key of the overlay driver's bind interface.
	OverlayBindInterface = DriverPrefix + ".overlay.bind_interface"

	// OverlayNeighborIP is the key of the overlay driver's neighbour address.
	OverlayNeighborIP = DriverPrefix + ".overlay.neighbor_ip"

	// Gateway is the key of a network gateway given as a driver option.
	Gateway = Prefix + ".gateway"

	// HostIP is the key of the host address to publish ports on.
	HostIP = Prefix + ".host_ipv4"
)
