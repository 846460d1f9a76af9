package osl

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
)

// tombstoneDigits is how many hex digits TombstoneName appends.
const tombstoneDigits = 10

// TombstoneName returns prefix followed by 10 random lowercase hex digits:
// the name of an interface renamed away (retired) rather than deleted.
// Retired interfaces can outlive the process that named them, so the name
// must be unique without a counter, which would start again at 0 after a
// restart and collide with one left behind. IsTombstone recognises it.
func TombstoneName(prefix string) string {
	var b [tombstoneDigits / 2]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// IsTombstone reports whether name has the form TombstoneName(prefix)
// gives.
func IsTombstone(name, prefix string) bool {
	return HasHexSuffix(name, prefix, tombstoneDigits)
}

// HasHexSuffix reports whether name is prefix followed by exactly n
// lowercase hex digits: the form of the names the library gives its links
// (a prefix and part of an ID) and, with no prefix, of its IDs.
func HasHexSuffix(name, prefix string, n int) bool {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok || len(rest) != n {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
