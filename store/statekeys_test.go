package store

import (
	"math/big"

	"github.com/tally-ledger/tally/state"
)

// The state key layout, as the tests that decode raw state dumps read it.
var (
	prefixNonce     = []byte(state.NoncePrefix)
	prefixAccount   = []byte(state.AccountPrefix)
	prefixOutflow   = []byte(state.OutflowPrefix)
	prefixSupply    = []byte(state.SupplyPrefix)
	prefixBankRef   = []byte(state.BankRefPrefix)
	prefixIssuance  = []byte(state.IssuancePrefix)
	prefixSuccessor = []byte(state.SuccessorPrefix)
	prefixWithdraw  = []byte(state.WithdrawPrefix)
	keyWithdrawSeq  = []byte(state.WithdrawSeqKey)
	prefixPayment   = []byte(state.PaymentPrefix)
	prefixAllowance = []byte(state.AllowancePrefix)
	prefixOffer     = []byte(state.OfferPrefix)
	keyOfferSeq     = []byte(state.OfferSeqKey)
	keyRules        = []byte(state.RulesKey)

	// maxUint256 is what an unlimited allowance or limit reports.
	maxUint256 = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))
)
