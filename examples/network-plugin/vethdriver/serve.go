package vethdriver

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/netkit/libnetwork/examples/pluginutil"
	sdknetwork "github.com/netkit/libnetwork/pluginsdk/network"
)

// Serve runs the driver as the plugin f names, served by pluginsdk/network
// on f's socket with f's call log and /Example.HandlerTime, until SIGTERM
// or SIGINT. It is the example plugin's main, and what cmd/netbench -driver
// runs as its plugin process.
func Serve(f pluginutil.Flags, logger *slog.Logger) error {
	d, err := New(logger)
	if err != nil {
		return err
	}
	defer d.Close()
	calls, err := pluginutil.OpenCallLog(f.Log)
	if err != nil {
		return err
	}
	defer calls.Close()

	l, err := pluginutil.ListenUnix(f.SocketPath())
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: pluginutil.Wrap(sdknetwork.NewHandler(d), calls, d.HandlerTime())}
	logger.Info("serving", "socket", f.SocketPath())
	if err := pluginutil.Serve(l, srv.Serve, srv.Shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
