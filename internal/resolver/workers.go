package resolver

import (
	"sync"
	"sync/atomic"
	"time"
)

// Forward hands each TCP client's query to a goroutine of its own, but a
// goroutine that outlives its query: a new goroutine starts on a 2 KiB
// stack and grows it while packing the query, and that copy cost 5% of the
// forwarder's time under dnsperf. A worker that finished its query waits
// for the next one for workerIdle, at most maxIdleWorkers of them.
const (
	maxIdleWorkers = 128
	workerIdle     = 5 * time.Second
)

// workers runs queries on reused goroutines.
type workers struct {
	// run forwards one query.
	run func(*fwdQuery)
	// work hands a query to an idle worker.
	work chan *fwdQuery
	// idle counts the workers waiting on work.
	idle atomic.Int32
	// quit is closed by stop: the idle workers exit.
	quit     chan struct{}
	quitOnce sync.Once
	// running counts the workers, for stop.
	running sync.WaitGroup
}

func (ws *workers) init(run func(*fwdQuery)) {
	ws.run = run
	ws.work = make(chan *fwdQuery)
	ws.quit = make(chan struct{})
}

// start runs q on an idle worker, or a new one. Calls to start must happen
// before stop is called.
func (ws *workers) start(q *fwdQuery) {
	select {
	case ws.work <- q:
	default:
		ws.running.Add(1)
		go ws.loop(q)
	}
}

// loop runs q, then the queries start hands it, until it has been idle for
// workerIdle, there are enough idle workers or stop is called.
func (ws *workers) loop(q *fwdQuery) {
	defer ws.running.Done()
	var timer *time.Timer
	for {
		ws.run(q)
		if ws.idle.Add(1) > maxIdleWorkers {
			ws.idle.Add(-1)
			return
		}
		if timer == nil {
			timer = time.NewTimer(workerIdle)
		} else {
			timer.Reset(workerIdle)
		}
		select {
		case q = <-ws.work:
			ws.idle.Add(-1)
			timer.Stop()
		case <-timer.C:
			ws.idle.Add(-1)
			return
		case <-ws.quit:
			ws.idle.Add(-1)
			timer.Stop()
			return
		}
	}
}

// stop makes the workers exit and waits for them; the queries they run
// must have finished.
func (ws *workers) stop() {
	ws.quitOnce.Do(func() { close(ws.quit) })
	ws.running.Wait()
}
