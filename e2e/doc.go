// Package e2e holds Tally's end-to-end tests: they build cmd/tallyd once per
// test run (go build, cgo on) and run it as real operating-system processes
// on the loopback interface only (127.0.0.1, a free port per start, a data
// dir in the test's temp dir), talking to it the way wallets do: over
// JSON-RPC with go-ethereum's ethclient, a client no one here wrote, or with
// raw HTTP requests when the input must be malformed on purpose.
//
// What the tests prove:
//
//   - TestTransfersSurviveKill: 2,000 signed transfers (legacy EIP-155,
//     EIP-2930 and EIP-1559 transactions from 10 dev accounts, submitted
//     concurrently) are all receipted with status 1; balances and nonces are
//     exactly what the transfers imply; every block from 0 to the head
//     re-hashes (ethclient recomputes the header hash from the JSON fields)
//     to the hash the node reports, links to its parent and commits to its
//     transaction list; and after a SIGKILL and a restart on the same data
//     dir no receipted transaction is lost or moved, no block hash or state
//     root changes, and the node still accepts transfers. A clean SIGTERM
//     stop followed by a restart resumes at the same head.
//   - TestBadInputNeverChangesState: malformed JSON, invalid requests,
//     unknown methods, bad parameters, oversized bodies and batches, and raw
//     transactions that must be refused at admission (malformed, wrong chain,
//     unprotected, high-S, bad signature, stale nonce, unfunded, unsupported
//     types) each get a JSON-RPC error with the expected code and a clear
//     message, the node stays up, and the state root, balances and nonces do
//     not change (only empty heartbeat blocks are added).
//
// The package has no non-test code besides this file. Run it with
//
//	go test ./e2e/ -count=1 -v
package e2e
