package state

import (
	"encoding/binary"

	"github.com/ethereum/go-ethereum/common"
)

// Key layout of the state database. Keys starting with 's' are state: the
// state root commits to every write under that prefix, and nothing else is
// under it.
var (
	prefixState     = byte('s')
	prefixNonce     = []byte("sn") // + address → uint64 big-endian
	prefixBalance   = []byte("sb") // + asset uint32 + address → big-endian magnitude
	prefixValidator = []byte("sv") // + address → compressed public key (33 bytes) ++ name
	keyRules        = []byte("sr") // → genesis.Rules canonical JSON
	// + height → the rules in force from that height (written when they change)
	prefixRulesHistory = []byte("sh")
	prefixProposal     = []byte("sg") // + id uint64 → RLP Proposal
	keyProposalSeq     = []byte("sj") // → last proposal id uint64
	keySchedule        = []byte("sx") // → RLP []Scheduled: approved changes not yet in effect
	keyValidatorList   = []byte("sl") // → RLP []common.Address: the validators, sorted
	// + height → RLP []common.Address: the validator set in force from that height (written when it changes)
	prefixValidatorHistory = []byte("sL")
	prefixAccount          = []byte("sk") // + address → tier byte ++ frozen byte
	prefixOutflow          = []byte("so") // + asset + address → UTC day uint64 ++ amount magnitude
	prefixSupply           = []byte("ss") // + asset → RLP supply{Minted, Burned, Escrow}
	// + bankRef → asset uint32 ++ block number uint64 ++ RLP{bank, holder, amount, reversed}
	// (12 bytes only in records written before mints recorded their detail)
	prefixBankRef   = []byte("sm")
	prefixIssuance  = []byte("si") // + asset + bank → RLP Issuance{Minted, Burned}
	prefixSuccessor = []byte("sR") // + asset + old bank key → the key that replaced it
	prefixWithdraw  = []byte("sw") // + id uint64 → RLP Withdrawal
	keyWithdrawSeq  = []byte("sq") // → last withdrawal id uint64
	prefixPayment   = []byte("sp") // + asset + merchant + ref + payer → RLP payment{Paid, Refunded}
	prefixAllowance = []byte("sa") // + asset + owner + spender → amount magnitude
	prefixOffer     = []byte("sf") // + id uint64 → RLP Offer
	keyOfferSeq     = []byte("sF") // → last offer id uint64

	keyHead     = []byte("mhead")    // → headRLP
	keyHistory  = []byte("mhistory") // → chain.History
	keyGenesis  = []byte("mgenesis") // → genesis canonical JSON
	keyHalt     = []byte("mhalt")    // → RLP HaltRecord: the node halted (absent when it did not)
	prefixBlock = []byte("B")        // + number → encoded block
	prefixHash  = []byte("H")        // + hash → number
	prefixRcpt  = []byte("R")        // + number → encoded receipts
	prefixTx    = []byte("T")        // + tx hash → number ++ index (uint32)
	prefixAcct  = []byte("A")        // + address + number + index(uint32) → direction flags
	prefixCert  = []byte("C")        // + certified number → number of the block carrying its certificate
	// + level byte + index uint64 → hash of that node of the history tree (chain.History.AppendVisit)
	prefixHistoryNode = []byte("M")

	// Past state (past.go), outside the state prefix so no root sees it.
	// + uint16 len(key) + state key + height uint64 → the key's value before that block (empty: absent)
	prefixPast = []byte("P")
	// + height uint64 → RLP [][]byte: the state keys that block wrote (what pruning deletes)
	prefixPastBlock = []byte("Q")
	// → uint64: the lowest height whose state the records reconstruct
	keyPastFloor = []byte("mpastfloor")
)

// NativeAsset is the asset id of the native currency.
const NativeAsset uint32 = 0

// History index direction flags.
const (
	HistorySent     byte = 1
	HistoryReceived byte = 2
)

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

func numKey(prefix []byte, n uint64) []byte {
	return binary.BigEndian.AppendUint64(append(make([]byte, 0, len(prefix)+8), prefix...), n)
}

func hashKey(prefix []byte, h common.Hash) []byte {
	return append(append(make([]byte, 0, len(prefix)+32), prefix...), h[:]...)
}

func acctKey(a common.Address, n uint64, idx uint32) []byte {
	k := make([]byte, 0, 1+20+8+4)
	k = append(k, prefixAcct...)
	k = append(k, a[:]...)
	k = binary.BigEndian.AppendUint64(k, n)
	return binary.BigEndian.AppendUint32(k, idx)
}

// upperBound returns the smallest key greater than every key with prefix p.
func upperBound(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}
