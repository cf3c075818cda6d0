package p2p

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// replicaHosts starts a leader and n followers that accept transactions
// per admit(i, raw) and count what they hold.
func replicaHosts(t *testing.T, n int, admit func(i int, raw []byte) error) (*Host, []*Host, func(i int) int) {
	t.Helper()
	lk := newKey(t)
	lid := peerID(t, lk)
	keys := make([]peer.ID, n)
	var fs []*Host
	var mu sync.Mutex
	counts := make([]int, n)
	for i := range n {
		k := newKey(t)
		keys[i] = peerID(t, k)
		f := newHost(t, k, []string{tcpLoopback}, lid)
		ServeForwardPrepared(f.Libp2p(), RelayProtocol, nil, func(raw []byte) error {
			if err := admit(i, raw); err != nil {
				return err
			}
			mu.Lock()
			counts[i]++
			mu.Unlock()
			return nil
		}, nil, testLogger())
		fs = append(fs, f)
	}
	leader := newHost(t, lk, []string{tcpLoopback}, keys...)
	addPeers(t, leader, fs...)
	return leader, fs, func(i int) int { mu.Lock(); defer mu.Unlock(); return counts[i] }
}

func ids(hs []*Host, extra ...peer.ID) []peer.ID {
	out := append([]peer.ID(nil), extra...)
	for _, h := range hs {
		out = append(out, h.ID())
	}
	return out
}

// TestReplicateHeldByOne: of two followers one refuses every transaction
// (its state lags), the other admits; and a third target is not
// reachable at all. Every transaction counts as held (by the second), and
// "already known" on a repeat counts as held too.
func TestReplicateHeldByOne(t *testing.T) {
	leader, fs, count := replicaHosts(t, 2, func(i int, raw []byte) error {
		if i == 0 {
			return errors.New("insufficient funds for transfer")
		}
		return nil
	})
	unreachable := peerID(t, newKey(t))
	r := NewReplicator(leader.Libp2p(), func() []peer.ID { return ids(fs, unreachable) }, 100, testLogger())
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 200)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.Replicate(ctx, []byte{byte(i), byte(i >> 8)})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("tx %d: %v", i, err)
		}
	}
	if count(1) != 200 || count(0) != 0 {
		t.Fatalf("followers hold %d and %d, want 0 and 200", count(0), count(1))
	}
}

// TestReplicateRefusedEverywhere: when no other validator holds a
// transaction, Replicate says so with ErrNotReplicated and the
// followers' reasons; with no other validator at all (a one-validator
// chain) there is nobody to hold it and Replicate answers nil.
func TestReplicateRefusedEverywhere(t *testing.T) {
	leader, fs, _ := replicaHosts(t, 2, func(i int, raw []byte) error { return fmt.Errorf("nonce too low (follower %d)", i) })
	r := NewReplicator(leader.Libp2p(), func() []peer.ID { return ids(fs) }, 100, testLogger())
	defer r.Close()
	err := r.Replicate(context.Background(), []byte{1})
	if !errors.Is(err, ErrNotReplicated) || !strings.Contains(err.Error(), "nonce too low") {
		t.Fatalf("err %v, want ErrNotReplicated with a follower's reason", err)
	}
	alone := NewReplicator(leader.Libp2p(), func() []peer.ID { return nil }, 100, testLogger())
	defer alone.Close()
	if err := alone.Replicate(context.Background(), []byte{2}); err != nil {
		t.Fatalf("no other validator: %v", err)
	}
}

// TestReplicateWaitsForLaggingFollowers: both followers refuse a copy
// until they have applied the block that makes it valid (their state
// lags the leader's by a block): each refuses it the first three times
// it is asked, then admits it. Replicate answers nil once one of them
// holds it, instead of an error for a transaction the leader keeps and
// includes.
func TestReplicateWaitsForLaggingFollowers(t *testing.T) {
	var mu sync.Mutex
	asked := make(map[int]int)
	leader, fs, count := replicaHosts(t, 2, func(i int, raw []byte) error {
		mu.Lock()
		defer mu.Unlock()
		asked[i]++
		if asked[i] <= 3 {
			return errors.New("sender is not KYC-verified: tier 0 may only receive")
		}
		return nil
	})
	r := NewReplicator(leader.Libp2p(), func() []peer.ID { return ids(fs) }, 100, testLogger())
	defer r.Close()
	if err := r.Replicate(context.Background(), []byte{7}); err != nil {
		t.Fatalf("a copy refused by lagging followers until they caught up: %v", err)
	}
	if count(0)+count(1) == 0 {
		t.Fatal("no follower holds it")
	}
}

// TestReplicateBatch: a batch given to ReplicateBatch is held or refused
// transaction by transaction, as Replicate answers each: held by one
// follower (the other refuses everything), and refused by both for the
// transactions neither takes, with ErrNotReplicated and their reasons.
func TestReplicateBatch(t *testing.T) {
	leader, fs, count := replicaHosts(t, 2, func(i int, raw []byte) error {
		if i == 0 || raw[0] == 0xff {
			return fmt.Errorf("nonce too low (follower %d)", i)
		}
		return nil
	})
	r := NewReplicator(leader.Libp2p(), func() []peer.ID { return ids(fs) }, 100, testLogger())
	defer r.Close()
	raws := make([][]byte, 250)
	for i := range raws {
		raws[i] = []byte{byte(i % 7), byte(i >> 8), byte(i)}
		if i == 42 {
			raws[i][0] = 0xff
		}
	}
	errs := r.ReplicateBatch(context.Background(), raws)
	for i, err := range errs {
		if i == 42 {
			if !errors.Is(err, ErrNotReplicated) || !strings.Contains(err.Error(), "nonce too low") {
				t.Fatalf("tx 42: %v, want ErrNotReplicated with a follower's reason", err)
			}
		} else if err != nil {
			t.Fatalf("tx %d: %v", i, err)
		}
	}
	if count(1) != 249 || count(0) != 0 {
		t.Fatalf("followers hold %d and %d, want 0 and 249", count(0), count(1))
	}
}
