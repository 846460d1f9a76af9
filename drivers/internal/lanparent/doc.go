// Package lanparent is what the macvlan and ipvlan drivers share about the
// parent interface of their networks: the parent driver option, VLAN
// sub-interfaces ("eth0.10") created on demand, shared by the networks
// that name them and deleted with the last one, the internal parent (a
// dummy link of the driver's own) of a network that names none, the
// refusals (a bridge port, another driver's link, overlapping subnets on
// one parent, incompatible modes on one VLAN) and the collection of the
// parents a crash left behind.
//
// A link the Manager creates carries its mark, the interface alias the
// driver chooses (Config.Mark, "netkit-macvlan" say). Only links with that
// mark are ever deleted: a VLAN sub-interface or link the user made is
// used and left alone. The alias is the mark for the reasons package
// bridge gives for its own (drivers/bridge/setup.go, markPrefix).
package lanparent
