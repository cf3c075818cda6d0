// Package audit is the auditor's side of Tally (DESIGN.md: "a single
// command that takes the genesis file and a node's RPC (or data dir) and
// proves, block by block, …"): Run verifies a chain from genesis (or from a
// trusted checkpoint) to a head and returns a Report, and the offline proof
// checker (proof.go) verifies a single transaction's inclusion.
//
// It owns the report's check names (the Check constants, used in the JSON
// report, tests and docs/audit.md; those of one block are state's Rule
// names), the Source interface with its
// two implementations (OpenDataDir: a node's data dir opened read-only;
// DialRPC: a node's tally_getRawBlocks and tally_stateDigest), and the
// report format.
//
// Main flow of Run:
//
//  1. The source's state digest fixes the head audited (a live node keeps
//     producing blocks); block 0 must be the genesis file's block.
//  2. A fetcher reads raw blocks in batches ahead of the check; workers on
//     every core decode them and recover every transaction's sender and the
//     header's seal signer.
//  3. One goroutine takes the blocks in order and applies the rules of
//     block validity, state.CheckBlock (limits, link, header shape, time,
//     history root, proposer from the validator set replayed from
//     governance, seal, roots, certificates, transactions): the function
//     every node's FSM and the leader's builder call, so the audit fails
//     exactly the blocks the FSM skips, under the same rule names. It
//     replays the block on a scratch state (store.Replay), applies
//     state.CheckExecution and compares the stored receipts and the
//     failure reasons kept with them (receipt-reason); it follows the
//     Minted, MintReversed, WithdrawalClaimed/Settled/Refunded/Returned and
//     compliance events.
//  4. At the end: the supply table (balances + escrow = minted − burned,
//     and minted/burned equal to what the events say), the escrow (every
//     asset's escrow is what its open withdrawals, offers and held
//     payments hold, in the replayed state and a data dir's), and, when the audit
//     reached the source's head, the replayed state against the stored one
//     and, for a data dir, its own records (head, history and its tree
//     nodes, genesis, block-hash and certificate indexes, halt record:
//     records.go) against the blocks; the transaction index is checked on
//     the workers of step 2.
//
// The proof checker requires every validator set change between genesis
// and the certified head, each chained to the one before it by the
// certificate of the block two below it, so a change left out fails.
//
// A failure is recorded once per (height, transaction, check) and the audit
// goes on: each block's state root is checked as keccak(parent *header's*
// root ‖ the block's replayed writes), and the history root over the parent
// hashes the blocks claim, so one tampered block fails once rather than
// every block after it. Only a missing or undecodable block, or a genesis
// mismatch, ends the audit early (nothing after it can be checked).
//
// Memory does not grow with the chain: what the audit needs again of every
// block (its hash, and which block carried its certificate) goes to a
// scratch Pebble database beside the replay's, with the latest
// RecentHashes hashes in memory (index.go); the certified blocks are one
// bit each. What grows with the chain's business events (a bank
// reference per mint, a withdrawal's state) stays in maps.
//
// Errors returned by Run mean the input could not be read (exit 2 in the
// CLI); failed checks are in the Report (exit 1).
package audit
