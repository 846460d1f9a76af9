package main

// The -driver mode: attach and detach through another network driver: a
// built-in one that hangs its links off a parent interface (macvlan,
// ipvlan), given a parent of netbench's own, or else a remote one.
//
// For a remote driver netbench runs the example veth plugin (examples/network-plugin, package
// vethdriver) as a separate process, itself re-executed with
// pluginSocketEnv set, in its own namespaces beside the controller, under
// the name -driver gives; the controller finds it in a socket directory of
// the run's. Before and after each attach and detach it asks the plugin
// for the time its handlers have spent (/Example.HandlerTime), so that the
// controller's own time per operation (the operation's time minus the
// plugin's) is reported beside the totals:
//
//	netbench -driver veth-example -n 200

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/netkit/libnetwork"
	"github.com/netkit/libnetwork/config"
	"github.com/netkit/libnetwork/examples/network-plugin/vethdriver"
	"github.com/netkit/libnetwork/examples/pluginutil"
	"github.com/vishvananda/netlink"
)

// pluginSocketEnv, set, makes netbench the plugin process of a -driver
// run, listening on the socket it names.
const pluginSocketEnv = "NETBENCH_PLUGIN_SOCKET"

// servePluginIfAsked runs the example veth driver and exits when netbench
// was started as a -driver run's plugin.
func servePluginIfAsked() {
	sock := os.Getenv(pluginSocketEnv)
	if sock == "" {
		return
	}
	f := pluginutil.Flags{Name: filepath.Base(sock), Socket: sock}
	if err := vethdriver.Serve(f, slog.New(slog.DiscardHandler)); err != nil {
		fmt.Fprintln(os.Stderr, "netbench plugin:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// benchPlugin is the plugin process of a -driver run.
type benchPlugin struct {
	cmd    *exec.Cmd
	client *http.Client
}

// startBenchPlugin runs the plugin process as plugin name with its socket
// in sockDir and waits until it listens.
func startBenchPlugin(sockDir, name string) (*benchPlugin, error) {
	sock := filepath.Join(sockDir, name+".sock")
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), pluginSocketEnv+"="+sock)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the plugin: %w", err)
	}
	p := &benchPlugin{cmd: cmd, client: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}}}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if fi, err := os.Stat(sock); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return p, nil
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("plugin %s: no socket %s after 10 s", name, sock)
		}
	}
}

// handlerTime returns the time the plugin's handlers have spent so far.
func (p *benchPlugin) handlerTime() (time.Duration, error) {
	resp, err := p.client.Post("http://plugin"+pluginutil.HandlerTimePath, "application/json", nil)
	if err != nil {
		return 0, fmt.Errorf("asking the plugin for its handler time: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var st pluginutil.HandlerTimeStats
	if err := json.Unmarshal(body, &st); err != nil {
		return 0, fmt.Errorf("the plugin's handler time %q: %w", body, err)
	}
	return time.Duration(st.Nanoseconds), nil
}

// stop ends the plugin process, by its PID, and reaps it.
func (p *benchPlugin) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// newDriverBench makes the controller of a -driver run, finding plugins in
// sockDir, and its network "bench" on the remote driver.
func newDriverBench(dir, sockDir, driver string) (libnetwork.NetworkController, libnetwork.Network, error) {
	c, err := libnetwork.New(config.OptionDataDir(filepath.Join(dir, "data")), config.OptionExecRoot(filepath.Join(dir, "exec")),
		config.OptionPluginSocketDirs(sockDir), config.OptionPluginSpecDirs(filepath.Join(dir, "specs")))
	if err != nil {
		return nil, nil, err
	}
	nw, err := c.NewNetwork(driver, "bench")
	if err != nil {
		c.Stop()
		return nil, nil, err
	}
	return c, nw, nil
}

// parentDrivers are the built-in drivers -driver names that need a parent
// interface.
var parentDrivers = map[string]bool{"macvlan": true, "ipvlan": true}

// benchParent is the link netbench gives a parent driver's network, one end
// of a veth pair in netbench's own namespace.
const benchParent = "nbparent0"

// newParentDriverBench makes the controller of a -driver run on a built-in
// parent driver, and its network "bench" on benchParent.
func newParentDriverBench(dir, driver string) (libnetwork.NetworkController, libnetwork.Network, error) {
	// A veth pair: this kernel may have no dummy links.
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: benchParent}, PeerName: benchParent + "p"}); err != nil {
		return nil, nil, fmt.Errorf("making the parent %s: %w", benchParent, err)
	}
	for _, name := range []string{benchParent, benchParent + "p"} {
		l, err := netlink.LinkByName(name)
		if err == nil {
			err = netlink.LinkSetUp(l)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("bringing the parent %s up: %w", name, err)
		}
	}
	c, err := libnetwork.New(config.OptionDataDir(filepath.Join(dir, "data")), config.OptionExecRoot(filepath.Join(dir, "exec")))
	if err != nil {
		return nil, nil, err
	}
	nw, err := c.NewNetwork(driver, "bench", libnetwork.NetworkOptionDriverOpts(map[string]string{"parent": benchParent}))
	if err != nil {
		c.Stop()
		return nil, nil, err
	}
	return c, nw, nil
}
