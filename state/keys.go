package state

import (
	"encoding/binary"
	"math/big"

	"github.com/ethereum/go-ethereum/common"
)

// Key layout of the state. Every state key starts with StatePrefix: the
// state root commits to every write under that prefix, and nothing else is
// under it. Storage (package store) keeps its own records (blocks,
// indexes, past state) under other first bytes. The layout is a format:
// every node and every audit reads the same bytes.
const (
	StatePrefix        = "s"
	NoncePrefix        = "sn" // + address → uint64 big-endian
	BalancePrefix      = "sb" // + asset uint32 + address → big-endian magnitude
	ValidatorPrefix    = "sv" // + address → compressed public key (33 bytes) ++ name
	RulesKey           = "sr" // → genesis.Rules canonical JSON
	RulesHistoryPrefix = "sh" // + height uint64 → the rules in force from that height (written when they change)
	ProposalPrefix     = "sg" // + id uint64 → RLP Proposal
	ProposalSeqKey     = "sj" // → last proposal id uint64
	ScheduleKey        = "sx" // → RLP []Scheduled: approved changes not yet in effect
	ValidatorListKey   = "sl" // → RLP []common.Address: the validators, sorted
	// ValidatorHistoryPrefix + height uint64 → RLP []common.Address: the
	// validator set in force from that height (written when it changes).
	ValidatorHistoryPrefix = "sL"
	AccountPrefix          = "sk" // + address → tier byte ++ flags byte (1 frozen, 2 suspended, 4 watch-listed)
	OutflowPrefix          = "so" // + asset + address → UTC day uint64 ++ amount magnitude
	SupplyPrefix           = "ss" // + asset → RLP supply{Minted, Burned, Escrow}
	// BankRefPrefix + bankRef → asset uint32 ++ block number uint64 ++
	// RLP{bank, holder, amount, reversed} (12 bytes only in records written
	// before mints recorded their detail).
	BankRefPrefix   = "sm"
	IssuancePrefix  = "si" // + asset + bank → RLP Issuance{Minted, Burned}
	SuccessorPrefix = "sR" // + asset + old bank key → the key that replaced it
	WithdrawPrefix  = "sw" // + id uint64 → RLP Withdrawal
	WithdrawSeqKey  = "sq" // → last withdrawal id uint64
	PaymentPrefix   = "sp" // + asset + merchant + ref + payer → RLP payment{Paid, Refunded}
	AllowancePrefix = "sa" // + asset + owner + spender → amount magnitude
	OfferPrefix     = "sf" // + id uint64 → RLP Offer
	OfferSeqKey     = "sF" // → last offer id uint64
	// Risk control (risk.go, DESIGN.md decision 14).
	VelocityPrefix   = "sV" // + asset + address → RLP Velocity (5-minute and 1-hour buckets)
	SuspensionPrefix = "sU" // + address → RLP Suspension (the account record flags it)
	WatchPrefix      = "sW" // + address → RLP WatchEntry (the account record flags it)
	// Payments people trust (confirm.go, dispute.go, docs/payments.md).
	ConfirmPrefix     = "sc" // + address → RLP ConfirmSettings (the account record flags it)
	HeldPrefix        = "sP" // + id uint64 → RLP HeldPayment
	HeldSeqKey        = "sQ" // → last held payment id uint64
	HeldExpiryPrefix  = "sE" // + minute of block time uint64 → RLP []uint64: held payment ids expiring in it
	HeldCursorKey     = "sT" // → last minute swept uint64 ++ payments pending uint64
	DisputePrefix     = "sd" // + id uint64 → RLP Dispute
	DisputeSeqKey     = "sD" // → last dispute id uint64
	OpenDisputePrefix = "sO" // + asset + merchant + ref + payer → id uint64 of the payment's active dispute
)

var (
	prefixState            = StatePrefix[0]
	prefixNonce            = []byte(NoncePrefix)
	prefixBalance          = []byte(BalancePrefix)
	prefixValidator        = []byte(ValidatorPrefix)
	keyRules               = []byte(RulesKey)
	prefixRulesHistory     = []byte(RulesHistoryPrefix)
	prefixProposal         = []byte(ProposalPrefix)
	keyProposalSeq         = []byte(ProposalSeqKey)
	keySchedule            = []byte(ScheduleKey)
	keyValidatorList       = []byte(ValidatorListKey)
	prefixValidatorHistory = []byte(ValidatorHistoryPrefix)
	prefixAccount          = []byte(AccountPrefix)
	prefixOutflow          = []byte(OutflowPrefix)
	prefixSupply           = []byte(SupplyPrefix)
	prefixBankRef          = []byte(BankRefPrefix)
	prefixIssuance         = []byte(IssuancePrefix)
	prefixSuccessor        = []byte(SuccessorPrefix)
	prefixWithdraw         = []byte(WithdrawPrefix)
	keyWithdrawSeq         = []byte(WithdrawSeqKey)
	prefixPayment          = []byte(PaymentPrefix)
	prefixAllowance        = []byte(AllowancePrefix)
	prefixOffer            = []byte(OfferPrefix)
	keyOfferSeq            = []byte(OfferSeqKey)
	prefixVelocity         = []byte(VelocityPrefix)
	prefixSuspension       = []byte(SuspensionPrefix)
	prefixWatch            = []byte(WatchPrefix)
	prefixConfirm          = []byte(ConfirmPrefix)
	prefixHeld             = []byte(HeldPrefix)
	keyHeldSeq             = []byte(HeldSeqKey)
	prefixHeldExpiry       = []byte(HeldExpiryPrefix)
	keyHeldCursor          = []byte(HeldCursorKey)
	prefixDispute          = []byte(DisputePrefix)
	keyDisputeSeq          = []byte(DisputeSeqKey)
	prefixOpenDispute      = []byte(OpenDisputePrefix)
)

// NativeAsset is the asset id of the native currency.
const NativeAsset uint32 = 0

func nonceKey(a common.Address) []byte {
	return append(append(make([]byte, 0, 22), prefixNonce...), a[:]...)
}

func balanceKey(asset uint32, a common.Address) []byte {
	k := make([]byte, 0, 26)
	k = append(k, prefixBalance...)
	k = binary.BigEndian.AppendUint32(k, asset)
	return append(k, a[:]...)
}

// key concatenates a prefix and parts into a new key.
func key(prefix []byte, parts ...[]byte) []byte {
	n := len(prefix)
	for _, p := range parts {
		n += len(p)
	}
	k := make([]byte, 0, n)
	k = append(k, prefix...)
	for _, p := range parts {
		k = append(k, p...)
	}
	return k
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func validatorKey(a common.Address) []byte {
	return append(append(make([]byte, 0, 22), prefixValidator...), a[:]...)
}

// ValidatorsChanged reports whether o writes the validator records (the
// set, its keys or names): storage reloads the set it keeps in memory.
func (o *Overlay) ValidatorsChanged() bool { return o.touches(prefixValidator) }

// ValidatorHistoryChanged reports whether o records a new validator set in
// force from some height.
func (o *Overlay) ValidatorHistoryChanged() bool { return o.touches(prefixValidatorHistory) }

// ReadNonce returns a's nonce in r.
func ReadNonce(r Reader, a common.Address) (uint64, error) { return readNonce(r, a) }

// ReadBalance returns a's balance of asset in r; the caller owns it.
func ReadBalance(r Reader, asset uint32, a common.Address) (*big.Int, error) {
	return readBalance(r, asset, a)
}
