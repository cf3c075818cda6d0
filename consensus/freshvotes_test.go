package consensus

import (
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// TestFreshMemberVotesOnceCaughtUp: a fresh member (an empty Raft log and
// no configuration, as after --raft-fresh) is asked for its vote by a
// candidate whose log ends before entries a lost copy of this node had
// acknowledged. hashicorp/raft v1.8.0 grants it ("the cluster is very
// likely trying to bootstrap", raft.go:1665: the simulator's seed 288
// forked on it); the node's vote gate refuses it, a pre-vote too, and so
// after a restart before it caught up. Once a leader's entries of its
// own term are committed on the node, it votes as any member, and the
// record is cleared.
func TestFreshMemberVotesOnceCaughtUp(t *testing.T) {
	for _, tc := range []struct {
		name  string
		gated bool
	}{{"raft alone", false}, {"with the vote gate", true}} {
		t.Run(tc.name, func(t *testing.T) {
			const dir = "/raft/log"
			mem := vfs.NewMem()
			store, err := OpenRaftStore(dir, RaftStoreOptions{FS: mem, Logger: testLogger(t), NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			var gate *voteGate
			if tc.gated {
				if gate, err = newVoteGate(store, true, "f", "f", testLogger(t)); err != nil || gate == nil {
					t.Fatalf("gate of a fresh start: %v, %v", gate, err)
				}
			}
			r, cand := startFreshMember(t, store, gate)
			vote := func(from string, term, lastIndex, lastTerm uint64) bool {
				t.Helper()
				req := raft.RequestVoteRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(from), Addr: []byte(from)},
					Term: term, LastLogIndex: lastIndex, LastLogTerm: lastTerm}
				var resp raft.RequestVoteResponse
				if err := cand.RequestVote("f", "f", &req, &resp); err != nil {
					t.Fatal(err)
				}
				if resp.Term > term {
					t.Fatalf("the answer's term %d is past the candidate's %d", resp.Term, term)
				}
				return resp.Granted
			}
			preVote := func(term, lastIndex, lastTerm uint64) bool {
				t.Helper()
				req := raft.RequestPreVoteRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("c"), Addr: []byte("c")},
					Term: term, LastLogIndex: lastIndex, LastLogTerm: lastTerm}
				var resp raft.RequestPreVoteResponse
				if err := cand.RequestPreVote("f", "f", &req, &resp); err != nil {
					t.Fatal(err)
				}
				return resp.Granted
			}
			// The candidate's log ends at index 11 of term 2.
			if got := preVote(3, 11, 2); got == tc.gated {
				t.Fatalf("pre-vote granted %v before the node holds the log", got)
			}
			if got := vote("c", 3, 11, 2); got == tc.gated {
				t.Fatalf("vote granted %v before the node holds the log", got)
			}
			if !tc.gated {
				return // raft alone granted: the hazard
			}
			if r.CurrentTerm() >= 3 {
				t.Fatalf("a refused vote moved the node's term to %d", r.CurrentTerm())
			}
			// A restart before it caught up keeps the gate.
			if g, err := newVoteGate(store, false, "f", "f", testLogger(t)); err != nil || g == nil {
				t.Fatalf("gate after a restart before catching up: %v, %v", g, err)
			}
			// The leader of term 4 sends the log (its configuration, then
			// blocks of term 4), committed up to its last entry.
			sendLeaderLog(t, cand, raft.Voter)
			// Raft refuses any other candidate while it has a leader: the
			// leader's own campaign for a new term is asked.
			if got := vote("l", 5, 11, 4); got {
				t.Fatal("the node voted for a candidate whose log is behind its own")
			}
			if got := vote("l", 5, 12, 4); !got {
				t.Fatal("the caught-up node refused a candidate whose log is as long as its own")
			}
			if v, err := store.GetUint64(keyFreshVotes); err != nil || v != 0 {
				t.Fatalf("fresh record after catching up: %d, %v", v, err)
			}
			if g, err := newVoteGate(store, false, "f", "f", testLogger(t)); err != nil || g != nil {
				t.Fatalf("gate after a restart once caught up: %v, %v", g, err)
			}
		})
	}
}

// sendLeaderLog has the leader "l" of term 4 send node "f" over c its
// log: a configuration where l and f vote and c has suffrage c, then
// blocks up to index 12, all committed.
func sendLeaderLog(t *testing.T, c *raft.InmemTransport, suffrage raft.ServerSuffrage) {
	t.Helper()
	servers := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: "l", Address: "l"}, {Suffrage: raft.Voter, ID: "f", Address: "f"}, {Suffrage: suffrage, ID: "c", Address: "c"}}}
	entries := []*raft.Log{{Index: 1, Term: 4, Type: raft.LogConfiguration, Data: raft.EncodeConfiguration(servers)}}
	for i := uint64(2); i <= 12; i++ {
		entries = append(entries, &raft.Log{Index: i, Term: 4, Type: raft.LogCommand, Data: fmt.Appendf(nil, "block %d", i)})
	}
	req := raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("l"), Addr: []byte("l")},
		Term: 4, Entries: entries, LeaderCommitIndex: 12}
	var resp raft.AppendEntriesResponse
	if err := c.AppendEntries("f", "f", &req, &resp); err != nil || !resp.Success {
		t.Fatalf("append: %v, %+v", err, resp)
	}
}

// startFreshMember starts a Raft node "f" on store with no state, its
// transport wrapped as the engine wraps it (with gate), and returns it
// with the transport of a peer "c" connected to it.
func startFreshMember(t *testing.T, store *RaftStore, gate *voteGate) (*raft.Raft, *raft.InmemTransport) {
	t.Helper()
	r, ctrans := startMember(t, store, time.Minute, func(trans raft.Transport) raft.Transport { return withCommitProof(trans, transportRules{votes: gate}) })
	gate.started(r)
	return r, ctrans
}

// startMember starts a Raft node "f" on store over a transport wrap
// wraps, and returns it with the transport of a peer "c" connected to
// it. heartbeat is the node's heartbeat and election timeout: a minute
// keeps it from campaigning while a test runs.
func startMember(t *testing.T, store *RaftStore, heartbeat time.Duration, wrap func(raft.Transport) raft.Transport) (*raft.Raft, *raft.InmemTransport) {
	t.Helper()
	_, ftrans := raft.NewInmemTransportWithTimeout("f", 10*time.Second)
	_, ctrans := raft.NewInmemTransportWithTimeout("c", 10*time.Second)
	ctrans.Connect("f", ftrans)
	conf := raft.DefaultConfig()
	conf.LocalID = "f"
	conf.HeartbeatTimeout, conf.ElectionTimeout, conf.LeaderLeaseTimeout = heartbeat, heartbeat, heartbeat/2
	conf.Logger = hclog.NewNullLogger()
	r, err := raft.NewRaft(conf, &logFSM{}, store, store, raft.NewInmemSnapshotStore(), wrap(ftrans))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Shutdown().Error()
		store.Close()
	})
	return r, ctrans
}
