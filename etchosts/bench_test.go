package etchosts

import (
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkAdd measures adding one record to a hosts file of a sandbox on
// 50 to 100 other containers (the attach hot path): one read of the file
// and its sidecar, one atomic write of each.
func BenchmarkAdd(b *testing.B) {
	path := filepath.Join(b.TempDir(), "hosts")
	record := func(i int) Record {
		return Record{Hosts: fmt.Sprintf("c%d c%d.net", i, i), IP: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)}
	}
	base := make([]Record, 50)
	for i := range base {
		base[i] = record(i)
	}
	// Adds are timed; every 50 the file is rebuilt, untimed, so it stays
	// between 50 and 100 records. Stopping the timer on every iteration
	// would cost more than the Add it excludes.
	const perBuild = 50
	adds := make([][]Record, perBuild)
	for i := range adds {
		adds[i] = []Record{record(1000 + i)}
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if n%perBuild == 0 {
			b.StopTimer()
			if err := Build(path, base); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		if err := Add(path, adds[n%perBuild]); err != nil {
			b.Fatal(err)
		}
		n++
	}
}
