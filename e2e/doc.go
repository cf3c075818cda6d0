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
// Cluster tests (node.WriteTestnet, three tallyd processes talking Raft
// over libp2p on 127.0.0.1):
//
//   - TestClusterTransfersThroughFollower: 3,000 transfers submitted to a
//     follower (forwarded to the leader) are receipted on every node, in the
//     same block, and every height has the same hash and state root everywhere.
//   - TestLeaderCrash: the leader is SIGKILLed under load; a new leader is
//     elected, retrying clients succeed, the old leader catches up after a
//     restart, and every receipted transaction is on every node exactly once.
//   - TestFollowerCatchesUpBySnapshot: a follower stopped while the leader
//     snapshots and compacts its log catches up by installing a snapshot.
//   - TestPartitionFollowerAndLeader: an isolated follower stops, then
//     catches up after healing; an isolated leader is replaced by the
//     majority and serves no receipt while cut off; all nodes converge.
//   - TestAdmittedTxSurvivesLeaderKill: with blocks slower than admissions,
//     the leader is SIGKILLed right after acknowledging 300 transfers sent
//     straight to it; every one is receipted by the survivors (the leader
//     held each on another validator before answering) and the senders'
//     next nonces go through.
//   - TestAdmittedTxSurvivesAllDown: the same, but all three nodes are
//     SIGKILLed and restarted; every acknowledged transfer is receipted on
//     all three (each node that answered for it had it in its pool
//     journal).
//   - TestFailoverTimes (only with TALLY_FAILOVER_ROUNDS set; a
//     measurement, not a check): time from a leader fault (SIGKILL,
//     SIGSTOP, isolation) to the first write submitted after it being
//     committed, per fault kind, and elections under load without faults;
//     the figures are in docs/benchmarks.md.
//   - TestFaultCampaign: seeded rounds of faults (SIGKILL, SIGSTOP or
//     isolation of the leader or a follower, two nodes SIGKILLed, all
//     three SIGKILLed and restarted) under continuous load from six
//     clients that fail over between the three endpoints; per round the
//     time until writes resume; at the end every acknowledged transfer is
//     receipted on every node in the same block exactly once, the chains
//     are identical, supply and balances are what the included transfers
//     make them, and `tally audit --datadir` passes on each node's data.
//     `make test` runs 4 rounds; `make faults ROUNDS=N SEED=S` more
//     (docs/benchmarks.md).
//   - TestObserverJoinsAndLeaves: a non-validator added through the admin API
//     catches up as a non-voter and serves reads; once removed it stops.
//   - TestGovernanceValidatorChanges: governance adds a fourth validator,
//     which becomes a voter and leads after the first leader is killed,
//     then removes it; acknowledged transactions survive and the chains are
//     identical. The chain then audits clean (`tally audit`) by RPC and on
//     a `tally admin checkpoint` copy with the same report, and transfers
//     from before the addition and after the removal prove offline
//     (`tally proof tx`, `tally verify-proof`) across both changes.
//
// Bank bridge tests (`tally bridge` and `tally bankcore-sim` processes in
// front of a three-node cluster):
//
//   - TestBridgeEndToEnd: 200 deposits minted exactly once, 50 payouts
//     settled, 5 rejected and refunded, through duplicates, reorders, the
//     bank core down, the bridge and the leader SIGKILLed; balances, supply
//     and the simulator's ledger agree and reconciliation is clean; the
//     chain audits clean, its supply table matches tally_getSupply, and a
//     deposit and a payout prove offline.
//   - TestBridgeCrash: the bridge SIGKILLed at each named crash point
//     recovers and mints or settles exactly once.
//
// The documents (e2e/docs_test.go):
//
//   - TestDocs: the shell blocks of README.md and docs/ (bridge.md's bank
//     integration walkthrough, cluster.md, audit.md, proofs.md, wallets.md,
//     operations.md, …; TestDocsAllListed keeps every page with one in the
//     list) run as written, in order, in one bash session per document in
//     a network namespace of its own, against the processes the document
//     itself starts; each block exits 0 and shows the output the document
//     shows. Annotations in the markdown (`<!-- docs-test: … -->`,
//     docs/architecture.md) mark background services, saved files, waits
//     and the few skips, each with its reason.
//
// Real client libraries (e2e/js_test.go):
//
//   - TestJSClients: the npm suite in clients/js (ethers v6, viem, wagmi's
//     core, web3.js v4, pinned by its package-lock.json; `npm ci` when node_modules is
//     missing or from another lock file) runs under Node's test runner
//     against tallyd --dev, as wallet apps and dApps use a node: HD accounts
//     from the dev mnemonic, legacy, EIP-2930 and EIP-1559 transfers with
//     their receipts, the ERC-20 facades, transferWithReference events, log
//     queries with topic filters, WebSocket subscriptions, revert reasons
//     and the library's classification of node errors; a dApp page in
//     headless Chromium on an origin http.cors-origins allows reads the
//     chain id and sends a transfer through fetch, one on another origin is
//     refused. Every check must pass; docs/wallets.md lists them.
//
// Operators' monitoring (e2e/dashboard_test.go):
//
//   - TestDashboard: a one-validator chain, a bank bridge and a risk
//     monitor scraped every second by a real Prometheus server (Debian's
//     prometheus package) with the project's alert rules and console:
//     after transfers, deposits, a payout, a refused JSON-RPC call and two
//     monitor alerts (one acknowledged, one escalated to a freeze on
//     chain), every query of the Grafana
//     dashboard returns data (a documented few cannot here) and every
//     legend label is on its series; every rule evaluates without error
//     and none fires; the console page (deploy/prometheus/consoles,
//     generated from the Grafana dashboard by internal/dashconsole) shows
//     every panel, every stat with a value, and Chromium draws every graph
//     under load (TALLY_SCREENSHOTS=DIR saves the screenshots of
//     docs/img/dashboard-*.png); once the node
//     and the bridge stop, TallyNodeDown, TallyNoLeader and
//     TallyBridgeDown become active.
//
// The package has no non-test code besides this file. Run it with
//
//	go test ./e2e/ -count=1 -v
package e2e
