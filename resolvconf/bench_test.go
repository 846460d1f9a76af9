package resolvconf

import (
	"path/filepath"
	"testing"
)

// BenchmarkBuild measures writing a sandbox's resolv.conf (the attach hot
// path): one atomic write of the file and one of its sidecar, no read.
func BenchmarkBuild(b *testing.B) {
	path := filepath.Join(b.TempDir(), "resolv.conf")
	dns := []string{"127.0.0.11"}
	search := []string{"example.com", "corp.example.com"}
	options := []string{"ndots:0"}
	b.ReportAllocs()
	for b.Loop() {
		if err := Build(path, dns, search, options); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFilterResolvDNS measures filtering a typical host resolv.conf.
func BenchmarkFilterResolvDNS(b *testing.B) {
	content := []byte(sample)
	b.ReportAllocs()
	for b.Loop() {
		FilterResolvDNS(content, true)
	}
}
