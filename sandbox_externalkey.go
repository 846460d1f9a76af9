package libnetwork

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/moby/sys/reexec"

	"github.com/netkit/libnetwork/config"
	"github.com/netkit/libnetwork/datastore"
	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
)

// setKeyHook is the name under which the library registers the hook a
// runtime's prestart hook runs: "libnetwork-setkey [-exec-root DIR]
// <containerID> <controllerID>", with the OCI state on stdin.
const setKeyHook = "libnetwork-setkey"

// setKeyTimeout bounds one SetExternalKey exchange.
const setKeyTimeout = 10 * time.Second

func init() {
	// The v0.7 API has the embedder call reexec.Init() first thing in
	// main; the hook must be registered by then.
	reexec.Register(setKeyHook, processSetKeyReexec)
}

// setKeyRequest is what SetExternalKey sends to the controller.
type setKeyRequest struct {
	ContainerID string
	Key         string
}

// setKeySocketPath is where controller controllerID listens for keys.
func setKeySocketPath(execRoot, controllerID string) string {
	id := controllerID
	if len(id) > 12 {
		id = id[:12]
	}
	return filepath.Join(execRoot, "sk", id+".sock")
}

// SetExternalKey provides a convenient way to set an External key to a
// sandbox: it hands key (a netns path such as /proc/<pid>/ns/net) for the
// sandbox of containerID to the controller controllerID, which listens
// under the default exec root.
func SetExternalKey(controllerID string, containerID string, key string) error {
	return SetExternalKeyAt(config.DefaultExecRoot, controllerID, containerID, key)
}

// SetExternalKeyAt is SetExternalKey for a controller whose exec root is
// execRoot.
func SetExternalKeyAt(execRoot, controllerID, containerID, key string) error {
	if controllerID == "" {
		return ErrInvalidID(controllerID)
	}
	if containerID == "" {
		return InvalidContainerIDError(containerID)
	}
	path := setKeySocketPath(execRoot, controllerID)
	conn, err := net.DialTimeout("unix", path, setKeyTimeout)
	if err != nil {
		return types.NoServiceErrorf("set external key of container %s: controller %s is not listening at %s: %w", containerID, controllerID, path, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(setKeyTimeout))
	if err := json.NewEncoder(conn).Encode(setKeyRequest{ContainerID: containerID, Key: key}); err != nil {
		return types.Errorf("set external key of container %s: sending: %w", containerID, err)
	}
	if uc, ok := conn.(*net.UnixConn); ok {
		_ = uc.CloseWrite()
	}
	reply, err := io.ReadAll(io.LimitReader(conn, 64<<10))
	if err != nil {
		return types.Errorf("set external key of container %s: reading reply: %w", containerID, err)
	}
	if len(reply) > 0 {
		return types.BadRequestErrorf("set external key of container %s: %s", containerID, reply)
	}
	return nil
}

// processSetKeyReexec is the body of the libnetwork-setkey hook.
func processSetKeyReexec() {
	if err := runSetKeyHook(os.Args[1:], os.Stdin); err != nil {
		// The runtime shows a hook's stderr when the hook fails.
		fmt.Fprintf(os.Stderr, "%s: %v\n", setKeyHook, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runSetKeyHook(args []string, stdin io.Reader) error {
	fs := flag.NewFlagSet(setKeyHook, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	execRoot := fs.String("exec-root", config.DefaultExecRoot, "exec root of the controller")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() < 2 {
		return types.BadRequestErrorf("usage: %s [-exec-root DIR] <containerID> <controllerID>", setKeyHook)
	}
	var state struct {
		Pid int `json:"pid"`
	}
	if err := json.NewDecoder(stdin).Decode(&state); err != nil {
		return types.Errorf("reading the OCI state from stdin: %w", err)
	}
	if state.Pid <= 0 {
		return types.BadRequestErrorf("OCI state has no pid")
	}
	key := fmt.Sprintf("/proc/%d/ns/net", state.Pid)
	return SetExternalKeyAt(*execRoot, fs.Arg(1), fs.Arg(0), key)
}

// setKeyServer accepts SetExternalKey requests for one controller.
type setKeyServer struct {
	ln   net.Listener
	wg   sync.WaitGroup
	once sync.Once
}

func (c *controller) startSetKeyServer() error {
	// sk/ is root's (or the controller user's) 0700 directory: New made
	// or fixed it (checkDirs).
	path := setKeySocketPath(c.execRoot, c.id)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return types.Errorf("set-key socket: removing stale %s: %w", path, err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return types.Errorf("set-key socket: %w", err)
	}
	// The socket's mode follows the umask; the directory keeps others out
	// until it is set.
	if err := os.Chmod(path, 0o600); err != nil {
		_ = ln.Close()
		return types.Errorf("set-key socket: %w", err)
	}
	s := &setKeyServer{ln: ln}
	c.setKey = s
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				c.serveSetKey(conn)
			}()
		}
	}()
	return nil
}

func (s *setKeyServer) close() {
	s.once.Do(func() {
		_ = s.ln.Close()
		s.wg.Wait()
	})
}

func (c *controller) serveSetKey(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(setKeyTimeout))
	if uid, err := peerUID(conn); err != nil || !trustedOwner(uid) {
		// Only root, or the controller's own user, may hand a sandbox a
		// namespace.
		c.logger.Warn("set-key socket: refusing a peer", "uid", int64(uid), "error", err)
		// Read the request first, so the peer is not cut off mid-write
		// and reads the reply.
		_, _ = io.Copy(io.Discard, io.LimitReader(conn, 64<<10))
		_, _ = io.WriteString(conn, "permission denied: only root or the controller's user may set a key")
		return
	}
	var req setKeyRequest
	var err error
	if err = json.NewDecoder(io.LimitReader(conn, 64<<10)).Decode(&req); err == nil {
		var sb Sandbox
		c.WalkSandboxes(SandboxContainerWalker(&sb, req.ContainerID))
		if sb == nil {
			err = types.NotFoundErrorf("no sandbox for container %s", req.ContainerID)
		} else {
			err = sb.SetKey(req.Key)
		}
	}
	if err != nil {
		_, _ = io.WriteString(conn, err.Error())
	}
}

// SetKey adopts the network namespace at key (for example
// /proc/<pid>/ns/net of the container's first process) as the sandbox's
// namespace: it is bind-mounted under the exec root so it outlives the
// process, and endpoints joined while the key was awaited are set up in it.
// The key must be an absolute path without ".." elements (a BadRequestError
// otherwise) and must not name the namespace the controller programs or
// the process's own (a ForbiddenError): adopting either would configure
// the host's interfaces and routes as a container's.
func (sb *sandbox) SetKey(key string) error {
	c := sb.ctrl
	if err := checkKeyPath(key); err != nil {
		return types.Errorf("sandbox %s: %w", sb.id, err)
	}
	if !sb.externalKey {
		return types.ForbiddenErrorf("sandbox %s was not created with OptionUseExternalKey; its namespace is the library's", sb.id)
	}
	unlock, err := sb.lockOp()
	if err != nil {
		return err
	}
	defer unlock()
	sb.mu.Lock()
	if sb.deleted {
		sb.mu.Unlock()
		return types.NotFoundErrorf("sandbox %s was deleted", sb.id)
	}
	old := sb.ns
	sb.mu.Unlock()
	// Refused before the old namespace is given up; adopt checks again on
	// the file it mounts.
	if err := osl.CheckAdoptable(key, c.hostNS); err != nil {
		return types.Errorf("sandbox %s: setting key %s: %w", sb.id, key, err)
	}

	eps := sb.joined()
	if old != nil {
		// The DNS server was the old namespace's; adopt starts one in
		// the new.
		sb.stopResolver(true)
		// A new key (the container restarted): take the endpoints out of
		// the old namespace first. It is the runtime's and may live on, so
		// the interfaces are retired, not left.
		for _, ep := range eps {
			ep.mu.Lock()
			js := ep.join
			ep.mu.Unlock()
			sb.depopulate(ep, js, removeRetire)
		}
		sb.mu.Lock()
		sb.ns, sb.gw4, sb.gw6 = nil, nil, nil
		sb.mu.Unlock()
		if err := old.Destroy(); err != nil {
			c.logger.Warn("releasing the old external namespace", "sandbox", sb.id, "error", err)
		}
	}
	if err := sb.adopt(key, eps); err != nil {
		return types.Errorf("sandbox %s: setting key %s: %w", sb.id, key, err)
	}
	return nil
}

// adopt makes the namespace at key the sandbox's and sets up in it the
// endpoints joined while it was awaited. The namespace is the runtime's
// and outlives a failure, so on error every interface put there is taken
// out again.
func (sb *sandbox) adopt(key string, eps []*endpoint) (err error) {
	c := sb.ctrl
	u := c.newUndo()
	defer u.rollback(&err)
	path := c.sandboxKeyPath(sb.id)
	ns, err := osl.AdoptNamespace(key, path, c.hostNS)
	if err != nil {
		return types.Errorf("adopting namespace %s: %w", key, err)
	}
	sb.mu.Lock()
	sb.ns, sb.key = ns, path
	sb.mu.Unlock()
	u.add(func() {
		sb.mu.Lock()
		sb.ns, sb.key, sb.gw4, sb.gw6 = nil, "", nil, nil
		ext := sb.ext
		sb.ext = nil
		sb.mu.Unlock()
		if ext != nil {
			// Published for a namespace that is not adopted after all.
			sb.revokeExternal(ext)
		}
		_ = ns.Destroy()
	})

	var done []*endpoint
	for _, ep := range eps {
		// populate fills a copy; the endpoint's join state is swapped
		// under its lock, as readers expect.
		ep.mu.Lock()
		js := *ep.join
		ep.mu.Unlock()
		js.ifName, js.populated = sb.nextIfNameExcept(done), false
		if err := sb.populate(ep, &js); err != nil {
			return err
		}
		ep.mu.Lock()
		ep.join = &js
		ep.mu.Unlock()
		done = append(done, ep)
		u.add(func() {
			ep.mu.Lock()
			js := ep.join
			ep.mu.Unlock()
			sb.depopulate(ep, js, removeDelete)
		})
	}
	if err := sb.updateGateways(); err != nil {
		return err
	}
	if err := sb.ensureResolver(); err != nil {
		return err
	}
	u.add(func() { sb.stopResolver(true) })
	return c.state.Update(func(tx *datastore.Tx) error {
		if err := tx.Put(kindSandbox, sb.id, sb.record()); err != nil {
			return err
		}
		for _, ep := range eps {
			if err := tx.Put(kindEndpoint, ep.id, ep.record()); err != nil {
				return err
			}
		}
		return sb.putExtChanged(tx)
	})
}

// checkKeyPath refuses a sandbox key that is not an absolute path to
// adopt: a relative key would be resolved against the controller's working
// directory (../../../proc/self/ns/net names the controller's own
// namespace), and ".." elements hide where an absolute one leads.
func checkKeyPath(key string) error {
	switch {
	case key == "":
		return types.BadRequestErrorf("empty key")
	case strings.ContainsFunc(key, unicode.IsControl):
		return types.BadRequestErrorf("key %q: a namespace path has no control characters", key)
	case !filepath.IsAbs(key):
		return types.BadRequestErrorf("key %q is relative: give the absolute path of the container's network namespace, such as /proc/<pid>/ns/net", key)
	case slices.Contains(strings.Split(key, "/"), ".."):
		return types.BadRequestErrorf("key %q has a \"..\" element: give the path of the container's network namespace without one", key)
	}
	return nil
}

// nextIfNameExcept returns the lowest "ethN" not used by the endpoints in
// done (the ones already set up in a new namespace).
func (sb *sandbox) nextIfNameExcept(done []*endpoint) string {
	used := map[string]bool{}
	for _, e := range done {
		e.mu.Lock()
		used[e.join.ifName] = true
		e.mu.Unlock()
	}
	for i := 0; ; i++ {
		name := fmt.Sprintf("eth%d", i)
		if !used[name] {
			return name
		}
	}
}
