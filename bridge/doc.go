// Package bridge is the bank bridge: one issuing bank's link between its
// core banking system and the chain, run as `tally bridge --config
// bridge.toml` (docs/bridge.md is the design it follows). It is the only
// way money enters or leaves the chain, so its one job is exactly once:
// every deposit minted once, every withdrawal paid out once and settled or
// refunded once, through crashes, resends and outages of either side.
//
// It owns:
//
//   - Config: bridge.toml, decoded strictly (an unknown key is an error
//     naming it), relative paths resolved next to the file.
//   - Store: its own Pebble database (format StoreFormat). Deposits keyed
//     by bankRef, the hash of their DepositKey (account, transaction
//     reference, booking date), account links and deposit routes,
//     payouts keyed by withdrawal id, the follower's cursor, a bounded
//     record of refused inputs and per-state counters. Every state change
//     that must survive a crash is one batch committed with fsync.
//   - the reading of ISO 20022 (iso.go, messages.go): one rule, classify,
//     for what a bank status means for a payout (only a transaction-level
//     ACSC or a matching booked debit settles; progress and duplicate
//     rejections decide nothing), deposit keys (DepositRef), batch
//     bookings split per transaction, returns and reversals.
//   - the intake HTTP server: POST /v1/notifications (camt.054 or JSON
//     credit entries), /v1/links (personal_sign account links),
//     /v1/payment-status (pain.002, or camt.054 debit entries), all signed
//     with an HMAC over a timestamp and the body (auth.intake-secret-file;
//     the bridge's orders to the core use auth.order-secret-file);
//     /healthz.
//   - the operator tools (operator.go, oplog.go, auth.go): list, release
//     or return held deposits, list, re-queue or close payouts by hand
//     (through the same outcome rule as a bank status), cancel an
//     unroutable withdrawal; authenticated by operator tokens (never the
//     core's HMAC secrets, one per direction), each action written with
//     its operator and reason to a hash-chained, append-only operator log
//     in the same batch as its effect. /v1/status and /metrics need a
//     token too, or move with the operator endpoints to operator.listen.
//   - metrics.go: Prometheus metrics, among them the ages of the oldest
//     unresolved deposit and payout that deploy/prometheus's alerts use.
//   - the node client: several JSON-RPC endpoints with failover.
//
// and five loops, one goroutine each, every one resuming from the store
// after a crash and working through its records in a fixed order (arrival
// order for deposits, withdrawal id for payouts):
//
//   - outbox: accepted deposits → bankRefUsed? → eth_call the mint → sign
//     with the pending nonce → record the signed transaction (fsync) →
//     send → receipt → minted, or held with the chain's reason. Submitted
//     deposits found at start are looked up by their transaction and
//     re-signed only when no node knows it and the bankRef is unused.
//   - follower: eth_getLogs for WithdrawalRequested from the cursor in
//     bounded ranges; a payout for each holder with a linked account,
//     recorded in the same batch as the cursor. It also reads its bank's
//     WithdrawalSettled/Refunded/Returned logs, so an ordered payout whose
//     outcome the bank reported to another instance of this bank (which
//     closed it on chain) takes the chain's outcome and closes.
//   - payout sender: first claim the withdrawal on chain
//     (claimWithdrawal with this instance's recorded random order id,
//     claim.go); only once the chain shows this bank's claim with that
//     order id, POST the payout's order (pain.001 or JSON) to the core with
//     its stable MsgId/EndToEndId, retrying with backoff. A withdrawal
//     another bank or instance claimed is closed unordered.
//   - closer: for each payout with an outcome, read withdrawal(id) on
//     chain, then settleWithdrawal or refundWithdrawal as the outbox signs;
//     a payout returned after settlement calls returnWithdrawal.
//   - reverser: for each minted deposit the bank reversed, reverseMint
//     (the chain burns it from the wallet when the balance allows; else
//     the deposit is raised to the operator).
//
// The chain enforces uniqueness itself (a bankRef mints once; a withdrawal
// is claimed by one bank and order, and closes once), so the bridge's records only have to make sure nothing is
// forgotten; no sequence of crashes and retries can make anything happen
// twice.
package bridge
