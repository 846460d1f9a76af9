package libnetwork

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netkit/libnetwork/config"
	"github.com/netkit/libnetwork/drivers/bridge"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/portmapper/api"
	"github.com/netkit/libnetwork/types"
)

// Remote port mappers, used as an embedder would: a plugin process built
// from this module (the SDK example, examples/portmapper-plugin, or the
// misbehaving test plugin of package portmapper), found through a socket
// directory of the test's own, chosen by a network's or an endpoint's
// option.

// Plugins of these tests.
const (
	// examplePlugin is built with pluginsdk/portmapper: it maps an
	// ephemeral request to the container port + -offset, and refuses a
	// host port it already handed out. It logs each call to stderr.
	examplePlugin = "./examples/portmapper-plugin"
	// testPlugin misbehaves on request (-mode, -delay) and logs each call
	// as a JSON line to -log.
	testPlugin = "./portmapper/testdata/mapperplugin"
)

// buildPlugin builds the main package pkg of the module into a directory
// of the test and returns the executable.
func buildPlugin(t *testing.T, pkg string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// pluginProc is a running plugin process.
type pluginProc struct {
	t      *testing.T
	name   string
	socket string
	cmd    *exec.Cmd
	log    string // the call log: stderr of the example, -log of the test plugin
	done   chan struct{}
}

// startPlugin runs bin as plugin name with its socket in sockDir and
// waits for the socket. The process is killed, by its PID, at the end of
// the test.
func startPlugin(t *testing.T, bin, sockDir, name string, args ...string) *pluginProc {
	t.Helper()
	p := &pluginProc{t: t, name: name, socket: filepath.Join(sockDir, name+".sock"),
		log: filepath.Join(t.TempDir(), name+".log"), done: make(chan struct{})}
	logf, err := os.Create(p.log)
	mustf(t, err, "plugin log")
	defer logf.Close()
	if strings.HasSuffix(bin, "mapperplugin") {
		args = append([]string{"-socket", p.socket, "-log", p.log}, args...)
		logf.Close()
		logf, err = os.Create(p.log + ".stderr")
		mustf(t, err, "plugin stderr")
	} else {
		args = append([]string{"-socket", p.socket}, args...)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	mustf(t, p.cmd.Start(), "starting plugin %s", name)
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(p.kill)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if fi, err := os.Stat(p.socket); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return p
		}
		select {
		case <-p.done:
			out, _ := os.ReadFile(logf.Name())
			t.Fatalf("plugin %s exited before listening: %s", name, out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("plugin %s: no socket %s after 10 s", name, p.socket)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill kills the plugin by its PID and reaps it; its socket file stays,
// as a crashed plugin's does.
func (p *pluginProc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// calls returns the methods the plugin logged, in order, with their
// bodies (the test plugin) or their log lines (the example).
func (p *pluginProc) calls() []pluginCall {
	p.t.Helper()
	f, err := os.Open(p.log)
	mustf(p.t, err, "plugin log")
	defer f.Close()
	var out []pluginCall
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		var c pluginCall
		if json.Unmarshal([]byte(line), &c) == nil && c.Method != "" {
			out = append(out, c)
			continue
		}
		for _, m := range []string{api.MapPortsMethod, api.UnmapPortsMethod} {
			short := strings.TrimPrefix(m, "PortMapper.")
			if strings.Contains(line, " "+short+": ") {
				out = append(out, pluginCall{Method: m, Body: json.RawMessage(`"` + strings.ReplaceAll(line, `"`, `'`) + `"`)})
			}
		}
	}
	return out
}

// pluginCall is one call a plugin logged.
type pluginCall struct {
	Method string
	Body   json.RawMessage
}

func countCalls(calls []pluginCall, method string) int {
	n := 0
	for _, c := range calls {
		if c.Method == method {
			n++
		}
	}
	return n
}

// waitCall waits until the plugin logged a call of method.
func (p *pluginProc) waitCall(method string) {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for countCalls(p.calls(), method) == 0 {
		if time.Now().After(deadline) {
			p.t.Fatalf("plugin %s got no %s in 10 s", p.name, method)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// portElements returns the elements of the published-port maps of an
// nftables listing of the library's table.
func portElements(listing string) []string {
	var out []string
	in := false
	for _, line := range strings.Split(listing, "\n") {
		s := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(s, "map ports"):
			in = true
		case in && s == "}":
			in = false
		case in && !strings.HasPrefix(s, "type ") && !strings.HasPrefix(s, "flags ") && strings.Contains(s, " : "):
			out = append(out, s)
		}
	}
	return out
}

// mapperNetwork makes an IPv4 bridge network whose port mapper is mapper.
func mapperNetwork(t *testing.T, c *controller, name, subnet, mapper string) Network {
	t.Helper()
	n, err := c.NewNetwork("bridge", name,
		NetworkOptionGeneric(map[string]interface{}{netlabel.GenericData: map[string]interface{}{bridge.PortMapperOption: mapper}}),
		NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: subnet}}, nil, nil))
	mustf(t, err, "NewNetwork %s (port mapper %q)", name, mapper)
	return n
}

// pluginDirs are the controller options that make it look for plugins in
// sockDir only.
func pluginDirs(t *testing.T, sockDir string) []config.Option {
	return []config.Option{config.OptionPluginSocketDirs(sockDir), config.OptionPluginSpecDirs(t.TempDir())}
}

// A network whose port mapper is a plugin built with the SDK publishes a
// sandbox's ports where the plugin says: DriverInfo shows the plugin's
// host ports, an outside host reaches the container through them (the
// library programmed the NAT the plugin asked for), and Leave unmaps them
// in the plugin and leaves nothing in the table.
func TestRemotePortMapper(t *testing.T) {
	l := newForwardingLab(t)
	e := l.e
	sockDir := t.TempDir()
	p := startPlugin(t, buildPlugin(t, examplePlugin), sockDir, "offsetmapper", "-offset", "20000")
	c := e.start(pluginDirs(t, sockDir)...)
	n, err := c.NewNetwork("bridge", "remote", NetworkOptionEnableIPv6(true),
		NetworkOptionDriverOpts(map[string]string{bridge.PortMapperOption: "offsetmapper"}),
		NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.42.0.0/24"}}, []*IpamConf{{PreferredPool: "fd00:42::/64"}}, nil))
	mustf(t, err, "NewNetwork")
	ep, err := n.CreateEndpoint("web")
	mustf(t, err, "CreateEndpoint")
	sb, err := c.NewSandbox("ctr-web", OptionPortMapping([]types.PortBinding{
		{Proto: types.TCP, Port: 80},                    // ephemeral: the plugin says 20080
		{Proto: types.TCP, Port: 8080, HostPort: 18081}, // fixed
	}))
	mustf(t, err, "NewSandbox")
	before := e.snapshot(c)
	mustf(t, ep.Join(sb), "Join")

	ports := publishedPorts(t, ep)
	want := map[string]uint16{"tcp/80/0.0.0.0": 20080, "tcp/80/::": 20080, "tcp/8080/0.0.0.0": 18081, "tcp/8080/::": 18081}
	if !mapsEqual(ports, want) {
		t.Fatalf("published ports %v, want the plugin's %v", ports, want)
	}
	if got := countCalls(p.calls(), api.MapPortsMethod); got != 2 {
		t.Errorf("the plugin got %d MapPorts, want 2 (one per binding)", got)
	}
	if els := portElements(e.nft()); len(els) != 4 {
		t.Errorf("port-map elements after Join: %q, want the plugin's 4 NAT rules", els)
	}
	ns := nsOf(t, sb)
	serveOn(t, ns, 80)
	serveOn(t, ns, 8080)
	out := l.left
	mustSee(t, out.ns, "tcp", "192.0.2.1:20080", "192.0.2.2")
	mustSee(t, out.ns, "tcp", "[fd00:2::1]:20080", "fd00:2::2")
	mustSee(t, out.ns, "tcp", "192.0.2.1:18081", "192.0.2.2")

	// Another container asking for the plugin's host port 18081: the
	// plugin refuses it (an Err answer of the SDK), the join fails naming
	// the plugin and its reason, leaves nothing, and the first container
	// still answers.
	ep2, err := n.CreateEndpoint("web2")
	mustf(t, err, "CreateEndpoint web2")
	sb2, err := c.NewSandbox("ctr-web2", OptionPortMapping([]types.PortBinding{{Proto: types.TCP, Port: 8080, HostPort: 18081}}))
	mustf(t, err, "NewSandbox web2")
	mid := e.snapshot(c)
	err = ep2.Join(sb2)
	if _, ok := err.(types.ForbiddenError); !ok || !strings.Contains(err.Error(), `"offsetmapper"`) || !strings.Contains(err.Error(), "already mapped") {
		t.Errorf("second container on the plugin's host port 18081: %v (%T), want a ForbiddenError naming the plugin and saying the port is mapped", err, err)
	}
	e.requireSame(mid, e.snapshot(c), "a join the plugin refused")
	mustSee(t, out.ns, "tcp", "192.0.2.1:18081", "192.0.2.2")

	mustf(t, ep.Leave(sb), "Leave")
	if got := countCalls(p.calls(), api.UnmapPortsMethod); got != 2 {
		t.Errorf("the plugin got %d UnmapPorts at Leave, want 2", got)
	}
	if els := portElements(e.nft()); len(els) != 0 {
		t.Errorf("port-map elements after Leave: %q", els)
	}
	// The left veth goes in the background (drivers/bridge/reaper.go):
	// compare what Leave itself removes.
	if after := e.snapshot(c); after.rules != before.rules {
		t.Errorf("the table after Join and Leave differs:\nbefore:\n%s\nafter:\n%s", before.rules, after.rules)
	}
	mustNotAnswer(t, out.ns, "tcp", "192.0.2.1:20080")
	if got := publishedPorts(t, ep); len(got) != 0 {
		t.Errorf("after Leave DriverInfo still has ports %v", got)
	}
	// The plugin released them: they can be mapped again.
	mustf(t, ep.Join(sb), "Join again")
	if got := publishedPorts(t, ep); !mapsEqual(got, want) {
		t.Errorf("published ports at the second Join %v, want %v", got, want)
	}
	mustSee(t, out.ns, "tcp", "192.0.2.1:20080", "192.0.2.2")
}

// An endpoint's netlabel.PortMapper label overrides its network's mapper,
// both ways: a plugin on a nat network, nat on a plugin's network.
func TestRemotePortMapperEndpointLabel(t *testing.T) {
	l := newForwardingLab(t)
	e := l.e
	sockDir := t.TempDir()
	p := startPlugin(t, buildPlugin(t, examplePlugin), sockDir, "offsetmapper", "-offset", "20000")
	c := e.start(pluginDirs(t, sockDir)...)
	label := func(mapper string) EndpointOption {
		return EndpointOptionGeneric(map[string]interface{}{netlabel.PortMapper: mapper})
	}
	join := func(n Network, name string, port uint16, opts ...EndpointOption) uint16 {
		t.Helper()
		ep, err := n.CreateEndpoint(name, opts...)
		mustf(t, err, "CreateEndpoint %s", name)
		sb, err := c.NewSandbox("ctr-"+name, OptionPortMapping([]types.PortBinding{{Proto: types.TCP, Port: port}}))
		mustf(t, err, "NewSandbox %s", name)
		mustf(t, ep.Join(sb), "Join %s", name)
		serveOn(t, nsOf(t, sb), port)
		return publishedPorts(t, ep)["tcp/"+strconv.Itoa(int(port))+"/0.0.0.0"]
	}

	natNet := mapperNetwork(t, c, "natnet", "10.43.0.0/24", "nat")
	plugNet := mapperNetwork(t, c, "plugnet", "10.44.0.0/24", "offsetmapper")

	if got := join(natNet, "bynat", 81); got == 0 || got == 20081 {
		t.Errorf("endpoint of the nat network without a label got host port %d, want one of nat's", got)
	}
	if got := join(natNet, "byplugin", 82, label("offsetmapper")); got != 20082 {
		t.Errorf("endpoint labelled for the plugin on the nat network got host port %d, want the plugin's 20082", got)
	}
	if got := join(plugNet, "byplugin2", 83); got != 20083 {
		t.Errorf("endpoint of the plugin's network got host port %d, want the plugin's 20083", got)
	}
	natPort := join(plugNet, "bynat2", 84, label("nat"))
	if natPort == 0 || natPort == 20084 {
		t.Errorf("endpoint labelled nat on the plugin's network got host port %d, want one of nat's", natPort)
	}
	if got := countCalls(p.calls(), api.MapPortsMethod); got != 2 {
		t.Errorf("the plugin got %d MapPorts, want 2 (its two endpoints only)", got)
	}
	for _, port := range []uint16{20082, 20083, natPort} {
		mustSee(t, l.left.ns, "tcp", hostPort("192.0.2.1", port), "192.0.2.2")
	}
}

// notAMapper serves, on a unix socket of sockDir, a plugin that activates
// as a network driver only.
func notAMapper(t *testing.T, sockDir, name string) {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(sockDir, name+".sock"))
	mustf(t, err, "listening for %s", name)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.docker.plugins.v1.2+json")
		if r.URL.Path == "/Plugin.Activate" {
			_, _ = w.Write([]byte(`{"Implements": ["NetworkDriver"]}`))
			return
		}
		http.Error(w, "no such method", http.StatusNotFound)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
}

// A remote mapper that fails, however it fails, fails the join with an
// error naming it and saying what went wrong, in the class of the
// failure, and the join leaves nothing installed: no link, address,
// firewall element or record, and no mapping in the plugin it could undo.
func TestRemotePortMapperFailures(t *testing.T) {
	bin := buildPlugin(t, testPlugin)
	const hostPortAsked = 18600
	type result struct {
		class func(error) bool
		text  []string
	}
	is := func(f func(error) bool) func(error) bool { return f }
	cases := []struct {
		name  string
		setup func(t *testing.T, sockDir string) *pluginProc
		// during runs while the join is under way.
		during func(t *testing.T, p *pluginProc)
		want   result
		// undo: the plugin must have been sent an UnmapPorts of the
		// request after the failure.
		undo bool
	}{
		{
			name:  "err",
			setup: func(t *testing.T, d string) *pluginProc { return startPlugin(t, bin, d, "errmapper", "-mode", "err") },
			want: result{is(func(err error) bool { _, ok := err.(types.ForbiddenError); return ok }),
				[]string{`"errmapper"`, "PortMapper.MapPorts", "no ports for you"}},
		},
		{
			name: "malformed",
			setup: func(t *testing.T, d string) *pluginProc {
				return startPlugin(t, bin, d, "badjson", "-mode", "malformed")
			},
			want: result{is(func(err error) bool { _, ok := err.(types.InternalError); return ok }),
				[]string{`"badjson"`, "PortMapper.MapPorts", "malformed JSON", "undone with UnmapPorts"}},
			undo: true,
		},
		{
			name: "timeout",
			setup: func(t *testing.T, d string) *pluginProc {
				return startPlugin(t, bin, d, "slowmapper", "-delay", "1m")
			},
			want: result{is(func(err error) bool { _, ok := err.(types.TimeoutError); return ok }),
				[]string{`"slowmapper"`, "PortMapper.MapPorts", "no answer in time", "undone with UnmapPorts"}},
			undo: true,
		},
		{
			name: "dies mid-call",
			setup: func(t *testing.T, d string) *pluginProc {
				return startPlugin(t, bin, d, "dyingmapper", "-delay", "1m")
			},
			during: func(t *testing.T, p *pluginProc) {
				p.waitCall(api.MapPortsMethod)
				p.kill()
			},
			want: result{is(func(err error) bool { _, ok := err.(types.NoServiceError); return ok }),
				[]string{`"dyingmapper"`, "PortMapper.MapPorts", "connection lost before an answer"}},
		},
		{
			name:  "socket missing",
			setup: func(t *testing.T, d string) *pluginProc { return nil },
			want: result{is(func(err error) bool { _, ok := err.(types.NotFoundError); return ok }),
				[]string{`"nomapper"`, "not found", "nomapper.sock"}},
		},
		{
			name: "not running",
			setup: func(t *testing.T, d string) *pluginProc {
				p := startPlugin(t, bin, d, "stalemapper")
				p.kill() // its socket file stays
				return nil
			},
			// Activation gives up at the call timeout (the 1 s of this
			// test, shorter than the retry window).
			want: result{is(func(err error) bool { _, ok := err.(types.TimeoutError); return ok }),
				[]string{`"stalemapper"`, "Plugin.Activate"}},
		},
		{
			name:  "not a port mapper",
			setup: func(t *testing.T, d string) *pluginProc { notAMapper(t, d, "netdriver"); return nil },
			want: result{is(func(err error) bool { _, ok := err.(types.NotImplementedError); return ok }),
				[]string{`"netdriver"`, "does not implement PortMapper"}},
		},
	}
	mapperOf := map[string]string{"err": "errmapper", "malformed": "badjson", "timeout": "slowmapper",
		"dies mid-call": "dyingmapper", "socket missing": "nomapper", "not running": "stalemapper", "not a port mapper": "netdriver"}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			sockDir := t.TempDir()
			p := tc.setup(t, sockDir)
			c := e.start(append(pluginDirs(t, sockDir), config.OptionPluginCallTimeout(time.Second))...)
			mapper := mapperOf[tc.name]
			n := mapperNetwork(t, c, "failing", "10.45.0.0/24", mapper)
			// An endpoint labelled nat publishes too, so the table has
			// port elements the failure must not touch.
			other, err := n.CreateEndpoint("other", EndpointOptionGeneric(map[string]interface{}{netlabel.PortMapper: "nat"}))
			mustf(t, err, "CreateEndpoint other")
			osb, err := c.NewSandbox("ctr-other", OptionPortMapping([]types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 18601}}))
			mustf(t, err, "NewSandbox other")
			mustf(t, other.Join(osb), "Join other (nat)")
			ep, err := n.CreateEndpoint("victim")
			mustf(t, err, "CreateEndpoint")
			sb, err := c.NewSandbox("ctr-victim", OptionPortMapping([]types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: hostPortAsked}}))
			mustf(t, err, "NewSandbox")
			before := e.snapshot(c)
			elsBefore := portElements(e.nft())
			errc := make(chan error, 1)
			go func() { errc <- ep.Join(sb) }()
			if tc.during != nil {
				tc.during(t, p)
			}
			select {
			case err = <-errc:
			case <-time.After(20 * time.Second):
				t.Fatalf("Join through plugin %s hangs (20 s)", mapper)
			}
			if err == nil {
				t.Fatalf("Join through failing plugin %s succeeded", mapper)
			}
			t.Logf("error: %v", err)
			if !tc.want.class(err) {
				t.Errorf("error %v (%T) is not of the class expected", err, err)
			}
			for _, s := range tc.want.text {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			e.requireSame(before, e.snapshot(c), "a join failed by plugin "+mapper)
			if els := portElements(e.nft()); strings.Join(els, "\n") != strings.Join(elsBefore, "\n") {
				t.Errorf("port-map elements after the failed join %q, before %q", els, elsBefore)
			}
			if ports := publishedPorts(t, ep); len(ports) != 0 {
				t.Errorf("DriverInfo of the failed endpoint has ports %v", ports)
			}
			if p != nil && tc.undo {
				var undo []api.UnmapPortsRequest
				for _, call := range p.calls() {
					if call.Method == api.UnmapPortsMethod {
						var r api.UnmapPortsRequest
						mustf(t, json.Unmarshal(call.Body, &r), "UnmapPorts body")
						undo = append(undo, r)
					}
				}
				if len(undo) != 1 || len(undo[0].PortBindings) != 1 || undo[0].PortBindings[0].FrontendPort != hostPortAsked {
					t.Errorf("UnmapPorts sent to the plugin after the failure: %+v, want one of port %d", undo, hostPortAsked)
				}
			}
		})
	}
}

// While one network's plugin hangs in MapPorts, the rest of the
// controller works: a new network, endpoint and sandbox are made and a
// join on a nat network publishes at once; the hanging join ends at the
// call timeout, undone.
func TestRemotePortMapperHangDoesNotBlock(t *testing.T) {
	l := newForwardingLab(t)
	e := l.e
	sockDir := t.TempDir()
	p := startPlugin(t, buildPlugin(t, testPlugin), sockDir, "hungmapper", "-delay", "1m")
	c := e.start(append(pluginDirs(t, sockDir), config.OptionPluginCallTimeout(5*time.Second))...)
	hung := mapperNetwork(t, c, "hung", "10.46.0.0/24", "hungmapper")
	ep, err := hung.CreateEndpoint("stuck")
	mustf(t, err, "CreateEndpoint")
	sb, err := c.NewSandbox("ctr-stuck", OptionPortMapping([]types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 18700}}))
	mustf(t, err, "NewSandbox")
	hungErr := make(chan error, 1)
	go func() { hungErr <- ep.Join(sb) }()
	p.waitCall(api.MapPortsMethod)

	done := make(chan error, 1)
	go func() {
		done <- func() error {
			n, err := c.NewNetwork("bridge", "fine", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.47.0.0/24"}}, nil, nil))
			if err != nil {
				return err
			}
			ep2, err := n.CreateEndpoint("ok")
			if err != nil {
				return err
			}
			sb2, err := c.NewSandbox("ctr-ok", OptionPortMapping([]types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 18701}}))
			if err != nil {
				return err
			}
			if err := ep2.Join(sb2); err != nil {
				return err
			}
			serveOn(t, nsOf(t, sb2), 80)
			return nil
		}()
	}()
	select {
	case err := <-done:
		mustf(t, err, "network, endpoint, sandbox and join on nat while a plugin hangs")
	case <-time.After(10 * time.Second):
		t.Fatal("a nat join waits for another network's hanging plugin (10 s)")
	}
	select {
	case <-hungErr:
		t.Fatal("the hanging join ended before the nat join was checked; the test proves nothing")
	default:
	}
	mustSee(t, l.left.ns, "tcp", "192.0.2.1:18701", "192.0.2.2")

	select {
	case err := <-hungErr:
		if _, ok := err.(types.TimeoutError); !ok || !strings.Contains(err.Error(), `"hungmapper"`) {
			t.Errorf("the hanging join: %v (%T), want a TimeoutError naming the plugin", err, err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the join through the hanging plugin did not end at the 5 s call timeout (20 s)")
	}
	if got := countCalls(p.calls(), api.UnmapPortsMethod); got != 1 {
		t.Errorf("the hanging plugin got %d UnmapPorts after the timeout, want 1 (the undo)", got)
	}
}

// After a restart (Stop + New), an endpoint published through a plugin
// gets its bindings back: the library asks the plugin again for the host
// ports it had, as fixed ports, and programs the NAT again.
func TestRemotePortMapperRestart(t *testing.T) {
	l := newForwardingLab(t)
	e := l.e
	sockDir := t.TempDir()
	p := startPlugin(t, buildPlugin(t, examplePlugin), sockDir, "offsetmapper", "-offset", "20000")
	opts := pluginDirs(t, sockDir)
	c := e.start(opts...)
	n := mapperNetwork(t, c, "remote", "10.48.0.0/24", "offsetmapper")
	ep, sb := joined(t, c, n, "web", OptionPortMapping([]types.PortBinding{{Proto: types.TCP, Port: 80}}))
	serveOn(t, nsOf(t, sb), 80)
	ports := publishedPorts(t, ep)
	if ports["tcp/80/0.0.0.0"] != 20080 {
		t.Fatalf("published ports %v, want the plugin's 20080", ports)
	}
	mustSee(t, l.left.ns, "tcp", "192.0.2.1:20080", "192.0.2.2")

	c.Stop()
	c = e.start(opts...)
	rn, err := c.NetworkByName("remote")
	mustf(t, err, "network after restart")
	rep, err := rn.EndpointByName("web")
	mustf(t, err, "endpoint after restart")
	if got := publishedPorts(t, rep); !mapsEqual(got, ports) {
		t.Errorf("after restart published ports are %v, want %v", got, ports)
	}
	// The restart asked the plugin for the recorded host port, fixed.
	calls := p.calls()
	if len(calls) != 2 || calls[1].Method != api.MapPortsMethod || !strings.Contains(string(calls[1].Body), "0.0.0.0:20080-20080 -> 10.48.0.2:80") {
		t.Errorf("plugin calls %s, want the first MapPorts then one of 0.0.0.0:20080-20080 -> 10.48.0.2:80", calls)
	}
	mustSee(t, l.left.ns, "tcp", "192.0.2.1:20080", "192.0.2.2")

	rsb, err := c.SandboxByID(sb.ID())
	mustf(t, err, "sandbox after restart")
	mustf(t, rep.Leave(rsb), "Leave after restart")
	if els := portElements(e.nft()); len(els) != 0 {
		t.Errorf("port-map elements after Leave: %q", els)
	}
	if got := countCalls(p.calls(), api.UnmapPortsMethod); got != 1 {
		t.Errorf("the plugin got %d UnmapPorts, want 1 (at Leave)", got)
	}
	// The plugin forgot the port: it can be mapped again.
	ep2, _ := joined(t, c, rn, "web2", OptionPortMapping([]types.PortBinding{{Proto: types.TCP, Port: 80}}))
	if got := publishedPorts(t, ep2)["tcp/80/0.0.0.0"]; got != 20080 {
		t.Errorf("a new endpoint after Leave got host port %d, want 20080 again", got)
	}
}

// A negative plugin call timeout is refused by New.
func TestPluginCallTimeoutOption(t *testing.T) {
	e := newEnv(t)
	nc, err := New(e.options(config.OptionPluginCallTimeout(-time.Second))...)
	if err == nil {
		nc.Stop()
		t.Fatal("New with a negative plugin call timeout succeeded")
	}
	if _, ok := err.(types.BadRequestError); !ok || !strings.Contains(err.Error(), "-1s") {
		t.Errorf("New with a negative plugin call timeout: %v (%T), want a BadRequestError naming it", err, err)
	}
}
