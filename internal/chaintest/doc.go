// Package chaintest builds real chains for tests of the packages that read
// them (audit, proofs, RPC): a dev-like genesis with several validators
// whose keys it holds, blocks built with state.Build and applied with
// store.DB.ApplyBlock on a real Pebble data dir, each carrying commit
// certificates for the blocks before it, and Populate, a chain exercising
// every kind of operation an auditor must check (transfers, mints,
// withdrawals settled and refunded, compliance actions, a governance
// change of the validator set, a status-0 transaction).
//
// It is deterministic: the same calls give the same blocks and hashes. Use
// it only from tests.
package chaintest
