package pluginsdk

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
)

// The directories docker reads plugins from, used when ServeUnix is given
// a bare name and ServeTCP no spec directory.
const (
	DefaultSocketDir = "/run/docker/plugins"
	DefaultSpecDir   = "/etc/docker/plugins"
)

// ServeUnix serves on a unix socket until Shutdown, then removes the
// socket. addr is a plugin name, for the socket
// /run/docker/plugins/<name>.sock where the library looks by default, or
// an absolute path (a directory of the library's configured plugin socket
// directories, or a test's temporary one). A stale socket at the path is
// replaced; missing parent directories are made (0755). The socket is
// mode 0660; gid, when not negative, is its group (docker passes the
// group of its socket).
func (h *Handler) ServeUnix(addr string, gid int) error {
	path := addr
	if !filepath.IsAbs(path) {
		if addr == "" || filepath.Base(addr) != addr {
			return fmt.Errorf("plugin socket %q: want a plugin name or an absolute path", addr)
		}
		path = filepath.Join(DefaultSocketDir, addr+".sock")
	}
	l, err := listenUnix(path, gid)
	if err != nil {
		return err
	}
	defer os.Remove(path)
	return h.Serve(l)
}

func listenUnix(path string, gid int) (net.Listener, error) {
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
	// Serve removes the socket, not the listener's Close.
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := setSocketAccess(path, gid); err != nil {
		l.Close()
		os.Remove(path)
		return nil, fmt.Errorf("plugin socket %s: %w", path, err)
	}
	return l, nil
}

func setSocketAccess(path string, gid int) error {
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			return err
		}
	}
	return os.Chmod(path, 0o660)
}

// ServeTCP serves on the TCP address addr ("127.0.0.1:0" picks a port)
// until Shutdown. Without TLS it writes "<specDir>/<pluginName>.spec"
// holding tcp://<the address listened on>, so the library finds the
// plugin, and removes it on return; specDir "" is /etc/docker/plugins.
// With tlsConfig the plugin is served over TLS and no spec file is
// written: a .spec cannot carry the client's TLS settings, so the
// operator writes a <pluginName>.json with Addr and TLSConfig.
func (h *Handler) ServeTCP(pluginName, addr, specDir string, tlsConfig *tls.Config) error {
	if pluginName == "" || filepath.Base(pluginName) != pluginName {
		return fmt.Errorf("plugin name %q: want a name, not a path", pluginName)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	if tlsConfig != nil {
		return h.Serve(tls.NewListener(l, tlsConfig))
	}
	if specDir == "" {
		specDir = DefaultSpecDir
	}
	spec := filepath.Join(specDir, pluginName+".spec")
	if err := writeSpec(spec, "tcp://"+l.Addr().String()); err != nil {
		l.Close()
		return err
	}
	defer os.Remove(spec)
	return h.Serve(l)
}

// writeSpec writes a spec file whole: to a temporary name, renamed into
// place, so the library never reads half of it.
func writeSpec(path, url string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("plugin spec %s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(url+"\n"), 0o644); err != nil {
		return fmt.Errorf("plugin spec %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("plugin spec %s: %w", path, err)
	}
	return nil
}
