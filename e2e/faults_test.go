package e2e

// The real-process fault campaign (issue 14): three tallyd processes
// (libp2p, fsync on) under continuous load from clients that fail over
// between the three endpoints, through seeded rounds of faults.

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/crypto"
	tnode "github.com/tally-ledger/tally/node"
	"github.com/tally-ledger/tally/wallet"
)

// TestFaultCampaign runs seeded rounds of faults on a three-node cluster
// while faultClients clients send transfers. Each client is a
// wallet.Client over the three endpoints (DialEndpoints: it moves to the
// next node when one is unavailable or stalls, and re-sends what it could
// not get answered with the same bytes); it signs each nonce of its
// account once and sends batches of consecutive nonces, re-sending from
// the first transfer without a verdict until the client reports it
// admitted ("acknowledged": answered with its hash, or found already held
// on a re-send) or a node answers "already known" or "nonce too low" to a
// fresh call, so no two different transactions ever share a nonce. A round's fault, drawn from the seed, is one of campaignFaults:
// SIGKILL, SIGSTOP or isolation (admin_isolatePeer on both sides) of the
// leader or of a follower, two nodes SIGKILLed at once, or all three
// SIGKILLed; it is held for 1–3 s (or until writes resume) and then
// undone (restart, SIGCONT, heal), and the round ends when the three
// nodes have converged. A watcher notes when each transfer shows up in a
// block; "writes resumed" is the first transfer whose acknowledged
// submission started after the fault (after the restart, for faults that
// take the quorum away) seen in a block.
//
// At the end: every acknowledged transfer has a receipt on every node,
// in the same block, and appears once in the chain; the three chains are
// identical at every height (hash, parent, state root, transactions);
// every transaction in the chain is one the clients signed; the native
// asset's supply is what it was and every balance is what the included
// transfers make it; and, the nodes stopped, `tally audit --datadir`
// passes on each node's data dir.
//
// `make test` runs the short form (faultShortRounds rounds of seed
// faultDefaultSeed). TALLY_FAULT_ROUNDS=N runs N rounds, TALLY_FAULT_SEED=S
// seed S (`make faults ROUNDS=N SEED=S`).
func TestFaultCampaign(t *testing.T) {
	skipShort(t)
	rounds, seed := faultShortRounds, uint64(faultDefaultSeed)
	if v := os.Getenv("TALLY_FAULT_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("TALLY_FAULT_ROUNDS=%q: want a positive integer", v)
		}
		rounds = n
	}
	if v := os.Getenv("TALLY_FAULT_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("TALLY_FAULT_SEED=%q: want an unsigned integer", v)
		}
		seed = n
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("fault campaign failed; replay it with: make faults ROUNDS=%d SEED=%d", rounds, seed)
		}
	})
	runFaultCampaign(t, seed, rounds)
}

const (
	faultDefaultSeed = 1
	faultShortRounds = 4
	faultClients     = 6  // one sender account each (dev accounts 0..5)
	faultBatch       = 10 // transfers per JSON-RPC batch
	// faultAttempt bounds one SendRawBatch, failover included (the
	// client's own bound, wallet.DefaultRetryFor, is 15 s).
	faultAttempt = 20 * time.Second
	// faultPace is a client's pause between batches.
	faultPace = 50 * time.Millisecond
	// faultResumeTimeout is how long writes may stay stopped once a
	// quorum can run before the round fails (liveness).
	faultResumeTimeout = 45 * time.Second
)

// campaignFault is one kind of round.
type campaignFault struct {
	name string // kill, pause, isolate, two-down, all-down
	// target is "leader" or "follower" for one-node faults; two-down
	// draws "leader+follower" or "followers"; all-down is "all".
	target string
}

// campaignFaults are the kinds of rounds; each run of len(campaignFaults)
// rounds has every kind once, in an order drawn from the seed.
var campaignFaults = []campaignFault{
	{"kill", "leader"}, {"kill", "follower"},
	{"pause", "leader"}, {"pause", "follower"},
	{"isolate", "leader"}, {"isolate", "follower"},
	{"two-down", ""}, {"all-down", "all"},
}

// faultRound is what one round did and measured.
type faultRound struct {
	kind, target string
	nodes        []int
	held         time.Duration
	// resumed is the time from the fault (or, for two-down and
	// all-down, from the first restart) to the first write committed
	// after it.
	resumed time.Duration
	// restart is how long the restarted processes took, one after
	// another, to answer JSON-RPC (two-down and all-down).
	restart time.Duration
}

// faultTx is one signed transfer of the campaign.
type faultTx struct {
	tx     *types.Transaction
	sender int
	value  *big.Int
	to     common.Address
	// acked: the client reported it admitted (a node answered with its
	// hash, or, re-sent within the call, held it already); ackTry is when
	// the first such call started.
	acked  bool
	ackTry time.Time
	// reacked counts answers with its hash after the first: the cluster
	// took it as new again, so no node held it any more.
	reacked int
	known   bool      // some answer was "already known" or "nonce too low"
	seenAt  time.Time // when the watcher saw it in a block
}

// faultLoad is the campaign's clients and the watcher.
type faultLoad struct {
	c        *testCluster
	keys     []*crypto.PrivateKey
	to       []common.Address
	stopping chan struct{}
	wg       sync.WaitGroup

	mu      sync.Mutex
	txs     map[common.Hash]*faultTx
	byNonce [][]*faultTx // per sender, by nonce (senders start at nonce 0)
	errs    map[string]int
	errEx   map[string]string
	seen    uint64          // watcher: highest height read
	rtts    []time.Duration // each answered batch's round trip
}

// batchSender is what a campaign client needs of its RPC client: a
// JSON-RPC batch of raw transactions sent with failover between the three
// endpoints (wallet.Client from DialEndpoints: an item a node could not
// serve goes to the next node with the same bytes, and a re-sent item the
// node already holds counts as admitted), and the endpoint in use.
type batchSender interface {
	SendRawBatch(ctx context.Context, raws [][]byte) ([]common.Hash, []error, error)
	Current() string
}

// dialFailover is a wallet.Client over the three endpoints, starting at
// endpoint first.
func dialFailover(t *testing.T, urls []string, first int) batchSender {
	t.Helper()
	order := append(slices.Clone(urls[first%len(urls):]), urls[:first%len(urls)]...)
	wc, err := wallet.DialEndpoints(context.Background(), order, wallet.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wc.Close)
	return wc
}

func newFaultLoad(c *testCluster, keys []*crypto.PrivateKey, to []common.Address) *faultLoad {
	return &faultLoad{c: c, keys: keys, to: to, stopping: make(chan struct{}),
		txs: map[common.Hash]*faultTx{}, byNonce: make([][]*faultTx, len(keys)), errs: map[string]int{}, errEx: map[string]string{}}
}

func (l *faultLoad) stopped() bool {
	select {
	case <-l.stopping:
		return true
	default:
		return false
	}
}

// signed returns sender s's transfer of nonce n, signing it the first
// time.
func (l *faultLoad) signed(s int, n uint64) (*faultTx, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n < uint64(len(l.byNonce[s])) {
		return l.byNonce[s][n], nil
	}
	if n != uint64(len(l.byNonce[s])) {
		return nil, fmt.Errorf("sender %d: nonce %d signed before %d", s, n, len(l.byNonce[s]))
	}
	ft := &faultTx{sender: s, to: l.to[(s+int(n))%len(l.to)], value: big.NewInt(int64(s)*1_000_000 + int64(n) + 1)}
	tx, err := makeTransfer(int(n), l.c.chainID, l.keys[s], n, ft.to, ft.value)
	if err != nil {
		return nil, err
	}
	ft.tx = tx
	l.byNonce[s] = append(l.byNonce[s], ft)
	l.txs[tx.Hash()] = ft
	return ft, nil
}

// errClass names a submission error for the tally of errors.
func errClass(err error) string {
	msg := err.Error()
	switch {
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(msg, "deadline exceeded") || strings.Contains(msg, "Client.Timeout"):
		return "timeout"
	case strings.Contains(msg, "connection refused"):
		return "connection refused"
	case strings.Contains(msg, "connection reset") || strings.Contains(msg, "EOF"):
		return "connection reset"
	}
	if i := strings.IndexAny(msg, ":(0123456789"); i > 0 {
		msg = msg[:i]
	}
	return strings.TrimSpace(msg)
}

func (l *faultLoad) countErr(err error, where string) {
	k := errClass(err)
	l.mu.Lock()
	l.errs[k]++
	if _, ok := l.errEx[k]; !ok {
		l.errEx[k] = where + ": " + err.Error()
	}
	l.mu.Unlock()
}

// client is sender s's loop: batches from its next nonce, advancing past
// each transaction the cluster holds, re-sending the rest.
func (l *faultLoad) client(s int, bc batchSender) {
	defer l.wg.Done()
	var next uint64
	lastProgress, lastIncluded := time.Now(), uint64(0)
	for !l.stopped() {
		// A sender whose transfers stop being included although the
		// cluster took them re-sends from the first one not included
		// (what a wallet does when its transactions stay pending): the
		// re-sends tell whether the cluster still held them.
		if inc := l.included(s); inc != lastIncluded || inc >= next {
			lastIncluded, lastProgress = inc, time.Now()
		} else if time.Since(lastProgress) > 20*time.Second {
			l.countErr(fmt.Errorf("stuck: nonces %d..%d held but not included for 20 s, re-sending", inc, next-1), fmt.Sprintf("sender %d", s))
			next, lastProgress = inc, time.Now()
		}
		batch := make([]*faultTx, faultBatch)
		raws := make([][]byte, faultBatch)
		for k := range batch {
			ft, err := l.signed(s, next+uint64(k))
			if err != nil {
				panic(err)
			}
			batch[k] = ft
			raws[k], _ = ft.tx.MarshalBinary()
		}
		ctx, cancel := context.WithTimeout(context.Background(), faultAttempt)
		try := time.Now()
		hashes, errs, err := bc.SendRawBatch(ctx, raws)
		cancel()
		rtt := time.Since(try)
		if err != nil {
			l.countErr(err, bc.Current())
			time.Sleep(faultPace)
			continue
		}
		held := 0 // the prefix of the batch the cluster holds
		l.mu.Lock()
		l.rtts = append(l.rtts, rtt)
		for k, ft := range batch {
			switch e := errs[k]; {
			case e == nil && hashes[k] == ft.tx.Hash():
				if ft.acked {
					ft.reacked++
				} else {
					ft.acked, ft.ackTry = true, try
				}
			case e == nil:
				l.errs["wrong hash"]++
				l.errEx["wrong hash"] = fmt.Sprintf("%s answered %s for %s", bc.Current(), hashes[k], ft.tx.Hash())
			case strings.Contains(e.Error(), "already known") || strings.Contains(e.Error(), "nonce too low"):
				ft.known = true
			default:
				if held == k {
					l.errs[errClass(e)]++
					if _, ok := l.errEx[errClass(e)]; !ok {
						l.errEx[errClass(e)] = bc.Current() + ": " + e.Error()
					}
				}
				continue
			}
			if held == k && (ft.acked || ft.known) {
				held++
			}
		}
		l.mu.Unlock()
		next += uint64(held)
		time.Sleep(faultPace)
	}
}

// included returns how many of sender s's transfers (from nonce 0) the
// watcher has seen in blocks without a gap.
func (l *faultLoad) included(s int) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := uint64(0)
	for _, ft := range l.byNonce[s] {
		if ft.seenAt.IsZero() {
			break
		}
		n++
	}
	return n
}

// watch follows the chain on the node with the highest head (a node cut
// off from the others answers, with a head that no longer moves), noting
// when each transfer appears in a block.
func (l *faultLoad) watch() {
	defer l.wg.Done()
	for !l.stopped() {
		// A stopped node never answers: the heights come back on a
		// channel, and the watcher goes on 100 ms after the first answer
		// (at most a second) without waiting for the others.
		answers := make(chan [2]uint64, 3)
		for i := range 3 {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				h, err := l.c.height(ctx, i)
				if err != nil {
					h = 0
				}
				answers <- [2]uint64{uint64(i), h}
			}()
		}
		heights := make([]uint64, 3)
		timeout := time.After(time.Second)
		var grace <-chan time.Time
	collect:
		for range 3 {
			select {
			case a := <-answers:
				heights[a[0]] = a[1]
				if grace == nil {
					grace = time.After(100 * time.Millisecond)
				}
			case <-grace:
				break collect
			case <-timeout:
				break collect
			}
		}
		node := 0
		for i, h := range heights {
			if h > heights[node] {
				node = i
			}
		}
		l.mu.Lock()
		last := l.seen
		l.mu.Unlock()
		var bs []chainBlock
		var err error
		if h := heights[node]; h > last {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			bs, err = l.c.blocks(ctx, node, last+1, min(h, last+200))
			cancel()
		}
		if err != nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		now := time.Now()
		l.mu.Lock()
		for _, b := range bs {
			for _, h := range b.Transactions {
				if ft := l.txs[h]; ft != nil && ft.seenAt.IsZero() {
					ft.seenAt = now
				}
			}
			l.seen = uint64(b.Number)
		}
		l.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
}

// resumedAfter waits until a transfer whose acknowledged submission
// started after from is seen in a block, and returns that moment.
func (l *faultLoad) resumedAfter(from time.Time, timeout time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		var first time.Time
		for _, ft := range l.txs {
			if ft.acked && !ft.ackTry.Before(from) && !ft.seenAt.IsZero() && (first.IsZero() || ft.seenAt.Before(first)) {
				first = ft.seenAt
			}
		}
		l.mu.Unlock()
		if !first.IsZero() {
			return first, true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Time{}, false
}

func (l *faultLoad) stop() {
	close(l.stopping)
	l.wg.Wait()
}

func runFaultCampaign(t *testing.T, seed uint64, rounds int) {
	began := time.Now()
	rng := rand.New(rand.NewPCG(seed, 0xfa17))
	ctx := context.Background()
	c := newTestCluster(t, 3, nil)
	c.startAll()
	c.waitLeader(ctx, allThree, "", 60*time.Second)
	wc, err := wallet.Dial(ctx, c.specs[0].RPC)
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	sup0, err := wc.Supply(ctx, "CNY")
	if err != nil {
		t.Fatal(err)
	}
	keys := clusterDevKeys(t, 0, faultClients)
	bal0 := make([]*big.Int, len(keys))
	for s, k := range keys {
		if n := c.nonceOf(ctx, 0, k.Address()); n != 0 {
			t.Fatalf("dev account %d has nonce %d, want 0", s, n)
		}
		bal0[s] = c.balance(ctx, 0, k.Address())
	}
	load := newFaultLoad(c, keys, randomAddrs(20))
	urls := make([]string, 3)
	for i := range urls {
		urls[i] = c.specs[i].RPC
	}
	for s := range keys {
		load.wg.Add(1)
		go load.client(s, dialFailover(t, urls, s))
	}
	load.wg.Add(1)
	go load.watch()
	stopped := false
	defer func() {
		if !stopped {
			load.stop()
		}
	}()
	if _, ok := load.resumedAfter(time.Now(), 30*time.Second); !ok {
		c.fatal("no transfer committed within 30 s of starting the load")
	}
	t.Logf("fault campaign seed %d, %d rounds: cluster up and loaded after %v", seed, rounds, time.Since(began).Round(time.Millisecond))

	var order []int
	var done []faultRound
	for r := range rounds {
		if len(order) == 0 {
			order = rng.Perm(len(campaignFaults))
		}
		k := campaignFaults[order[0]]
		order = order[1:]
		hold := time.Second + time.Duration(rng.Int64N(int64(2*time.Second)))
		fr := runFaultRound(t, c, load, rng, k, hold)
		done = append(done, fr)
		load.mu.Lock()
		acked := 0
		for _, ft := range load.txs {
			if ft.acked {
				acked++
			}
		}
		load.mu.Unlock()
		restarted := ""
		if fr.restart > 0 {
			restarted = fmt.Sprintf(" (restarts answered after %v)", fr.restart.Round(time.Millisecond))
		}
		t.Logf("ROUND %d/%d: %s %s (node %v), held %v: writes resumed after %v%s; %d transfers acknowledged so far",
			r+1, rounds, fr.kind, fr.target, fr.nodes, fr.held.Round(time.Millisecond), fr.resumed.Round(time.Millisecond), restarted, acked)
	}
	load.stop()
	stopped = true
	faultCheck(t, ctx, c, load, sup0, bal0, done, began)
}

// runFaultRound injects one fault of kind k under the load, measures
// when writes resume, undoes the fault and waits for the three nodes to
// converge.
func runFaultRound(t *testing.T, c *testCluster, load *faultLoad, rng *rand.Rand, k campaignFault, hold time.Duration) faultRound {
	t.Helper()
	ctx := context.Background()
	leader, _ := c.waitLeader(ctx, allThree, "", 60*time.Second)
	followers := others(allThree, leader)
	fr := faultRound{kind: k.name, target: k.target, held: hold}
	switch k.target {
	case "leader":
		fr.nodes = []int{leader}
	case "follower":
		fr.nodes = []int{followers[rng.IntN(2)]}
	case "all":
		fr.nodes = slices.Clone(allThree)
	default: // two-down
		if rng.IntN(2) == 0 {
			fr.target, fr.nodes = "leader+follower", []int{leader, followers[rng.IntN(2)]}
		} else {
			fr.target, fr.nodes = "followers", slices.Clone(followers)
		}
	}
	x := fr.nodes[0]
	faultAt := time.Now()
	switch k.name {
	case "kill", "two-down", "all-down":
		for _, i := range fr.nodes {
			c.kill(i)
		}
	case "pause":
		if err := c.procs[x].cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	case "isolate":
		c.isolate(ctx, x, others(allThree, x))
	}
	if len(fr.nodes) == 1 {
		// One node down: the other two carry on.
		at, ok := load.resumedAfter(faultAt, faultResumeTimeout)
		if !ok {
			c.fatal("%s of the %s (node %d): no write committed within %v", k.name, k.target, x, faultResumeTimeout)
		}
		fr.resumed = at.Sub(faultAt)
		time.Sleep(time.Until(faultAt.Add(hold)))
		switch k.name {
		case "kill":
			c.start(x)
		case "pause":
			if err := c.procs[x].cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
		case "isolate":
			c.heal(ctx, x, others(allThree, x))
		}
	} else {
		// No quorum until the nodes come back, in an order from the seed.
		time.Sleep(time.Until(faultAt.Add(hold)))
		back := slices.Clone(fr.nodes)
		rng.Shuffle(len(back), func(i, j int) { back[i], back[j] = back[j], back[i] })
		restartAt := time.Now()
		for _, i := range back {
			c.start(i)
		}
		fr.restart = time.Since(restartAt)
		at, ok := load.resumedAfter(restartAt, faultResumeTimeout)
		if !ok {
			c.fatal("%s (%v): no write committed within %v of restarting", k.name, fr.nodes, faultResumeTimeout)
		}
		fr.resumed = at.Sub(restartAt)
	}
	c.waitLeader(ctx, allThree, "", 60*time.Second)
	c.waitConverged(ctx, allThree, 90*time.Second)
	return fr
}

// faultCheck checks the campaign's invariants once the load has stopped
// and reports its figures.
func faultCheck(t *testing.T, ctx context.Context, c *testCluster, load *faultLoad, sup0 *wallet.Supply, bal0 []*big.Int, rounds []faultRound, began time.Time) {
	t.Helper()
	var acked, known, unacked []common.Hash
	reacked := 0
	for h, ft := range load.txs {
		switch {
		case ft.acked:
			acked = append(acked, h)
			if ft.reacked > 0 {
				reacked++
				t.Errorf("transfer %s (sender %d nonce %d) acknowledged, then taken as new again %d times: no node held it any more", h, ft.sender, ft.tx.Nonce(), ft.reacked)
			}
		case ft.known:
			known = append(known, h)
		default:
			unacked = append(unacked, h)
		}
	}
	t.Logf("load stopped: %d transfers signed, %d acknowledged, %d answered only already known / nonce too low, %d never taken; submission errors %v",
		len(load.txs), len(acked), len(known), len(unacked), load.errs)
	if rt := slices.Sorted(slices.Values(load.rtts)); len(rt) > 0 {
		t.Logf("answered batches: %d, round trip median %v p95 %v max %v", len(rt), rt[len(rt)/2].Round(time.Millisecond), rt[len(rt)*95/100].Round(time.Millisecond), rt[len(rt)-1].Round(time.Millisecond))
	}
	for k, ex := range load.errEx {
		t.Logf("  first %q: %s", k, ex)
	}

	// Every acknowledged transfer on every node, in the same block.
	var ref map[common.Hash]*types.Receipt
	lost := map[common.Hash]bool{}
	for n, i := range allThree {
		got, missing := c.waitReceipts(ctx, i, acked, 60*time.Second)
		for _, h := range missing {
			lost[h] = true
		}
		for h, r := range got {
			if r.Status != types.ReceiptStatusSuccessful {
				t.Errorf("node %d: transfer %s: status %d", i, h, r.Status)
			}
			if n > 0 {
				if w := ref[h]; w != nil && (w.BlockHash != r.BlockHash || w.TransactionIndex != r.TransactionIndex) {
					t.Errorf("transfer %s: node %d has it in block %s index %d, node %d in %s index %d", h, allThree[0], w.BlockHash, w.TransactionIndex, i, r.BlockHash, r.TransactionIndex)
				}
			}
		}
		if n == 0 {
			ref = got
		}
	}
	for h := range lost {
		ft := load.txs[h]
		t.Errorf("LOST: transfer %s (sender %d nonce %d) acknowledged (submission at %s) but has no receipt on every node", h, ft.sender, ft.tx.Nonce(), ft.ackTry.Format("15:04:05.000"))
	}

	// Identical chains, each transaction once, each one ours.
	head, _ := c.waitConverged(ctx, allThree, 90*time.Second)
	_, where := c.compareChains(ctx, allThree, head)
	includedUnacked := 0
	sent := make([]*big.Int, len(load.keys))
	count := make([]uint64, len(load.keys))
	recv := map[common.Address]*big.Int{}
	for s := range sent {
		sent[s] = new(big.Int)
	}
	for h := range where {
		ft := load.txs[h]
		if ft == nil {
			t.Errorf("block %d holds transaction %s no client signed", where[h], h)
			continue
		}
		if !ft.acked {
			includedUnacked++
		}
		sent[ft.sender].Add(sent[ft.sender], ft.value)
		count[ft.sender]++
		if recv[ft.to] == nil {
			recv[ft.to] = new(big.Int)
		}
		recv[ft.to].Add(recv[ft.to], ft.value)
	}

	// Conservation: the supply did not move and the balances are what
	// the included transfers make them, on every node.
	for _, i := range allThree {
		wc, err := wallet.Dial(ctx, c.specs[i].RPC)
		if err != nil {
			t.Fatal(err)
		}
		sup, err := wc.Supply(ctx, "CNY")
		wc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if sup.TotalSupply.ToInt().Cmp(sup0.TotalSupply.ToInt()) != 0 || sup.Minted.ToInt().Cmp(sup0.Minted.ToInt()) != 0 || sup.Burned.ToInt().Cmp(sup0.Burned.ToInt()) != 0 {
			t.Errorf("node %d: CNY supply %+v, was %+v", i, sup, sup0)
		}
		for s, k := range load.keys {
			want := new(big.Int).Sub(bal0[s], sent[s])
			if got := c.balance(ctx, i, k.Address()); got.Cmp(want) != 0 {
				t.Errorf("node %d: sender %d balance %s, want %s (start %s less %s sent in %d included transfers)", i, s, got, want, bal0[s], sent[s], count[s])
			}
			if got := c.nonceOf(ctx, i, k.Address()); got != count[s] {
				t.Errorf("node %d: sender %d nonce %d, want %d (its included transfers)", i, s, got, count[s])
			}
		}
		for a, want := range recv {
			if got := c.balance(ctx, i, a); got.Cmp(want) != 0 {
				t.Errorf("node %d: recipient %s balance %s, want %s", i, a, got, want)
			}
		}
	}

	// The audit of every node's data dir, the nodes stopped.
	for _, i := range allThree {
		c.stop(i)
	}
	audits := 0
	for _, i := range allThree {
		rep := c.mustAudit(fmt.Sprintf("faults-node%d", i), "--datadir", c.procs[i].datadir)
		// The leader goes on with empty heartbeat blocks until the nodes
		// stop: the audit reaches the head the node closed at.
		closed, _, _ := closedHead(t, c.log(i))
		if rep.To != closed || rep.To < head || rep.Txs < uint64(len(where)) {
			t.Errorf("audit of node %d's data dir: heights to %d with %d transactions; the node closed at %d, the chains compared to %d hold %d", i, rep.To, rep.Txs, closed, head, len(where))
		}
		audits++
	}

	// The figures.
	t.Logf("FAULT CAMPAIGN: %d rounds in %v; head %d; %d transfers acknowledged, %d lost, %d taken as new after their acknowledgement, %d duplicated (compareChains), %d included without an acknowledgement; %d of 3 audits passed",
		len(rounds), time.Since(began).Round(time.Second), head, len(acked), len(lost), reacked, 0, includedUnacked, audits)
	byKind := map[string][]time.Duration{}
	var kinds []string
	for _, r := range rounds {
		k := r.kind + " " + r.target
		if byKind[k] == nil {
			kinds = append(kinds, k)
		}
		byKind[k] = append(byKind[k], r.resumed)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		ds := slices.Clone(byKind[k])
		slices.Sort(ds)
		p95 := ds[min(len(ds)-1, (len(ds)*95+99)/100-1)]
		t.Logf("FAULTS %-25s n=%-3d writes resumed: median %v p95 %v max %v (all: %v)", k, len(ds), ds[len(ds)/2].Round(10*time.Millisecond), p95.Round(10*time.Millisecond), ds[len(ds)-1].Round(10*time.Millisecond), roundAll(ds))
	}
}

// TestAdmittedTxSurvivesAllDown: blocks of one transaction, one in flight
// at a time, so the cluster has acknowledged far more transfers than it
// has committed; the moment the last batch is answered, all three nodes
// are SIGKILLed (a power cut of the whole consortium) and restarted.
// Every acknowledged transfer is then receipted with status 1 on all three
// nodes, in the same block, exactly once (the fault campaign's all-down
// round, made certain to hit acknowledged transfers still in the pools).
func TestAdmittedTxSurvivesAllDown(t *testing.T) {
	skipShort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := newTestCluster(t, 3, func(_ int, cfg *tnode.Config) {
		cfg.Builder.MaxBlockTxs = 1
		cfg.Builder.MaxInflightBlocks = 1
	})
	c.startAll()
	leader, _ := c.waitLeader(ctx, allThree, "", 30*time.Second)
	const senders, perSender = 4, 30
	keys := clusterDevKeys(t, 0, senders)
	txs := signTransfers(t, c.chainID, keys, make([]uint64, senders), perSender, randomAddrs(10))
	var acked []common.Hash
	for s := range txs {
		// Half through the leader, half through a follower.
		c.mustSend(ctx, []int{leader, others(allThree, leader)[0]}[s%2], txs[s])
		acked = append(acked, hashesOf(txs[s])...)
	}
	for _, i := range allThree {
		c.kill(i)
	}
	rs, err := func() ([]*types.Receipt, error) {
		c.start(0)
		defer c.kill(0)
		return c.receipts(ctx, 0, acked)
	}()
	if err != nil {
		t.Fatal(err)
	}
	committed := 0
	for _, r := range rs {
		if r != nil {
			committed++
		}
	}
	t.Logf("all three nodes SIGKILLed right after acknowledging %d transfers; %d of them were committed", len(acked), committed)
	if committed == len(acked) {
		t.Fatal("every acknowledged transfer was already committed at the kill: the test proves nothing")
	}
	for _, i := range allThree {
		c.start(i)
	}
	c.waitLeader(ctx, allThree, "", 30*time.Second)
	c.mustReceipts(ctx, allThree, acked, 60*time.Second)
	head, _ := c.waitConverged(ctx, allThree, 30*time.Second)
	c.compareChains(ctx, allThree, head)
}
