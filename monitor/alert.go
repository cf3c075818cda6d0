package monitor

import (
	"time"

	"github.com/ethereum/go-ethereum/common"
)

// Rule names (docs/monitor.md, "Rules").
const (
	RuleLargeAmount = "large-amount"
	RuleStructuring = "structuring"
	RuleRapidInOut  = "rapid-in-out"
	RuleNewPayee    = "new-payee"
	RuleDormant     = "dormant"
	RuleManySenders = "many-senders"
	RuleFailedBurst = "failed-burst"
)

// Rules lists every rule, in the order they are judged.
var Rules = []string{RuleLargeAmount, RuleStructuring, RuleRapidInOut, RuleNewPayee, RuleDormant, RuleManySenders, RuleFailedBurst}

// Severity ranks alerts for review.
type Severity string

// Severities.
const (
	SeverityLow    Severity = "low"
	SeverityMedium Severity = "medium"
	SeverityHigh   Severity = "high"
)

// Severities lists them, lowest first.
var Severities = []Severity{SeverityLow, SeverityMedium, SeverityHigh}

// Status is where an alert is in review.
type Status string

// Statuses (docs/monitor.md, "The review queue").
const (
	// StatusOpen: raised, not looked at.
	StatusOpen Status = "open"
	// StatusAcknowledged: someone is looking at it.
	StatusAcknowledged Status = "acknowledged"
	// StatusDismissed: closed with a reason, nothing done.
	StatusDismissed Status = "dismissed"
	// StatusEscalated: closed by freezing the account.
	StatusEscalated Status = "escalated"
)

// Statuses lists the statuses.
var Statuses = []Status{StatusOpen, StatusAcknowledged, StatusDismissed, StatusEscalated}

// Alert is one rule firing for one account. Everything but the review
// fields comes from the blocks alone, so judging the same blocks again
// (after a crash) gives the same alert with the same id.
type Alert struct {
	ID       uint64         `json:"id"`
	Rule     string         `json:"rule"`
	Severity Severity       `json:"severity"`
	Account  common.Address `json:"account"`
	// Asset is the symbol of the asset the rule measured ("" for
	// failed-burst).
	Asset string `json:"asset,omitempty"`
	// Detail is the rule and its numbers, for people: "structuring: 3
	// payments of 45000.00-49990.00 CNY in 24h0m0s, each within 10% below
	// the threshold 50000.00 CNY".
	Detail string `json:"detail"`
	// Numbers are the same numbers for programs (amounts in base units).
	Numbers map[string]string `json:"numbers"`
	// Txs are the transactions that made it fire (queue.max-txs at most).
	Txs []common.Hash `json:"txs"`
	// Height and At are the block where it first fired and its time.
	Height uint64    `json:"height"`
	At     time.Time `json:"at"`
	// Firings counts how often the rule fired for the account while the
	// alert was unresolved (later firings add their transactions);
	// LastHeight is the latest one's block.
	Firings    int    `json:"firings"`
	LastHeight uint64 `json:"lastHeight"`

	// Review.
	Status    Status    `json:"status"`
	By        string    `json:"by,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	UpdatedAt time.Time `json:"updatedAt,omitzero"`
	// Freeze is the escalation's freeze of the account.
	Freeze *Freeze `json:"freeze,omitempty"`
}

// Unresolved reports whether the alert is still in the queue.
func (a *Alert) Unresolved() bool { return a.Status == StatusOpen || a.Status == StatusAcknowledged }

// Freeze is an escalation's freeze of the alert's account through the
// compliance key.
type Freeze struct {
	// Reason is what the freeze says on chain: monitor:<id>:<rule>.
	Reason string `json:"reason"`
	// State is pending (to send), sent (tx known, receipt awaited), done
	// (the account is frozen) or failed (Error says why).
	State string      `json:"state"`
	Tx    common.Hash `json:"tx,omitzero"`
	// Raw is the signed transaction, sent again if no node knows it.
	Raw   rawTx  `json:"raw,omitempty"`
	Error string `json:"error,omitempty"`
}

// Freeze states.
const (
	FreezePending = "pending"
	FreezeSent    = "sent"
	FreezeDone    = "done"
	FreezeFailed  = "failed"
)
