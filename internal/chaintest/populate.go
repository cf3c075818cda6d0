package chaintest

import (
	"math/big"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
)

// Dev roles used by Populate.
const (
	BankA      = genesis.DevBankAIndex
	BankB      = genesis.DevBankBIndex
	Compliance = genesis.DevComplianceIndex
	Gov1       = genesis.DevGovernanceIndex
	Gov2       = genesis.DevGovernanceIndex + 1
	// Newcomer is an account that appears on the chain only through
	// Populate (tier raised from 0).
	Newcomer = 500
)

// Asset ids of the dev genesis.
const (
	CNY uint32 = 0
	HKD uint32 = 1
)

// CNYUnits returns n whole CNY in base units (18 decimals).
func CNYUnits(n int64) *big.Int {
	return new(big.Int).Mul(big.NewInt(n), new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil))
}

// Ref returns a 32-byte reference from a string.
func Ref(s string) common.Hash { return ethcrypto.Keccak256Hash([]byte(s)) }

// Scenario names the interesting transactions Populate put on the chain.
type Scenario struct {
	Transfer      common.Hash // a plain native transfer
	Payment       common.Hash // a transferWithReference in HKD
	MintA, MintB  common.Hash // bank A mints CNY, bank B mints HKD
	MintBlock     uint64      // the block of MintA
	Settled       common.Hash // settleWithdrawal of withdrawal 1
	Refunded      common.Hash // refundWithdrawal of withdrawal 2
	Returned      common.Hash // returnWithdrawal of withdrawal 1
	Reversed      common.Hash // reverseMint of MintA
	Failed        common.Hash // a status-0 transaction (to a frozen account)
	Approval      common.Hash // the vote approving the new validator
	ValidatorFrom uint64      // first height under the new validator set
	After         common.Hash // a transfer in a block proposed under the new set
}

// Populate appends blocks exercising every kind of operation an auditor
// checks, and a governance change adding AddedValidator. Every block
// before the head is certified when it returns.
func (c *Chain) Populate() Scenario {
	c.T.Helper()
	var s Scenario
	apply := func(status []uint64, txs ...*types.Transaction) {
		c.T.Helper()
		a := c.Apply(txs...)
		for i, r := range a.Receipts {
			if r.Status != status[i] {
				c.T.Fatalf("block %d tx %d (%s): status %d, want %d", a.Block.Number(), i, txs[i].Hash(), r.Status, status[i])
			}
		}
	}
	ok := func(n int) []uint64 {
		out := make([]uint64, n)
		for i := range out {
			out[i] = 1
		}
		return out
	}

	// Plain and token transfers, a payment with a reference.
	t1 := c.Tx(0, Addr(1), CNYUnits(5), nil)
	t2 := c.Asset(2, HKD, "transfer", Addr(3), big.NewInt(12_345))
	t3 := c.Asset(4, HKD, "transferWithReference", Addr(5), big.NewInt(990), Ref("order-42"))
	apply(ok(3), t1, t2, t3)
	s.Transfer, s.Payment = t1.Hash(), t3.Hash()

	// Mints by both banks.
	m1 := c.Asset(BankA, CNY, "mint", Addr(6), CNYUnits(1000), Ref("bank-a/deposit/1"))
	m2 := c.Asset(BankB, HKD, "mint", Addr(7), big.NewInt(50_000), Ref("bank-b/deposit/1"))
	apply(ok(2), m1, m2)
	s.MintA, s.MintB, s.MintBlock = m1.Hash(), m2.Hash(), c.DB.Tip().Head.Number

	// Withdrawals: 1 claimed by bank A and settled, 2 refunded unclaimed
	// with a reason.
	w1 := c.Asset(8, CNY, "requestWithdrawal", CNYUnits(100), Ref("payout/8"))
	w2 := c.Asset(9, CNY, "requestWithdrawal", CNYUnits(200), Ref("payout/9"))
	cl := c.Asset(BankA, CNY, "claimWithdrawal", big.NewInt(1), Ref("order/1"))
	apply(ok(3), w1, w2, cl)
	st := c.Asset(BankA, CNY, "settleWithdrawal", big.NewInt(1))
	rf := c.Asset(BankA, CNY, "refundWithdrawal", big.NewInt(2), "beneficiary account closed")
	apply(ok(2), st, rf)
	s.Settled, s.Refunded = st.Hash(), rf.Hash()

	// Compliance: a newcomer verified, an account frozen (a transfer to it
	// fails with status 0), then unfrozen.
	k1 := c.Call(Compliance, chain.ComplianceAddress, &chain.ComplianceABI, "setKycTier", Addr(Newcomer), uint8(1), "documents verified")
	f1 := c.Call(Compliance, chain.ComplianceAddress, &chain.ComplianceABI, "freeze", Addr(10), "court order 2026/17")
	// The bank edge: withdrawal 1's payout comes back (returned to the
	// holder); bank A's deposit credit is reversed (burned from the holder).
	rt := c.Asset(BankA, CNY, "returnWithdrawal", big.NewInt(1), "AC04 account closed")
	rv := c.Asset(BankA, CNY, "reverseMint", Ref("bank-a/deposit/1"), "credit reversed by the bank")
	apply(ok(4), k1, f1, rt, rv)
	s.Returned, s.Reversed = rt.Hash(), rv.Hash()
	fail := c.Tx(11, Addr(10), CNYUnits(1), nil)
	apply([]uint64{0}, fail)
	s.Failed = fail.Hash()
	u1 := c.Call(Compliance, chain.ComplianceAddress, &chain.ComplianceABI, "unfreeze", Addr(10), "court order lifted")
	fund := c.Tx(12, Addr(Newcomer), CNYUnits(3), nil)
	apply(ok(2), u1, fund)

	// Governance: add a validator (2 of 3 members), effective after the
	// activation delay.
	pub := ethcrypto.CompressPubkey(&Key(AddedValidator).ECDSA().PublicKey)
	p := c.Call(Gov1, chain.GovernanceAddress, &chain.GovernanceABI, "proposeAddValidator", "bank-d", pub)
	apply(ok(1), p)
	v := c.Call(Gov2, chain.GovernanceAddress, &chain.GovernanceABI, "vote", big.NewInt(1), true)
	apply(ok(1), v)
	s.Approval = v.Hash()
	s.ValidatorFrom = c.DB.Tip().Head.Number + uint64(c.Genesis.Governance.ActivationDelay)
	for c.DB.Tip().Head.Number+1 < s.ValidatorFrom {
		apply(nil)
	}
	if !c.DB.IsValidator(Addr(AddedValidator)) {
		c.T.Fatalf("validator %s not added by height %d", Addr(AddedValidator), s.ValidatorFrom)
	}
	// Blocks under the new set (its proposer rotation includes the new validator).
	for i := 0; i < 4; i++ {
		tx := c.Tx(13, Addr(14), big.NewInt(int64(1000+i)), nil)
		apply(ok(1), tx)
		s.After = tx.Hash()
	}
	apply(nil) // certifies the last transfer's block
	return s
}
