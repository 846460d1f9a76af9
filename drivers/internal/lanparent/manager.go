package lanparent

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
)

// libraryMarkPrefixes start the aliases that mark links of the library's
// drivers: this package's marks ("netkit-macvlan", "netkit-ipvlan") and
// package bridge's ("libnetwork:<network ID>").
var libraryMarkPrefixes = []string{"netkit-", "libnetwork:"}

// Config is what a driver gives its Manager.
type Config struct {
	// Host is a netlink handle of the controller's namespace, where the
	// parents live. Required.
	Host *netlink.Handle
	// Driver names the driver in errors and logs ("macvlan").
	Driver string
	// Mark is the alias of the links the Manager creates; it must start
	// with "netkit-" and be the driver's own ("netkit-macvlan").
	Mark string
	// InternalPrefix starts the name of the internal parent of a network
	// that names none; the first 12 characters of the network ID follow
	// ("dm-" for macvlan, "di-" for ipvlan, as docker names them).
	InternalPrefix string
	// Logger receives warnings; nil discards them.
	Logger *slog.Logger
}

// Claim is a network's use of a parent.
type Claim struct {
	// Network is the network's ID.
	Network string
	// Parent is the parent's name; "" asks for an internal parent.
	Parent string
	// Mode is the network's mode; networks sharing a VLAN sub-interface
	// must have the same one.
	Mode string
	// Exclusive says the network must be its parent's only one (macvlan
	// passthru takes the parent whole).
	Exclusive bool
	// Subnets are the network's pools; networks on one parent share its
	// link layer, so theirs must not overlap.
	Subnets []netip.Prefix
	// MTU is the MTU the network asks for, 0 if none; it must not exceed
	// the parent's.
	MTU int
}

// Parent is the parent a claim got.
type Parent struct {
	// Name is the parent's name in the controller's namespace.
	Name string
	// Internal says it is the network's own internal parent.
	Internal bool
	// Own says the driver made it (it carries the mark) and deletes it
	// with its last network.
	Own bool
	// Missing says a restored network's parent does not exist now; joins
	// fail until it is back.
	Missing bool
}

// Manager keeps track of the parents a driver's networks use.
type Manager struct {
	host   *netlink.Handle
	cfg    Config
	logger *slog.Logger

	// mu serialises claims and releases together with their kernel calls
	// (two networks creating one VLAN sub-interface at once must not both
	// create it); they happen at network creation and deletion only,
	// never on an endpoint's path.
	mu sync.Mutex
	// parents by name.
	parents map[string]*parentState
	// networks maps a network ID to its parent's name.
	networks map[string]string
}

type parentState struct {
	own    bool
	claims map[string]Claim
}

// New returns a Manager.
func New(cfg Config) (*Manager, error) {
	if cfg.Host == nil {
		return nil, types.BadRequestErrorf("%s driver: no netlink handle of the controller's namespace", cfg.Driver)
	}
	if !strings.HasPrefix(cfg.Mark, "netkit-") || cfg.InternalPrefix == "" {
		return nil, types.BadRequestErrorf("%s driver: mark %q or internal prefix %q unusable", cfg.Driver, cfg.Mark, cfg.InternalPrefix)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Manager{host: cfg.Host, cfg: cfg, logger: logger, parents: map[string]*parentState{}, networks: map[string]string{}}, nil
}

// InternalName returns the name of network nid's internal parent.
func (m *Manager) InternalName(nid string) string {
	if len(nid) > 12 {
		nid = nid[:12]
	}
	return m.cfg.InternalPrefix + nid
}

// Acquire gives network c.Network its parent. An existing link is used
// after the checks (no bridge port, no other driver's link, an Ethernet
// link, no overlap or mode conflict with the networks already on it, an
// MTU no larger than the parent's); a missing VLAN sub-interface whose
// base exists is created, and a network without parent gets an internal
// one. With restore set, the network is one the store holds: a missing
// parent that cannot be created is accepted (and reported Missing), so
// the network comes back and works again when the parent does. On error
// nothing is left behind.
func (m *Manager) Acquire(c Claim, restore bool) (Parent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.cfg.Driver
	if _, ok := m.networks[c.Network]; ok {
		return Parent{}, types.ForbiddenErrorf("%s network %s exists", d, c.Network)
	}
	p := Parent{Name: c.Parent, Internal: c.Parent == ""}
	if p.Internal {
		p.Name = m.InternalName(c.Network)
	} else if err := ValidName(p.Name); err != nil {
		return Parent{}, types.BadRequestErrorf("%s network %s: option %s: %w", d, c.Network, ParentOption, err)
	}
	var base string
	var vlan int
	if !p.Internal {
		var err error
		if base, vlan, _, err = ParseVLAN(p.Name); err != nil {
			return Parent{}, fmt.Errorf("%s network %s: %w", d, c.Network, err)
		}
	}
	st := m.parents[p.Name]
	if st != nil && p.Internal {
		// Two network IDs that share their first 12 characters.
		return Parent{}, types.ForbiddenErrorf("%s network %s: its internal parent %s is network %s's",
			d, c.Network, p.Name, strings.Join(m.usersLocked(p.Name), ", "))
	}
	if st != nil {
		if err := m.checkSharing(p.Name, st, c, vlan != 0); err != nil {
			return Parent{}, err
		}
	}

	link, err := m.host.LinkByName(p.Name)
	var created bool
	switch {
	case err == nil:
		p.Own = link.Attrs().Alias == m.cfg.Mark
		if p.Internal && !p.Own {
			return Parent{}, types.ForbiddenErrorf("%s network %s: a link %s exists and is not the driver's (alias %q): it is left alone",
				d, c.Network, p.Name, link.Attrs().Alias)
		}
		if !p.Internal {
			if err := m.usable(link); err != nil {
				return Parent{}, types.ForbiddenErrorf("%s network %s: parent %s: %w", d, c.Network, p.Name, err)
			}
		}
		if p.Own && link.Attrs().Flags&unix.IFF_UP == 0 {
			// Adopted after a restart, or set down behind our back.
			if err := m.host.LinkSetUp(link); err != nil {
				return Parent{}, types.InternalErrorf("%s network %s: bringing its parent %s up: %w", d, c.Network, p.Name, err)
			}
		}
	case !isNotFound(err):
		return Parent{}, types.InternalErrorf("%s network %s: looking up parent %s: %w", d, c.Network, p.Name, err)
	case p.Internal:
		if link, err = m.createInternal(p.Name, c.MTU); err != nil {
			return Parent{}, fmt.Errorf("%s network %s: %w", d, c.Network, err)
		}
		created, p.Own = true, true
	case vlan != 0:
		if link, err = m.createVLAN(p.Name, base, vlan); err != nil {
			if restore {
				m.logger.Warn("the parent of a restored network is missing and cannot be created; its joins fail until it is back",
					"network", c.Network, "parent", p.Name, "error", err)
				p.Missing = true
				break
			}
			return Parent{}, fmt.Errorf("%s network %s: %w", d, c.Network, err)
		}
		created, p.Own = true, true
	case restore:
		m.logger.Warn("the parent of a restored network is missing; its joins fail until it is back", "network", c.Network, "parent", p.Name)
		p.Missing = true
	default:
		return Parent{}, types.NotFoundErrorf("%s network %s: parent interface %s does not exist in the controller's namespace", d, c.Network, p.Name)
	}
	if link != nil && c.MTU > link.Attrs().MTU {
		if created {
			m.deleteOwn(p.Name)
		}
		return Parent{}, types.BadRequestErrorf("%s network %s: MTU %d is larger than parent %s's (%d)", d, c.Network, c.MTU, p.Name, link.Attrs().MTU)
	}
	if st == nil {
		st = &parentState{claims: map[string]Claim{}}
		m.parents[p.Name] = st
	}
	// A parent stays the driver's if it was before (a VLAN sub-interface
	// deleted behind its back and recreated by this claim is too).
	st.own = st.own || p.Own
	p.Own = st.own
	st.claims[c.Network] = c
	m.networks[c.Network] = p.Name
	return p, nil
}

// checkSharing refuses claim c on parent name, which the networks of st
// use already.
func (m *Manager) checkSharing(name string, st *parentState, c Claim, vlan bool) error {
	d := m.cfg.Driver
	for nid, o := range st.claims {
		if c.Exclusive || o.Exclusive {
			return types.ForbiddenErrorf("%s network %s: parent %s is used by network %s, and a network in mode %q must have its parent alone",
				d, c.Network, name, nid, exclusiveMode(c, o))
		}
		if vlan && c.Mode != o.Mode {
			return types.ForbiddenErrorf("%s network %s: VLAN sub-interface %s is used by network %s in mode %q, not %q",
				d, c.Network, name, nid, o.Mode, c.Mode)
		}
		for _, a := range c.Subnets {
			for _, b := range o.Subnets {
				if a.Overlaps(b) {
					return types.ForbiddenErrorf("%s network %s: subnet %s overlaps subnet %s of network %s on the same parent %s",
						d, c.Network, a, b, nid, name)
				}
			}
		}
	}
	return nil
}

func exclusiveMode(c, o Claim) string {
	if c.Exclusive {
		return c.Mode
	}
	return o.Mode
}

// usable refuses a parent the driver must not put links on.
func (m *Manager) usable(l netlink.Link) error {
	a := l.Attrs()
	if a.MasterIndex != 0 {
		master := fmt.Sprintf("index %d", a.MasterIndex)
		if ml, err := m.host.LinkByIndex(a.MasterIndex); err == nil {
			master = ml.Attrs().Name
		}
		return fmt.Errorf("it is a port of %s; a bridge or bond port cannot be a parent", master)
	}
	if a.Alias != m.cfg.Mark {
		for _, p := range libraryMarkPrefixes {
			if strings.HasPrefix(a.Alias, p) {
				return fmt.Errorf("it is a link of another of the library's drivers (alias %q)", a.Alias)
			}
		}
	} else if l.Type() != "vlan" {
		return fmt.Errorf("it is the internal parent of another network of the %s driver", m.cfg.Driver)
	}
	switch l.Type() {
	case "macvlan", "macvtap", "ipvlan", "ipvtap":
		return fmt.Errorf("it is a %s link; a parent must be a link of its own", l.Type())
	case "veth":
		if osl.HasHexSuffix(a.Name, "veth", 11) || osl.HasHexSuffix(a.Name, "vgone", 10) {
			return fmt.Errorf("it is the host side of a bridge network's veth")
		}
	}
	if a.EncapType != "" && a.EncapType != "ether" {
		return fmt.Errorf("it is not an Ethernet link (%s)", a.EncapType)
	}
	return nil
}

// createVLAN creates VLAN sub-interface name (VLAN id on base), marked
// and up. A kernel without 802.1q support is refused with a
// types.NotImplementedError naming the parent and the kernel's error.
func (m *Manager) createVLAN(name, base string, id int) (netlink.Link, error) {
	bl, err := m.host.LinkByName(base)
	if err != nil {
		if isNotFound(err) {
			return nil, types.NotFoundErrorf("parent interface %s does not exist in the controller's namespace, nor its base %s to create it as VLAN %d on", name, base, id)
		}
		return nil, types.InternalErrorf("looking up %s, the base of VLAN parent %s: %w", base, name, err)
	}
	if err := m.usable(bl); err != nil {
		return nil, types.ForbiddenErrorf("VLAN parent %s: its base %s: %w", name, base, err)
	}
	spec := VLANLink(name, bl.Attrs().Index, id, m.cfg.Mark)
	if err := m.host.LinkAdd(spec); err != nil {
		m.deleteOwn(name)
		if errors.Is(err, unix.EOPNOTSUPP) {
			return nil, types.NotImplementedErrorf("creating VLAN sub-interface %s (VLAN %d on %s) for option %s: the kernel has no 802.1q VLAN support: %v",
				name, id, base, ParentOption, err)
		}
		return nil, types.InternalErrorf("creating VLAN sub-interface %s (VLAN %d on %s): %w", name, id, base, err)
	}
	return m.finish(name, "VLAN sub-interface")
}

// createInternal creates an internal parent: a dummy link, or, where the
// kernel has none, a bridge that never gets a port (PortlessBridgeLink).
func (m *Manager) createInternal(name string, mtu int) (netlink.Link, error) {
	err := m.host.LinkAdd(DummyLink(name, mtu, m.cfg.Mark))
	if errors.Is(err, unix.EOPNOTSUPP) {
		m.deleteOwn(name)
		err = m.host.LinkAdd(PortlessBridgeLink(name, mtu, m.cfg.Mark))
	}
	if err != nil {
		m.deleteOwn(name)
		return nil, types.InternalErrorf("creating internal parent %s: %w", name, err)
	}
	return m.finish(name, "internal parent")
}

// finish marks (the kernel may ignore an alias at creation) and brings up
// a link just created, deleting it on failure.
func (m *Manager) finish(name, what string) (netlink.Link, error) {
	l, err := m.host.LinkByName(name)
	if err == nil && l.Attrs().Alias != m.cfg.Mark {
		if err = m.host.LinkSetAlias(l, m.cfg.Mark); err == nil {
			l.Attrs().Alias = m.cfg.Mark
		}
	}
	if err == nil {
		// No IPv6 link-local address or router solicitations on a link
		// that carries no address of the host's.
		const in6AddrGenModeNone = 1
		if e := m.host.LinkSetIP6AddrGenMode(l, in6AddrGenModeNone); e != nil && !errors.Is(e, unix.EAFNOSUPPORT) && !errors.Is(e, unix.EOPNOTSUPP) {
			err = e
		}
	}
	if err == nil {
		err = m.host.LinkSetUp(l)
	}
	if err != nil {
		if l != nil && l.Attrs().Alias == m.cfg.Mark {
			m.deleteOwn(name)
		} else if l != nil {
			// Created by us an instant ago, but not marked: delete by index.
			_ = m.host.LinkDel(l)
		}
		return nil, types.InternalErrorf("setting up %s %s: %w", what, name, err)
	}
	return l, nil
}

// deleteOwn deletes link name if it carries the mark.
func (m *Manager) deleteOwn(name string) error {
	l, err := m.host.LinkByName(name)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return err
	}
	if l.Attrs().Alias != m.cfg.Mark {
		return nil
	}
	if err := m.host.LinkDel(l); err != nil && !isNotFound(err) {
		return err
	}
	return nil
}

// Release ends network nid's use of its parent; a parent of the driver's
// own goes with its last network. A link that no longer carries the mark
// is left alone.
func (m *Manager) Release(nid string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	name, ok := m.networks[nid]
	if !ok {
		return nil
	}
	delete(m.networks, nid)
	st := m.parents[name]
	delete(st.claims, nid)
	if len(st.claims) > 0 {
		return nil
	}
	delete(m.parents, name)
	if !st.own {
		return nil
	}
	if err := m.deleteOwn(name); err != nil {
		return types.InternalErrorf("%s network %s: deleting its parent %s: %w", m.cfg.Driver, nid, name, err)
	}
	return nil
}

// Users returns the networks using parent name, for tests and logs.
func (m *Manager) Users(name string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.usersLocked(name)
}

// usersLocked is Users; m.mu must be held.
func (m *Manager) usersLocked(name string) []string {
	var out []string
	if st := m.parents[name]; st != nil {
		for nid := range st.claims {
			out = append(out, nid)
		}
	}
	return out
}

// CollectOrphans deletes the links carrying the mark that no network of
// the Manager uses: VLAN sub-interfaces and internal parents left by a
// crash. Call it once the networks are restored.
func (m *Manager) CollectOrphans() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	links, err := osl.Dump(m.host.LinkList)
	if err != nil {
		return types.InternalErrorf("collect orphans of the %s driver: listing links: %w", m.cfg.Driver, err)
	}
	var errs []error
	for _, l := range links {
		name := l.Attrs().Name
		if l.Attrs().Alias != m.cfg.Mark || m.parents[name] != nil {
			continue
		}
		m.logger.Info("deleting an orphaned parent", "link", name, "type", l.Type())
		if err := m.host.LinkDel(l); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("deleting %s: %w", name, err))
		}
	}
	if len(errs) > 0 {
		return types.InternalErrorf("collect orphans of the %s driver: %w", m.cfg.Driver, errors.Join(errs...))
	}
	return nil
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}
