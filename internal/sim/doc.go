// Package sim is the deterministic cluster simulator (issue 14): it runs
// N validators and a standby node with the node's own consensus engine
// (FSM, block builder, mempool, hashicorp/raft, membership reconciler) and
// state database (Pebble on a crashable
// in-memory file system, vfs.NewCrashableMem) over a simulated network,
// inside a testing/synctest bubble whose fake clock is the simulated time.
//
// Every Raft RPC is a queued message that only the scheduler moves: after
// synctest.Wait (every goroutine of the bubble blocked), it picks the next
// event from a seeded RNG: deliver, drop or delay a ready message (any
// ready message, so messages overtake each other), let time pass, a
// client operation (transfers, mints, reused bank references, JSON-RPC
// batches of mixed valid and invalid transactions, and attackers' sends:
// broken encodings, oversized transactions, wrong chain ids, unsupported
// types, forged signatures, replays and conflicting nonces, each checked
// refused as a real node refuses it, attack.go) or a fault (crash with unsynced writes lost, restart,
// partition, heal, leadership transfer, a state database or Raft log
// disk failing its write-ahead log, metadata, OPTIONS or sstable writes,
// sstable reads failing, failed syncs of a store's directory or of the
// data directory's parent, slow MANIFEST syncs, a lost Raft directory, a
// slow disk (fs.go), a disk that stalls for minutes until the node's
// watch ends its process (stall.go), a
// whole data directory lost with the node's key kept (datadir.go),
// governance adding or removing a validator, which the leader's
// node.Membership, the node's own reconciler, follows in Raft).
// Nodes take Raft snapshots with the node's checkpoint store and a node
// left behind the leader's log is restored by InstallSnapshot
// (snapshot.go). What keeps a seed's run the same each time is in
// repro.go; a seed replays in a process of its own with the Go runtime's
// random seed derived from it (rtseed_test.go, internal/simexec).
// Clients send as a wallet with failover does, to any node, through the
// node's own admission path (node.Admission: forwarding, the leader's
// replication, the pool journal) whose batches cross the simulated
// network like Raft's messages (admit.go, forward.go); every
// acknowledgement must be held by two nodes when given and end in the
// chain exactly once.
// After every step it checks DESIGN.md's invariants (invariants.go). A
// failing run returns an error with the last events and the command that
// replays its seed.
//
// docs/architecture.md ("The cluster simulator") describes it, what is
// simulated and what is not, and how far a seed reproduces a run.
package sim
