package consensus

import (
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestRaftFollowerCommitIndex pins what a real hashicorp/raft v1.8.0
// follower does with the commit index of an AppendEntries request, the
// facts docs/architecture.md ("hashicorp/raft v1.8.0: a follower's commit
// index") builds on. The follower (startFollowerWithStaleTerm) holds
// entries 2..4 of term 1, which the leader of term 3 has too, and 5 and 6
// of its own term 2, which the leader never had.
//
//   - A heartbeat as raft's leader builds it (replication.go:390: term and
//     leader only) moves no commit index: appendEntries advances it only
//     for LeaderCommitIndex > 0 (raft.go:1589). Heartbeats are harmless.
//   - A request whose previous entry the follower lacks, or holds with
//     another term, is refused before the commit index is looked at
//     (raft.go:1493-1518).
//   - A request whose entries conflict truncates the follower's log first
//     (raft.go:1526-1551), so the commit index covers only the leader's
//     entries.
//   - A request that proves entries up to 4 only (no entries, previous
//     entry 4) and carries commit index 6 makes the follower commit and
//     apply its own entries 5 and 6: the commit index is min(leader's,
//     own last index) (raft.go:1591), not the Raft paper's min(leader's,
//     index of the last new entry). This row asserts the upstream defect:
//     it fails once raft follows the paper, and withCommitProof (which
//     the last row shows closing it) may then go.
func TestRaftFollowerCommitIndex(t *testing.T) {
	entry := func(i, term uint64, who string) *raft.Log {
		return &raft.Log{Index: i, Term: term, Type: raft.LogCommand, Data: fmt.Appendf(nil, "%s %d", who, i)}
	}
	both := []string{"both 2", "both 3", "both 4"}
	cases := []struct {
		name       string
		req        raft.AppendEntriesRequest
		commitWrap bool // sent through withCommitProof, as the node sends
		success    bool
		commit     uint64   // the follower's commit index after the request
		applied    []string // what its FSM applies (nil: nothing)
	}{
		{name: "a heartbeat (replication.go:390)", req: raft.AppendEntriesRequest{}, success: true},
		{name: "previous entry of another term", req: raft.AppendEntriesRequest{PrevLogEntry: 6, PrevLogTerm: 3, LeaderCommitIndex: 6}},
		{name: "previous entry the follower lacks", req: raft.AppendEntriesRequest{PrevLogEntry: 9, PrevLogTerm: 3, LeaderCommitIndex: 6}},
		{name: "a conflicting entry truncates first", req: raft.AppendEntriesRequest{PrevLogEntry: 4, PrevLogTerm: 1,
			Entries: []*raft.Log{entry(5, 3, "leader")}, LeaderCommitIndex: 6},
			success: true, commit: 5, applied: append(slices.Clone(both), "leader 5")},
		{name: "no entries, commit past the entry checked: stale entries applied (upstream defect)",
			req:     raft.AppendEntriesRequest{PrevLogEntry: 4, PrevLogTerm: 1, LeaderCommitIndex: 6},
			success: true, commit: 6, applied: append(slices.Clone(both), "follower 5", "follower 6")},
		{name: "the same through withCommitProof", req: raft.AppendEntriesRequest{PrevLogEntry: 4, PrevLogTerm: 1, LeaderCommitIndex: 6},
			commitWrap: true, success: true, commit: 4, applied: both},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fsm, follower, leaderTrans := startFollowerWithStaleTerm(t, entry, nil)
			var send raft.Transport = leaderTrans
			if tc.commitWrap {
				send = withCommitProof(leaderTrans, nil)
			}
			req := tc.req
			req.RPCHeader = raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("l"), Addr: []byte("l")}
			req.Term = 3
			var resp raft.AppendEntriesResponse
			if err := send.AppendEntries("f", "f", &req, &resp); err != nil {
				t.Fatal(err)
			}
			if resp.Success != tc.success {
				t.Fatalf("success %v, want %v", resp.Success, tc.success)
			}
			// appendEntries sets the commit index before it answers.
			if got := follower.CommitIndex(); got != tc.commit {
				t.Fatalf("the follower's commit index is %d, want %d", got, tc.commit)
			}
			if tc.commit == 0 {
				return // nothing committed: raft hands the FSM nothing
			}
			deadline := time.Now().Add(10 * time.Second)
			logs, done := fsm.upTo(tc.commit)
			for ; !done && time.Now().Before(deadline); logs, done = fsm.upTo(tc.commit) {
				time.Sleep(time.Millisecond)
			}
			var got []string
			for _, l := range logs {
				got = append(got, string(l.Data))
			}
			if !slices.Equal(got, tc.applied) {
				t.Fatalf("the follower applied %q, want %q", got, tc.applied)
			}
		})
	}
}

// TestFollowerOverTCPTakesOnlyProvenCommit: the node's Raft transport is
// hashicorp/raft's NetworkTransport (p2p/stream.go runs it over libp2p
// streams). A follower whose own NetworkTransport is wrapped by
// withCommitProof gets raft's requests through the wrapper's relay of the
// transport's consumer channel, and its heartbeats through the
// transport's fast path: a bare leader's request checking entry 4 with
// commit index 6 leaves its commit index at 4 and its FSM with the shared
// entries only, a heartbeat as raft builds it still reaches raft, and
// raft's shutdown closes the transport through the wrapper.
func TestFollowerOverTCPTakesOnlyProvenCommit(t *testing.T) {
	entry := func(i, term uint64, who string) *raft.Log {
		return &raft.Log{Index: i, Term: term, Type: raft.LogCommand, Data: fmt.Appendf(nil, "%s %d", who, i)}
	}
	tcp := func() *raft.NetworkTransport {
		tr, err := raft.NewTCPTransport("127.0.0.1:0", nil, 2, 10*time.Second, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	ftcp, ltcp := tcp(), tcp()
	t.Cleanup(func() { ltcp.Close() })
	fsm, follower := startStaleFollowerOn(t, entry, withCommitProof(ftcp, nil))
	header := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("l"), Addr: []byte(ltcp.LocalAddr())}
	send := func(req raft.AppendEntriesRequest) {
		t.Helper()
		req.RPCHeader, req.Term = header, 3
		var resp raft.AppendEntriesResponse
		if err := ltcp.AppendEntries("f", ftcp.LocalAddr(), &req, &resp); err != nil || !resp.Success {
			t.Fatalf("request %+v: success %v, err %v", req, resp.Success, err)
		}
	}
	send(raft.AppendEntriesRequest{PrevLogEntry: 4, PrevLogTerm: 1, LeaderCommitIndex: 6})
	send(raft.AppendEntriesRequest{}) // a heartbeat: the transport's fast path
	if got := follower.CommitIndex(); got != 4 {
		t.Fatalf("the follower's commit index is %d, want 4", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	logs, done := fsm.upTo(4)
	for ; !done && time.Now().Before(deadline); logs, done = fsm.upTo(4) {
		time.Sleep(time.Millisecond)
	}
	var got []string
	for _, l := range logs {
		got = append(got, string(l.Data))
	}
	if want := []string{"both 2", "both 3", "both 4"}; !slices.Equal(got, want) {
		t.Fatalf("the follower applied %q, want %q", got, want)
	}
	stopped := make(chan struct{})
	go func() {
		follower.Shutdown().Error()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("raft's shutdown did not end within 10 s")
	}
	if !ftcp.IsShutdown() {
		t.Fatal("the follower's transport is open after raft shut down: the wrapper did not close it")
	}
}
