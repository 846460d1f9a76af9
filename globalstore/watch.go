package globalstore

import (
	"context"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// EventType says what an Event is.
type EventType int

// The event types.
const (
	// EventPut is a record created or updated.
	EventPut EventType = iota + 1
	// EventDelete is a record deleted (or expired with its lease).
	EventDelete
	// EventReset replaces everything the watcher knows of the kind with
	// Event.All.
	EventReset
)

func (t EventType) String() string {
	switch t {
	case EventPut:
		return "put"
	case EventDelete:
		return "delete"
	case EventReset:
		return "reset"
	}
	return "event?"
}

// Event is a change of a kind's records.
type Event struct {
	Type EventType
	// KV is the record put or deleted. For a delete, Value is nil and
	// ModRev is the revision of the delete.
	KV KV
	// All is every record of the kind, for EventReset only.
	All []KV
}

// Watch follows the records of kind. The first event is an EventReset
// with every record; Put and Delete events follow in the order of the
// store's revisions. It survives outages: while etcd is unreachable it
// waits, and then resumes after the last revision it delivered; when it
// cannot resume (that revision was compacted, or the watch broke in a way
// that may have lost events) it sends a new EventReset with the full
// listing, from which the events continue. The channel is closed when ctx
// is done or the Store is closed. Events are delivered one at a time: a
// slow reader delays the watch, it loses nothing. An invalid kind or a
// closed Store gives a closed channel (the reason is logged).
func (s *Store) Watch(ctx context.Context, kind string) <-chan Event {
	out := make(chan Event)
	if err := validName("kind", kind); err != nil {
		s.log.Error("global store: watch", "error", err)
		close(out)
		return out
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		close(out)
		return out
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go s.watch(ctx, kind, out)
	return out
}

func (s *Store) watch(ctx context.Context, kind string, out chan<- Event) {
	defer s.wg.Done()
	defer close(out)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()

	send := func(ev Event) bool {
		select {
		case out <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	prefix := s.kindPrefix(kind)
	var rev int64 // the last revision delivered; 0: a reset is needed
	wait := 50 * time.Millisecond
	for ctx.Err() == nil {
		if rev == 0 {
			all, r, err := s.List(ctx, kind)
			if err != nil {
				s.log.Debug("global store: watch: listing", "kind", kind, "error", err)
				if !sleepCtx(ctx, wait) {
					return
				}
				wait = min(2*wait, time.Second)
				continue
			}
			if !send(Event{Type: EventReset, All: all}) {
				return
			}
			rev = r
		}
		var ok bool
		if rev, ok = s.follow(ctx, kind, prefix, rev, send); !ok {
			return
		}
		if rev != 0 {
			// The watch broke without a compaction: try to resume
			// after a pause, so a failing etcd is not hammered.
			if !sleepCtx(ctx, wait) {
				return
			}
			wait = min(2*wait, time.Second)
		} else {
			wait = 50 * time.Millisecond
		}
	}
}

// follow watches prefix after revision rev and sends its events until the
// watch ends. It returns the last revision sent, 0 if a reset is needed,
// and false if the watch is over (ctx done).
func (s *Store) follow(ctx context.Context, kind, prefix string, rev int64, send func(Event) bool) (int64, bool) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Require a leader: a member cut off from its cluster would otherwise
	// keep the watch open and silent.
	wch := s.cli.Watch(clientv3.WithRequireLeader(wctx), prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	for resp := range wch {
		if resp.CompactRevision != 0 {
			s.log.Info("global store: watch: revisions compacted while away; listing again", "kind", kind, "after", rev, "compacted", resp.CompactRevision)
			return 0, true
		}
		if err := resp.Err(); err != nil {
			s.log.Info("global store: watch broke; resuming", "kind", kind, "after", rev, "error", err)
			return rev, true
		}
		for _, e := range resp.Events {
			ev := Event{Type: EventPut, KV: s.kv(kind, e.Kv)}
			if e.Type == mvccpb.DELETE {
				ev.Type = EventDelete
				ev.KV.Value = nil
			}
			if !send(ev) {
				return rev, false
			}
			rev = e.Kv.ModRevision
		}
	}
	return rev, ctx.Err() == nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
