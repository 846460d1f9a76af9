// Package resolver is the embedded DNS server's query handler: a
// [dns.Handler] (github.com/miekg/dns) that answers A, AAAA and PTR queries
// for the names of one sandbox from a [Names] table, and passes every other
// query to a forward function.
//
// It is a leaf: it opens no sockets and knows nothing of namespaces. The
// sandbox wiring (the server listening inside the sandbox's namespace on
// 127.0.0.11, the DNAT/SNAT pair that brings port 53 to it, the name table
// kept by the root package, and forwarding to the upstream servers) comes
// later and builds on this package.
package resolver
