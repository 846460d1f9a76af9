package lanparent

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/options"
	"github.com/netkit/libnetwork/types"
)

// ParentOption is the driver option naming the parent interface, in the
// controller's namespace, as docker names it.
const ParentOption = "parent"

// MaxVLAN is the highest 802.1q VLAN ID (4095 is reserved).
const MaxVLAN = 4094

// DriverOptions returns the driver options of a network (under
// netlabel.GenericData in CreateNetwork's options) as strings. A key that
// is not in known is refused, naming it, unless it is one of docker's
// own labels (under netlabel.Prefix), which a docker-style caller may
// pass to every driver. driver names the driver in errors.
func DriverOptions(driver string, opts map[string]interface{}, known ...string) (map[string]string, error) {
	gen, _, err := options.GetGeneric(opts, netlabel.GenericData)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(gen))
	for k, v := range gen {
		if !contains(known, k) && !strings.HasPrefix(k, netlabel.Prefix+".") {
			return nil, types.BadRequestErrorf("%s driver option %q (value %v) is not known (known: %s)", driver, k, v, strings.Join(known, ", "))
		}
		switch x := v.(type) {
		case string:
			out[k] = x
		case nil:
		default:
			out[k] = fmt.Sprint(x)
		}
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ParseVLAN splits a parent name with a VLAN suffix ("eth0.10") into the
// base interface and the VLAN ID. ok is false for a name without a dot;
// a name with a dot whose suffix is not an ID in 1..MaxVLAN, or whose base
// is empty, is refused (BadRequest).
func ParseVLAN(name string) (base string, id int, ok bool, err error) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return "", 0, false, nil
	}
	base, suffix := name[:i], name[i+1:]
	n, perr := strconv.Atoi(suffix)
	if perr != nil || base == "" || suffix == "" || suffix[0] == '+' || suffix[0] == '-' {
		return "", 0, false, types.BadRequestErrorf("parent %q: the part after the last dot must be a VLAN ID (1..%d)", name, MaxVLAN)
	}
	if n < 1 || n > MaxVLAN {
		return "", 0, false, types.BadRequestErrorf("parent %q: VLAN ID %d is out of range 1..%d", name, n, MaxVLAN)
	}
	return base, n, true, nil
}

// ValidName accepts only names the kernel keeps verbatim: 1 to 15 bytes of
// printable ASCII without '/', ':', '%' or spaces, and not "." or "..".
func ValidName(name string) error {
	if name == "" || len(name) > 15 {
		return types.BadRequestErrorf("%q is not a valid interface name: it must be 1 to 15 bytes long", name)
	}
	if name == "." || name == ".." {
		return types.BadRequestErrorf("%q is not a valid interface name", name)
	}
	for _, r := range name {
		if r <= ' ' || r > '~' || r == '/' || r == ':' || r == '%' {
			return types.BadRequestErrorf("%q is not a valid interface name: only printable ASCII without '/', ':', '%%' or whitespace", name)
		}
	}
	return nil
}
