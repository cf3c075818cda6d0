package store

import (
	"encoding/binary"

	"github.com/ethereum/go-ethereum/common"
	"github.com/tally-ledger/tally/state"
)

// Key layout of the node's records beside the state (whose keys, all under
// state.StatePrefix, package state defines): blocks, receipts, indexes,
// the head, past state. None starts with state.StatePrefix, so no state
// root covers them.
var (
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
	// + number + index uint32 → the failure reason of a status-0 transaction (state.FailureReason), part of its receipt record
	prefixReason = []byte("E")
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

// History index direction flags.
const (
	HistorySent     byte = 1
	HistoryReceived byte = 2
)

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

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

var (
	prefixState            = []byte(state.StatePrefix)
	prefixBalance          = []byte(state.BalancePrefix)
	prefixValidator        = []byte(state.ValidatorPrefix)
	prefixValidatorHistory = []byte(state.ValidatorHistoryPrefix)
	prefixRulesHistory     = []byte(state.RulesHistoryPrefix)
)
