// Command portmapper-plugin is a small remote port mapper built with
// pluginsdk/portmapper. It gives each binding a host port of its own choice:
// the port asked for when one is, the start of a range when a range is,
// and the container port plus -offset for an ephemeral request. It asks
// the library to NAT that port to the container and to allow forwarding
// to it, and refuses a host port it already handed out to another
// container or asked for again without naming it. A request for exactly
// a host port it already maps to the same container is granted again: the
// library asks for exactly the bindings it had when it restarts, while the
// plugin, still running, holds them.
//
// Run it where the library looks for plugin sockets (the directories set
// with config.OptionPluginSocketDirs; /run/docker/plugins by default):
//
//	go build ./examples/portmapper-plugin
//	./portmapper-plugin -socket /tmp/plugins/offsetmapper.sock -offset 10000
//
// then create a network whose port mapper is "offsetmapper". Or serve on
// TCP, with a spec file for the library to find it:
//
//	./portmapper-plugin -name offsetmapper -tcp 127.0.0.1:0 -spec-dir /tmp/plugin-specs
//
// -delay makes every MapPorts wait before answering, to see the library's
// call timeout at work. Each call is logged to standard error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/netkit/libnetwork/pluginsdk/portmapper"
	"github.com/netkit/libnetwork/types"
)

func main() {
	socket := flag.String("socket", "offsetmapper", "plugin name (socket in /run/docker/plugins) or absolute socket path")
	name := flag.String("name", "offsetmapper", "plugin name of the spec file written with -tcp")
	tcpAddr := flag.String("tcp", "", "serve on this TCP address instead of a unix socket")
	specDir := flag.String("spec-dir", "", "directory of the spec file written with -tcp (default /etc/docker/plugins)")
	offset := flag.Int("offset", 10000, "host port = container port + offset for an ephemeral request")
	delay := flag.Duration("delay", 0, "wait this long in every MapPorts before answering")
	flag.Parse()

	m := &offsetMapper{offset: *offset, delay: *delay, used: make(map[hostPort]backend)}
	h := portmapper.NewHandler(m)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = h.Shutdown(sctx)
	}()

	var err error
	if *tcpAddr != "" {
		err = h.ServeTCP(*name, *tcpAddr, *specDir, nil)
	} else {
		err = h.ServeUnix(*socket, -1)
	}
	if err != nil {
		log.Fatal(err)
	}
}

// hostPort is a host port handed out.
type hostPort struct {
	proto types.Protocol
	ip    string
	port  uint16
}

// backend is the container address and port a host port is mapped to.
type backend struct {
	ip   string
	port uint16
}

// offsetMapper is the Driver.
type offsetMapper struct {
	offset int
	delay  time.Duration

	mu   sync.Mutex
	used map[hostPort]backend
}

func (m *offsetMapper) MapPorts(req portmapper.MapPortsRequest) (portmapper.MapPortsResponse, error) {
	log.Printf("MapPorts: %d bindings, labels %v: %s", len(req.Reqs), req.Labels, describe(req.Reqs))
	time.Sleep(m.delay)
	if len(req.Reqs) == 0 {
		return portmapper.MapPortsResponse{}, nil
	}
	// The group shares one host port, chosen from its first request.
	first := req.Reqs[0]
	port := int(first.FrontendPort)
	if port == 0 {
		port = int(first.BackendPort) + m.offset
	}
	if port <= 0 || port > 65535 {
		return portmapper.MapPortsResponse{}, fmt.Errorf("container port %d + offset %d is not a port", first.BackendPort, m.offset)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	var keys []hostPort
	var res portmapper.MapPortsResponse
	for _, r := range req.Reqs {
		k := hostPort{r.Proto, r.FrontendIP.String(), uint16(port)}
		be := backend{r.BackendIP.String(), r.BackendPort}
		to, ok := m.used[k]
		again := ok && to == be && fixed(r)
		if (ok && !again) || slices.Contains(keys, k) {
			return portmapper.MapPortsResponse{}, fmt.Errorf("host port %s/%d on %s is already mapped", r.Proto, port, hostIPText(r))
		}
		keys = append(keys, k)
		res.PortBindings = append(res.PortBindings, portmapper.PortBinding{
			Proto:           r.Proto,
			BackendIP:       r.BackendIP,
			BackendPort:     r.BackendPort,
			FrontendIP:      r.FrontendIP,
			FrontendPort:    uint16(port),
			AllowForwarding: true,
			NAT: &portmapper.NATRule{
				Proto:        r.Proto,
				FrontendIP:   r.FrontendIP,
				FrontendPort: uint16(port),
				BackendIP:    r.BackendIP,
				BackendPort:  r.BackendPort,
			},
		})
	}
	for i, k := range keys {
		m.used[k] = backend{req.Reqs[i].BackendIP.String(), req.Reqs[i].BackendPort}
	}
	return res, nil
}

func (m *offsetMapper) UnmapPorts(req portmapper.UnmapPortsRequest) error {
	log.Printf("UnmapPorts: %d bindings", len(req.PortBindings))
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for _, pb := range req.PortBindings {
		k := hostPort{pb.Proto, pb.FrontendIP.String(), pb.FrontendPort}
		if _, ok := m.used[k]; !ok {
			errs = append(errs, fmt.Errorf("host port %s/%d on %s is not mapped", pb.Proto, pb.FrontendPort, pb.FrontendIP))
			continue
		}
		delete(m.used, k)
	}
	return errors.Join(errs...)
}

// fixed reports whether r asks for one host port.
func fixed(r portmapper.PortBindingReq) bool {
	return r.FrontendPort != 0 && (r.FrontendPortEnd == 0 || r.FrontendPortEnd == r.FrontendPort)
}

// describe lists the requests of a MapPorts for the log.
func describe(reqs []portmapper.PortBindingReq) string {
	var s []string
	for _, r := range reqs {
		s = append(s, fmt.Sprintf("%s %s:%d-%d -> %s:%d", r.Proto, r.FrontendIP, r.FrontendPort, r.FrontendPortEnd, r.BackendIP, r.BackendPort))
	}
	return strings.Join(s, ", ")
}

func hostIPText(r portmapper.PortBindingReq) string {
	if !r.FrontendIP.IsValid() {
		return "all addresses"
	}
	return r.FrontendIP.String()
}
