package resolver

import (
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	cases := []struct {
		d    time.Duration
		want int
	}{
		{0, 0}, {time.Microsecond, 0}, {2 * time.Microsecond, 1}, {3 * time.Microsecond, 2},
		{4 * time.Microsecond, 2}, {5 * time.Microsecond, 3}, {1024 * time.Microsecond, 10},
		{time.Hour, HistogramBuckets - 1},
	}
	for _, c := range cases {
		var h Histogram
		h.Observe(c.d)
		s := h.Snapshot()
		if s.Buckets[c.want] != 1 || s.Count != 1 || s.Sum != c.d {
			t.Errorf("Observe(%v): buckets %v count %d sum %v; want bucket %d", c.d, s.Buckets, s.Count, s.Sum, c.want)
		}
	}
}

func TestHistogramQuantile(t *testing.T) {
	var h Histogram
	if q := h.Snapshot().Quantile(0.99); q != 0 {
		t.Fatalf("empty histogram p99 = %v, want 0", q)
	}
	for range 99 {
		h.Observe(3 * time.Microsecond)
	}
	h.Observe(100 * time.Microsecond)
	s := h.Snapshot()
	if q := s.Quantile(0.5); q != 4*time.Microsecond {
		t.Errorf("p50 = %v, want 4µs", q)
	}
	if q := s.Quantile(1); q != 128*time.Microsecond {
		t.Errorf("p100 = %v, want 128µs", q)
	}
}
