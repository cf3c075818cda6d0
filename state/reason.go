package state

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
)

// MaxReasonBytes bounds the failure reason kept with a status-0
// transaction's receipt (FailureReason). Execution's reasons are short
// sentences (an address or two and amounts, about 150 bytes at most);
// the bound keeps a reason that quotes its input (an operation's nested
// revert) from growing a block's stored records.
const MaxReasonBytes = 512

// reasonCut marks a reason cut at MaxReasonBytes.
const reasonCut = "…"

// noReason is the text of a revert that gave none; no operation reverts
// without one today, but a kept reason is never empty, so that a status-0
// transaction without a kept reason always means a block applied before
// reasons were kept.
const noReason = "reverted without a reason"

// FailureReason is the text kept and served for a transaction that
// failed at execution with reason (Outcome.Reason): valid UTF-8, never
// empty, at most MaxReasonBytes long, cut at a character boundary with
// "…" marking the cut. It depends on reason's text alone, which execution
// decides from state and block alone, so every node keeps the same text.
func FailureReason(reason error) string {
	s := strings.ToValidUTF8(reason.Error(), "\uFFFD")
	if s == "" {
		return noReason
	}
	if len(s) <= MaxReasonBytes {
		return s
	}
	cut := MaxReasonBytes - len(reasonCut)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + reasonCut
}

// TxReason is the failure reason of the status-0 transaction at Index of
// a block.
type TxReason struct {
	Index  uint32
	Reason string
}

// addReason records out's failure reason, if any, for transaction i.
func (res *Result) addReason(i int, out Outcome) {
	if out.Reason != nil {
		res.Reasons = append(res.Reasons, TxReason{Index: uint32(i), Reason: FailureReason(out.Reason)})
	}
}

// ReasonAt re-executes txs[0..index] of a block, sent by senders, on base
// (the state of the block's parent) in blk, and returns the failure
// reason of txs[index] as execution keeps it (FailureReason), or "" if it
// succeeds. Execution depends on state and block alone, so this is the
// text the block's own execution decided: it serves the reasons of blocks
// applied before reasons were kept.
func ReasonAt(base Reader, blk BlockContext, txs []*types.Transaction, senders []common.Address, index int) (string, error) {
	if index < 0 || index >= len(txs) || len(senders) <= index {
		return "", fmt.Errorf("reason of tx %d: the block has %d transactions, %d senders", index, len(txs), len(senders))
	}
	rules, err := LoadRules(base)
	if err != nil {
		return "", err
	}
	o := NewOverlay(base)
	var out Outcome
	for i, tx := range txs[:index+1] {
		cum := uint64(0)
		if out.Receipt != nil {
			cum = out.Receipt.CumulativeGasUsed
		}
		if out, err = ExecuteTx(o, rules, blk, tx, senders[i], cum); err != nil {
			return "", fmt.Errorf("re-execute block %d tx %d: %w", blk.Number, i, err)
		}
	}
	if out.Reason == nil {
		return "", nil
	}
	return FailureReason(out.Reason), nil
}
