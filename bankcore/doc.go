// Package bankcore is a bank core banking system simulator for the Tally
// bank bridge (docs/bridge.md), for tests and demos only: it is what the
// bridge talks to when there is no real bank, and it speaks exactly the
// messages a real core would, so that a bridge tested against it needs no
// adapter for a real one.
//
// The simulator keeps a small ledger: the omnibus account the bridge's
// bank holds customer money in, and the customer accounts money comes from
// and goes to. It
//
//   - books scripted deposits (a script file, or POST /sim/deposits) as
//     credits of the omnibus account and sends each as a camt.054.001.08
//     credit notification to the bridge's /v1/notifications, signed with
//     the X-Tally-Signature HMAC of docs/bridge.md;
//   - accepts the bridge's payout orders (pain.001.001.09, or the bridge's
//     JSON form) on the payout path, verifies their HMAC, reports ACTC at
//     once and ACCP before the outcome, and after a delay books the payout
//     as a debit of the omnibus account and answers with a pain.002.001.10
//     (ACSC), or rejects it (RJCT with a reason code and text) by rule; a
//     re-sent MsgId is taken and rejected with DU01 (group level) while
//     the first send is executed once, as a gateway's duplicate check does;
//   - returns settled payouts (a camt.054 credit with RtrInf), reverses
//     bookings (RvslInd), books batches as one entry with a transaction
//     each, numbers entries per message (NtryRef 1, 2, …) and writes
//     amounts at the currency's ISO 4217 precision;
//   - writes camt.053.001.08 statements of the omnibus account (GET
//     /sim/statement, and a file on exit), the input of tally bridge
//     reconcile;
//   - misbehaves on request (POST /sim/faults): rejects payouts by rule,
//     sends notifications twice, reorders a batch, loses acknowledgements
//     or reports, delays reports, or goes down (503, or connections closed
//     without an answer) for a while; and at random, repeatably, in the
//     seeded random mode ([random], --random-seed).
//
// Every message is parsed and written with package bridge/iso20022, so the
// simulator and the bridge share one reading of the pinned versions. The
// HMAC is implemented here from the specification rather than taken from
// package bridge, so that the bridge's own tests can run the simulator in
// process without an import cycle, and so that the two implementations
// check each other (the tests sign with one and verify with the other).
//
// The ledger lives in memory; with snapshot-file set it is also written,
// as JSON, after every change and read back at start. Ids are counters,
// not random, so a scripted run produces the same messages every time
// (up to the clock). Messages waiting to be delivered to the bridge are
// not part of the snapshot: they are retried while the process lives.
package bankcore
