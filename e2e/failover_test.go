package e2e

// Failover tests: what a client of a crashed leader keeps, and (gated by
// TALLY_FAILOVER_ROUNDS) how long writes stop after a leader fault.

import (
	"context"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	tnode "github.com/tally-ledger/tally/node"
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
