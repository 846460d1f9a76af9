package testplugins_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	netapi "github.com/netkit/libnetwork/drivers/remote/api"
	"github.com/netkit/libnetwork/examples/pluginutil"
	"github.com/netkit/libnetwork/internal/testutil"
	ipamapi "github.com/netkit/libnetwork/ipams/remote/api"
	"github.com/netkit/libnetwork/plugins"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// build builds the plugin commands pkgs (paths from the module root)
// into a temporary directory of t.
func build(t *testing.T, pkgs ...string) string {
	t.Helper()
	dir := t.TempDir()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command, to build the plugins: %v", err)
	}
	cmd := exec.Command(goCmd, append([]string{"build", "-o", dir + "/"}, pkgs...)...)
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %v: %v\n%s", pkgs, err, out)
	}
	return dir
}

// plugin is a plugin process started by a test.
type plugin struct {
	cmd    *exec.Cmd
	socket string
	log    string
	reg    *plugins.Registry
	p      *plugins.Plugin
}

// start runs the command binary as plugin name with a socket and a call log in a
// temporary directory, and activates it.
func start(t *testing.T, binary, name, iface string, args ...string) *plugin {
	t.Helper()
	dir := t.TempDir()
	pl := &plugin{socket: filepath.Join(dir, name+".sock"), log: filepath.Join(dir, "calls.log")}
	pl.cmd = exec.Command(binary, append([]string{"-name", name, "-socket", pl.socket, "-log", pl.log}, args...)...)
	var stderr bytes.Buffer
	pl.cmd.Stderr = &stderr
	pl.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := pl.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Runs after the process is gone (cleanups run last first).
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s's standard error:\n%s", filepath.Base(binary), stderr.String())
		}
	})
	t.Cleanup(func() {
		if pl.cmd.ProcessState == nil {
			_ = pl.cmd.Process.Kill()
			_ = pl.cmd.Wait()
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(pl.socket); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s made no socket", binary)
		}
	}
	pl.reg = plugins.NewRegistry(plugins.Config{SocketDirs: []string{dir}})
	t.Cleanup(pl.reg.Close)
	var err error
	if pl.p, err = pl.reg.Get(t.Context(), name, iface); err != nil {
		t.Fatal(err)
	}
	return pl
}

func (pl *plugin) call(t *testing.T, method string, req, resp any) {
	t.Helper()
	if err := pl.p.Call(t.Context(), method, req, resp); err != nil {
		t.Fatalf("%s: %v", method, err)
	}
}

// stop sends SIGTERM and checks the plugin exits cleanly, removing its
// socket.
func (pl *plugin) stop(t *testing.T) {
	t.Helper()
	pl.reg.Close()
	if err := pl.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- pl.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("plugin exited with %v after SIGTERM", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("plugin still running 10 s after SIGTERM")
	}
	if _, err := os.Lstat(pl.socket); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
}

// calls reads the call log.
func (pl *plugin) calls(t *testing.T) []pluginutil.CallRecord {
	t.Helper()
	f, err := os.Open(pl.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []pluginutil.CallRecord
	for s := bufio.NewScanner(f); s.Scan(); {
		var r pluginutil.CallRecord
		if err := json.Unmarshal(s.Bytes(), &r); err != nil {
			t.Fatalf("log line %s: %v", s.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

func methods(recs []pluginutil.CallRecord) string {
	var m []string
	for _, r := range recs {
		m = append(m, r.Method)
	}
	return strings.Join(m, " ")
}

func TestIPAMPlugins(t *testing.T) {
	bin := build(t, "./examples/ipam-plugin", "./internal/testplugins/gphipam")
	for _, name := range []string{"ipam-plugin", "gphipam"} {
		t.Run(name, func(t *testing.T) { testIPAMPlugin(t, filepath.Join(bin, name)) })
	}
}

func testIPAMPlugin(t *testing.T, binary string) {
	pl := start(t, binary, "ipam-test", "IpamDriver", "-pools", "10.77.0.0/24")
	var caps ipamapi.CapabilitiesResponse
	pl.call(t, ipamapi.GetCapabilities, nil, &caps)
	if !caps.RequiresMACAddress {
		t.Errorf("capabilities %+v", caps)
	}
	var spaces ipamapi.AddressSpacesResponse
	pl.call(t, ipamapi.GetDefaultAddressSpaces, nil, &spaces)
	var pool ipamapi.RequestPoolResponse
	pl.call(t, ipamapi.RequestPool, ipamapi.RequestPoolRequest{AddressSpace: spaces.LocalDefaultAddressSpace}, &pool)
	if pool.PoolID != "ExampleLocal/10.77.0.0/24" || pool.Data["com.docker.network.gateway"] != "10.77.0.1/24" {
		t.Errorf("pool %+v", pool)
	}
	var gw, addr ipamapi.RequestAddressResponse
	pl.call(t, ipamapi.RequestAddress, ipamapi.RequestAddressRequest{PoolID: pool.PoolID, Options: map[string]string{"RequestAddressType": "com.docker.network.gateway"}}, &gw)
	err := pl.p.Call(t.Context(), ipamapi.RequestAddress, ipamapi.RequestAddressRequest{PoolID: pool.PoolID}, &addr)
	var re *plugins.RemoteError
	if !errors.As(err, &re) || !strings.Contains(re.Msg, "requires the endpoint's MAC address") {
		t.Errorf("RequestAddress without a MAC: %v", err)
	}
	mac := map[string]string{"com.docker.network.endpoint.macaddress": "02:00:00:00:00:01"}
	pl.call(t, ipamapi.RequestAddress, ipamapi.RequestAddressRequest{PoolID: pool.PoolID, Options: mac}, &addr)
	if gw.Address != "10.77.0.1/24" || addr.Address != "10.77.0.2/24" {
		t.Errorf("gateway %s, address %s", gw.Address, addr.Address)
	}
	pl.call(t, ipamapi.ReleaseAddress, ipamapi.ReleaseAddressRequest{PoolID: pool.PoolID, Address: "10.77.0.2"}, nil)
	pl.call(t, ipamapi.ReleasePool, ipamapi.ReleasePoolRequest{PoolID: pool.PoolID}, nil)

	var stats pluginutil.HandlerTimeStats
	pl.call(t, "Example.HandlerTime", nil, &stats)
	if stats.Calls != 8 || stats.Nanoseconds <= 0 {
		t.Errorf("handler time %+v, want 8 calls", stats)
	}

	recs := pl.calls(t)
	want := "IpamDriver.GetCapabilities IpamDriver.GetDefaultAddressSpaces IpamDriver.RequestPool IpamDriver.RequestAddress IpamDriver.RequestAddress IpamDriver.RequestAddress IpamDriver.ReleaseAddress IpamDriver.ReleasePool"
	if got := methods(recs); got != want {
		t.Fatalf("call log:\n%s\nwant\n%s", got, want)
	}
	var last ipamapi.RequestAddressRequest
	if err := json.Unmarshal(recs[5].Request, &last); err != nil || last.PoolID != pool.PoolID || last.Options["com.docker.network.endpoint.macaddress"] != "02:00:00:00:00:01" {
		t.Errorf("logged RequestAddress %s: %v", recs[5].Request, err)
	}
	pl.stop(t)
}

func TestNetworkPlugins(t *testing.T) {
	testutil.RequireRoot(t)
	bin := build(t, "./examples/network-plugin", "./internal/testplugins/gphnet")
	for _, name := range []string{"network-plugin", "gphnet"} {
		t.Run(name, func(t *testing.T) { testNetworkPlugin(t, filepath.Join(bin, name)) })
	}
}

const (
	nid = "5e1f0000aaaabbbbccccddddeeeeffff0000111122223333444455556666777"
	eid = "e9d00000aaaabbbbccccddddeeeeffff0000111122223333444455556666777"
)

func testNetworkPlugin(t *testing.T, binary string) {
	pl := start(t, binary, "veth-test", "NetworkDriver")
	var caps netapi.CapabilitiesResponse
	pl.call(t, netapi.GetCapabilities, nil, &caps)
	if caps.Scope != "local" {
		t.Errorf("capabilities %+v", caps)
	}
	pl.call(t, netapi.CreateNetwork, netapi.CreateNetworkRequest{
		NetworkID: nid,
		IPv4Data:  []*netapi.IPAMData{{AddressSpace: "ExampleLocal", Pool: "10.78.0.0/24", Gateway: "10.78.0.1/24"}},
	}, nil)
	br, err := netlink.LinkByName("vpb5e1f0000")
	if err != nil {
		t.Fatalf("the plugin made no bridge in the test's namespace: %v", err)
	}
	var ep netapi.CreateEndpointResponse
	pl.call(t, netapi.CreateEndpoint, netapi.CreateEndpointRequest{NetworkID: nid, EndpointID: eid, Interface: &netapi.EndpointInterface{Address: "10.78.0.2/24"}}, &ep)
	if ep.Interface == nil || ep.Interface.MacAddress == "" || ep.Interface.Address != "" {
		t.Errorf("CreateEndpoint answered %+v, want only a MAC", ep.Interface)
	}
	var info netapi.InfoResponse
	pl.call(t, netapi.EndpointInfo, netapi.InfoRequest{NetworkID: nid, EndpointID: eid}, &info)
	if info.Value["com.docker.network.endpoint.macaddress"] != ep.Interface.MacAddress {
		t.Errorf("EndpointOperInfo %+v", info)
	}
	var join netapi.JoinResponse
	pl.call(t, netapi.Join, netapi.JoinRequest{NetworkID: nid, EndpointID: eid, SandboxKey: "/proc/1/ns/net"}, &join)
	if join.InterfaceName.SrcName != "vpce9d0000" || join.InterfaceName.DstPrefix != "eth" || join.Gateway != "10.78.0.1" {
		t.Errorf("Join answered %+v", join)
	}
	host, err := netlink.LinkByName("vphe9d0000")
	if err != nil || host.Attrs().MasterIndex != br.Attrs().Index {
		t.Errorf("host side of the pair: %v, %v", host, err)
	}
	pl.call(t, netapi.ProgramExternalConnectivity, netapi.ProgramExternalConnectivityRequest{NetworkID: nid, EndpointID: eid}, nil)
	pl.call(t, netapi.RevokeExternalConnectivity, netapi.RevokeExternalConnectivityRequest{NetworkID: nid, EndpointID: eid}, nil)
	pl.call(t, netapi.Leave, netapi.LeaveRequest{NetworkID: nid, EndpointID: eid}, nil)
	if _, err := netlink.LinkByName("vphe9d0000"); err == nil {
		t.Error("the pair outlived Leave")
	}
	pl.call(t, netapi.DeleteEndpoint, netapi.DeleteEndpointRequest{NetworkID: nid, EndpointID: eid}, nil)
	pl.call(t, netapi.DeleteNetwork, netapi.DeleteNetworkRequest{NetworkID: nid}, nil)
	if _, err := netlink.LinkByName("vpb5e1f0000"); err == nil {
		t.Error("the bridge outlived DeleteNetwork")
	}
	err = pl.p.Call(context.Background(), netapi.DeleteNetwork, netapi.DeleteNetworkRequest{NetworkID: nid}, nil)
	if re := (*plugins.RemoteError)(nil); !errors.As(err, &re) || !strings.Contains(re.Msg, "not found") {
		t.Errorf("DeleteNetwork twice: %v", err)
	}

	var stats pluginutil.HandlerTimeStats
	pl.call(t, "Example.HandlerTime", nil, &stats)
	if stats.Calls != 11 || stats.Nanoseconds <= 0 {
		t.Errorf("handler time %+v, want 11 calls", stats)
	}
	recs := pl.calls(t)
	if len(recs) != 11 || recs[4].Method != netapi.Join {
		t.Fatalf("call log: %s", methods(recs))
	}
	var logged netapi.JoinRequest
	if err := json.Unmarshal(recs[4].Request, &logged); err != nil || logged.SandboxKey != "/proc/1/ns/net" || logged.EndpointID != eid {
		t.Errorf("logged Join %s: %v", recs[4].Request, err)
	}
	pl.stop(t)
}
