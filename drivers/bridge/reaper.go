package bridge

import (
	"log/slog"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
)

// reaper deletes left veths in the background. Deleting a veth costs tens
// of milliseconds, and usually it is not needed at all: destroying the
// sandbox's namespace makes the kernel remove the pair. So Leave only cuts
// the link off and hands it here, and after a grace period the reaper
// deletes it if it still exists.
type reaper struct {
	host   *netlink.Handle
	grace  time.Duration
	logger *slog.Logger
	wake   chan struct{} // buffered 1: a link was added
	stop   chan struct{} // closed by close
	done   chan struct{} // closed when run returns

	mu sync.Mutex
	// pending maps a link name to the link waiting for deletion.
	pending map[string]reapItem
	closed  bool
}

type reapItem struct {
	index int
	due   time.Time
}

func newReaper(host *netlink.Handle, grace time.Duration, logger *slog.Logger) *reaper {
	r := &reaper{
		host:    host,
		grace:   grace,
		logger:  logger,
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		pending: map[string]reapItem{},
	}
	go r.run()
	return r
}

// add schedules link name (ifindex index) for deletion after the grace
// period. After close it deletes the link at once.
func (r *reaper) add(name string, index int) {
	r.mu.Lock()
	closed := r.closed
	if !closed {
		r.pending[name] = reapItem{index: index, due: time.Now().Add(r.grace)}
	}
	r.mu.Unlock()
	if closed {
		r.reap(name, index)
		return
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// cancel forgets a pending deletion of link name; the caller deals with
// the link itself.
func (r *reaper) cancel(name string) {
	r.mu.Lock()
	delete(r.pending, name)
	r.mu.Unlock()
}

// close stops the reaper and deletes what it still holds.
func (r *reaper) close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	r.mu.Unlock()
	close(r.stop)
	<-r.done
	r.mu.Lock()
	left := r.pending
	r.pending = map[string]reapItem{}
	r.mu.Unlock()
	for name, it := range left {
		r.reap(name, it.index)
	}
}

func (r *reaper) run() {
	defer close(r.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		due := r.reapDue(time.Now())
		if due.IsZero() {
			timer.Reset(time.Hour)
		} else {
			timer.Reset(time.Until(due))
		}
		select {
		case <-r.stop:
			return
		case <-r.wake:
		case <-timer.C:
		}
	}
}

// reapDue deletes the links due by now and returns when the next one is
// due (zero when none is pending).
func (r *reaper) reapDue(now time.Time) time.Time {
	type todo struct {
		name  string
		index int
	}
	var ready []todo
	var next time.Time
	r.mu.Lock()
	for name, it := range r.pending {
		if !it.due.After(now) {
			ready = append(ready, todo{name, it.index})
			delete(r.pending, name)
		} else if next.IsZero() || it.due.Before(next) {
			next = it.due
		}
	}
	r.mu.Unlock()
	for _, t := range ready {
		r.reap(t.name, t.index)
	}
	return next
}

// reap deletes link index if it still exists under name (an index is not
// reused soon, the name check makes sure).
func (r *reaper) reap(name string, index int) {
	l, err := r.host.LinkByIndex(index)
	if err != nil || l.Attrs().Name != name {
		return // the kernel removed it with the sandbox's namespace
	}
	if err := r.host.LinkDel(l); err != nil && !isNotExist(err) {
		r.logger.Warn("deleting a left veth", "link", name, "error", err)
	}
}
