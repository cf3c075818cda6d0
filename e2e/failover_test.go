package e2e

// Failover tests: what a client of a crashed leader keeps, and (gated by
// TALLY_FAILOVER_ROUNDS) how long writes stop after a leader fault.

import (
	"context"
	"errors"
	"math/big"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"

	"github.com/tally-ledger/tally/crypto"
	tnode "github.com/tally-ledger/tally/node"
	"github.com/tally-ledger/tally/wallet"
)

// TestAdmittedTxSurvivesLeaderKill: blocks of one transaction, one in
// flight at a time, so the leader has admitted far more than it has
// committed. Six senders send 50 transfers each straight to the leader in
// one JSON-RPC batch per sender; the moment the last batch is answered
// (every transfer acknowledged with its hash) the leader is SIGKILLed.
// Every acknowledged transfer is then receipted with status 1 on both
// survivors, in the same block, exactly once: the leader held each one on
// another validator before it answered. The senders' next transfers,
// continuing their nonces, go through a survivor and are receipted too
// (no sender is stuck behind a nonce gap).
func TestAdmittedTxSurvivesLeaderKill(t *testing.T) {
	skipShort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := newTestCluster(t, 3, func(_ int, cfg *tnode.Config) {
		cfg.Builder.MaxBlockTxs = 1
		cfg.Builder.MaxInflightBlocks = 1
	})
	c.startAll()
	leader, _ := c.waitLeader(ctx, allThree, "", 30*time.Second)
	survivors := others(allThree, leader)

	const senders, perSender = 6, 50
	keys := clusterDevKeys(t, 0, senders)
	recipients := randomAddrs(10)
	txs := signTransfers(t, c.chainID, keys, make([]uint64, senders), perSender, recipients)
	type answer struct {
		errs []error
		err  error
	}
	answers := make(chan answer, senders)
	for s := range senders {
		go func() {
			errs, err := c.sendBatch(ctx, leader, txs[s])
			answers <- answer{errs, err}
		}()
	}
	for range senders {
		a := <-answers
		if a.err != nil {
			c.fatal("batch to the leader: %v", a.err)
		}
		for _, e := range a.errs {
			if e != nil {
				c.fatal("the leader refused a transfer: %v", e)
			}
		}
	}
	c.kill(leader)
	killedAt := time.Now()
	var acked []common.Hash
	for s := range txs {
		acked = append(acked, hashesOf(txs[s])...)
	}
	rs, err := c.receipts(ctx, survivors[0], acked)
	if err != nil {
		t.Fatal(err)
	}
	committed := 0
	for _, r := range rs {
		if r != nil {
			committed++
		}
	}
	t.Logf("leader node %d SIGKILLed right after acknowledging %d transfers; %d of them were committed at that moment", leader, len(acked), committed)
	if committed == len(acked) {
		t.Fatal("every acknowledged transfer was already committed at the kill: the test proves nothing (blocks must be slower than admissions)")
	}

	newLeader, took := c.waitLeader(ctx, survivors, c.specs[leader].PeerID, 30*time.Second)
	t.Logf("node %d leads %v after the kill", newLeader, took.Round(time.Millisecond))
	c.mustReceipts(ctx, survivors, acked, 60*time.Second)
	t.Logf("all %d acknowledged transfers receipted on both survivors %v after the kill", len(acked), time.Since(killedAt).Round(time.Millisecond))

	// The senders carry on from their next nonces, through a survivor.
	next := make([]uint64, senders)
	for s := range next {
		next[s] = perSender
	}
	more := signTransfers(t, c.chainID, keys, next, 5, recipients)
	var moreHashes []common.Hash
	for s := range more {
		c.mustSend(ctx, survivors[0], more[s])
		moreHashes = append(moreHashes, hashesOf(more[s])...)
	}
	c.mustReceipts(ctx, survivors, moreHashes, 60*time.Second)

	head, _ := c.waitConverged(ctx, survivors, 30*time.Second)
	_, where := c.compareChains(ctx, survivors, head)
	for _, h := range append(acked, moreHashes...) {
		if _, ok := where[h]; !ok {
			t.Fatalf("transfer %s has a receipt but is in no block", h)
		}
	}
	sent := make(map[common.Hash]bool)
	for _, h := range append(acked, moreHashes...) {
		sent[h] = true
	}
	for h := range where {
		if !sent[h] {
			t.Fatalf("block holds tx %s no one sent", h)
		}
	}
}

// faultKinds are the leader faults TestFailoverTimes measures.
var faultKinds = []string{"kill", "pause", "isolate"}

// TestFailoverTimes measures, on three real tallyd processes (the
// testnet's configuration: default Raft timeouts, fsync on), the time from
// a leader fault to the first write resumed: the commit of the first
// transfer submitted after the fault, as seen by a surviving node. Four
// probe senders submit transfers one after another (no waiting for
// receipts) through the two followers, as clients of the surviving nodes
// do; a watcher polls a survivor's head every 10 ms and notes when each
// transfer appears in a block. Faults: SIGKILL of the leader (restarted
// after), SIGSTOP (SIGCONT after) and isolation from both followers
// (healed after). Alongside, two payment senders use one wallet.Client
// over all three nodes that starts on the leader (wallet.DialEndpoints:
// each sends a transfer, waits for its receipt, then the next); for them
// the round measures what a failing-over client sees: the time from the
// fault to the receipt of the first transfer they started after it. Then,
// with no fault, heavy load through all three nodes for a while, counting
// elections (false ones: nothing failed).
//
// It is a measurement, not a check, and runs only when asked:
//
//	TALLY_FAILOVER_ROUNDS=5 TALLY_FAILOVER_LOAD_SECONDS=60 go test ./e2e -run TestFailoverTimes -v -timeout 30m
func TestFailoverTimes(t *testing.T) {
	rounds, _ := strconv.Atoi(os.Getenv("TALLY_FAILOVER_ROUNDS"))
	loadSecs, _ := strconv.Atoi(os.Getenv("TALLY_FAILOVER_LOAD_SECONDS"))
	if rounds <= 0 && loadSecs <= 0 {
		t.Skip("a measurement: set TALLY_FAILOVER_ROUNDS (rounds per fault kind) and/or TALLY_FAILOVER_LOAD_SECONDS to run it")
	}
	// TALLY_FAILOVER_RAFT="heartbeat,election,lease" (e.g. "1s,1s,500ms")
	// measures other Raft timeouts than the testnet's.
	var edit func(int, *tnode.Config)
	if spec := os.Getenv("TALLY_FAILOVER_RAFT"); spec != "" {
		var ds [3]time.Duration
		parts := strings.Split(spec, ",")
		for i := range ds {
			var err error
			if len(parts) != 3 {
				t.Fatalf("TALLY_FAILOVER_RAFT=%q: want heartbeat,election,lease", spec)
			}
			if ds[i], err = time.ParseDuration(parts[i]); err != nil {
				t.Fatalf("TALLY_FAILOVER_RAFT=%q: %v", spec, err)
			}
		}
		edit = func(_ int, cfg *tnode.Config) {
			cfg.Raft.HeartbeatTimeout, cfg.Raft.ElectionTimeout, cfg.Raft.LeaderLeaseTimeout = tnode.Duration(ds[0]), tnode.Duration(ds[1]), tnode.Duration(ds[2])
		}
	}
	ctx := context.Background()
	c := newTestCluster(t, 3, edit)
	if cfg, err := tnode.LoadConfig(c.specs[0].Config); err == nil {
		t.Logf("raft heartbeat-timeout %v, election-timeout %v, leader-lease-timeout %v", time.Duration(cfg.Raft.HeartbeatTimeout),
			time.Duration(cfg.Raft.ElectionTimeout), time.Duration(cfg.Raft.LeaderLeaseTimeout))
	}
	c.startAll()
	probeKeys := clusterDevKeys(t, 0, 4)
	probeNonces := make([]uint64, len(probeKeys))
	recipients := randomAddrs(20)

	clientKeys := clusterDevKeys(t, 14, 16)
	results := make(map[string][]time.Duration)
	clientResults := make(map[string][]time.Duration)
	kinds := faultKinds
	if k := os.Getenv("TALLY_FAILOVER_KINDS"); k != "" {
		kinds = strings.Split(k, ",") // e.g. "kill,pause"
	}
	for _, kind := range kinds {
		for r := range rounds {
			leader, _ := c.waitLeader(ctx, allThree, "", 60*time.Second)
			followers := others(allThree, leader)
			p := startProbes(c, probeKeys, probeNonces, followers, recipients)
			client, err := wallet.DialEndpoints(ctx, c.clientURLs(leader), wallet.DefaultOptions())
			if err != nil {
				t.Fatal(err)
			}
			clientNonces := make([]uint64, len(clientKeys))
			for k, key := range clientKeys {
				clientNonces[k] = c.nonceOf(ctx, leader, key.Address())
			}
			cs := startClientSenders(c.chainID, client, clientKeys, clientNonces, 0, recipients)
			time.Sleep(1500 * time.Millisecond)
			if p.seenCount() == 0 || !cs.receiptedEach(1) {
				p.stop()
				cs.stop()
				c.fatal("round %s/%d: no probe or client transfer committed before the fault (%s)", kind, r, cs.describe())
			}
			faultAt := time.Now()
			switch kind {
			case "kill":
				c.kill(leader)
			case "pause":
				if err := c.procs[leader].cmd.Process.Signal(syscall.SIGSTOP); err != nil {
					t.Fatal(err)
				}
			case "isolate":
				c.isolate(ctx, leader, followers)
			}
			resumed, ok := p.firstCommitAfter(faultAt, 30*time.Second)
			p.stop()
			if !ok {
				cs.stop()
				c.fatal("round %s/%d: no transfer submitted after the fault was committed within 30 s", kind, r)
			}
			clientAt, cok := cs.firstWriteAfter(faultAt, 30*time.Second)
			cs.stop()
			client.Close()
			if err := cs.firstError(); err != nil && !errors.Is(err, context.Canceled) {
				c.fatal("round %s/%d: the failing-over client surfaced an error: %v", kind, r, err)
			}
			if !cok {
				c.fatal("round %s/%d: the failing-over client completed no write within 30 s of the fault (%s)", kind, r, cs.describe())
			}
			took := resumed.Sub(faultAt)
			results[kind] = append(results[kind], took)
			clientTook := clientAt.Sub(faultAt)
			clientResults[kind] = append(clientResults[kind], clientTook)
			newLeader, _ := c.waitLeader(ctx, followers, c.specs[leader].PeerID, 30*time.Second)
			t.Logf("FAILOVER %s round %d: leader node %d, writes resumed after %v (new leader node %d); the client on the leader wrote again after %v",
				kind, r+1, leader, took.Round(time.Millisecond), newLeader, clientTook.Round(time.Millisecond))
			if took > 2*time.Second {
				// What the survivors did meanwhile.
				for _, i := range followers {
					c.logLines(i, faultAt.Add(-time.Second), resumed, failoverLogKeys)
				}
			}
			switch kind {
			case "kill":
				c.start(leader)
			case "pause":
				if err := c.procs[leader].cmd.Process.Signal(syscall.SIGCONT); err != nil {
					t.Fatal(err)
				}
			case "isolate":
				c.heal(ctx, leader, followers)
			}
			c.waitConverged(ctx, allThree, 60*time.Second)
			time.Sleep(time.Second)
		}
	}
	for _, kind := range faultKinds {
		for _, what := range []struct {
			label string
			ds    []time.Duration
		}{{"SUMMARY", results[kind]}, {"CLIENT ", clientResults[kind]}} {
			if len(what.ds) == 0 {
				continue
			}
			ds := slices.Clone(what.ds)
			slices.Sort(ds)
			t.Logf("%s %-7s n=%d min %v median %v max %v all %v", what.label, kind, len(ds), ds[0].Round(time.Millisecond),
				ds[len(ds)/2].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond), roundAll(what.ds))
		}
	}

	// Elections under load, nothing failing.
	if loadSecs <= 0 {
		return
	}
	c.waitLeader(ctx, allThree, "", 60*time.Second)
	termOf := func() uint64 { return uint64(c.mustInfo(ctx, 0).Term) }
	term0 := termOf()
	loadKeys := clusterDevKeys(t, 4, 10)
	var acked atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for s, k := range loadKeys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nonce := c.nonceOf(ctx, 0, k.Address())
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				batch := signTransfers(t, c.chainID, []*crypto.PrivateKey{k}, []uint64{nonce}, 100, recipients)[0]
				errs, err := c.sendBatch(ctx, (s+i)%3, batch)
				if err != nil {
					time.Sleep(50 * time.Millisecond)
					nonce = c.nonceOf(ctx, (s+i)%3, k.Address())
					continue
				}
				ok := 0
				for _, e := range errs {
					if e == nil {
						ok++
					}
				}
				acked.Add(int64(ok))
				if ok < len(batch) {
					time.Sleep(50 * time.Millisecond)
					nonce = c.nonceOf(ctx, (s+i)%3, k.Address())
					continue
				}
				nonce += uint64(len(batch))
			}
		}()
	}
	start := time.Now()
	var terms []uint64
	for time.Since(start) < time.Duration(loadSecs)*time.Second {
		if tm := termOf(); len(terms) == 0 || terms[len(terms)-1] != tm {
			terms = append(terms, tm)
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	elapsed := time.Since(start)
	t.Logf("LOAD %v through all three nodes: %d transfers acknowledged (%.0f/s); Raft term %d at the start, %d at the end: %d elections (terms seen %v)",
		elapsed.Round(time.Second), acked.Load(), float64(acked.Load())/elapsed.Seconds(), term0, termOf(), termOf()-term0, terms)
	// Why each election happened, from the nodes' logs.
	for i := range c.specs {
		c.logLines(i, start, time.Now(), electionLogKeys)
	}
}

// electionLogKeys pick out the log lines that explain an election.
var electionLogKeys = []string{"heartbeat timeout reached", "stepping down", "became leader", "lost leadership", "pre-vote", "election"}

// failoverLogKeys add what delays writes after an election.
var failoverLogKeys = append([]string{"forward", "proposal", "barrier", "raft:", "holding", "replicat"}, electionLogKeys...)

// logLines logs the lines of node i's current log between from and to
// that contain one of keys.
func (c *testCluster) logLines(i int, from, to time.Time, keys []string) {
	for _, line := range strings.Split(c.log(i), "\n") {
		ts, ok := logTime(line)
		if !ok || ts.Before(from) || ts.After(to) {
			continue
		}
		for _, key := range keys {
			if strings.Contains(line, key) {
				c.t.Logf("node %d: %s", i, line)
				break
			}
		}
	}
}

// logTime parses the time= field of a node's log line.
func logTime(line string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(line, "time=")
	if !ok || len(rest) < 24 {
		return time.Time{}, false
	}
	end := strings.IndexByte(rest, ' ')
	if end < 0 {
		return time.Time{}, false
	}
	ts, err := time.Parse(time.RFC3339Nano, rest[:end])
	return ts, err == nil
}

func roundAll(ds []time.Duration) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Round(10 * time.Millisecond).String()
	}
	return out
}

// probes are senders that submit transfers one after another (each after
// the previous one was acknowledged, not receipted) through a set of nodes,
// and a watcher noting when each transfer shows up in a block on the first
// of them.
type probes struct {
	c      *testCluster
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	submitted map[common.Hash]time.Time // when the successful submission started
	seen      map[common.Hash]time.Time // when the watcher saw it in a block
}

func startProbes(c *testCluster, keys []*crypto.PrivateKey, nonces []uint64, targets []int, to []common.Address) *probes {
	ctx, cancel := context.WithCancel(context.Background())
	p := &probes{c: c, cancel: cancel, submitted: map[common.Hash]time.Time{}, seen: map[common.Hash]time.Time{}}
	for s, k := range keys {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				tx, err := makeTransfer(i, c.chainID, k, nonces[s], to[i%len(to)], big.NewInt(1))
				if err != nil {
					panic(err)
				}
				raw, _ := tx.MarshalBinary()
				at := time.Now()
				var h common.Hash
				err = c.call(ctx, targets[(s+i)%len(targets)], &h, "eth_sendRawTransaction", hexutil.Bytes(raw))
				if err != nil && !strings.Contains(err.Error(), "already known") {
					time.Sleep(20 * time.Millisecond)
					continue // the same nonce again
				}
				p.mu.Lock()
				p.submitted[tx.Hash()] = at
				p.mu.Unlock()
				nonces[s]++
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		obs := targets[0]
		last, err := c.height(ctx, obs)
		for err != nil && ctx.Err() == nil {
			last, err = c.height(ctx, obs)
		}
		for ctx.Err() == nil {
			h, err := c.height(ctx, obs)
			if err == nil && h > last {
				now := time.Now()
				bs, err := c.blocks(ctx, obs, last+1, h)
				if err == nil {
					p.mu.Lock()
					for _, b := range bs {
						for _, tx := range b.Transactions {
							p.seen[tx] = now
						}
					}
					p.mu.Unlock()
					last = h
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return p
}

func (p *probes) stop() { p.cancel(); p.wg.Wait() }

func (p *probes) seenCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.seen)
}

// firstCommitAfter waits (up to timeout) for a transfer submitted after t
// to be seen in a block, and returns when the first one was.
func (p *probes) firstCommitAfter(t time.Time, timeout time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		var first time.Time
		for h, at := range p.submitted {
			if at.Before(t) {
				continue
			}
			if s, ok := p.seen[h]; ok && (first.IsZero() || s.Before(first)) {
				first = s
			}
		}
		p.mu.Unlock()
		if !first.IsZero() {
			return first, true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Time{}, false
}
