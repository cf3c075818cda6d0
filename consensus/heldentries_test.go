package consensus

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// byteFSM is the smallest raft.FSM: its state is the last snapshot it
// restored.
type byteFSM struct{ state []byte }

func (f *byteFSM) Apply(*raft.Log) any { return nil }
func (f *byteFSM) Snapshot() (raft.FSMSnapshot, error) {
	return nil, io.ErrUnexpectedEOF // never asked in this test
}
func (f *byteFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	f.state = b
	return err
}

// TestFollowerAcceptsRetransmitAfterInstalledSnapshot (by the seed839
// helper): a follower that the
// leader brought up with a snapshot ending at index 16, and then sent entry
// 17 (previous entry 16), must accept the same AppendEntries again when the
// leader resends it because the first answer was lost. hashicorp/raft
// v1.8.0 rejects it: the follower's last entry is then 17, and it looks
// entry 16 up in its log, which holds only 17 (16 is in the snapshot;
// Raft.appendEntries never compares PrevLogEntry with its last snapshot).
// The leader backs off, falls below its own first entry and sends the
// snapshot again, which installs without truncating 17, and the loop never
// ends while the leader's next snapshot stays at 16 (cluster simulator
// seed 839: the promoted n3 never acknowledged an entry again). The
// transport's rule (skipHeldEntries) makes the follower accept it.
func TestFollowerAcceptsRetransmitAfterInstalledSnapshot(t *testing.T) {
	for _, rule := range []bool{false, true} {
		t.Run(fmt.Sprintf("rule=%v", rule), func(t *testing.T) { retransmitAfterInstalledSnapshot(t, rule) })
	}
}

func retransmitAfterInstalledSnapshot(t *testing.T, rule bool) {
	leaderAddr, leaderTrans := raft.NewInmemTransport("leader")
	followerAddr, followerTrans := raft.NewInmemTransport("follower")
	leaderTrans.Connect(followerAddr, followerTrans)
	followerTrans.Connect(leaderAddr, leaderTrans)

	conf := raft.DefaultConfig()
	conf.LocalID = "follower"
	conf.Logger = NewRaftLogger(testLogger(t), slog.LevelWarn)
	logs := raft.NewInmemStore()
	rules := transportRules{}
	if rule {
		rules.logs = logs
	}
	r, err := raft.NewRaft(conf, &byteFSM{}, logs, logs, raft.NewInmemSnapshotStore(), withCommitProof(followerTrans, rules))
	must(t, err)
	defer r.Shutdown()

	header := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("leader"), Addr: leaderTrans.EncodePeer("leader", leaderAddr)}
	cfg := raft.Configuration{Servers: []raft.Server{
		{Suffrage: raft.Voter, ID: "leader", Address: leaderAddr},
		{Suffrage: raft.Nonvoter, ID: "follower", Address: followerAddr},
	}}
	const term, snapIndex = 3, 16
	data := []byte("state at index 16")
	install := func() {
		t.Helper()
		var resp raft.InstallSnapshotResponse
		must(t, leaderTrans.InstallSnapshot("follower", followerAddr, &raft.InstallSnapshotRequest{
			RPCHeader: header, SnapshotVersion: 1, Term: term, LastLogIndex: snapIndex, LastLogTerm: term,
			Configuration: raft.EncodeConfiguration(cfg), ConfigurationIndex: 1, Size: int64(len(data)),
		}, &resp, bytes.NewReader(data)))
		if !resp.Success {
			t.Fatalf("install of snapshot %d failed", snapIndex)
		}
	}
	appendAfterSnapshot := func(what string) bool {
		t.Helper()
		var resp raft.AppendEntriesResponse
		must(t, leaderTrans.AppendEntries("follower", followerAddr, &raft.AppendEntriesRequest{
			RPCHeader: header, Term: term, PrevLogEntry: snapIndex, PrevLogTerm: term,
			Entries:           []*raft.Log{{Index: snapIndex + 1, Term: term, Type: raft.LogCommand, Data: []byte("block"), AppendedAt: time.Now()}},
			LeaderCommitIndex: snapIndex,
		}, &resp))
		if !resp.Success && rule {
			t.Fatalf("%s: the follower (last log %d) rejected entry %d after its snapshot %d", what, resp.LastLog, snapIndex+1, snapIndex)
		}
		return resp.Success
	}
	install()
	if !appendAfterSnapshot("first send") {
		t.Fatal("the first send was rejected")
	}
	if ok := appendAfterSnapshot("resent, its answer lost"); !rule {
		if ok {
			t.Fatal("hashicorp/raft alone accepted the retransmit: the rule may no longer be needed")
		}
		return // raft alone: the loop of seed 839
	}
	install() // what the leader falls back to
	appendAfterSnapshot("after the snapshot sent again")
}
