package datastore

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkPut measures one Update that puts a ~500-byte record: with NoSync
// on tmpfs (the exec-root store) and with fsync on t.TempDir() (the data-dir
// store).
func BenchmarkPut(b *testing.B) {
	b.Run("nosync-tmpfs", func(b *testing.B) {
		dir := b.TempDir()
		if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
			d, err := os.MkdirTemp("/dev/shm", "datastore-bench-")
			if err == nil {
				b.Cleanup(func() { os.RemoveAll(d) })
				dir = d
			}
		}
		benchmarkPut(b, filepath.Join(dir, "local-kv.db"), Options{NoSync: true})
	})
	b.Run("sync-tempdir", func(b *testing.B) {
		benchmarkPut(b, filepath.Join(b.TempDir(), "local-kv.db"), Options{})
	})
}

func benchmarkPut(b *testing.B, path string, opts Options) {
	s := mustOpen(b, path, opts)
	rec := bigRecord("endpoint", 500)
	if v, _ := encodeRecord(rec); len(v) < 450 || len(v) > 550 {
		b.Fatalf("record is %d bytes, want about 500", len(v))
	}
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprintf("ep-%04d", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		id := ids[i%len(ids)]
		i++
		if err := s.Update(func(tx *Tx) error { return tx.Put("endpoint", id, rec) }); err != nil {
			b.Fatal(err)
		}
	}
}
