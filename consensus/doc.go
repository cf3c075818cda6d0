// Package consensus wires hashicorp/raft to the state (DESIGN.md decision
// 5): the FSM that applies each committed entry (one block) with
// store.DB.ApplyBlock, the leader's block Builder, a Pebble-backed Raft log
// and stable store, checkpoint snapshots, and the commit-vote collector.
//
// Snapshots are Pebble checkpoints of the state database held by the
// CheckpointStore on the database's file system (a Pebble vfs.FS: the
// operating system's, or the cluster simulator's in-memory one). Start
// restores the newest snapshot before Raft starts if the state is behind
// it (an install whose restore failed or was cut short), and Restore keeps
// a state already past the snapshot it is sent; a snapshot that a
// failing disk keeps from being taken halts the FSM, as a failing apply
// does, instead of ending the process.
//
// The Builder builds each block on its speculative head (the last block it
// proposed, or the applied head) from the mempool, and checks it with
// state.CheckBlock, the rules every node's FSM applies, before proposing
// it: state.Build fills blocks within chain.MaxBlockSize and the gas limit,
// and a block found invalid (before proposing, or skipped by the FSM) never
// comes back unchanged: the transaction or certificate at fault is dropped,
// or the next block takes half as many transactions. So no client can
// make the leader propose the same invalid block again and again.
//
// The leader does not execute its own blocks twice (ownblocks.go): the
// Builder hands each block's execution to the FSM, keyed by the block's
// hash and the parent (hash and state root) it was built on, and the FSM
// applies that block with it (store.DB.ApplyBuilt) after checking the
// block in full; every other block, and any block whose parent is not the
// head, is executed on apply. Any other apply, a restore, a reset of the
// speculative chain and the end of leadership drop what was kept.
//
// Raft's transport is wrapped (withCommitProof) so that an AppendEntries
// request never carries a commit index past the last entry it proves the
// follower holds, neither when it is sent nor when it is received:
// hashicorp/raft's follower commits up to its own last index, and a
// deposed leader would otherwise apply blocks of its own that were never
// committed. The same wrapper has the vote requests of a candidate that
// is no voter of the node's configuration (a promotion, or an addition,
// it has not received yet) judged by terms and logs, as the Raft paper does
// (promotionVotes, promotedvotes.go): hashicorp/raft refuses them, which
// left a cluster with one voter lost and one stale without a leader. It
// also drops, from an AppendEntries request, the entries a follower
// already holds when raft could not check its previous entry (one inside
// an installed snapshot: skipHeldEntries), which raft v1.8.0 rejects.
//
// A disk that fails under the Raft log (Pebble's fatal commit error, or a
// read's error) is not a crash: RaftStore turns it into ErrDiskFailed and
// refuses every later write, and the Engine halts the node (the FSM's
// alarm and halt record) and leaves Raft, since a node that can neither
// store nor read its entries and votes must take no part in either. A
// failed read never reaches hashicorp/raft where raft would panic on it
// (RaftStore.readFailed ends that reader, after the halt).
//
// Raft state that a node forgot is never silently started again (a
// forgotten vote could elect two leaders in a term): Start refuses a
// state that applied Raft entries over an empty Raft directory
// (ErrRaftStateLost), and before it starts Raft on an empty directory and
// a state at genesis it asks the peers (Config.AskPeers, DecideBootstrap,
// the node's p2p member protocol) whether they saw this node's Raft
// running, which every node records of the validators whose Raft
// answered it or sent it a request, whose blocks it applied and whose
// votes those blocks' certificates carry (bootstrap.go); a data
// directory lost with its nodekey restored is refused (ErrDataDirLost),
// and a genesis validator bootstraps only once BootstrapQuorum of the
// others answered, any other node joins only once enough of the current
// voters the answers name answered (BootstrapQuorum of them and itself;
// told none, it joins granting no vote until it caught up: JoinUnknown),
// each waiting until then (ErrPeersSilent after
// Config.PeerCheckTimeout). FreshRaft starts a refused node as a fresh
// member once its operator says so (tallyd --raft-fresh); such a member
// grants no vote until it holds the log up to its leader's commit of the
// current term (voteGate, freshvotes.go: hashicorp/raft would grant any
// vote with its empty log), which Engine.Voting reports.
//
// No goroutine waits on a hashicorp/raft future beyond the engine's
// lifetime (future.go): raft v1.8.0 leaves unanswered the futures of
// entries committed but not yet applied, and of requests queued but not
// read, when it shuts down. Every wait (the builder's proposals, the new
// leader's Barrier, a halted leader's LeadershipTransfer, and the node's
// membership changes through Engine.Await) ends with ErrRaftShutdown once
// the engine stops or leaves Raft, and Engine.Shutdown returns only after
// every goroutine it started.
package consensus
