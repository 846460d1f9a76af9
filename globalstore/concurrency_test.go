package globalstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/netkit/libnetwork/internal/testutil/etcdtest"
)

// racers are the goroutines of the race tests, spread over two Stores as
// two hosts.
const racers = 8

// TestCreateRace: goroutines of two hosts create the same key at once,
// round after round: exactly one wins each round, every other gets a
// ConflictError, and the key holds the winner's value.
func TestCreateRace(t *testing.T) {
	srv := etcdtest.Start(t)
	hosts := []*Store{
		newStore(t, srv.Endpoints(), func(c *Config) { c.Host = "h1" }),
		newStore(t, srv.Endpoints(), func(c *Config) { c.Host = "h2" }),
	}
	for round := range 20 {
		id := fmt.Sprintf("vni-%d", round)
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, racers)
		for g := range racers {
			wg.Go(func() {
				<-start
				// Half of them also take a leased key, so that the
				// first lease grant races too.
				ops := []Op{Create("vni", id, []byte(strconv.Itoa(g)))}
				if g%2 == 1 {
					ops = append(ops, CreateLeased("owner", fmt.Sprintf("%s-%d", id, g), nil))
				}
				_, errs[g] = hosts[g%2].Txn(context.Background(), ops...)
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for g, err := range errs {
			var ce *ConflictError
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("round %d: goroutines %d and %d both created vni/%s", round, winner, g, id)
			case err == nil:
				winner = g
			case !errors.As(err, &ce) || ce.Kind != "vni" || ce.ID != id:
				t.Fatalf("round %d: goroutine %d: %v, want a conflict on vni/%s", round, g, err, id)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: nobody created vni/%s", round, id)
		}
		if kv := mustGet(t, hosts[0], "vni", id); string(kv.Value) != strconv.Itoa(winner) {
			t.Fatalf("round %d: vni/%s = %q, winner %d", round, id, kv.Value, winner)
		}
	}
	// The losers' leased keys were not written (all or nothing).
	owners, _, err := hosts[0].List(ctxT(t), "owner")
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range owners {
		v, _ := hosts[0].Get(ctxT(t), "vni", kv.ID[:len(kv.ID)-2])
		if want := kv.ID[len(kv.ID)-1:]; string(v.Value) != want {
			t.Errorf("owner/%s written, but vni/%s went to %q", kv.ID, v.ID, v.Value)
		}
	}
}

// TestUpdateCASRace: goroutines of two hosts that read the same revision
// and update it: exactly one wins each round. Then, with retries on
// conflict, concurrent increments of a counter lose none.
func TestUpdateCASRace(t *testing.T) {
	srv := etcdtest.Start(t)
	hosts := []*Store{
		newStore(t, srv.Endpoints(), func(c *Config) { c.Host = "h1" }),
		newStore(t, srv.Endpoints(), func(c *Config) { c.Host = "h2" }),
	}
	mustTxn(t, hosts[0], Create("ipam", "pool", []byte("0")))
	for round := range 20 {
		kv := mustGet(t, hosts[1], "ipam", "pool")
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, racers)
		for g := range racers {
			wg.Go(func() {
				<-start
				_, errs[g] = hosts[g%2].Txn(context.Background(), Update("ipam", "pool", []byte(fmt.Sprintf("r%d-g%d", round, g)), kv.ModRev))
			})
		}
		close(start)
		wg.Wait()
		wins := 0
		for g, err := range errs {
			var ce *ConflictError
			if err == nil {
				wins++
			} else if !errors.As(err, &ce) || ce.Want != kv.ModRev || ce.Got <= kv.ModRev {
				t.Fatalf("round %d: goroutine %d: %v, want a conflict past revision %d", round, g, err, kv.ModRev)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d updates of the same revision went through", round, wins)
		}
	}

	mustTxn(t, hosts[0], Create("ipam", "counter", []byte("0")))
	const each = 10
	var wg sync.WaitGroup
	for g := range racers {
		s := hosts[g%2]
		wg.Go(func() {
			for range each {
				for {
					kv, err := s.Get(context.Background(), "ipam", "counter")
					if err != nil {
						t.Error(err)
						return
					}
					n, _ := strconv.Atoi(string(kv.Value))
					_, err = s.Txn(context.Background(), Update("ipam", "counter", []byte(strconv.Itoa(n+1)), kv.ModRev))
					if err == nil {
						break
					}
					if !errors.As(err, new(*ConflictError)) {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if kv := mustGet(t, hosts[0], "ipam", "counter"); string(kv.Value) != strconv.Itoa(racers*each) {
		t.Fatalf("counter = %s after %d increments", kv.Value, racers*each)
	}
}
