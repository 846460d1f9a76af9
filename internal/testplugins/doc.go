// Package testplugins holds plugins the tests run as processes: the
// example drivers of examples/network-plugin and examples/ipam-plugin
// served through github.com/docker/go-plugins-helpers (gphnet, gphipam),
// to show the library works with plugins built on the ecosystem's own
// helper. Its test runs them and the examples' own binaries as processes,
// checking the flags, the call log, /Example.HandlerTime and the shutdown.
package testplugins
