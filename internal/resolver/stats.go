package resolver

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Stats are one sandbox's resolver counters. All fields are updated
// atomically by the handler, the forwarder and the server, and may be read
// at any time with Snapshot. The zero value is ready to use.
type Stats struct {
	// Queries counts every query received (UDP and TCP), answered or not.
	Queries atomic.Uint64
	// Local counts queries answered from the sandbox's own names
	// (including empty NOERROR answers for known names and NXDOMAIN when
	// there is nothing to forward to).
	Local atomic.Uint64
	// Forwarded counts queries sent to an upstream server.
	Forwarded atomic.Uint64
	// UpstreamFailures counts upstream attempts that failed: a timeout, a
	// transport error, a SERVFAIL or REFUSED answer, a malformed reply.
	UpstreamFailures atomic.Uint64
	// Refused counts queries refused because the sandbox's bound on
	// concurrent forwarded queries was reached.
	Refused atomic.Uint64
	// Malformed counts packets that were not DNS queries at all (could not
	// be parsed, or were answered FORMERR/NOTIMP/BADVERS).
	Malformed atomic.Uint64

	// Latency of answered queries, from receipt to reply written, local
	// and forwarded apart.
	LocalLatency     Histogram
	ForwardedLatency Histogram
}

// Histogram counts durations in power-of-two microsecond buckets: bucket i
// holds durations d with 2^(i-1) µs < d <= 2^i µs (bucket 0: d <= 1 µs);
// the last bucket holds everything longer.
type Histogram struct {
	buckets [HistogramBuckets]atomic.Uint64
	sum     atomic.Uint64 // nanoseconds
}

// HistogramBuckets is the number of buckets of a Histogram: the last one
// starts above 2^(HistogramBuckets-2) µs (about 4.2 s).
const HistogramBuckets = 24

// Observe adds one duration.
func (h *Histogram) Observe(d time.Duration) {
	us := uint64(d / time.Microsecond)
	i := 0
	if us > 1 {
		i = min(bits.Len64(us-1), HistogramBuckets-1)
	}
	h.buckets[i].Add(1)
	h.sum.Add(uint64(d))
}

// HistogramSnapshot is a copy of a Histogram.
type HistogramSnapshot struct {
	// Buckets as in Histogram.
	Buckets [HistogramBuckets]uint64
	// Count is the sum of Buckets; Sum the total duration.
	Count uint64
	Sum   time.Duration
}

// Snapshot copies the histogram.
func (h *Histogram) Snapshot() HistogramSnapshot {
	var s HistogramSnapshot
	for i := range h.buckets {
		s.Buckets[i] = h.buckets[i].Load()
		s.Count += s.Buckets[i]
	}
	s.Sum = time.Duration(h.sum.Load())
	return s
}

// Quantile returns an upper bound of the q-quantile (0 < q <= 1): the upper
// edge of the bucket it falls in. It is 0 for an empty histogram.
func (s HistogramSnapshot) Quantile(q float64) time.Duration {
	if s.Count == 0 {
		return 0
	}
	want := uint64(q*float64(s.Count) + 0.5)
	want = max(want, 1)
	var seen uint64
	for i, n := range s.Buckets {
		seen += n
		if seen >= want {
			return time.Duration(uint64(1)<<i) * time.Microsecond
		}
	}
	return time.Duration(uint64(1)<<(HistogramBuckets-1)) * time.Microsecond
}

// StatsSnapshot is a copy of Stats at one moment.
type StatsSnapshot struct {
	Queries, Local, Forwarded, UpstreamFailures, Refused, Malformed uint64
	LocalLatency, ForwardedLatency                                  HistogramSnapshot
}

// Snapshot copies the counters.
func (s *Stats) Snapshot() StatsSnapshot {
	return StatsSnapshot{
		Queries:          s.Queries.Load(),
		Local:            s.Local.Load(),
		Forwarded:        s.Forwarded.Load(),
		UpstreamFailures: s.UpstreamFailures.Load(),
		Refused:          s.Refused.Load(),
		Malformed:        s.Malformed.Load(),
		LocalLatency:     s.LocalLatency.Snapshot(),
		ForwardedLatency: s.ForwardedLatency.Snapshot(),
	}
}
