package sim

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/consensus"
	"github.com/tally-ledger/tally/node"
)

// Raft snapshots in the simulator: each node runs the node's own
// checkpoint store (consensus.CheckpointStore) on its crashable in-memory
// file system, in Dir/snapshots as a node does. A snapshot is a Pebble
// checkpoint of the state database; a node the leader's log no longer
// reaches (a crash outlasting snapTrailingLogs entries) is brought back by
// InstallSnapshot, whose stream crosses the simulated network as one
// message, and the FSM swaps its state database for the snapshot's.
const (
	// snapThreshold is how many Raft entries after the last snapshot
	// trigger the next one (a node's default is 8192): a run of 2,000
	// steps has some sixty blocks, so each node takes a few.
	snapThreshold = 16
	// snapTrailingLogs is how many entries a snapshot leaves in the log
	// (a node's default is 10240): a node down for more is restored by
	// InstallSnapshot.
	snapTrailingLogs = 8
	// snapInterval is how often Raft checks snapThreshold (at a random
	// point of the next interval).
	snapInterval = time.Second
	// snapRetain is how many snapshots a node keeps (consensus.Start's
	// default).
	snapRetain = 2
)

// snapshotConfig brings a node configuration's snapshots within reach of
// a run.
func snapshotConfig(c *node.Config) {
	c.Raft.SnapshotThreshold = snapThreshold
	c.Raft.TrailingLogs = snapTrailingLogs
	c.Raft.SnapshotInterval = node.Duration(snapInterval)
}

// snapStats counts one node's snapshots across its restarts.
type snapStats struct {
	creates  atomic.Int64 // snapshots begun, taken or installed
	restores atomic.Int64 // snapshots installed into the state (FSM.Restore)
	// rejoins counts the restores of an instance started again after a
	// crash or a stop: a node back behind the leader's trailing logs.
	rejoins atomic.Int64
}

// restored counts a snapshot installed into instance epoch's state.
func (st *snapStats) restored(epoch int) {
	st.restores.Add(1)
	if epoch > 1 {
		st.rejoins.Add(1)
	}
}

// countingStore is the node's checkpoint store, counting the snapshots it
// creates; the sinks it returns are the store's own (the FSM writes a
// checkpoint straight into a *consensus.CheckpointSink).
type countingStore struct {
	*consensus.CheckpointStore
	stats *snapStats
}

// Create implements raft.SnapshotStore.
func (c countingStore) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration, configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := c.CheckpointStore.Create(version, index, term, configuration, configurationIndex, trans)
	if err == nil {
		c.stats.creates.Add(1)
	}
	return sink, err
}

// openSnapshots opens the node's checkpoint store where consensus.Start
// would (Dir/snapshots on the Raft log's file system, with its disk
// faults, snapRetain kept).
func (sn *simNode) openSnapshots(inst *instance) (raft.SnapshotStore, error) {
	fs := sn.disk(inst, raftDir)
	st, err := consensus.NewCheckpointStoreFS(fs, fs.PathJoin(raftDir, "snapshots"), snapRetain, sn.log)
	if err != nil {
		return nil, fmt.Errorf("node %d: %w", sn.id, err)
	}
	return countingStore{st, &sn.snaps}, nil
}

// InstallSnapshot implements raft.Transport: the snapshot's stream is read
// whole (it is exactly args.Size bytes) and travels with the request.
func (ep *endpoint) InstallSnapshot(_ raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	b, err := io.ReadAll(io.LimitReader(data, args.Size+1))
	if err != nil {
		return fmt.Errorf("sim: read snapshot: %w", err)
	}
	if int64(len(b)) != args.Size {
		return fmt.Errorf("sim: snapshot stream is %d bytes, its request says %d", len(b), args.Size)
	}
	out, err := ep.callWith(target, "snapshot", args, b)
	if err != nil {
		return err
	}
	*resp = *out.(*raft.InstallSnapshotResponse)
	return nil
}

// countSnapshots adds up the nodes' snapshots into the result.
func (s *Sim) countSnapshots() {
	for _, sn := range s.nodes {
		installs := int(sn.snaps.restores.Load())
		s.res.Installs += installs
		s.res.Rejoins += int(sn.snaps.rejoins.Load())
		s.res.Snapshots += int(sn.snaps.creates.Load()) - installs
	}
}

// raftLastIndex is the last index of r's durable state: its log's, or its
// last snapshot's once the log was compacted or replaced by an installed
// snapshot (raft.Raft.LastIndex, which Stats spells out).
func raftLastIndex(r *raft.Raft) uint64 {
	var log, snap uint64
	st := r.Stats()
	fmt.Sscan(st["last_log_index"], &log)
	fmt.Sscan(st["last_snapshot_index"], &snap)
	return max(log, snap)
}
