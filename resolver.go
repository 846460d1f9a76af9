package libnetwork

// Resolver represents the embedded DNS server in Docker. It operates by
// listening on container's loopback interface for DNS queries.
//
// The interface is the v0.7 API's; the server that implements it (bound
// inside the sandbox's namespace on 127.0.0.11, reached on port 53 through
// nftables) is a later piece of work. Sandbox.ResolveName and ResolveIP
// already answer the names it will serve.
type Resolver interface {
	// Start starts the name server for the container
	Start() error
	// Stop stops the name server for the container. Stopped resolver
	// can be reused after running the SetupFunc again.
	Stop()
	// SetupFunc() provides the setup function that should be run
	// in the container's network namespace.
	SetupFunc() func()
	// NameServer() returns the IP of the DNS resolver for the
	// containers.
	NameServer() string
	// SetExtServers configures the external nameservers the resolver
	// should use to forward queries
	SetExtServers([]string)
	// FlushExtServers clears the cached UDP connections to external
	// nameservers
	FlushExtServers()
	// ResolverOptions returns resolv.conf options that should be set
	ResolverOptions() []string
}
