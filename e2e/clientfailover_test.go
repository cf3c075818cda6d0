package e2e

// A wallet client over several nodes (wallet.DialEndpoints) facing the loss
// of the node it uses: what it sees, and (in TestFailoverTimes) how long.

import (
	"context"
	"fmt"
	"math/big"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/wallet"
)

// clientURLs lists the nodes' JSON-RPC URLs with first in front: the node
// the client starts on.
func (c *testCluster) clientURLs(first int) []string {
	urls := []string{c.specs[first].RPC}
	for i := range c.specs {
		if i != first {
			urls = append(urls, c.specs[i].RPC)
		}
	}
	return urls
}

// indexOfURL returns the node serving url.
func (c *testCluster) indexOfURL(url string) int {
	for i, s := range c.specs {
		if s.RPC == url {
			return i
		}
	}
	c.t.Fatalf("no node serves %s", url)
	return -1
}

// intent is one transfer a client sender means to make: signed once, sent
// and waited for through the failing-over client.
type intent struct {
	tx       *types.Transaction
	started  time.Time
	receipt  *types.Receipt
	received time.Time
	err      error
}

// clientSenders send transfers one after another through one wallet.Client,
// each sender signing its next nonce only once the previous transfer has
// its receipt, as a payment app does.
type clientSenders struct {
	client *wallet.Client
	cancel context.CancelFunc
	wg     sync.WaitGroup
	enough atomic.Bool // finish: no new intent

	mu      sync.Mutex
	intents [][]*intent // per sender
}

// startClientSenders starts one goroutine per key sending through client
// from the given nonces, up to max intents each (0: until stopped). A send
// or wait error is recorded on the intent and ends that sender: the client
// is meant to hide failovers, not to surface them.
func startClientSenders(chainID *big.Int, client *wallet.Client, keys []*crypto.PrivateKey, nonces []uint64, max int, to []common.Address) *clientSenders {
	ctx, cancel := context.WithCancel(context.Background())
	s := &clientSenders{client: client, cancel: cancel, intents: make([][]*intent, len(keys))}
	for k, key := range keys {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for i := 0; (max == 0 || i < max) && ctx.Err() == nil && !s.enough.Load(); i++ {
				tx, err := makeTransfer(i, chainID, key, nonces[k]+uint64(i), to[i%len(to)], big.NewInt(int64(1+i)))
				if err != nil {
					panic(err)
				}
				in := &intent{tx: tx, started: time.Now()}
				s.mu.Lock()
				s.intents[k] = append(s.intents[k], in)
				s.mu.Unlock()
				err = client.SendSigned(ctx, tx)
				var r *types.Receipt
				if err == nil {
					r, err = client.WaitReceipt(ctx, tx.Hash())
				}
				s.mu.Lock()
				in.receipt, in.received, in.err = r, time.Now(), err
				s.mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	return s
}

// stop ends the senders (an intent cut short by stop has a context error)
// and waits for them.
func (s *clientSenders) stop() { s.cancel(); s.wg.Wait() }

// finish lets each sender complete the intent it is on, then stop.
func (s *clientSenders) finish() { s.enough.Store(true); s.wg.Wait() }

// receiptedEach reports whether every sender has at least n receipts.
func (s *clientSenders) receiptedEach(n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ins := range s.intents {
		got := 0
		for _, in := range ins {
			if in.receipt != nil {
				got++
			}
		}
		if got < n {
			return false
		}
	}
	return true
}

// waitReceiptedEach waits until every sender has n more receipts than now.
func (s *clientSenders) waitMore(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	s.mu.Lock()
	have := 0
	for i, ins := range s.intents {
		got := 0
		for _, in := range ins {
			if in.receipt != nil {
				got++
			}
		}
		if i == 0 || got > have {
			have = got
		}
	}
	s.mu.Unlock()
	deadline := time.Now().Add(timeout)
	for !s.receiptedEach(have + n) {
		if time.Now().After(deadline) {
			t.Fatalf("client senders: not %d more receipts each within %v: %s", n, timeout, s.describe())
		}
		if err := s.firstError(); err != nil {
			t.Fatalf("a client call surfaced an error: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// firstError returns the first error a sender met (nil: none).
func (s *clientSenders) firstError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, ins := range s.intents {
		for _, in := range ins {
			if in.err != nil {
				return fmt.Errorf("sender %d, nonce %d: %w", k, in.tx.Nonce(), in.err)
			}
		}
	}
	return nil
}

func (s *clientSenders) describe() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := ""
	for k, ins := range s.intents {
		got := 0
		for _, in := range ins {
			if in.receipt != nil {
				got++
			}
		}
		out += fmt.Sprintf("[sender %d: %d intents, %d receipted] ", k, len(ins), got)
	}
	return out
}

// firstWriteAfter returns when the client got the first receipt of a
// transfer it started sending after t (the write a client sees complete
// first after a fault), waiting up to timeout.
func (s *clientSenders) firstWriteAfter(t time.Time, timeout time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var first time.Time
		s.mu.Lock()
		for _, ins := range s.intents {
			for _, in := range ins {
				if in.receipt != nil && !in.started.Before(t) && (first.IsZero() || in.received.Before(first)) {
					first = in.received
				}
			}
		}
		s.mu.Unlock()
		if !first.IsZero() {
			return first, true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Time{}, false
}

// TestClientFailsOver: four payment senders use one wallet.Client over the
// three nodes, starting on the leader; each signs a transfer, sends it and
// waits for its receipt, then the next. Mid-stream the node the client is
// using is SIGKILLed; later (the node back) the node it then uses is
// SIGSTOPped. No call returns an error, every intent is receipted with
// status 1, each sender's nonce advanced by exactly its intents (no second
// transaction signed for one intent), and the chains hold each transfer
// once.
func TestClientFailsOver(t *testing.T) {
	skipShort(t)
	ctx, c, leader := startThree(t, 4*time.Minute)
	client, err := wallet.DialEndpoints(ctx, c.clientURLs(leader), wallet.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	keys := clusterDevKeys(t, 0, 4)
	s := startClientSenders(c.chainID, client, keys, make([]uint64, len(keys)), 0, randomAddrs(8))
	defer s.stop()
	s.waitMore(t, 5, 60*time.Second)

	used := c.indexOfURL(client.Current())
	c.kill(used)
	t.Logf("SIGKILLed node %d, the one the client used (leader: node %d)", used, leader)
	s.waitMore(t, 5, 60*time.Second)
	t.Logf("client now on %s", client.Current())
	c.start(used)
	c.waitConverged(ctx, allThree, 60*time.Second)

	used = c.indexOfURL(client.Current())
	if err := c.procs[used].cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Logf("SIGSTOPped node %d, the one the client used", used)
	s.waitMore(t, 5, 60*time.Second)
	if err := c.procs[used].cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	s.waitMore(t, 3, 60*time.Second)
	s.finish()
	if err := s.firstError(); err != nil {
		t.Fatalf("a client call surfaced an error: %v", err)
	}

	var hashes []common.Hash
	for k, ins := range s.intents {
		for _, in := range ins {
			if in.receipt == nil || in.receipt.Status != types.ReceiptStatusSuccessful {
				t.Fatalf("sender %d nonce %d: receipt %+v", k, in.tx.Nonce(), in.receipt)
			}
			hashes = append(hashes, in.tx.Hash())
		}
	}
	head, _ := c.waitConverged(ctx, allThree, 60*time.Second)
	_, where := c.compareChains(ctx, allThree, head)
	for _, h := range hashes {
		if _, ok := where[h]; !ok {
			t.Fatalf("transfer %s has a receipt but is in no block", h)
		}
	}
	for k, key := range keys {
		if n := c.nonceOf(ctx, 0, key.Address()); n != uint64(len(s.intents[k])) {
			t.Fatalf("sender %d: nonce %d after %d intents (a transaction was signed twice, or one is missing)", k, n, len(s.intents[k]))
		}
	}
	t.Logf("%d intents, each receipted once; %s", len(hashes), s.describe())
	mine := make(map[common.Hash]bool, len(hashes))
	for _, h := range hashes {
		mine[h] = true
	}
	blocks, _ := c.compareChains(ctx, []int{0}, head)
	count := 0
	for _, b := range blocks {
		for _, h := range b.Transactions {
			if mine[h] {
				count++
			}
		}
	}
	if count != len(hashes) {
		t.Fatalf("the chain holds %d of the client's transfers, want each of %d once", count, len(hashes))
	}
}
