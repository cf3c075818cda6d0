package store

import (
	"errors"
	"fmt"
	"math/big"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/state"
)

// pastChain applies blocks one transfer each: block i (1-based) sends i
// wei from dev account 0 to a fresh address, so the sender's balance and
// nonce change every block and address i appears in block i.
type pastChain struct {
	*env
	// bal[h] and nonce[h] are account 0's balance and nonce after block h,
	// read from the head state right after h was applied.
	bal   []*big.Int
	nonce []uint64
}

func pastAddr(i int) common.Address { return common.BigToAddress(big.NewInt(int64(0xbeef0000 + i))) }

func newPastChain(t *testing.T, opts Options) *pastChain {
	opts.NoSync = true
	c := &pastChain{env: newEnvOpts(t, opts)}
	c.record()
	return c
}

func (c *pastChain) record() {
	c.t.Helper()
	a := c.keys[0].Address()
	bal, err := c.db.Balance(state.NativeAsset, a)
	if err != nil {
		c.t.Fatal(err)
	}
	n, err := c.db.Nonce(a)
	if err != nil {
		c.t.Fatal(err)
	}
	c.bal = append(c.bal, bal)
	c.nonce = append(c.nonce, n)
}

// grow applies n more blocks.
func (c *pastChain) grow(n int) {
	c.t.Helper()
	for range n {
		h := len(c.bal)
		b := c.build(c.transfer(0, c.nonce[h-1], pastAddr(h), int64(h)))
		if _, err := c.apply(b.Block); err != nil {
			c.t.Fatal(err)
		}
		c.record()
	}
}

func (c *pastChain) head() uint64 { return uint64(len(c.bal) - 1) }

// check reads account 0 and address h's balance at height h.
func (c *pastChain) check(h uint64) error {
	c.t.Helper()
	p, err := c.db.StateAt(h)
	if err != nil {
		return err
	}
	bal, err := p.Balance(state.NativeAsset, c.keys[0].Address())
	if err != nil {
		return err
	}
	n, err := p.Nonce(c.keys[0].Address())
	if err != nil {
		return err
	}
	if bal.Cmp(c.bal[h]) != 0 || n != c.nonce[h] {
		c.t.Errorf("at %d: balance %s nonce %d, want %s %d", h, bal, n, c.bal[h], c.nonce[h])
	}
	return nil
}

func TestStateAtAroundChange(t *testing.T) {
	c := newPastChain(t, Options{})
	c.grow(6)
	const h = 4 // block 4 creates pastAddr(4) and spends from account 0
	for _, at := range []uint64{h - 1, h, h + 1} {
		if err := c.check(at); err != nil {
			t.Fatalf("StateAt(%d): %v", at, err)
		}
		p, _ := c.db.StateAt(at)
		got, err := p.Balance(state.NativeAsset, pastAddr(h))
		if err != nil {
			t.Fatal(err)
		}
		want := int64(h)
		if at < h {
			want = 0 // absent before the block that created it
		}
		if got.Int64() != want {
			t.Errorf("balance of the new account at %d = %s, want %d", at, got, want)
		}
	}
	if c.bal[h-1].Cmp(c.bal[h]) == 0 {
		t.Fatal("the test's block does not change the balance")
	}
	// eth_call executes over the past state as over the head: the asset
	// facade's balanceOf at an old block sees the old balance.
	data, err := chain.AssetABI.Pack("balanceOf", c.keys[0].Address())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := c.db.StateAt(h - 1)
	out, _, err := state.Call(p, p.Context(), common.Address{}, chain.AssetAddress(state.NativeAsset), nil, data)
	if err != nil {
		t.Fatal(err)
	}
	if got := new(big.Int).SetBytes(out); got.Cmp(c.bal[h-1]) != 0 {
		t.Fatalf("balanceOf at %d = %s, want %s", h-1, got, c.bal[h-1])
	}
	if ctx := p.Context(); ctx.Number != h {
		t.Fatalf("call context at %d has number %d, want %d (as HeadContext)", h-1, ctx.Number, h)
	}
	// Above the head: not found.
	if _, err := c.db.StateAt(c.head() + 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("StateAt(head+1) = %v, want ErrNotFound", err)
	}
}

func TestStateAtWindowRestartAndPruning(t *testing.T) {
	const window = 5
	c := newPastChain(t, Options{HistoryBlocks: window})
	c.grow(30)
	head := c.head()
	for h := head - window + 1; h <= head; h++ {
		if err := c.check(h); err != nil {
			t.Fatalf("StateAt(%d) inside the window: %v", h, err)
		}
	}
	_, err := c.db.StateAt(head - window)
	var su *StateUnavailableError
	if !errors.As(err, &su) || !errors.Is(err, ErrStateUnavailable) {
		t.Fatalf("StateAt(%d) past the window = %v, want *StateUnavailableError", head-window, err)
	}
	b, _ := c.db.BlockByNumber(head - window)
	if su.Root != b.Header.Root || su.Oldest != head-window+1 || su.Head != head || su.Window != window {
		t.Fatalf("error %+v", su)
	}
	if c.db.OldestState() != head-window+1 {
		t.Fatalf("OldestState %d", c.db.OldestState())
	}
	// The disk holds the records of the window's blocks only.
	recs, blocks := c.countPast()
	if blocks > window || recs > window*5 {
		t.Fatalf("%d past records of %d blocks kept with a window of %d", recs, blocks, window)
	}

	// A restart keeps the window.
	c.db.Close()
	c.open()
	for h := head - window + 1; h <= head; h++ {
		if err := c.check(h); err != nil {
			t.Fatalf("after restart, StateAt(%d): %v", h, err)
		}
	}
	if _, err := c.db.StateAt(head - window); !errors.Is(err, ErrStateUnavailable) {
		t.Fatalf("after restart, StateAt(%d) = %v", head-window, err)
	}

	// Reopened with a larger window the node serves no more than it kept,
	// and never a wrong value; the window grows as blocks come.
	c.db.Close()
	c.opts.HistoryBlocks = 50
	c.open()
	if _, err := c.db.StateAt(head - window); !errors.Is(err, ErrStateUnavailable) {
		t.Fatalf("grown window: StateAt(%d) = %v", head-window, err)
	}
	c.grow(10)
	for h := head - window + 1; h <= c.head(); h++ {
		if err := c.check(h); err != nil {
			t.Fatalf("grown window, StateAt(%d): %v", h, err)
		}
	}

	// Reopened with a smaller one, the excess goes at once from reads and
	// over the following blocks from the disk.
	c.db.Close()
	c.opts.HistoryBlocks = 2
	c.open()
	if _, err := c.db.StateAt(c.head() - 2); !errors.Is(err, ErrStateUnavailable) {
		t.Fatalf("shrunk window: StateAt(head-2) = %v", err)
	}
	if err := c.check(c.head() - 1); err != nil {
		t.Fatal(err)
	}
	c.grow(3)
	if _, blocks := c.countPast(); blocks > 2 {
		t.Fatalf("%d blocks' records kept with a window of 2", blocks)
	}
	if err := c.check(c.head() - 1); err != nil {
		t.Fatal(err)
	}
}

// countPast counts the past state records and the blocks they belong to.
func (c *pastChain) countPast() (recs, blocks int) {
	c.t.Helper()
	for _, p := range [][]byte{prefixPast, prefixPastBlock} {
		it, err := c.db.pdb.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: upperBound(p)})
		if err != nil {
			c.t.Fatal(err)
		}
		n := 0
		for it.First(); it.Valid(); it.Next() {
			n++
		}
		it.Close()
		if p[0] == prefixPast[0] {
			recs = n
		} else {
			blocks = n
		}
	}
	return recs, blocks
}

// TestPastStateLeavesTheChainAlone applies the same blocks with and
// without past state records: block hashes, state roots and the state
// digest are identical.
func TestPastStateLeavesTheChainAlone(t *testing.T) {
	with := newPastChain(t, Options{})
	with.grow(8)
	without := newPastChain(t, Options{HistoryBlocks: 1})
	without.senders = with.senders
	for n := uint64(1); n <= with.head(); n++ {
		b, err := with.db.BlockByNumber(n)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := without.apply(b); err != nil {
			t.Fatalf("block %d: %v", n, err)
		}
	}
	h1, _ := with.db.Head()
	h2, _ := without.db.Head()
	if h1.Hash != h2.Hash || h1.StateRoot != h2.StateRoot {
		t.Fatalf("heads differ: %+v vs %+v", h1, h2)
	}
	d1, err := with.db.StateDigest()
	if err != nil {
		t.Fatal(err)
	}
	d2, err := without.db.StateDigest()
	if err != nil {
		t.Fatal(err)
	}
	if d1 != d2 {
		t.Fatalf("state digests differ: %+v vs %+v", d1, d2)
	}
	if recs, _ := without.countPast(); recs != 0 {
		t.Fatalf("a window of 1 wrote %d records", recs)
	}
	if _, err := without.db.StateAt(h2.Number - 1); !errors.Is(err, ErrStateUnavailable) {
		t.Fatalf("window of 1: StateAt(head-1) = %v", err)
	}
	without.bal, without.nonce = with.bal, with.nonce
	if err := without.check(h2.Number); err != nil {
		t.Fatal(err)
	}
}

// TestStateAtConcurrentWithBlocks reads past states while blocks are
// applied (run with -race): every read is the value at its height, or
// ErrStateUnavailable once the height left the window, never a newer one.
func TestStateAtConcurrentWithBlocks(t *testing.T) {
	const window = 4
	c := newPastChain(t, Options{HistoryBlocks: window})
	c.grow(window)
	var mu sync.Mutex // guards c.bal and c.nonce, which grow appends to
	want := func(h uint64) (*big.Int, uint64) {
		mu.Lock()
		defer mu.Unlock()
		return c.bal[h], c.nonce[h]
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(r)))
			for {
				select {
				case <-done:
					return
				default:
				}
				head, _ := c.db.Head()
				h := head.Number - uint64(rng.Intn(window))
				p, err := c.db.StateAt(h)
				if errors.Is(err, ErrStateUnavailable) {
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				bal, err := p.Balance(state.NativeAsset, c.keys[0].Address())
				if errors.Is(err, ErrStateUnavailable) {
					continue
				}
				n, err2 := p.Nonce(c.keys[0].Address())
				if errors.Is(err2, ErrStateUnavailable) {
					continue
				}
				if err != nil || err2 != nil {
					errs <- errors.Join(err, err2)
					return
				}
				wb, wn := want(h)
				if bal.Cmp(wb) != 0 || n != wn {
					errs <- errors.New("a past read returned another height's value")
					return
				}
			}
		}()
	}
	for range 40 {
		h := c.head() + 1
		b := c.build(c.transfer(0, c.nonce[h-1], pastAddr(int(h)), int64(h)))
		// Record the expected values before the block is visible.
		bal := new(big.Int).Sub(c.bal[h-1], big.NewInt(int64(h)))
		mu.Lock()
		c.bal = append(c.bal, bal)
		c.nonce = append(c.nonce, c.nonce[h-1]+1)
		mu.Unlock()
		if _, err := c.apply(b.Block); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := c.check(c.head() - 1); err != nil {
		t.Fatal(err)
	}
}

// TestStateAtUpgradedDataDir: a data dir written before past state was
// recorded (no floor) serves its head only, and history from then on.
func TestStateAtUpgradedDataDir(t *testing.T) {
	c := newPastChain(t, Options{})
	c.grow(3)
	if err := c.db.pdb.Delete(keyPastFloor, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	c.db.Close()
	c.open()
	if _, err := c.db.StateAt(c.head() - 1); !errors.Is(err, ErrStateUnavailable) {
		t.Fatalf("StateAt(head-1) on an upgraded dir = %v", err)
	}
	c.grow(2)
	if err := c.check(c.head() - 2); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesHugeHistory(t *testing.T) {
	if _, err := Open(t.TempDir(), Options{HistoryBlocks: MaxHistoryBlocks + 1}); err == nil {
		t.Fatal("Open accepted a history over MaxHistoryBlocks")
	}
}

// TestStateAtAfterSnapshotInstall: a node that installs a leader's
// snapshot (a Pebble checkpoint, ReplaceWith) serves the window the
// leader recorded, from the first read on.
func TestStateAtAfterSnapshotInstall(t *testing.T) {
	leader := newPastChain(t, Options{HistoryBlocks: 6})
	leader.grow(12)
	ckpt := filepath.Join(t.TempDir(), "ckpt")
	if err := leader.db.Checkpoint(ckpt); err != nil {
		t.Fatal(err)
	}
	follower := newPastChain(t, Options{HistoryBlocks: 6})
	follower.grow(2) // its own, older state
	src := follower.dir + ".restore"
	if err := os.Rename(ckpt, src); err != nil {
		t.Fatal(err)
	}
	if err := follower.db.ReplaceWith(src); err != nil {
		t.Fatal(err)
	}
	follower.bal, follower.nonce = leader.bal, leader.nonce
	for h := leader.head() - 5; h <= leader.head(); h++ {
		if err := follower.check(h); err != nil {
			t.Fatalf("after install, StateAt(%d): %v", h, err)
		}
	}
	if _, err := follower.db.StateAt(leader.head() - 6); !errors.Is(err, ErrStateUnavailable) {
		t.Fatalf("after install, StateAt(%d) = %v", leader.head()-6, err)
	}
}

// BenchmarkApplyBlockPastState is BenchmarkApplyBlock without past state
// records (window=1) and with go-ethereum's window (window=128), side by
// side: the cost of recording each block's reverse diff and pruning the
// one that leaves the window.
func BenchmarkApplyBlockPastState(b *testing.B) {
	for _, window := range []uint64{1, DefaultHistoryBlocks} {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) {
			const perBlock = 1000
			e := newEnvOpts(b, Options{HistoryBlocks: window})
			blocks := e.transferBlocks(b.N, perBlock)
			e2 := newEnvOpts(b, Options{HistoryBlocks: window})
			e2.senders = e.senders
			b.ResetTimer()
			for _, blk := range blocks {
				if _, err := e2.apply(blk); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*perBlock)/b.Elapsed().Seconds(), "txs/s")
		})
	}
}

// BenchmarkPastStateRead reads a balance at the head and 64 blocks below
// it (one Pebble get and one seek per key either way).
func BenchmarkPastStateRead(b *testing.B) {
	e := newEnvOpts(b, Options{NoSync: true})
	for i := range 100 {
		if _, err := e.apply(e.build(e.transfer(0, uint64(i), common.Address{byte(i)}, 1)).Block); err != nil {
			b.Fatal(err)
		}
	}
	head, _ := e.db.Head()
	for _, back := range []uint64{0, 64} {
		b.Run(fmt.Sprintf("back=%d", back), func(b *testing.B) {
			p, err := e.db.StateAt(head.Number - back)
			if err != nil {
				b.Fatal(err)
			}
			a := e.keys[0].Address()
			for b.Loop() {
				if _, err := p.Balance(state.NativeAsset, a); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
