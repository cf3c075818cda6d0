// Package state is the deterministic state transition: account nonces and
// balances per asset, KYC tiers and freezes, withdrawals, bank references,
// governance and the validator set, and the rules a block must keep. It
// owns no storage: it reads a state through the Reader interface and
// returns its writes in an Overlay; package store commits them to Pebble.
//
// Determinism is an import rule (imports_test.go): the package imports no
// clock, randomness, files, network, storage or logging, and nothing below
// it reaches store, consensus or the network. Execution never iterates a
// map into anything hashed.
//
// The transition of one block (Transition, which store.DB.ApplyBlock, the
// simulator and, through the same rules, the audit run):
//
//	Prepare (check the seal, recover senders) → CheckBlock (limits, link,
//	  header, time, proposer, seal, roots, certificates, transactions)
//	→ Execute every tx on an Overlay over the parent state, then the
//	  block's end (EndBlock): the held payments' expiry cursor moves over
//	  the seconds with nothing due, and the governance changes due take
//	  effect (ApplyScheduled)
//	→ assert supply conservation on the block's writes (O(writes))
//	→ CheckExecution (state root, receipt root, gas used and bloom).
//
// CheckBlock and CheckExecution (validity.go) are the one definition of
// block validity: the FSM, the leader's builder (before it proposes) and
// the audit call them, and Build keeps the limits by construction (it
// fills a block by encoded bytes and gas as well as count). A block that
// breaks a rule comes back as its violations (*Violation names the rule);
// a halting error (ErrConservation, ErrDiverged, ErrBehind) means the
// node's state can no longer be trusted.
//
// The bank edge (bankedge.go, DESIGN.md decision 11): a withdrawal is
// claimed by one issuing bank with one payment order before any order
// leaves a bridge, and only that bank settles, refunds or returns it; a
// bank reverses only its own mints; each bank's outstanding issuance
// (Issuance) is counted and capped by governance; a withdrawal must be a
// whole number of its currency's minor units. Returns mint and reversals
// burn, so conservation stays exact.
//
// Risk control (risk.go, DESIGN.md decisions 12 and 14): velocity caps per
// tier and asset over a rolling hour and day of block time (fixed 5- and
// 60-minute buckets per account and asset, at most 36, pruned as they
// age), the automatic suspension a rule may impose on the sender it
// refuses (a record that stops the account while block time is before its
// end, so it lifts itself; compliance confirms or lifts it), and the
// compliance authority's watch list. The account record flags a
// suspension and a listing, so accounts with neither pay no extra read.
//
// Payments people trust (confirm.go, dispute.go, docs/payments.md,
// DESIGN.md decision 13): an account's confirmation key and per-asset
// thresholds hold a transfer, payment or withdrawal over its threshold in
// escrow until the key confirms it (it then runs under the rules in force
// at confirmation) or rejects it, the sender cancels it, or it expires:
// expirePayments, a transaction anyone may send (the node's keeper does),
// returns what is due with PaymentExpired (an expiry queue of buckets per
// second of block time, O(1) per payment; HeldDue tells a keeper);
// a change of the settings that is not stricter waits a delay unless the
// key approves it. Disputes on payments under an order reference go from
// open to contested, refunded (the merchant's refunds), or upheld or
// dismissed by an issuing bank. Governance changes the times and an
// asset's dispute window (proposeSetPayments, proposeSetDisputeWindow).
// Held escrow counts in Supply.Escrow, and
// EscrowOf lets the audit sum every open escrow record.
//
// The state root is keccak256(parent root || sorted write set): cheap, and
// unchanged by a block that writes no state (DESIGN.md decision 10). The
// key layout (keys.go) is a format shared by every node and the audit.
//
// Overlay is also what the leader's block builder executes on, layered
// over the blocks it has proposed but not yet applied.
package state
