package resolver

import (
	"sync"
	"time"
)

// logLimiter lets one log message per key through per interval and counts
// the ones it holds back meanwhile, so that a dead upstream under load logs
// one line every few seconds rather than one per query. The zero value
// (with interval set) is ready to use.
type logLimiter[K comparable] struct {
	interval time.Duration

	mu   sync.Mutex
	keys map[K]*limitState
}

type limitState struct {
	last       time.Time // when a message was last let through
	suppressed uint64    // messages held back since
}

// limiterPrune is the number of keys above which allow forgets the keys
// that have been quiet for an interval.
const limiterPrune = 64

// allow tells whether a message about key may be logged at now, and how
// many were held back since the last one that was.
func (l *logLimiter[K]) allow(key K, now time.Time) (ok bool, suppressed uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.keys[key]
	if st == nil {
		if l.keys == nil {
			l.keys = map[K]*limitState{}
		}
		if len(l.keys) >= limiterPrune {
			for k, s := range l.keys {
				if now.Sub(s.last) >= l.interval {
					delete(l.keys, k)
				}
			}
		}
		l.keys[key] = &limitState{last: now}
		return true, 0
	}
	if now.Sub(st.last) < l.interval {
		st.suppressed++
		return false, 0
	}
	suppressed = st.suppressed
	st.last, st.suppressed = now, 0
	return true, suppressed
}
