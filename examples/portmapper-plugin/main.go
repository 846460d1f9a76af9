// Command portmapper-plugin is a small remote port mapper built with
// pluginsdk/portmapper. It gives each binding a host port of its own choice:
// the port asked for when one is, the start of a range when a range is,
// and the container port plus -offset for an ephemeral request. It asks
// the library to NAT that port to the container and to allow forwarding
// to it, and refuses a host port it already handed out.
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

	m := &offsetMapper{offset: *offset, delay: *delay, used: make(map[hostPort]bool)}
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

// offsetMapper is the Driver.
type offsetMapper struct {
	offset int
	delay  time.Duration

	mu   sync.Mutex
	used map[hostPort]bool
}

func (m *offsetMapper) MapPorts(req portmapper.MapPortsRequest) (portmapper.MapPortsResponse, error) {
	log.Printf("MapPorts: %d bindings, labels %v", len(req.Reqs), req.Labels)
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
		if m.used[k] || slices.Contains(keys, k) {
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
	for _, k := range keys {
		m.used[k] = true
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
		if !m.used[k] {
			errs = append(errs, fmt.Errorf("host port %s/%d on %s is not mapped", pb.Proto, pb.FrontendPort, pb.FrontendIP))
			continue
		}
		delete(m.used, k)
	}
	return errors.Join(errs...)
}

func hostIPText(r portmapper.PortBindingReq) string {
	if !r.FrontendIP.IsValid() {
		return "all addresses"
	}
	return r.FrontendIP.String()
}
