package overlay

import (
	"log/slog"
	"sync"
	"time"

	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
)

// sweeper deletes the veths of left endpoints after a grace period.
// Deleting a veth costs tens of milliseconds and usually is not needed at
// all: destroying the sandbox's namespace makes the kernel remove the
// pair. What is due is deleted in one batch per network (osl DeleteLinks),
// from a timer: no goroutine lives while nothing is pending.
type sweeper struct {
	grace  time.Duration
	logger *slog.Logger

	// sweepMu is held by a sweep from start to end, so that close can
	// wait for one under way.
	sweepMu sync.Mutex

	mu sync.Mutex
	// pending holds the links waiting, by network and name.
	pending map[sweepKey]sweepItem
	// timer is armed while pending is not empty.
	timer  *time.Timer
	closed bool
}

type sweepKey struct {
	n    *network
	name string
}

type sweepItem struct {
	index int
	due   time.Time
}

func newSweeper(grace time.Duration, logger *slog.Logger) *sweeper {
	return &sweeper{grace: grace, logger: logger, pending: map[sweepKey]sweepItem{}}
}

// add schedules the link name (index) of n's namespace for deletion.
// After close it deletes it at once.
func (s *sweeper) add(n *network, name string, index int) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.delete(n, map[string]int{name: index})
		return
	}
	s.pending[sweepKey{n, name}] = sweepItem{index: index, due: time.Now().Add(s.grace)}
	if s.timer == nil {
		s.timer = time.AfterFunc(s.grace, s.sweep)
	}
	s.mu.Unlock()
}

// cancel forgets a pending deletion; the caller deals with the link.
func (s *sweeper) cancel(n *network, name string) {
	s.mu.Lock()
	delete(s.pending, sweepKey{n, name})
	s.mu.Unlock()
}

// forget drops the pending deletions of n, whose namespace goes.
func (s *sweeper) forget(n *network) {
	s.mu.Lock()
	for k := range s.pending {
		if k.n == n {
			delete(s.pending, k)
		}
	}
	s.mu.Unlock()
}

// sweep deletes what is due and arms the timer for what is not.
func (s *sweeper) sweep() {
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()
	now := time.Now()
	due := map[*network]map[string]int{}
	var next time.Time
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	for k, it := range s.pending {
		if it.due.After(now) {
			if next.IsZero() || it.due.Before(next) {
				next = it.due
			}
			continue
		}
		if due[k.n] == nil {
			due[k.n] = map[string]int{}
		}
		due[k.n][k.name] = it.index
		delete(s.pending, k)
	}
	s.timer = nil
	if !next.IsZero() {
		s.timer = time.AfterFunc(time.Until(next), s.sweep)
	}
	s.mu.Unlock()
	for n, links := range due {
		s.delete(n, links)
	}
}

// close stops the timer, waits for a sweep under way, and deletes what is
// still pending now.
func (s *sweeper) close() {
	s.mu.Lock()
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	left := s.pending
	s.pending = map[sweepKey]sweepItem{}
	s.mu.Unlock()
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()
	byNet := map[*network]map[string]int{}
	for k, it := range left {
		if byNet[k.n] == nil {
			byNet[k.n] = map[string]int{}
		}
		byNet[k.n][k.name] = it.index
	}
	for n, links := range byNet {
		s.delete(n, links)
	}
}

// delete deletes, in one batch, the links of n's namespace (name to
// index) that still exist under their name: an index is not reused soon,
// the name check makes sure.
func (s *sweeper) delete(n *network, links map[string]int) {
	err := n.withNS(func(ns *osl.Namespace) error {
		h := ns.Handle()
		var indexes []int
		for name, idx := range links {
			if l, err := h.LinkByIndex(idx); err == nil && l.Attrs().Name == name {
				indexes = append(indexes, idx)
			}
		}
		return ns.DeleteLinks(indexes)
	})
	if err != nil && !types.IsNotFound(err) { // NotFound: the network is deleted, with them
		s.logger.Warn("deleting the veths of left endpoints", "network", n.id, "error", err)
	}
}
