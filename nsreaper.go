package libnetwork

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Batching of namespace destruction. Destroying a network namespace makes
// the kernel unregister its interfaces under the rtnl lock, about 20 ms for
// a veth, during which every other netlink change (the next Join or Leave)
// waits. The kernel cleans up all namespaces released since its last run in
// one batch, so the sandbox's namespace is unmounted at Delete, as the
// caller sees it, but the last reference is kept here and released with the
// others once deletes pause (nsReleaseQuiet) or the oldest waited
// nsReleaseMaxWait.
const (
	nsReleaseQuiet   = 100 * time.Millisecond
	nsReleaseMaxWait = time.Second
)

// nsReaper holds the last references of destroyed namespaces.
type nsReaper struct {
	mu sync.Mutex
	// fds are the held namespace descriptors.
	fds []int
	// oldest is when the first held descriptor came in.
	oldest time.Time
	timer  *time.Timer
	closed bool
}

// hold takes over fd and releases it with the next batch.
func (r *nsReaper) hold(fd int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		unix.Close(fd)
		return
	}
	now := time.Now()
	if len(r.fds) == 0 {
		r.oldest = now
	}
	r.fds = append(r.fds, fd)
	wait := min(nsReleaseQuiet, nsReleaseMaxWait-now.Sub(r.oldest))
	if r.timer == nil {
		r.timer = time.AfterFunc(wait, r.release)
	} else {
		r.timer.Reset(wait)
	}
}

// release closes the held descriptors.
func (r *nsReaper) release() {
	r.mu.Lock()
	fds := r.fds
	r.fds = nil
	r.mu.Unlock()
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// close releases everything now; later holds close at once.
func (r *nsReaper) close() {
	r.mu.Lock()
	r.closed = true
	if r.timer != nil {
		r.timer.Stop()
	}
	r.mu.Unlock()
	r.release()
}
