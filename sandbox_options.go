package libnetwork

import (
	"maps"
	"net/netip"
	"path/filepath"
	"slices"

	"github.com/netkit/libnetwork/types"
)

// SandboxOption is an option setter function type used to pass various
// options to NewNetContainer method. The various setter functions of type
// SandboxOption are provided by libnetwork, they look like
// ContainerOptionXXXX(...)
type SandboxOption func(sb *sandbox)

// sandboxConfig is the configuration of a sandbox set by SandboxOptions.
// It is persisted as is.
type sandboxConfig struct {
	HostName             string                `json:",omitempty"`
	DomainName           string                `json:",omitempty"`
	HostsPath            string                `json:",omitempty"`
	OriginHostsPath      string                `json:",omitempty"`
	ResolvConfPath       string                `json:",omitempty"`
	OriginResolvConfPath string                `json:",omitempty"`
	DNSList              []string              `json:",omitempty"`
	DNSSearchList        []string              `json:",omitempty"`
	DNSOptionsList       []string              `json:",omitempty"`
	ExtraHosts           []extraHost           `json:",omitempty"`
	ParentUpdates        []parentUpdate        `json:",omitempty"`
	UseDefaultSandbox    bool                  `json:",omitempty"`
	UseExternalKey       bool                  `json:",omitempty"`
	ExposedPorts         []types.TransportPort `json:",omitempty"`
	PortBindings         []types.PortBinding   `json:",omitempty"`
}

type extraHost struct {
	Name string
	IP   string
}

type parentUpdate struct {
	ContainerID string
	Name        string
	IP          string
}

func (c sandboxConfig) clone() sandboxConfig {
	d := c
	d.DNSList = slices.Clone(c.DNSList)
	d.DNSSearchList = slices.Clone(c.DNSSearchList)
	d.DNSOptionsList = slices.Clone(c.DNSOptionsList)
	d.ExtraHosts = slices.Clone(c.ExtraHosts)
	d.ParentUpdates = slices.Clone(c.ParentUpdates)
	d.ExposedPorts = slices.Clone(c.ExposedPorts)
	d.PortBindings = slices.Clone(c.PortBindings)
	return d
}

// validate refuses sandbox option values that would reach the sandbox's
// files mangled or be resolved against the working directory. NewSandbox
// and Refresh call it before they change anything.
func (c sandboxConfig) validate() error {
	if c.HostName != "" {
		if err := checkDNSName("hostname", c.HostName); err != nil {
			return err
		}
	}
	if c.DomainName != "" {
		if err := checkDNSName("domain name", c.DomainName); err != nil {
			return err
		}
	}
	for _, p := range []struct{ option, path string }{
		{"OptionHostsPath", c.HostsPath},
		{"OptionOriginHostsPath", c.OriginHostsPath},
		{"OptionResolvConfPath", c.ResolvConfPath},
		{"OptionOriginResolvConfPath", c.OriginResolvConfPath},
	} {
		if p.path != "" && !filepath.IsAbs(p.path) {
			return types.InvalidParameterErrorf("%s %q: must be an absolute path", p.option, p.path)
		}
	}
	for _, s := range c.DNSSearchList {
		if err := checkResolvEntry("DNS search domain", s); err != nil {
			return err
		}
	}
	for _, o := range c.DNSOptionsList {
		if err := checkResolvEntry("DNS option", o); err != nil {
			return err
		}
	}
	for _, h := range c.ExtraHosts {
		if err := checkExtraHostName(h.Name); err != nil {
			return err
		}
		if _, err := netip.ParseAddr(h.IP); err != nil {
			return types.InvalidParameterErrorf("extra host %q: %q is not an IP address", h.Name, h.IP)
		}
	}
	for _, ns := range c.DNSList {
		if _, err := netip.ParseAddr(ns); err != nil {
			return types.InvalidParameterErrorf("DNS server %q is not an IP address", ns)
		}
	}
	return nil
}

// OptionHostname function returns an option setter for hostname option to
// be passed to NewSandbox method. The name must follow RFC 1123 (labels of
// letters, digits and '-', at most 63 bytes each, 253 in all); NewSandbox
// refuses another with an InvalidParameter error.
func OptionHostname(name string) SandboxOption {
	return func(sb *sandbox) { sb.config.HostName = name }
}

// OptionDomainname function returns an option setter for domainname option
// to be passed to NewSandbox method. The name must follow RFC 1123, as for
// OptionHostname.
func OptionDomainname(name string) SandboxOption {
	return func(sb *sandbox) { sb.config.DomainName = name }
}

// OptionHostsPath function returns an option setter for hostspath option to
// be passed to NewSandbox method.
//
// path is trusted: the library, running as root, creates and writes the
// file there (and a path+".hash" beside it) and removes them with the
// sandbox. Give a path only the runtime controls. It must be absolute;
// NewSandbox refuses a relative one with an InvalidParameter error.
func OptionHostsPath(path string) SandboxOption {
	return func(sb *sandbox) { sb.config.HostsPath = path }
}

// OptionOriginHostsPath function returns an option setter for origin hosts
// file path to be passed to NewSandbox method.
//
// path is trusted: the library, running as root, reads it and copies its
// content into the sandbox's hosts file. It must be absolute; NewSandbox
// refuses a relative one with an InvalidParameter error.
func OptionOriginHostsPath(path string) SandboxOption {
	return func(sb *sandbox) { sb.config.OriginHostsPath = path }
}

// OptionExtraHost function returns an option setter for extra /etc/hosts
// options which is a name and IP as strings.
func OptionExtraHost(name string, IP string) SandboxOption {
	return func(sb *sandbox) {
		sb.config.ExtraHosts = append(sb.config.ExtraHosts, extraHost{Name: name, IP: IP})
	}
}

// OptionParentUpdate function returns an option setter for parent
// container which needs to update the IP address for the linked container.
func OptionParentUpdate(cid string, name, ip string) SandboxOption {
	return func(sb *sandbox) {
		sb.config.ParentUpdates = append(sb.config.ParentUpdates, parentUpdate{ContainerID: cid, Name: name, IP: ip})
	}
}

// OptionResolvConfPath function returns an option setter for resolvconfpath
// option to be passed to net container methods.
//
// path is trusted: the library, running as root, creates and writes the
// file there (and a path+".hash" beside it). Give a path only the runtime
// controls. It must be absolute; NewSandbox refuses a relative one with an
// InvalidParameter error.
func OptionResolvConfPath(path string) SandboxOption {
	return func(sb *sandbox) { sb.config.ResolvConfPath = path }
}

// OptionOriginResolvConfPath function returns an option setter to set the
// path to the origin resolv.conf file to be passed to net container methods.
//
// path is trusted: the library, running as root, reads it and copies its
// nameservers, search domains and options into the sandbox's resolv.conf.
// It must be absolute; NewSandbox refuses a relative one with an
// InvalidParameter error.
func OptionOriginResolvConfPath(path string) SandboxOption {
	return func(sb *sandbox) { sb.config.OriginResolvConfPath = path }
}

// OptionDNS function returns an option setter for dns entry option to be
// passed to container Create method.
func OptionDNS(dns string) SandboxOption {
	return func(sb *sandbox) { sb.config.DNSList = append(sb.config.DNSList, dns) }
}

// OptionDNSSearch function returns an option setter for dns search entry
// option to be passed to container Create method. An entry with whitespace
// or control characters is refused with an InvalidParameter error.
func OptionDNSSearch(search string) SandboxOption {
	return func(sb *sandbox) { sb.config.DNSSearchList = append(sb.config.DNSSearchList, search) }
}

// OptionDNSOptions function returns an option setter for dns options entry
// option to be passed to container Create method. An entry with whitespace
// or control characters is refused with an InvalidParameter error.
func OptionDNSOptions(options string) SandboxOption {
	return func(sb *sandbox) { sb.config.DNSOptionsList = append(sb.config.DNSOptionsList, options) }
}

// OptionUseDefaultSandbox function returns an option setter for using
// default sandbox to be passed to container Create method.
func OptionUseDefaultSandbox() SandboxOption {
	return func(sb *sandbox) { sb.config.UseDefaultSandbox = true }
}

// OptionUseExternalKey function returns an option setter for using
// provided namespace instead of creating one.
func OptionUseExternalKey() SandboxOption {
	return func(sb *sandbox) { sb.config.UseExternalKey = true }
}

// OptionGeneric function returns an option setter for Generic configuration
// that is not managed by libNetwork but can be used by the Drivers during
// the call to net container creation method. Container Labels are a good
// example.
func OptionGeneric(generic map[string]interface{}) SandboxOption {
	return func(sb *sandbox) {
		if sb.labels == nil {
			sb.labels = map[string]interface{}{}
		}
		maps.Copy(sb.labels, generic)
	}
}

// OptionExposedPorts function returns an option setter for the container
// exposed ports option to be passed to container Create method.
func OptionExposedPorts(exposedPorts []types.TransportPort) SandboxOption {
	return func(sb *sandbox) { sb.config.ExposedPorts = slices.Clone(exposedPorts) }
}

// OptionPortMapping function returns an option setter for the mapping ports
// option to be passed to container Create method.
func OptionPortMapping(portBindings []types.PortBinding) SandboxOption {
	return func(sb *sandbox) {
		sb.config.PortBindings = make([]types.PortBinding, 0, len(portBindings))
		for i := range portBindings {
			sb.config.PortBindings = append(sb.config.PortBindings, portBindings[i].GetCopy())
		}
	}
}
