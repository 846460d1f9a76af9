// Command mapperplugin is a port-mapper plugin for the tests of package
// portmapper, served over a unix socket with plain net/http so that it can
// misbehave in ways the plugin SDK would not let it: each call is appended
// to -log as one JSON line ({"Method": ..., "Body": ...}) before it is
// handled, then MapPorts answers according to -mode after -delay.
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/netkit/libnetwork/portmapper/api"
)

func main() {
	socket := flag.String("socket", "", "unix socket to serve on")
	logPath := flag.String("log", "", "file each call is appended to")
	mode := flag.String("mode", "ok", "ok, err, malformed, die, outofrange, otherbackend, bindingerror, short")
	delay := flag.Duration("delay", 0, "wait this long in MapPorts before answering")
	flag.Parse()

	logf, err := os.OpenFile(*logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		log.Fatal(err)
	}
	var mu sync.Mutex
	record := func(method string, body json.RawMessage) {
		line, _ := json.Marshal(struct {
			Method string
			Body   json.RawMessage
		}{method, body})
		mu.Lock()
		defer mu.Unlock()
		logf.Write(append(line, '\n'))
		logf.Sync()
	}
	reply := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/vnd.docker.plugins.v1.2+json")
		json.NewEncoder(w).Encode(v)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/Plugin.Activate", func(w http.ResponseWriter, r *http.Request) {
		reply(w, map[string][]string{"Implements": {api.Interface}})
	})
	mux.HandleFunc(api.MapPortsPath, func(w http.ResponseWriter, r *http.Request) {
		var raw json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&raw); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		record(api.MapPortsMethod, raw)
		var req api.MapPortsRequest
		if err := json.Unmarshal(raw, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		time.Sleep(*delay)
		switch *mode {
		case "err":
			reply(w, api.MapPortsResponse{Err: "no ports for you"})
			return
		case "malformed":
			w.Write([]byte(`{"PortBindings": [{"Proto": 6,`))
			return
		case "die":
			os.Exit(3)
		}
		resp := api.MapPortsResponse{PortBindings: answer(req)}
		switch *mode {
		case "outofrange":
			resp.PortBindings[0].FrontendPort = req.Reqs[0].FrontendPortEnd + 1
			resp.PortBindings[0].NAT.FrontendPort = resp.PortBindings[0].FrontendPort
		case "otherbackend":
			resp.PortBindings[0].NAT.BackendIP = netip.MustParseAddr("10.99.99.99")
		case "bindingerror":
			msg := "host port taken upstream"
			last := len(resp.PortBindings) - 1
			resp.PortBindings[last].Error = &msg
			resp.PortBindings[last].NAT = nil
		case "short":
			resp.PortBindings = resp.PortBindings[:len(resp.PortBindings)-1]
		}
		reply(w, resp)
	})
	mux.HandleFunc(api.UnmapPortsPath, func(w http.ResponseWriter, r *http.Request) {
		var raw json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&raw); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		record(api.UnmapPortsMethod, raw)
		reply(w, struct{ Err string }{})
	})

	l, err := net.Listen("unix", *socket)
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(http.Serve(l, mux))
}

// answer maps each request to the first port of its range, or to the
// backend port + 10000 when ephemeral, with a NAT rule to the backend.
func answer(req api.MapPortsRequest) []api.PortBinding {
	var out []api.PortBinding
	for _, r := range req.Reqs {
		port := r.FrontendPort
		if port == 0 {
			port = req.Reqs[0].BackendPort + 10000
		}
		out = append(out, api.PortBinding{
			Proto: r.Proto, BackendIP: r.BackendIP, BackendPort: r.BackendPort,
			FrontendIP: r.FrontendIP, FrontendPort: port, AllowForwarding: true,
			NAT: &api.NATRule{Proto: r.Proto, FrontendIP: r.FrontendIP, FrontendPort: port, BackendIP: r.BackendIP, BackendPort: r.BackendPort},
		})
	}
	return out
}
