package portmapper

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netkit/libnetwork/plugins"
	"github.com/netkit/libnetwork/portmapper/api"
	"github.com/netkit/libnetwork/types"
)

// dualStackReq asks for one ephemeral host port for the IPv4 and IPv6
// bindings of container port 80.
func dualStackReq() api.MapPortsRequest {
	return api.MapPortsRequest{
		Reqs: []api.PortBindingReq{
			{Proto: types.TCP, BackendIP: ctr4, BackendPort: 80},
			{Proto: types.TCP, BackendIP: ctr6, BackendPort: 80, FrontendIP: any6},
		},
		Labels: map[string]string{"com.example.mapper": "offset"},
	}
}

// TestRemote runs remote mappers as processes of their own: the example
// plugin built with pluginsdk/portmapper, and a test helper plugin
// (testdata/mapperplugin) that misbehaves as told and logs every call it
// gets to a file.
func TestRemote(t *testing.T) {
	ns := newNamespace(t)
	bins := t.TempDir()
	example := buildPlugin(t, bins, "github.com/netkit/libnetwork/examples/portmapper-plugin")
	helper := buildPlugin(t, bins, "./testdata/mapperplugin")

	// setup starts the helper plugin named name with args and returns a
	// registry that finds it, with calls bounded by callTimeout.
	setup := func(t *testing.T, name string, callTimeout time.Duration, args ...string) (*Registry, *pluginProc) {
		t.Helper()
		dir := t.TempDir()
		logPath := filepath.Join(dir, "calls.log")
		p := startPlugin(t, helper, filepath.Join(dir, name+".sock"), append([]string{"-log", logPath}, args...)...)
		p.log = logPath
		pr := newPluginRegistry(t, dir, 200*time.Millisecond)
		return newRegistry(t, ns, func(c *Config) { c.Plugins = pr; c.CallTimeout = callTimeout }), p
	}

	t.Run("example plugin", func(t *testing.T) {
		dir := t.TempDir()
		p := startPlugin(t, example, filepath.Join(dir, "offset.sock"), "-offset", "10000")
		r := newRegistry(t, ns, func(c *Config) { c.Plugins = newPluginRegistry(t, dir, time.Second) })
		m := mustMapper(t, r, "offset")

		req := dualStackReq()
		bs, err := m.MapPorts(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		if line := p.waitLine(t, "MapPorts"); !strings.Contains(line, "map[com.example.mapper:offset]") {
			t.Errorf("the plugin got %q, want the labels passed through", line)
		}
		for i, b := range bs {
			rq := req.Reqs[i]
			want := api.NATRule{Proto: types.TCP, FrontendIP: rq.FrontendIP, FrontendPort: 10080, BackendIP: rq.BackendIP, BackendPort: 80}
			if b.FrontendPort != 10080 || b.BackendIP != rq.BackendIP || !b.AllowForwarding || b.NAT == nil || *b.NAT != want {
				t.Errorf("binding %d = %+v (NAT %+v), want the plugin's port 10080 and NAT %+v", i, b, b.NAT, want)
			}
		}
		// Nothing is reserved locally: the plugin owns its ports.
		assertFree(t, ns, types.TCP, any4, 10080)

		// The plugin refuses its own port twice: a Forbidden error
		// naming the plugin and carrying its message.
		_, err = m.MapPorts(t.Context(), req)
		pe := asError[*PluginError](t, err)
		if _, ok := err.(types.ForbiddenError); !ok || pe.Plugin != "offset" || pe.Undone || !strings.Contains(err.Error(), "already mapped") || !strings.Contains(err.Error(), `"offset"`) {
			t.Errorf("second MapPorts: %v (%T, %+v)", err, err, pe)
		}

		if err := m.UnmapPorts(t.Context(), api.UnmapPortsRequest{PortBindings: bs, Labels: req.Labels}); err != nil {
			t.Fatal(err)
		}
		p.waitLine(t, "UnmapPorts: 2 bindings")
		bs, err = m.MapPorts(t.Context(), req)
		if err != nil {
			t.Fatalf("MapPorts after UnmapPorts: %v", err)
		}
		if err := m.UnmapPorts(t.Context(), api.UnmapPortsRequest{PortBindings: bs}); err != nil {
			t.Fatal(err)
		}
	})

	// checkUndone checks that the plugin got one UnmapPorts after a failed
	// MapPorts, of the bindings want.
	checkUndone := func(t *testing.T, p *pluginProc, want []api.PortBinding) {
		t.Helper()
		unmaps := p.unmaps(t)
		if len(unmaps) != 1 {
			t.Fatalf("the plugin got %d UnmapPorts, want 1", len(unmaps))
		}
		got := unmaps[0]
		if got.Labels["com.example.mapper"] != "offset" || len(got.PortBindings) != len(want) {
			t.Fatalf("the plugin got UnmapPorts %+v, want bindings %+v with the labels", got, want)
		}
		for i := range want {
			g, w := got.PortBindings[i], want[i]
			if g.Proto != w.Proto || g.BackendIP != w.BackendIP || g.BackendPort != w.BackendPort || g.FrontendPort != w.FrontendPort {
				t.Errorf("UnmapPorts binding %d = %+v, want %+v", i, g, w)
			}
		}
	}

	// requested are the bindings the undo names when the plugin's answer
	// is lost: the request's, frontend port unknown (ephemeral).
	requested := requestedBindings(dualStackReq())

	for _, tc := range []struct {
		mode  string
		class func(error) bool
		cause func(error) bool
		want  string // in the error
		undo  []api.PortBinding
	}{
		{"err", isForbidden, is[*plugins.RemoteError], "no ports for you", nil},
		{"malformed", types.IsInternal, is[*plugins.ProtocolError], "malformed JSON", requested},
		{"otherbackend", types.IsInternal, is[*ResponseError], "NAT rule points to tcp 10.99.99.99:80", []api.PortBinding{
			{Proto: types.TCP, BackendIP: ctr4, BackendPort: 80, FrontendPort: 10080},
			{Proto: types.TCP, BackendIP: ctr6, BackendPort: 80, FrontendPort: 10080},
		}},
		{"bindingerror", isForbidden, is[*plugins.RemoteError], "host port taken upstream", []api.PortBinding{
			{Proto: types.TCP, BackendIP: ctr4, BackendPort: 80, FrontendPort: 10080},
		}},
		{"short", types.IsInternal, is[*ResponseError], "1 bindings for 2 requests", []api.PortBinding{
			{Proto: types.TCP, BackendIP: ctr4, BackendPort: 80, FrontendPort: 10080},
		}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			r, p := setup(t, "pm-"+tc.mode, 10*time.Second, "-mode", tc.mode)
			bs, err := mustMapper(t, r, "pm-"+tc.mode).MapPorts(t.Context(), dualStackReq())
			if bs != nil || err == nil {
				t.Fatalf("MapPorts = %+v, %v; want an error", bs, err)
			}
			t.Logf("MapPorts: %v", err)
			pe := asError[*PluginError](t, err)
			if !tc.class(err) || !tc.cause(err) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `"pm-`+tc.mode+`"`) {
				t.Errorf("MapPorts: %v (%T), want the plugin's name and %q", err, err, tc.want)
			}
			if tc.undo == nil {
				if pe.Undone || len(p.unmaps(t)) != 0 {
					t.Errorf("an UnmapPorts was sent after the plugin said it mapped nothing: %+v", pe)
				}
				return
			}
			if !pe.Undone || pe.UndoErr != nil || !strings.Contains(err.Error(), "undone with UnmapPorts") {
				t.Errorf("MapPorts: %v: want it undone (%+v)", err, pe)
			}
			checkUndone(t, p, tc.undo)
		})
	}

	t.Run("out of range", func(t *testing.T) {
		r, p := setup(t, "pm-range", 10*time.Second, "-mode", "outofrange")
		req := dualStackReq()
		for i := range req.Reqs {
			req.Reqs[i].FrontendPort, req.Reqs[i].FrontendPortEnd = 8000, 8010
		}
		_, err := mustMapper(t, r, "pm-range").MapPorts(t.Context(), req)
		if re := asError[*ResponseError](t, err); re.Binding != 0 || !types.IsInternal(err) || !strings.Contains(err.Error(), "frontend port 8011 is not ports 8000-8010") {
			t.Fatalf("MapPorts: %v", err)
		}
		checkUndone(t, p, []api.PortBinding{
			{Proto: types.TCP, BackendIP: ctr4, BackendPort: 80, FrontendPort: 8011},
			{Proto: types.TCP, BackendIP: ctr6, BackendPort: 80, FrontendPort: 8000},
		})
	})

	t.Run("timeout", func(t *testing.T) {
		r, p := setup(t, "pm-slow", 500*time.Millisecond, "-delay", "1h")
		_, err := mustMapper(t, r, "pm-slow").MapPorts(t.Context(), dualStackReq())
		t.Logf("MapPorts: %v", err)
		pe := asError[*PluginError](t, err)
		if _, ok := err.(types.TimeoutError); !ok || !is[*plugins.TimeoutError](err) || !pe.Undone || pe.UndoErr != nil {
			t.Fatalf("MapPorts: %v (%T, %+v), want a timeout, undone", err, err, pe)
		}
		checkUndone(t, p, requested)
	})

	t.Run("dies mid-call", func(t *testing.T) {
		r, p := setup(t, "pm-dies", 10*time.Second, "-mode", "die")
		_, err := mustMapper(t, r, "pm-dies").MapPorts(t.Context(), dualStackReq())
		t.Logf("MapPorts: %v", err)
		pe := asError[*PluginError](t, err)
		ue := asError[*plugins.UnavailableError](t, err)
		if _, ok := err.(types.NoServiceError); !ok || !ue.Sent {
			t.Fatalf("MapPorts: %v (%T), want a NoServiceError saying the request was sent", err, err)
		}
		// The undo was tried, and failed: nobody listens any more.
		if !pe.Undone || pe.UndoErr == nil || !strings.Contains(err.Error(), "may still hold") {
			t.Errorf("MapPorts: %v: want a failed undo reported", err)
		}
		if calls := p.calls(t); len(calls) != 1 || calls[0].Method != api.MapPortsMethod {
			t.Errorf("the plugin got %+v, want the MapPorts it died in", calls)
		}
		_ = p.cmd.Wait()
		if code := p.cmd.ProcessState.ExitCode(); code != 3 {
			t.Errorf("the plugin exited with %d, want 3 (its mid-call exit)", code)
		}
	})

	// A plugin stuck in a call delays only its own callers: the nat
	// mapper, and other calls of the registry, go on.
	t.Run("slow plugin does not block nat", func(t *testing.T) {
		r, p := setup(t, "pm-stuck", time.Hour, "-delay", "1h")
		stuck := mustMapper(t, r, "pm-stuck")
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			_, err := stuck.MapPorts(ctx, dualStackReq())
			done <- err
		}()
		for len(p.calls(t)) == 0 {
			select {
			case err := <-done:
				t.Fatalf("MapPorts of the stuck plugin returned: %v", err)
			case <-time.After(10 * time.Millisecond):
			}
		}

		nat := mustMapper(t, r, NAT)
		bs, err := nat.MapPorts(t.Context(), api.MapPortsRequest{Reqs: []api.PortBindingReq{{Proto: types.TCP, BackendIP: ctr4, BackendPort: 80, FrontendPort: 8080}}})
		if err != nil {
			t.Fatal(err)
		}
		assertHeld(t, ns, types.TCP, any4, 8080)
		if err := nat.UnmapPorts(t.Context(), api.UnmapPortsRequest{PortBindings: bs}); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Mapper("pm-stuck"); err != nil {
			t.Fatalf("Mapper of the stuck plugin while a call is under way: %v", err)
		}
		select {
		case err := <-done:
			t.Fatalf("MapPorts of the stuck plugin returned: %v", err)
		default:
		}

		cancel()
		err = <-done
		if pe := asError[*PluginError](t, err); !pe.Undone {
			t.Errorf("cancelled MapPorts: %v, want it undone", err)
		}
	})

	t.Run("context done before the call", func(t *testing.T) {
		r, p := setup(t, "pm-ok", 10*time.Second)
		m := mustMapper(t, r, "pm-ok")
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := m.MapPorts(ctx, dualStackReq())
		if pe := asError[*PluginError](t, err); pe.Undone || !errors.Is(err, context.Canceled) {
			t.Errorf("MapPorts with a cancelled context: %v (%+v)", err, pe)
		}
		if calls := p.calls(t); len(calls) != 0 {
			t.Errorf("the plugin got %+v, want nothing", calls)
		}
		// The same plugin maps when asked in time, its bindings used.
		bs, err := m.MapPorts(t.Context(), dualStackReq())
		if err != nil || len(bs) != 2 || bs[1].FrontendPort != 10080 || bs[1].NAT.BackendIP != ctr6 {
			t.Fatalf("MapPorts = %+v, %v", bs, err)
		}
		if err := m.UnmapPorts(t.Context(), api.UnmapPortsRequest{PortBindings: bs}); err != nil {
			t.Fatal(err)
		}
		if u := p.unmaps(t); len(u) != 1 || len(u[0].PortBindings) != 2 {
			t.Errorf("the plugin got UnmapPorts %+v, want one of 2 bindings", u)
		}
	})

	t.Run("names", func(t *testing.T) {
		r := newRegistry(t, ns, func(c *Config) { c.Plugins = newPluginRegistry(t, t.TempDir(), 100*time.Millisecond) })
		_, err := r.Mapper("nosuchmapper")
		if _, ok := err.(types.NotFoundError); !ok || !strings.Contains(err.Error(), `"nosuchmapper"`) {
			t.Errorf("Mapper of an unknown name: %v (%T), want a NotFoundError naming it", err, err)
		}
		for _, bad := range []string{"../etc/x", "a/b", ".hidden", strings.Repeat("x", 300)} {
			if _, err := r.Mapper(bad); !types.IsBadRequest(err) {
				t.Errorf("Mapper(%q): %v, want a BadRequestError", bad, err)
			}
		}
		// Without a plugin registry, every name but the built-ins is
		// unknown.
		if _, err := newRegistry(t, ns, nil).Mapper("offset"); !types.IsNotFound(err) {
			t.Errorf("Mapper without plugins: %v, want a NotFoundError", err)
		}
	})
}

func isForbidden(err error) bool { _, ok := err.(types.ForbiddenError); return ok }

func is[T error](err error) bool {
	var target T
	return errors.As(err, &target)
}
