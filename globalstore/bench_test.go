package globalstore

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/netkit/libnetwork/internal/testutil/etcdtest"
)

// BenchmarkTxnCreate measures a transaction creating one key (a compare
// and a put, fsynced by etcd) against etcd on loopback.
func BenchmarkTxnCreate(b *testing.B) {
	srv := etcdtest.Start(b)
	s := newStore(b, srv.Endpoints(), func(c *Config) { c.Logger = nil })
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.Txn(ctx, Create("bench", strconv.Itoa(i), []byte("value"))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWatchLatency measures how long after a Txn returns its change is
// delivered by a Watch of another Store (another host): ns/op is the mean
// of that delay; p50-ns and p99-ns its percentiles; txn-to-event-ns the
// mean from the start of the Txn to the delivery, which is what a peer
// waits for after a host decides to write.
func BenchmarkWatchLatency(b *testing.B) {
	srv := etcdtest.Start(b)
	writer := newStore(b, srv.Endpoints(), func(c *Config) { c.Logger = nil })
	watcher := newStore(b, srv.Endpoints(), func(c *Config) { c.Logger = nil })
	ctx := context.Background()
	ch := watcher.Watch(ctx, "bench")
	if ev := <-ch; ev.Type != EventReset {
		b.Fatalf("first event %v", ev.Type)
	}
	// One write to make sure the watch is established.
	if _, err := writer.Txn(ctx, Create("bench", "warm", nil)); err != nil {
		b.Fatal(err)
	}
	<-ch
	delays := make([]time.Duration, 0, b.N)
	var total time.Duration
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if _, err := writer.Txn(ctx, Create("bench", strconv.Itoa(i), nil)); err != nil {
			b.Fatal(err)
		}
		returned := time.Now()
		ev, ok := <-ch
		if !ok || ev.KV.ID != strconv.Itoa(i) {
			b.Fatalf("event %+v, want put of %d", ev, i)
		}
		delivered := time.Now()
		delays = append(delays, max(0, delivered.Sub(returned)))
		total += delivered.Sub(start)
	}
	b.StopTimer()
	slices.Sort(delays)
	var sum time.Duration
	for _, d := range delays {
		sum += d
	}
	b.ReportMetric(float64(sum.Nanoseconds())/float64(b.N), "ns/op")
	b.ReportMetric(float64(delays[len(delays)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(delays[len(delays)*99/100].Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "txn-to-event-ns")
}
