// Package resolver is a sandbox's embedded DNS server, in three parts the
// root package puts together per sandbox:
//
//   - [Handler], a [dns.Handler] (github.com/miekg/dns) that answers A,
//     AAAA and PTR queries for the sandbox's names from a [Names] table and
//     passes every other query to a forward function (the common UDP
//     queries it takes straight from their wire form, without a dns.Msg);
//   - [Forwarder], that forward function: it sends the query to at most
//     three upstream servers in turn over reused sockets, each dialled in
//     the namespace the caller chooses, with the client's timeout split
//     between them and a bound on the queries in flight; a UDP query
//     takes no goroutine of its own, the upstream socket's reader
//     writing the reply;
//   - [Server], which listens on 127.0.0.11 inside the sandbox's network
//     namespace on random UDP and TCP ports, reached on port 53 through the
//     DNAT/SNAT pair of firewall.SetDNSRedirect, and runs the handler.
//
// [Stats] are the counters all three keep. The package knows nothing of
// sandboxes or networks: the name table, the upstream list and the
// namespace come from the caller.
package resolver
