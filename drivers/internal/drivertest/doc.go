// Package drivertest holds what the tests of the network drivers (bridge,
// macvlan, ipvlan, overlay) share: fakes of the controller's side of the
// driver API (JoinInfo, IfInfo) that record what a driver reports,
// throwaway namespaces, a join as the controller does it, a "LAN" to hang
// a macvlan or ipvlan parent on, TCP and UDP servers and clients inside
// namespaces, and small builders of addresses and options.
//
// It is test code that other packages' tests import, so it is not in
// _test.go files. Nothing here touches the host's namespace: the
// namespaces it makes are destroyed at the test's cleanup, and the
// callers run inside the throwaway namespace of internal/testutil.Main.
package drivertest
