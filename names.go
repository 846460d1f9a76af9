package libnetwork

import (
	"strings"
	"unicode"

	"github.com/netkit/libnetwork/types"
)

// maxEndpointNameLen bounds endpoint names and aliases: they become DNS
// names and /etc/hosts entries, and nothing longer is a name.
const maxEndpointNameLen = 255

// checkEndpointName refuses an endpoint name or alias (what names it) that
// is too long or has control characters.
func checkEndpointName(what, name string) error {
	if len(name) > maxEndpointNameLen {
		return types.InvalidParameterErrorf("%s %.32q...: longer than %d bytes", what, name, maxEndpointNameLen)
	}
	if strings.ContainsFunc(name, unicode.IsControl) {
		return types.InvalidParameterErrorf("%s %q: control characters are not allowed", what, name)
	}
	return nil
}

// checkDNSName checks a host or domain name against RFC 1123: labels of 1
// to 63 letters, digits and hyphens, neither starting nor ending with a
// hyphen, 253 bytes in all. One trailing dot (a fully qualified name) is
// allowed.
func checkDNSName(what, name string) error {
	n := strings.TrimSuffix(name, ".")
	if n == "" || len(n) > 253 {
		return types.InvalidParameterErrorf("%s %.64q: must be 1 to 253 bytes long (RFC 1123)", what, name)
	}
	for _, label := range strings.Split(n, ".") {
		if label == "" || len(label) > 63 {
			return types.InvalidParameterErrorf("%s %q: each dot-separated label must be 1 to 63 bytes long (RFC 1123)", what, name)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return types.InvalidParameterErrorf("%s %q: a label may not start or end with '-' (RFC 1123)", what, name)
		}
		for i := 0; i < len(label); i++ {
			b := label[i]
			if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '-') {
				return types.InvalidParameterErrorf("%s %q: only letters, digits, '-' and '.' are allowed (RFC 1123)", what, name)
			}
		}
	}
	return nil
}

// checkResolvEntry refuses a resolv.conf search domain or option with
// control characters or whitespace: either would start another entry or
// line in the file.
func checkResolvEntry(what, entry string) error {
	if strings.ContainsFunc(entry, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) {
		return types.InvalidParameterErrorf("%s %q: whitespace and control characters are not allowed", what, entry)
	}
	return nil
}

// checkExtraHostName refuses control characters in the names of an extra
// hosts line, which would start another line of /etc/hosts.
func checkExtraHostName(name string) error {
	if strings.ContainsFunc(name, unicode.IsControl) {
		return types.InvalidParameterErrorf("extra host %q: control characters are not allowed", name)
	}
	return nil
}
