package consensus

import (
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// logFSM records the entries a raft node applies.
type logFSM struct {
	mu      sync.Mutex
	applied []raft.Log
}

func (f *logFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, raft.Log{Index: l.Index, Term: l.Term, Data: l.Data})
	return nil
}

func (f *logFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, fmt.Errorf("no snapshots here") }
func (f *logFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

func (f *logFSM) upTo(index uint64) ([]raft.Log, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.applied)
	return append([]raft.Log(nil), f.applied...), n > 0 && f.applied[n-1].Index >= index
}

// TestFollowerAppliesOnlyTheLeadersEntries: a real hashicorp/raft
// follower that led term 2 holds two entries of that term nobody
// committed (indexes 5 and 6); the leader of term 3 has other entries
// there and has committed them. The leader's replication, after a failure
// backoff, first sends a request that checks an earlier entry and carries
// commit index 6; hashicorp/raft's follower takes that up to its own last
// index and applies its own term-2 entries as committed, then the
// leader's at the same indexes never (they are below its commit index): a
// fork, found by the cluster simulator at seed 123. Sent through
// withCommitProof, or sent bare to a follower whose own transport is
// wrapped by it (a leader of a release without the sending side), the
// follower applies exactly the leader's entries.
func TestFollowerAppliesOnlyTheLeadersEntries(t *testing.T) {
	entry := func(i, term uint64, who string) *raft.Log {
		return &raft.Log{Index: i, Term: term, Type: raft.LogCommand, Data: fmt.Appendf(nil, "%s %d", who, i)}
	}
	cases := []struct {
		name  string
		first raft.AppendEntriesRequest // sent before the entries 5 and 6 of term 3
	}{
		{"a request checking entry 4 with no entries", raft.AppendEntriesRequest{PrevLogEntry: 4, PrevLogTerm: 1}},
		{"a request repeating entries the follower holds", raft.AppendEntriesRequest{PrevLogEntry: 2, PrevLogTerm: 1,
			Entries: []*raft.Log{entry(3, 1, "both"), entry(4, 1, "both")}}},
	}
	wrap := func(t raft.Transport) raft.Transport { return withCommitProof(t, transportRules{}) }
	for _, side := range []string{"sent", "received"} {
		for _, tc := range cases {
			t.Run(side+"/"+tc.name, func(t *testing.T) {
				leaderAppliedOnly(t, entry, tc.first, side == "received", wrap)
			})
		}
	}
}

// leaderAppliedOnly sends first, then the leader's entries 5 and 6, to a
// follower with a stale term (startFollowerWithStaleTerm), through
// withCommitProof on the leader's side or (received) the follower's, and
// fails unless the follower applies exactly the leader's entries.
func leaderAppliedOnly(t *testing.T, entry func(i, term uint64, who string) *raft.Log, first raft.AppendEntriesRequest, received bool, wrap func(raft.Transport) raft.Transport) {
	t.Helper()
	var followerWrap func(raft.Transport) raft.Transport
	if received {
		followerWrap = wrap
	}
	fsm, follower, leaderTrans := startFollowerWithStaleTerm(t, entry, followerWrap)
	var send raft.Transport = leaderTrans
	if !received {
		send = wrap(leaderTrans)
	}
	header := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("l"), Addr: []byte("l")}
	first.RPCHeader, first.Term, first.LeaderCommitIndex = header, 3, 6
	var resp raft.AppendEntriesResponse
	if err := send.AppendEntries("f", "f", &first, &resp); err != nil || !resp.Success {
		t.Fatalf("first request: success %v, err %v", resp.Success, err)
	}
	if first.LeaderCommitIndex != 6 {
		t.Fatalf("the request raft passed was changed (commit %d): raft reuses it", first.LeaderCommitIndex)
	}
	second := raft.AppendEntriesRequest{RPCHeader: header, Term: 3, PrevLogEntry: 4, PrevLogTerm: 1,
		Entries: []*raft.Log{entry(5, 3, "leader"), entry(6, 3, "leader")}, LeaderCommitIndex: 6}
	if err := send.AppendEntries("f", "f", &second, &resp); err != nil || !resp.Success {
		t.Fatalf("second request: success %v, err %v", resp.Success, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	applied, done := fsm.upTo(6)
	for ; !done && time.Now().Before(deadline); applied, done = fsm.upTo(6) {
		time.Sleep(time.Millisecond)
	}
	if !done {
		t.Fatalf("the follower applied %d entries, not up to 6 (state %v)", len(applied), follower.State())
	}
	for _, l := range applied {
		if l.Index >= 5 && (l.Term != 3 || string(l.Data) != fmt.Sprintf("leader %d", l.Index)) {
			t.Fatalf("the follower applied %q (term %d) at index %d, an entry the leader never had", l.Data, l.Term, l.Index)
		}
	}
}

// startFollowerWithStaleTerm starts raft node "f" whose log holds a
// configuration of voters l and f, entries 2..4 of term 1 and entries 5
// and 6 of term 2 of its own; it returns its FSM, the node and a
// transport of "l" connected to it. wrap (nil: none) wraps the follower's
// own transport.
func startFollowerWithStaleTerm(t *testing.T, entry func(i, term uint64, who string) *raft.Log, wrap func(raft.Transport) raft.Transport) (*logFSM, *raft.Raft, *raft.InmemTransport) {
	t.Helper()
	_, ftrans := raft.NewInmemTransportWithTimeout("f", 10*time.Second)
	_, ltrans := raft.NewInmemTransportWithTimeout("l", 10*time.Second)
	ltrans.Connect("f", ftrans)
	var trans raft.Transport = ftrans
	if wrap != nil {
		trans = wrap(ftrans)
	}
	fsm, r := startStaleFollowerOn(t, entry, trans)
	return fsm, r, ltrans
}

// startStaleFollowerOn starts startFollowerWithStaleTerm's follower on
// trans.
func startStaleFollowerOn(t *testing.T, entry func(i, term uint64, who string) *raft.Log, trans raft.Transport) (*logFSM, *raft.Raft) {
	t.Helper()
	servers := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: "l", Address: "l"}, {Suffrage: raft.Voter, ID: "f", Address: "f"}}}
	store := raft.NewInmemStore()
	logs := []*raft.Log{{Index: 1, Term: 1, Type: raft.LogConfiguration, Data: raft.EncodeConfiguration(servers)},
		entry(2, 1, "both"), entry(3, 1, "both"), entry(4, 1, "both"), entry(5, 2, "follower"), entry(6, 2, "follower")}
	if err := store.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if err := store.SetUint64([]byte("CurrentTerm"), 2); err != nil {
		t.Fatal(err)
	}
	conf := raft.DefaultConfig()
	conf.LocalID = "f"
	// No election while the test runs: the follower only listens.
	conf.HeartbeatTimeout, conf.ElectionTimeout, conf.LeaderLeaseTimeout = time.Minute, time.Minute, time.Second
	conf.Logger = hclog.NewNullLogger()
	fsm := &logFSM{}
	r, err := raft.NewRaft(conf, fsm, store, store, raft.NewInmemSnapshotStore(), trans)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Shutdown().Error() })
	return fsm, r
}

// TestCommitProofKeepsTransportFeatures: raft asks the transport whether
// it takes pre-votes; the wrapper answers as the wrapped transport does.
// It can always be closed (raft's shutdown closes it, which ends its
// relay) and closes the wrapped transport when that can be closed. It
// clamps pipelined requests, and received ones on the transport's
// heartbeat fast path too.
func TestCommitProofKeepsTransportFeatures(t *testing.T) {
	_, inmem := raft.NewInmemTransport("a")
	w := withCommitProof(inmem, transportRules{})
	if _, ok := w.(raft.WithPreVote); !ok {
		t.Error("pre-vote lost")
	}
	bare := withCommitProof(bareTransport{inmem}, transportRules{})
	if _, ok := bare.(raft.WithPreVote); ok {
		t.Error("pre-vote claimed by a transport without it")
	}
	if err := bare.(raft.WithClose).Close(); err != nil {
		t.Errorf("closing the wrapper of a transport without Close: %v", err)
	}
	closing := &closeRecorder{Transport: inmem}
	if err := withCommitProof(closing, transportRules{}).(raft.WithClose).Close(); err != nil || !closing.closed {
		t.Errorf("the wrapped transport closed %v (err %v), want closed", closing.closed, err)
	}
	hb := &heartbeatRecorder{Transport: inmem}
	var got raft.RPC
	withCommitProof(hb, transportRules{}).SetHeartbeatHandler(func(rpc raft.RPC) { got = rpc })
	hb.handler(raft.RPC{Command: &raft.AppendEntriesRequest{PrevLogEntry: 4, LeaderCommitIndex: 6}})
	if c := got.Command.(*raft.AppendEntriesRequest).LeaderCommitIndex; c != 4 {
		t.Errorf("a request on the heartbeat path reached raft with commit %d, want 4", c)
	}
	rec := &recordingTransport{Transport: inmem}
	p, err := withCommitProof(rec, transportRules{}).AppendEntriesPipeline("b", "b")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		req  raft.AppendEntriesRequest
		want uint64
	}{
		{raft.AppendEntriesRequest{PrevLogEntry: 48, LeaderCommitIndex: 50}, 48},
		{raft.AppendEntriesRequest{PrevLogEntry: 48, Entries: []*raft.Log{{Index: 49}}, LeaderCommitIndex: 50}, 49},
		{raft.AppendEntriesRequest{PrevLogEntry: 48, Entries: []*raft.Log{{Index: 49}, {Index: 50}, {Index: 51}}, LeaderCommitIndex: 50}, 50},
		{raft.AppendEntriesRequest{Term: 3}, 0}, // a heartbeat
	} {
		if _, err := p.AppendEntries(&tc.req, &raft.AppendEntriesResponse{}); err != nil {
			t.Fatal(err)
		}
		if got := rec.last.LeaderCommitIndex; got != tc.want {
			t.Errorf("prev %d, %d entries, commit %d: sent commit %d, want %d", tc.req.PrevLogEntry, len(tc.req.Entries), tc.req.LeaderCommitIndex, got, tc.want)
		}
	}
}

// bareTransport has only raft.Transport's methods.
type bareTransport struct{ raft.Transport }

// closeRecorder records that it was closed.
type closeRecorder struct {
	raft.Transport
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

// heartbeatRecorder keeps the heartbeat handler raft (here, the wrapper)
// gives it.
type heartbeatRecorder struct {
	raft.Transport
	handler func(raft.RPC)
}

func (h *heartbeatRecorder) SetHeartbeatHandler(cb func(raft.RPC)) { h.handler = cb }

// recordingTransport's pipeline records the requests it is given.
type recordingTransport struct {
	raft.Transport
	last raft.AppendEntriesRequest
}

func (r *recordingTransport) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return recordingPipeline{r}, nil
}

type recordingPipeline struct{ r *recordingTransport }

func (p recordingPipeline) AppendEntries(args *raft.AppendEntriesRequest, _ *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	p.r.last = *args
	return nil, nil
}
func (recordingPipeline) Consumer() <-chan raft.AppendFuture { return nil }
func (recordingPipeline) Close() error                       { return nil }
