// Package node wires a Tally node together and runs its lifecycle: the
// configuration file, the node key, the state database, the mempool, the
// consensus engine, the JSON-RPC server, metrics and health.
//
// Start order: config → node key → state DB (genesis written or checked) →
// sender cache and mempool → consensus engine (Raft, FSM, builder) → HTTP
// listener serving JSON-RPC at "/", Prometheus metrics at "/metrics" and
// health at "/healthz", within the [http] section's client bounds
// (HTTPConfig.Limits: connection caps and timeouts by rpc.LimitListener and
// rpc.NewHTTPServer, the rest by rpc.NewServer; ws-origins "*" by default
// only on a dev chain, cors-origins "*" only there at all). The mempool
// publishes what it admits to an rpc.PendingFeed (newPendingTransactions). The admin listener (admin_*, behind a bearer token) has its
// own connection cap, admin.max-connections (rpc.NewLimitListener), and
// the [http] read and idle timeouts. Close stops them in reverse order; a restart on the same
// data dir resumes at the same height and state root.
//
// On a networked node the leader reconciles Raft membership to the
// validator set (Membership, membership.go and validators.go) over the
// small MemberNet interface, which the node implements over libp2p and
// the cluster simulator (internal/sim) over its simulated network: both
// run the same reconciler. Admission (admission.go, with the pool
// journal of journal.go on a vfs.FS) is the admission path apart from
// JSON-RPC: admit and replicate on the leader, forward from a follower,
// answer forwarded and relayed batches, re-forward the pool to a new
// leader; a client's JSON-RPC batch of raw transactions, decoded and
// recovered by the rpc server's pipeline, is admitted or forwarded whole
// (Admission.AdmitBatch, admit.go). The node runs it over its libp2p host (p2p.HostTransport), the
// simulator over its simulated network and crashable file system.
//
// While it leads, a node's payments keeper (payments.go) sends the
// Confirmations contract's expirePayments from an account derived from its
// node key whenever a held payment is due at the head's block time, so an
// expiry returns its money in a transaction with its event
// (docs/payments.md). Config.BlockClock, a test hook, moves the block
// times the node stamps without moving its timers.
package node
