package consensus

import (
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// promotionNode is one real hashicorp/raft server of
// TestPromotedVoterElected, over raft's in-memory transport wrapped as
// the engine wraps it.
type promotionNode struct {
	id    raft.ServerID
	raft  *raft.Raft
	trans *raft.InmemTransport
}

// TestPromotedVoterElected is the simulator's seed 7 (weights
// {add-validator 3, datadir-lost 1, restart 1, partition 3, heal 1}) on
// four real hashicorp/raft servers. a, b and c are voters and d a
// non-voter; c is cut off; the leader promotes d, committing the
// promotion with itself, b and d; b is cut off; the leader's next
// entries reach d alone; the leader is lost. b, c and d are connected,
// three of the four voters, but:
//   - d's log is the longest, so b and c refuse d's rivals;
//   - c's latest configuration still has d as a non-voter, and
//     hashicorp/raft v1.8.0 refuses a vote and a pre-vote to a non-voter
//     of the receiver's latest configuration (raft.go:1703, 1807).
//
// Raft alone elects no one, for ever; standard Raft (c grants by the log)
// elects d, and so do the engine's rules (promotionVotes). With c cut off
// before d's addition as a non-voter (seeds 278, 351 and 1364 with the
// same weights), c's configuration has no d at all, and raft refuses it
// as outside the configuration (raft.go:1667, 1781): the same deadlock.
func TestPromotedVoterElected(t *testing.T) {
	for _, tc := range []struct {
		name         string
		rules        bool
		cutBeforeAdd bool
		wantSuffrage raft.ServerSuffrage // d's in c's latest configuration
	}{
		{"raft alone", false, false, raft.Nonvoter},
		{"with the rules", true, false, raft.Nonvoter},
		{"raft alone, d unknown to c", false, true, -1},
		{"with the rules, d unknown to c", true, true, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nodes := map[raft.ServerID]*promotionNode{}
			for _, id := range []raft.ServerID{"a", "b", "c", "d"} {
				_, trans := raft.NewInmemTransportWithTimeout(raft.ServerAddress(id), time.Second)
				nodes[id] = &promotionNode{id: id, trans: trans}
			}
			connect := func(ids ...raft.ServerID) {
				for _, x := range ids {
					for _, y := range ids {
						if x != y {
							nodes[x].trans.Connect(raft.ServerAddress(y), nodes[y].trans)
						}
					}
				}
			}
			isolate := func(id raft.ServerID) {
				nodes[id].trans.DisconnectAll()
				for _, n := range nodes {
					n.trans.Disconnect(raft.ServerAddress(id))
				}
			}
			connect("a", "b", "c", "d")
			bootstrap := raft.Configuration{}
			for _, id := range []raft.ServerID{"a", "b", "c"} {
				bootstrap.Servers = append(bootstrap.Servers, raft.Server{Suffrage: raft.Voter, ID: id, Address: raft.ServerAddress(id)})
			}
			for _, id := range []raft.ServerID{"a", "b", "c", "d"} {
				n := nodes[id]
				conf := raft.DefaultConfig()
				conf.LocalID = id
				conf.HeartbeatTimeout, conf.ElectionTimeout = 100*time.Millisecond, 100*time.Millisecond
				conf.LeaderLeaseTimeout, conf.CommitTimeout = 50*time.Millisecond, 5*time.Millisecond
				conf.Logger = hclog.NewNullLogger()
				logs, snaps := raft.NewInmemStore(), raft.NewInmemSnapshotStore()
				if id != "d" {
					if err := raft.BootstrapCluster(conf, logs, logs, snaps, n.trans, bootstrap); err != nil {
						t.Fatal(err)
					}
				}
				var promoted *promotionVotes
				if tc.rules {
					promoted = newPromotionVotes(id, raft.ServerAddress(id))
				}
				r, err := raft.NewRaft(conf, &logFSM{}, logs, logs, snaps, withCommitProof(n.trans, transportRules{promoted: promoted}))
				if err != nil {
					t.Fatal(err)
				}
				promoted.started(r)
				n.raft = r
				t.Cleanup(func() { r.Shutdown().Error() })
			}
			leader := waitLeader(t, nodes, "a", "b", "c")
			var others []raft.ServerID
			for _, id := range []raft.ServerID{"a", "b", "c"} {
				if id != leader.id {
					others = append(others, id)
				}
			}
			b, c, d := nodes[others[0]], nodes[others[1]], nodes["d"]
			if tc.cutBeforeAdd {
				isolate(c.id)
			}
			if err := leader.raft.AddNonvoter("d", "d", 0, time.Second).Error(); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 3; i++ {
				if err := leader.raft.Apply(fmt.Appendf(nil, "entry %d", i), time.Second).Error(); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, 10*time.Second, "d holds the leader's log", func() bool { return d.raft.AppliedIndex() >= leader.raft.AppliedIndex() })

			isolate(c.id)
			if err := leader.raft.AddVoter("d", "d", 0, time.Second).Error(); err != nil {
				t.Fatalf("promote d with %s and d: %v", b.id, err)
			}
			isolate(b.id)
			for i := 0; i < 3; i++ {
				leader.raft.Apply(fmt.Appendf(nil, "uncommitted %d", i), 0) // reaches d alone
			}
			waitFor(t, 10*time.Second, "the leader's last entries reach d", func() bool {
				return d.raft.LastIndex() == leader.raft.LastIndex() && d.raft.LastIndex() > b.raft.LastIndex()
			})
			if err := leader.raft.Shutdown().Error(); err != nil {
				t.Fatal(err)
			}
			isolate(leader.id)
			if s := suffrageOf(c.raft, "d"); s != tc.wantSuffrage {
				t.Fatalf("c's latest configuration has d as %v, want %v: the scenario did not happen", s, tc.wantSuffrage)
			}
			connect(b.id, c.id, d.id)

			deadline := time.Now().Add(3 * time.Second) // 30 election timeouts
			var elected *promotionNode
			for elected == nil && time.Now().Before(deadline) {
				for _, n := range []*promotionNode{b, c, d} {
					if n.raft.State() == raft.Leader {
						elected = n
					}
				}
				time.Sleep(10 * time.Millisecond)
			}
			if !tc.rules {
				if elected != nil {
					t.Fatalf("hashicorp/raft alone elected %s: the rules for promoted candidates may no longer be needed", elected.id)
				}
				return
			}
			if elected != d {
				t.Fatalf("elected %v, want d (the only log that holds every entry)", elected)
			}
			// The new leader commits the entries only d held, on all three.
			if err := d.raft.Barrier(time.Second).Error(); err != nil {
				t.Fatal(err)
			}
			for _, n := range []*promotionNode{b, c} {
				waitFor(t, 10*time.Second, string(n.id)+" applies the new leader's log", func() bool { return n.raft.AppliedIndex() >= d.raft.AppliedIndex() })
			}
		})
	}
}

// waitLeader waits for one of ids to lead and returns it.
func waitLeader(t *testing.T, nodes map[raft.ServerID]*promotionNode, ids ...raft.ServerID) *promotionNode {
	t.Helper()
	var leader *promotionNode
	waitFor(t, 10*time.Second, "a leader", func() bool {
		for _, id := range ids {
			if nodes[id].raft.State() == raft.Leader {
				leader = nodes[id]
				return true
			}
		}
		return false
	})
	return leader
}

// suffrageOf is id's suffrage in r's latest configuration, -1 if it is
// not in it.
func suffrageOf(r *raft.Raft, id raft.ServerID) raft.ServerSuffrage {
	for _, s := range r.GetConfiguration().Configuration().Servers {
		if s.ID == id {
			return s.Suffrage
		}
	}
	return -1
}

// TestPromotionVotesRules: the requests of a candidate that is no voter
// of the node's latest configuration (c, a non-voter; x, not in it) are
// judged as raft judges a voter's (l): refused while the node has another
// leader, to an earlier term, or to a log behind the node's; one vote per
// term. Each row runs against raft alone too: there every request of c
// and x is refused.
func TestPromotionVotesRules(t *testing.T) {
	for _, rules := range []bool{false, true} {
		t.Run(fmt.Sprintf("rules=%v", rules), func(t *testing.T) {
			store, err := OpenRaftStore("/raft/log", RaftStoreOptions{FS: vfs.NewMem(), Logger: testLogger(t), NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			var promoted *promotionVotes
			if rules {
				promoted = newPromotionVotes("f", "f")
			}
			r, cand := startMember(t, store, 300*time.Millisecond, func(trans raft.Transport) raft.Transport {
				return withCommitProof(trans, transportRules{promoted: promoted})
			})
			promoted.started(r)
			// The leader l of term 4 sends its log: l and f vote, c does
			// not; entries up to 12, all committed.
			sendLeaderLog(t, cand, raft.Nonvoter)
			type row struct {
				name                      string
				vote                      bool // a vote, not a pre-vote
				from                      string
				term, lastIndex, lastTerm uint64
				granted                   bool // with the rules; raft alone refuses every row from c
				answerTerm                uint64
			}
			ask := func(r row) (bool, uint64) {
				t.Helper()
				h := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(r.from), Addr: []byte(r.from)}
				if r.vote {
					req := raft.RequestVoteRequest{RPCHeader: h, Term: r.term, LastLogIndex: r.lastIndex, LastLogTerm: r.lastTerm}
					var resp raft.RequestVoteResponse
					if err := cand.RequestVote("f", "f", &req, &resp); err != nil {
						t.Fatal(err)
					}
					if string(req.ID) != r.from {
						t.Fatal("the sender's request was changed in place")
					}
					return resp.Granted, resp.Term
				}
				req := raft.RequestPreVoteRequest{RPCHeader: h, Term: r.term, LastLogIndex: r.lastIndex, LastLogTerm: r.lastTerm}
				var resp raft.RequestPreVoteResponse
				if err := cand.RequestPreVote("f", "f", &req, &resp); err != nil {
					t.Fatal(err)
				}
				return resp.Granted, resp.Term
			}
			check := func(r row) {
				t.Helper()
				want := r.granted && (rules || r.from == "l")
				if got, term := ask(r); got != want || (r.answerTerm != 0 && term != r.answerTerm) {
					t.Errorf("%s: granted %v, term %d; want %v, term %d", r.name, got, term, want, r.answerTerm)
				}
			}
			// While l leads, nobody else gets a pre-vote.
			check(row{name: "pre-vote while l leads", from: "c", term: 5, lastIndex: 12, lastTerm: 4})
			waitFor(t, 10*time.Second, "l's lead to time out", func() bool { leader, _ := r.LeaderWithID(); return leader == "" })
			for _, r := range []row{
				{name: "pre-vote, log as long", from: "c", term: 5, lastIndex: 12, lastTerm: 4, granted: true, answerTerm: 5},
				{name: "pre-vote, log longer", from: "c", term: 5, lastIndex: 13, lastTerm: 4, granted: true},
				{name: "pre-vote, later last term", from: "c", term: 5, lastIndex: 2, lastTerm: 5, granted: true},
				{name: "pre-vote, log shorter", from: "c", term: 5, lastIndex: 11, lastTerm: 4},
				{name: "pre-vote, earlier last term", from: "c", term: 5, lastIndex: 20, lastTerm: 3},
				{name: "pre-vote, earlier term", from: "c", term: 3, lastIndex: 12, lastTerm: 4, answerTerm: 4},
				{name: "pre-vote outside the configuration", from: "x", term: 5, lastIndex: 12, lastTerm: 4, granted: true},
				{name: "pre-vote outside the configuration, log shorter", from: "x", term: 5, lastIndex: 11, lastTerm: 4},
				{name: "pre-vote of a voter", from: "l", term: 5, lastIndex: 12, lastTerm: 4, granted: true},
				{name: "vote, log shorter", vote: true, from: "c", term: 5, lastIndex: 11, lastTerm: 4},
				{name: "vote", vote: true, from: "c", term: 5, lastIndex: 12, lastTerm: 4, granted: true, answerTerm: 5},
				{name: "vote asked again", vote: true, from: "c", term: 5, lastIndex: 12, lastTerm: 4, granted: true},
				{name: "another candidate, same term", vote: true, from: "l", term: 5, lastIndex: 12, lastTerm: 4, granted: !rules},
				{name: "vote outside the configuration, log shorter", vote: true, from: "x", term: 6, lastIndex: 11, lastTerm: 4},
				{name: "vote outside the configuration", vote: true, from: "x", term: 6, lastIndex: 12, lastTerm: 4, granted: true},
			} {
				check(r)
			}
		})
	}
}
