package pluginutil

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

// DefaultSocketDir is where docker, and by default the library, look for
// plugin sockets; -socket defaults to <name>.sock in it.
const DefaultSocketDir = "/run/docker/plugins"

// Flags are the command-line flags every example plugin takes.
type Flags struct {
	// Name is the plugin's name (-name).
	Name string
	// Socket is the unix socket to listen on (-socket); empty means
	// DefaultSocketDir/<Name>.sock.
	Socket string
	// Log is the file of the CallLog (-log); empty logs nothing.
	Log string
}

// Register defines -name (defaulting to defaultName), -socket and -log on
// fs.
func (f *Flags) Register(fs *flag.FlagSet, defaultName string) {
	fs.StringVar(&f.Name, "name", defaultName, "plugin name")
	fs.StringVar(&f.Socket, "socket", "", "unix socket path to listen on (default "+DefaultSocketDir+"/<name>.sock)")
	fs.StringVar(&f.Log, "log", "", "file to append one JSON line per protocol call to")
}

// SocketPath returns the socket to listen on.
func (f *Flags) SocketPath() string {
	if f.Socket != "" {
		return f.Socket
	}
	return filepath.Join(DefaultSocketDir, f.Name+".sock")
}

// ListenUnix listens on the unix socket at path, replacing a stale socket
// left there (a file of another kind is refused and left alone) and
// making missing parent directories (0755). The
// listener does not remove the socket when closed: Serve does, once it has
// stopped serving.
func ListenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("plugin socket %s: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return nil, fmt.Errorf("plugin socket %s: a file that is not a socket is in the way", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("plugin socket %s: removing the stale socket: %w", path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("plugin socket %s: %w", path, err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("plugin socket %s: %w", path, err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	return l, nil
}

// ShutdownTimeout bounds how long Serve waits for calls in progress once
// told to stop.
const ShutdownTimeout = 5 * time.Second

// Serve runs serve(l) until it returns or the process gets SIGTERM or
// SIGINT; then it calls shutdown (which must make serve return; the
// context ends after ShutdownTimeout), waits for serve, and removes the
// unix socket l listens on. The error of serve after a shutdown is not an
// error.
func Serve(l net.Listener, serve func(net.Listener) error, shutdown func(context.Context) error) error {
	path := ""
	if a, ok := l.Addr().(*net.UnixAddr); ok {
		path = a.Name
	}
	if path != "" {
		defer os.Remove(path)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	served := make(chan error, 1)
	go func() { served <- serve(l) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	err := shutdown(sctx)
	<-served
	return err
}
