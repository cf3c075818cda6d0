// Package monitor is the detective half of risk control (docs/design.md
// decision 12), run as `tally monitor --config monitor.toml`
// (docs/monitor.md): a service that follows the chain from any node,
// judges every block with detective rules, keeps the alerts in a review
// queue, notifies a wallet provider by signed webhook and, when a reviewer
// escalates an alert, freezes the account through the compliance key with
// the reason monitor:<alert id>:<rule>.
//
// It owns:
//
//   - Config: monitor.toml, decoded strictly (package config).
//   - Store: its own Pebble database. The cursor (next height and the
//     hash of the block before it), the alerts, the accounts' profiles
//     (mean payment per asset, last payment, recent payments, receipts
//     and failures), the payee pairs seen, the action log and the
//     webhook outbox. The blocks of one follower step, everything they
//     change and the cursor past them are one synced batch: a crash keeps
//     all or none, so no block is missed or counted twice.
//   - the follower (follow.go, block.go): tally_getRawBlocks from the
//     cursor, each block checked to continue the hash chain from the
//     cursor and to match its header's transaction and receipt roots,
//     then decoded into transfers (Transfer logs of the asset facades,
//     plain native transfers) and failed transactions.
//   - the rules (rules.go): large amount against the account's own mean,
//     structuring just under a threshold, rapid in-and-out, a new payee
//     receiving a large amount, a dormant account paying again, many
//     senders to a new account, a burst of failed transactions. Each
//     firing names its rule and its numbers; an unresolved alert of the
//     same rule and account absorbs later firings.
//   - the review queue (queue.go, api.go): acknowledge, dismiss with a
//     reason, escalate; over an HTTP API with operators' bearer tokens;
//     every action, refused ones too, in an append-only hash-chained log
//     (package oplog) written in the batch of its effect.
//   - the escalation (escalate.go): the freeze signed, recorded, sent and
//     confirmed, resumed after a crash from what was recorded.
//   - the webhook outbox (webhook.go): deliveries written in the batch of
//     their event, POSTed with an HMAC-SHA256 signature over timestamp
//     and body (package crypto/signature), a stable delivery id, retried
//     with capped exponential backoff.
//   - metrics.go: Prometheus metrics (alerts by rule and severity,
//     unresolved alerts and the oldest one's age, throughput).
//
// It reads the chain only through a node's JSON-RPC (wallet's client, with
// failover between endpoints) and never imports the node.
package monitor
