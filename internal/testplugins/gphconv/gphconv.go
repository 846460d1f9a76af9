// Package gphconv is what the test plugins gphnet and gphipam share: they
// serve the example drivers (vethdriver, exampleipam), written against
// this project's wire types, through github.com/docker/go-plugins-helpers,
// whose request and answer types are distinct Go types with the same JSON
// encoding. In and Out convert between the two with a JSON round trip,
// which is what the wire does anyway; In also writes the call log.
//
// go-plugins-helpers hands the plugin only the decoded request, so the
// call log holds it encoded again: the fields go-plugins-helpers knows,
// and null for the requests it does not read (GetCapabilities,
// GetDefaultAddressSpaces). Serve listens on the -socket path itself:
// go-plugins-helpers' ServeUnix would put the socket under
// /run/docker/plugins.
package gphconv

import (
	"context"
	"encoding/json"
	"fmt"
	"net"

	"github.com/netkit/libnetwork/examples/pluginutil"
)

// In logs a call of method with the go-plugins-helpers request req and
// returns it as T, the project's type of the request. A nil req is logged
// as null and converted to nil.
func In[T any](calls *pluginutil.CallLog, method string, req any) (*T, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("%s: encoding the request: %w", method, err)
	}
	if err := calls.Record(method, body); err != nil {
		return nil, err
	}
	if string(body) == "null" {
		return nil, nil
	}
	var t T
	if err := json.Unmarshal(body, &t); err != nil {
		return nil, fmt.Errorf("%s: converting the request: %w", method, err)
	}
	return &t, nil
}

// Out converts the driver's answer res (a pointer to the project's type)
// to T, go-plugins-helpers' type of the answer. An error is passed on; a
// nil answer stays nil.
func Out[T any, R any](res *R, err error) (*T, error) {
	if err != nil {
		return nil, err
	}
	if res == nil {
		return nil, nil
	}
	body, err := json.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("encoding the answer: %w", err)
	}
	var t T
	if err := json.Unmarshal(body, &t); err != nil {
		return nil, fmt.Errorf("converting the answer: %w", err)
	}
	return &t, nil
}

// Serve listens on the unix socket at path and serves with serve (a
// go-plugins-helpers handler's Serve) until SIGTERM or SIGINT, then closes
// the listener and removes the socket. go-plugins-helpers' Serve has no
// graceful shutdown: calls in progress are cut off.
func Serve(path string, serve func(net.Listener) error) error {
	l, err := pluginutil.ListenUnix(path)
	if err != nil {
		return err
	}
	return pluginutil.Serve(l, serve, func(context.Context) error { return l.Close() })
}
