package globalstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The host lease. A Store has at most one: granted at the first leased
// write, kept alive by the lease keeper goroutine. When the keep-alive
// stops being answered for longer than the TTL (etcd down or cut off), or
// etcd says the lease is gone (expired, revoked), the keeper grants a new
// lease as soon as etcd answers and puts back every key this Store wrote
// leased and has not deleted, bound to the new lease. So a host's presence
// comes back after an outage without a restart, and a host that dies has
// its keys removed by etcd one TTL after its last keep-alive.

// currentLease returns the host lease, 0 if there is none.
func (s *Store) currentLease() clientv3.LeaseID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leaseID
}

// leaseLost forgets lease id, if it is still the host lease.
func (s *Store) leaseLost(id clientv3.LeaseID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.leaseID == id {
		s.leaseID = 0
	}
}

// ensureLease returns the host lease, granting it if there is none.
func (s *Store) ensureLease(ctx context.Context) (clientv3.LeaseID, error) {
	if id := s.currentLease(); id != 0 {
		return id, nil
	}
	select {
	case s.grantSem <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	defer func() { <-s.grantSem }()
	if id := s.currentLease(); id != 0 {
		return id, nil // granted while we waited
	}
	resp, err := s.cli.Grant(ctx, s.cfg.leaseSeconds())
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.cli.Revoke(ctx, resp.ID)
		return 0, errClosed("lease grant", "")
	}
	s.leaseID = resp.ID
	if s.granted == nil {
		s.granted = map[clientv3.LeaseID]bool{}
	}
	s.granted[resp.ID] = true
	start := !s.keeper
	if start {
		s.keeper = true
		s.wg.Add(1)
	}
	s.mu.Unlock()
	s.log.Info("global store: granted the host lease", "lease", int64(resp.ID), "ttl", resp.TTL)
	if start {
		go s.keepLease()
	}
	select {
	case s.leaseChanged <- struct{}{}:
	default:
	}
	return resp.ID, nil
}

// keepLease keeps the host lease alive and replaces it when it is lost,
// until the Store is closed.
func (s *Store) keepLease() {
	defer s.wg.Done()
	var prev clientv3.LeaseID
	for s.ctx.Err() == nil {
		id := s.currentLease()
		if id == 0 {
			var err error
			if id, err = s.regrant(); err != nil {
				return // closed
			}
		}
		kctx, kcancel := context.WithCancel(s.ctx)
		ch, err := s.cli.KeepAlive(kctx, id)
		if err != nil {
			kcancel()
			s.log.Warn("global store: keeping the host lease alive", "lease", int64(id), "error", err)
			s.leaseLost(id)
			s.sleep(time.Second)
			continue
		}
		if s.reput(id, ch) && prev != 0 && prev != id {
			// Its keys are bound to id now; if etcd kept it alive
			// (it extends leases when it restarts), let it go.
			ctx, cancel := s.callCtx(s.ctx)
			s.cli.Revoke(ctx, prev)
			cancel()
		}
		prev = id
		if s.currentLease() == id {
			s.waitLost(id, ch)
		}
		kcancel()
	}
}

// regrant grants a new host lease, retrying until etcd answers or the
// Store is closed.
func (s *Store) regrant() (clientv3.LeaseID, error) {
	wait := 100 * time.Millisecond
	for {
		ctx, cancel := s.callCtx(s.ctx)
		id, err := s.ensureLease(ctx)
		cancel()
		if err == nil {
			return id, nil
		}
		if s.ctx.Err() != nil {
			return 0, s.ctx.Err()
		}
		s.log.Debug("global store: granting a new host lease", "error", err)
		if !s.sleep(wait) {
			return 0, s.ctx.Err()
		}
		wait = min(2*wait, time.Second)
	}
}

// waitLost returns when lease id is lost (its keep-alive channel closes),
// replaced by another, or the Store is closed.
func (s *Store) waitLost(id clientv3.LeaseID, ch <-chan *clientv3.LeaseKeepAliveResponse) {
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				if s.ctx.Err() == nil {
					s.log.Warn("global store: lost the host lease (etcd unreachable for longer than its TTL, or it was revoked); granting a new one", "lease", int64(id))
				}
				s.leaseLost(id)
				return
			}
		case <-s.leaseChanged:
			if s.currentLease() != id {
				return
			}
		case <-s.ctx.Done():
			return
		}
	}
}

// reput puts every key this Store holds leased that is not bound to lease
// id, bound to it, retrying until it is done (true), the lease is lost or
// the Store closed (false).
func (s *Store) reput(id clientv3.LeaseID, ch <-chan *clientv3.LeaseKeepAliveResponse) bool {
	wait := 100 * time.Millisecond
	for {
		s.mu.Lock()
		keys := make([]string, 0, len(s.leased))
		for k := range s.leased {
			keys = append(keys, k)
		}
		s.mu.Unlock()
		put, err := 0, error(nil)
		for _, k := range keys {
			var done bool
			if done, err = s.reputKey(id, k); err != nil {
				break
			}
			if done {
				put++
			}
		}
		if put > 0 {
			s.log.Info("global store: put back keys under the new host lease", "lease", int64(id), "keys", put)
		}
		if err == nil {
			return true
		}
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			s.leaseLost(id)
			return false
		}
		s.log.Debug("global store: putting back leased keys", "lease", int64(id), "error", err)
		if !s.sleep(wait) {
			return false
		}
		select {
		case _, ok := <-ch:
			if !ok {
				return false // lost meanwhile; waitLost sees it
			}
		default:
		}
		if s.currentLease() != id {
			return false
		}
		wait = min(2*wait, time.Second)
	}
}

// reputKey puts key with its value bound to lease id if it is absent (its
// lease expired with it) or bound to an earlier lease of this Store's
// (etcd kept that one alive across a restart); done says whether it was
// put. A key another holder created meanwhile (an address or name taken
// while this host's keys were gone) is not this Store's any more: it is
// left alone and forgotten, never overwritten. reputKey holds txnMu so
// that no transaction deletes the key between the check that this Store
// still holds it and the put.
func (s *Store) reputKey(id clientv3.LeaseID, key string) (done bool, err error) {
	s.txnMu.Lock()
	defer s.txnMu.Unlock()
	s.mu.Lock()
	val, held := s.leased[key]
	s.mu.Unlock()
	if !held {
		return false, nil
	}
	ctx, cancel := s.callCtx(s.ctx)
	defer cancel()
	put := clientv3.OpPut(key, string(val), clientv3.WithLease(id))
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(put).Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return false, err
	}
	if resp.Succeeded {
		return true, nil
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		return false, fmt.Errorf("reading back %s: gone meanwhile", key) // the caller retries
	}
	cur := clientv3.LeaseID(kvs[0].Lease)
	s.mu.Lock()
	earlier := s.granted[cur]
	s.mu.Unlock()
	switch {
	case cur == id:
		return false, nil
	case earlier:
		resp, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", kvs[0].ModRevision)).
			Then(put).
			Commit()
		if err != nil {
			return false, err
		}
		if !resp.Succeeded {
			return false, fmt.Errorf("moving %s to lease %x: changed meanwhile", key, int64(id)) // retried
		}
		return true, nil
	}
	s.mu.Lock()
	delete(s.leased, key)
	s.mu.Unlock()
	s.log.Warn("global store: a key this host held was taken by another holder while its lease was lost; leaving it to them", "key", key, "lease", kvs[0].Lease)
	return false, nil
}

// sleep waits for d or until the Store is closed; false when closed.
func (s *Store) sleep(d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-s.ctx.Done():
		return false
	}
}
