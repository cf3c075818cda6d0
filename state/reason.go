package state

import (
	"strings"
	"unicode/utf8"
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
