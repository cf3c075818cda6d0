package store

import (
	"errors"
	"fmt"
	"testing"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
)

// newReasonHarness is an opHarness whose DB keeps the state of the last
// history blocks.
func newReasonHarness(t *testing.T, history uint64) *opHarness {
	t.Helper()
	db, err := Open(t.TempDir(), Options{NoSync: true, HistoryBlocks: history})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	g := genesis.Dev()
	if err := db.InitGenesis(g); err != nil {
		t.Fatal(err)
	}
	return &opHarness{
		t: t, db: db, val: keyOf(genesis.DevValidatorIndex), chainID: g.ChainIDBig(),
		senders: chain.NewSenderCache(chain.NewSigner(g.ChainIDBig()), 4096),
		nonces:  map[common.Address]uint64{}, t0: g.TimestampMs,
	}
}

// TestTxReason: the reason of a failed transaction is kept with its
// receipt and served by TxReason; a success has none; an unknown
// transaction is not found; a failure in a block applied before reasons
// were kept (its record removed here) is recomputed from its parent's
// state while the node keeps it, and unavailable after.
func TestTxReason(t *testing.T) {
	h := newReasonHarness(t, 3)
	fresh := who(idNew) // tier 0: at most 1000 CNY
	overLimit := fmt.Sprintf("balance of %s would be 1001.00 CNY, over the maximum 1000.00 CNY of tier 0", fresh)
	res := h.block(0,
		fundCNY(idNew, cny(400)),
		fundCNY(idNew, cny(601)).failing(overLimit),
		txFreeze(idCarol),
		valueTx(idCarol, who(idAlice), cny(1)).failing(fmt.Sprintf("account %s is frozen", who(idCarol))),
	)
	n := res[0].blk.Number
	want := []string{"", overLimit, "", fmt.Sprintf("account %s is frozen", who(idCarol))}
	for i, r := range res {
		if r.reason != want[i] {
			t.Fatalf("tx %d (%s): execution's reason %q, want %q", i, r.step, r.reason, want[i])
		}
		got, err := h.db.TxReason(r.tx.Hash(), h.senders)
		if err != nil || got != want[i] {
			t.Errorf("TxReason of tx %d (%s) = %q, %v; want %q", i, r.step, got, err, want[i])
		}
	}
	if _, err := h.db.TxReason(common.Hash{1}, h.senders); !errors.Is(err, ErrNotFound) {
		t.Errorf("TxReason of an unknown tx: %v, want ErrNotFound", err)
	}

	// As if the block had been applied before reasons were kept.
	for _, i := range []uint32{1, 3} {
		if err := h.db.pdb.Delete(reasonKey(n, i), nil); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := h.db.KeptReason(n, i); ok || err != nil {
			t.Fatalf("reason of tx %d still kept (%v)", i, err)
		}
	}
	for _, i := range []int{1, 3} {
		got, err := h.db.TxReason(res[i].tx.Hash(), h.senders)
		if err != nil || got != want[i] {
			t.Errorf("recomputed reason of tx %d = %q, %v; want %q", i, got, err, want[i])
		}
	}
	// Three more blocks: the parent of block n leaves the window of 3.
	for range 3 {
		h.block(0, fundCNY(idNew, cny(1)))
	}
	if _, err := h.db.TxReason(res[1].tx.Hash(), h.senders); !errors.Is(err, ErrReasonUnavailable) {
		t.Errorf("reason of an old block out of the window: %v, want ErrReasonUnavailable", err)
	}
	if got, err := h.db.TxReason(res[0].tx.Hash(), h.senders); err != nil || got != "" {
		t.Errorf("old success: %q, %v", got, err)
	}
}
