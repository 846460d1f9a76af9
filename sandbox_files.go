package libnetwork

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/netkit/libnetwork/etchosts"
	"github.com/netkit/libnetwork/internal/ownedfile"
	"github.com/netkit/libnetwork/resolvconf"
)

// The host's files a sandbox's files start from.
const (
	hostHostsPath      = "/etc/hosts"
	hostResolvConfPath = "/etc/resolv.conf"
	// resolvedResolvConf is where systemd-resolved keeps the real upstream
	// servers when /etc/resolv.conf points at its stub.
	resolvedResolvConf = "/run/systemd/resolve/resolv.conf"
)

// filesDir is where a sandbox's files live unless the caller chose paths.
func (sb *sandbox) filesDir() string {
	return filepath.Join(sb.ctrl.execRoot, "files", sb.id)
}

// hostsPath and resolvConfPath return the files the sandbox writes.
func (sb *sandbox) hostsPath() string {
	if sb.config.HostsPath != "" {
		return sb.config.HostsPath
	}
	return filepath.Join(sb.filesDir(), "hosts")
}

func (sb *sandbox) resolvConfPath() string {
	if sb.config.ResolvConfPath != "" {
		return sb.config.ResolvConfPath
	}
	return filepath.Join(sb.filesDir(), "resolv.conf")
}

// makeDirOf makes the directory of the sandbox file path. A path the
// caller chose (OptionHostsPath, OptionResolvConfPath) is the caller's,
// trusted as given, and its directory is made as any. The sandbox's own
// directory, files/<id>/ under the exec root, is made with mode 0700 by
// one mkdir, which never follows a link: one found there (only root can
// put it, files/ being root's 0700 directory checked by New) is removed
// and the directory made again, so no file is written through it.
func (sb *sandbox) makeDirOf(path string) error {
	dir := filepath.Dir(path)
	if dir != sb.filesDir() {
		return os.MkdirAll(dir, 0o755)
	}
	err := os.Mkdir(dir, dirMode)
	if errors.Is(err, os.ErrNotExist) {
		// files/ itself is gone (removed by hand since New).
		if err := os.Mkdir(filepath.Dir(dir), dirMode); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		err = os.Mkdir(dir, dirMode)
	}
	if !errors.Is(err, os.ErrExist) {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return nil
	}
	sb.ctrl.logger.Warn("replacing a symbolic link or file with the sandbox's files directory", "sandbox", sb.id, "path", dir)
	if err := os.Remove(dir); err != nil {
		return err
	}
	return os.Mkdir(dir, dirMode)
}

// setupFiles writes the sandbox's /etc/hosts and resolv.conf, making the
// directory of each first (once when they share one, as they do unless the
// caller chose paths).
func (sb *sandbox) setupFiles() error {
	hosts, resolv := sb.hostsPath(), sb.resolvConfPath()
	if err := sb.makeDirOf(hosts); err != nil {
		return err
	}
	if filepath.Dir(resolv) != filepath.Dir(hosts) {
		if err := sb.makeDirOf(resolv); err != nil {
			return err
		}
	}
	if err := sb.buildHostsFile(); err != nil {
		return err
	}
	return sb.buildResolvConf()
}

// buildHostsFile writes /etc/hosts; its directory exists (setupFiles).
func (sb *sandbox) buildHostsFile() error {
	path := sb.hostsPath()
	var extra []etchosts.Record
	for _, h := range sb.config.ExtraHosts {
		extra = append(extra, etchosts.Record{Hosts: h.Name, IP: h.IP})
	}
	for _, ep := range sb.joined() {
		extra = append(extra, sb.hostsRecords(ep)...)
	}
	origin := sb.config.OriginHostsPath
	if origin == "" && sb.usesHostFiles() {
		origin = hostHostsPath
	}
	if origin != "" {
		return etchosts.BuildFrom(path, origin, extra)
	}
	return etchosts.Build(path, extra)
}

// dnsConfig is what a sandbox's resolv.conf is made from, before the
// embedded resolver takes its nameserver lines.
type dnsConfig struct {
	servers, search, options []string
	// host is the host's resolv.conf when servers came from it: it may
	// name servers only the host reaches (its loopback).
	host []byte
	// origin is the OptionOriginResolvConfPath file everything came
	// from, if any.
	origin string
}

// dnsConfig returns the sandbox's DNS configuration: the whole of its
// OptionOriginResolvConfPath file, as v0.7 copies it; or else each of
// OptionDNS, OptionDNSSearch and OptionDNSOptions, falling back to the
// host's resolv.conf (systemd-resolved's real upstreams when the host's
// names its stub). resolv.conf, the resolver's upstreams and its timeout
// all come from here, so they never disagree.
func (sb *sandbox) dnsConfig() (dnsConfig, error) {
	sb.mu.Lock()
	cfg := sb.config
	sb.mu.Unlock()
	if origin := cfg.OriginResolvConfPath; origin != "" {
		content, err := os.ReadFile(origin)
		if err != nil {
			return dnsConfig{origin: origin}, err
		}
		return dnsConfig{servers: resolvconf.GetNameservers(content), search: resolvconf.GetSearchDomains(content),
			options: resolvconf.GetOptions(content), origin: origin}, nil
	}
	host, _, err := sb.ctrl.hostDNS.get()
	if err != nil {
		return dnsConfig{}, err
	}
	d := dnsConfig{servers: cfg.DNSList, search: cfg.DNSSearchList, options: cfg.DNSOptionsList}
	if len(d.servers) == 0 {
		d.servers, d.host = resolvconf.GetNameservers(host), host
	}
	if len(d.search) == 0 {
		d.search = resolvconf.GetSearchDomains(host)
	}
	if len(d.options) == 0 {
		d.options = resolvconf.GetOptions(host)
	}
	return d, nil
}

// buildResolvConf writes resolv.conf; its directory exists (setupFiles).
// With the embedded DNS server running it names 127.0.0.11 only, with the
// search domains and options it would have had (plus ndots:0); the servers
// it would have named are the resolver's upstreams.
func (sb *sandbox) buildResolvConf() error {
	d, err := sb.dnsConfig()
	if err != nil {
		return err
	}
	dns, opts := d.servers, d.options
	r := sb.runningResolver()
	switch {
	case sb.usesHostFiles():
	case r != nil:
		// The embedded server answers, and forwards to d.servers within
		// the timeout the clients now read.
		dns = []string{resolverIP.String()}
		opts = withResolverOptions(opts)
		r.setClientTimeout(opts)
	case d.host != nil:
		// Without the resolver the container asks the host's servers
		// itself: not those on the host's loopback, nor IPv6 ones it
		// cannot reach.
		dns = resolvconf.GetNameservers(resolvconf.FilterResolvDNS(d.host, sb.ipv6Enabled()))
	}
	return resolvconf.Build(sb.resolvConfPath(), dns, d.search, opts)
}

// withResolverOptions adds the resolver's ndots:0 to opts unless they set
// ndots themselves.
func withResolverOptions(opts []string) []string {
	for _, o := range opts {
		if strings.HasPrefix(o, "ndots:") {
			return opts
		}
	}
	return append(slices.Clone(opts), "ndots:0")
}

// usesHostFiles reports whether the sandbox's hosts and resolv.conf are
// the host's: it is in the host's namespace, or joined to a host network.
func (sb *sandbox) usesHostFiles() bool {
	if sb.hostNet {
		return true
	}
	for _, ep := range sb.joined() {
		if ep.network.isHost() {
			return true
		}
	}
	return false
}

// rebuildFiles writes the sandbox's files afresh when what they are built
// from changed (a host network joined or left). A file the user edited is
// left as it is.
func (sb *sandbox) rebuildFiles() {
	for _, p := range []string{sb.hostsPath(), sb.resolvConfPath()} {
		if _, _, err := ownedfile.Load(p); err != nil {
			sb.fileError(filepath.Base(p), err)
			return
		}
	}
	sb.fileError("files", sb.setupFiles())
}

// ipv6Enabled reports whether any joined network has IPv6.
func (sb *sandbox) ipv6Enabled() bool {
	for _, ep := range sb.joined() {
		if ep.network.enableIPv6 {
			return true
		}
	}
	return false
}

// hostsRecords are the /etc/hosts lines naming the sandbox's own host name
// on the endpoint's addresses.
func (sb *sandbox) hostsRecords(ep *endpoint) []etchosts.Record {
	if sb.config.HostName == "" || sb.hostNet {
		return nil
	}
	names := sb.config.HostName
	if sb.config.DomainName != "" {
		names = sb.config.HostName + "." + sb.config.DomainName + " " + sb.config.HostName
	}
	var recs []etchosts.Record
	if a := ep.iface.addr; a != nil {
		recs = append(recs, etchosts.Record{Hosts: names, IP: a.IP.String()})
	}
	if a := ep.iface.addrv6; a != nil {
		recs = append(recs, etchosts.Record{Hosts: names, IP: a.IP.String()})
	}
	return recs
}

func (sb *sandbox) addHostsRecords(ep *endpoint) {
	recs := sb.hostsRecords(ep)
	if len(recs) == 0 {
		return
	}
	sb.fileError("hosts", etchosts.Add(sb.hostsPath(), recs))
}

func (sb *sandbox) removeHostsRecords(ep *endpoint) {
	recs := sb.hostsRecords(ep)
	if len(recs) == 0 {
		return
	}
	sb.fileError("hosts", etchosts.Delete(sb.hostsPath(), recs))
}

// updateParentHosts updates the hosts files of the containers that link to
// this one (OptionParentUpdate).
// It runs without sb.opMu and takes each parent's, so two sandboxes that are
// each other's parents cannot deadlock.
func (sb *sandbox) updateParentHosts(ep *endpoint) {
	sb.mu.Lock()
	updates := slices.Clone(sb.config.ParentUpdates)
	sb.mu.Unlock()
	for _, pu := range updates {
		var parent Sandbox
		sb.ctrl.WalkSandboxes(SandboxContainerWalker(&parent, pu.ContainerID))
		if parent == nil {
			continue
		}
		ip := pu.IP
		if ip == "" && ep.iface.addr != nil {
			ip = ep.iface.addr.IP.String()
		}
		p := parent.(*sandbox)
		p.opMu.Lock()
		err := etchosts.Update(p.hostsPath(), ip, pu.Name)
		p.opMu.Unlock()
		sb.fileError("parent hosts", err)
	}
}

// fileError logs a failed file update. A file the user edited is left
// alone by design, which is worth an Info line, not an error.
func (sb *sandbox) fileError(what string, err error) {
	switch {
	case err == nil:
	case errors.Is(err, etchosts.ErrUserModified), errors.Is(err, resolvconf.ErrUserModified):
		sb.ctrl.logger.Info("sandbox file edited by the user; left as it is", "sandbox", sb.id, "file", what)
	default:
		sb.ctrl.logger.Warn("updating sandbox file", "sandbox", sb.id, "file", what, "error", err)
	}
}

// dropFiles removes the files the sandbox wrote in its own directory. Files
// at paths the caller chose are the caller's and stay.
func (sb *sandbox) dropFiles() {
	if sb.config.HostsPath == "" || sb.config.ResolvConfPath == "" {
		// removeAllAt, unlike os.RemoveAll, stays off mount points: a bind
		// mount put in the directory keeps what is in it.
		dir, err := sb.ctrl.openExecSubdir(filesDirName)
		if err == nil {
			err = removeAllAt(dir, sb.id)
			dir.Close()
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			sb.ctrl.logger.Warn("removing sandbox files", "sandbox", sb.id, "error", err)
		}
	}
	if sb.config.HostsPath != "" {
		_ = os.Remove(sb.config.HostsPath + ".hash")
	}
	if p := sb.config.ResolvConfPath; p != "" && !strings.HasPrefix(p, sb.filesDir()) {
		_ = os.Remove(p + ".hash")
	}
}
