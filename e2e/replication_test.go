package e2e

import (
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/wallet"
)

// TestReplicationAnswerAgreesWithPool: the leader answers its client only
// once another validator holds the transaction, and a follower checks a
// relayed copy against its own applied state, which may be a block or two
// behind the leader's. A sender whose KYC tier was raised in the block the
// leader has just applied sends at once to the leader: the leader admits
// it, both followers (not yet at that block) refuse the copy — "sender is
// not KYC-verified". The answer must agree with what happens to the
// transaction: a hash means it is included, an error means it is not (and
// is not left pending on the leader to be included later behind its
// client's back).
func TestReplicationAnswerAgreesWithPool(t *testing.T) {
	skipShort(t)
	ctx, c, leader := startThree(t, 3*time.Minute)

	funder := clusterDevKeys(t, 0, 1)[0]
	officer, err := genesis.DevKey(genesis.DevComplianceIndex)
	if err != nil {
		t.Fatal(err)
	}
	funderNonce := c.nonceOf(ctx, leader, funder.Address())
	officerNonce := c.nonceOf(ctx, leader, officer.Address())
	send := func(tx *types.Transaction) error {
		raw, _ := tx.MarshalBinary()
		var h common.Hash
		return c.call(ctx, leader, &h, "eth_sendRawTransaction", hexutil.Bytes(raw))
	}
	// receiptOn polls node i for hash every millisecond.
	receiptOn := func(i int, hash common.Hash) {
		deadline := time.Now().Add(30 * time.Second)
		for {
			var r *types.Receipt
			if err := c.call(ctx, i, &r, "eth_getTransactionReceipt", hash); err == nil && r != nil {
				if r.Status != types.ReceiptStatusSuccessful {
					t.Fatalf("tx %s failed on node %d", hash, i)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no receipt for %s on node %d within 30 s", hash, i)
			}
			time.Sleep(time.Millisecond)
		}
	}
	type trial struct {
		tx  *types.Transaction
		err error
	}
	var trials []trial
	to := randomAddrs(1)[0]
	const rounds = 20
	for r := range rounds {
		k, err := crypto.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		fund, err := makeTransfer(0, c.chainID, funder, funderNonce, k.Address(), new(big.Int).Exp(big.NewInt(10), big.NewInt(19), nil))
		if err != nil {
			t.Fatal(err)
		}
		funderNonce++
		if err := send(fund); err != nil {
			t.Fatalf("round %d: fund: %v", r, err)
		}
		for _, i := range allThree {
			receiptOn(i, fund.Hash())
		}
		op, err := wallet.ComplianceOp("setKycTier", k.Address(), uint8(genesis.DevTierBasic), "test")
		if err != nil {
			t.Fatal(err)
		}
		kyc, err := wallet.SignOp(officer, c.chainID, officerNonce, op)
		if err != nil {
			t.Fatal(err)
		}
		officerNonce++
		if err := send(kyc); err != nil {
			t.Fatalf("round %d: setKycTier: %v", r, err)
		}
		receiptOn(leader, kyc.Hash())
		// The leader has applied the tier; the followers may not have yet.
		pay, err := makeTransfer(r, c.chainID, k, 0, to, big.NewInt(1))
		if err != nil {
			t.Fatal(err)
		}
		trials = append(trials, trial{tx: pay, err: send(pay)})
	}

	// Let everything pending be included, then compare.
	time.Sleep(3 * time.Second)
	c.waitConverged(ctx, allThree, 30*time.Second)
	refused := 0
	for r, tr := range trials {
		var got *types.Receipt
		if err := c.call(ctx, leader, &got, "eth_getTransactionReceipt", tr.tx.Hash()); err != nil {
			t.Fatal(err)
		}
		var pending *struct {
			Hash common.Hash `json:"hash"`
		}
		if err := c.call(ctx, leader, &pending, "eth_getTransactionByHash", tr.tx.Hash()); err != nil {
			t.Fatal(err)
		}
		switch {
		case tr.err == nil && got == nil:
			t.Errorf("round %d: answered with its hash, never included", r)
		case tr.err != nil && got != nil:
			t.Errorf("round %d: answered %q, and included in block %v all the same", r, tr.err, got.BlockNumber)
		case tr.err != nil && pending != nil:
			t.Errorf("round %d: answered %q, and still known to the leader", r, tr.err)
		}
		if tr.err != nil {
			refused++
			if !strings.Contains(tr.err.Error(), "no other validator") {
				t.Logf("round %d: %v", r, tr.err)
			}
		}
	}
	t.Logf("%d rounds: %d answered with an error", rounds, refused)
}
