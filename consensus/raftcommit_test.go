package consensus

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
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
				send = withCommitProof(leaderTrans, transportRules{})
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
	fsm, follower := startStaleFollowerOn(t, entry, withCommitProof(ftcp, transportRules{}))
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

// TestLeaderSendsUnprovenCommit shows, with three real hashicorp/raft
// v1.8.0 nodes and no request made by hand, the request of raft's own
// leader that makes a follower apply an entry the leader never had
// (docs/architecture.md, "hashicorp/raft v1.8.0: a follower's commit
// index"). Follower o holds entries 5 and 6 of term 2 that nobody
// committed; l and a hold entries up to 4, and l is elected for term 3.
// l's replication to o captures l's last index (4) before l's no-op (5) is
// on disk (replication.go:170; l's store holds the no-op back), its first
// request fails (o unreachable), and the next one is held in the
// transport's EncodePeer, which raft calls between the capture and the
// read of its commit index (replication.go:571-575), until the no-op is
// committed through a: raft's failure backoff (replication.go:209-216) and
// a loaded machine leave that gap on their own. The request checks entry
// 4, carries no entries and commit index 5.
//
// A bare o commits its own entry 5 and applies it: a fork (this row
// asserts the upstream defect, and fails once raft follows the paper).
// With withCommitProof on l's side or on o's, o applies the leader's
// entries only.
func TestLeaderSendsUnprovenCommit(t *testing.T) {
	for _, tc := range []struct {
		name         string
		send, recv   bool   // withCommitProof on l's transport, on o's
		commit       uint64 // the commit index o's raft gets with the request
		staleApplied bool
	}{
		{name: "bare: o applies its own entry 5", commit: 5, staleApplied: true},
		{name: "sent through withCommitProof", send: true, commit: 4},
		{name: "received through withCommitProof", recv: true, commit: 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := leaderRace(t, tc.send, tc.recv)
			if got.req.PrevLogEntry != 4 || len(got.req.Entries) != 0 || got.req.LeaderCommitIndex != tc.commit {
				t.Fatalf("the request raft's leader sent o: previous entry %d, %d entries, commit %d; want 4, 0, %d",
					got.req.PrevLogEntry, len(got.req.Entries), got.req.LeaderCommitIndex, tc.commit)
			}
			want := []string{"both 2", "both 3", "both 4", "leader cmd"}
			if tc.staleApplied {
				want = []string{"both 2", "both 3", "both 4", "follower 5", "leader cmd"}
			}
			if !slices.Equal(got.applied, want) {
				t.Fatalf("o applied %q, want %q", got.applied, want)
			}
		})
	}
}

// raceResult is what leaderRace saw: the request l's replication sent o
// after the gap, and what o's FSM applied once it had l's next command.
type raceResult struct {
	req     raft.AppendEntriesRequest
	applied []string
}

// leaderRace runs TestLeaderSendsUnprovenCommit's three nodes once.
func leaderRace(t *testing.T, send, recv bool) raceResult {
	t.Helper()
	entry := func(i, term uint64, who string) *raft.Log {
		return &raft.Log{Index: i, Term: term, Type: raft.LogCommand, Data: fmt.Appendf(nil, "%s %d", who, i)}
	}
	servers := raft.Configuration{Servers: []raft.Server{
		{Suffrage: raft.Voter, ID: "l", Address: "l"}, {Suffrage: raft.Voter, ID: "a", Address: "a"}, {Suffrage: raft.Voter, ID: "o", Address: "o"}}}
	trans := map[raft.ServerAddress]*raft.InmemTransport{}
	for _, id := range []raft.ServerAddress{"l", "a", "o"} {
		_, trans[id] = raft.NewInmemTransportWithTimeout(id, 10*time.Second)
	}
	for a, ta := range trans {
		for b, tb := range trans {
			if a != b {
				ta.Connect(b, tb)
			}
		}
	}
	hook := &raceTransport{InmemTransport: trans["l"], o: "o", blocked: make(chan struct{}), proceed: make(chan struct{})}
	release := make(chan struct{})
	var released sync.Once
	releaseNoop := func() { released.Do(func() { close(release) }) }
	proceed := sync.OnceFunc(func() { close(hook.proceed) })
	t.Cleanup(func() { releaseNoop(); proceed() }) // never leave raft blocked
	start := func(id raft.ServerID, tr raft.Transport, logs raft.LogStore, extra ...*raft.Log) (*logFSM, *raft.Raft) {
		store := raft.NewInmemStore()
		all := append([]*raft.Log{{Index: 1, Term: 1, Type: raft.LogConfiguration, Data: raft.EncodeConfiguration(servers)},
			entry(2, 1, "both"), entry(3, 1, "both"), entry(4, 1, "both")}, extra...)
		if err := store.StoreLogs(all); err != nil {
			t.Fatal(err)
		}
		if err := store.SetUint64([]byte("CurrentTerm"), 2); err != nil {
			t.Fatal(err)
		}
		if logs == nil {
			logs = store
		} else {
			logs.(*noopGate).InmemStore = store
		}
		conf := raft.DefaultConfig()
		conf.LocalID = id
		conf.Logger = hclog.NewNullLogger()
		conf.CommitTimeout = 5 * time.Millisecond
		if id == "l" {
			conf.HeartbeatTimeout, conf.ElectionTimeout, conf.LeaderLeaseTimeout = 50*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond
		} else { // a and o never stand: l is the only candidate
			conf.HeartbeatTimeout, conf.ElectionTimeout, conf.LeaderLeaseTimeout = time.Minute, time.Minute, time.Second
		}
		fsm := &logFSM{}
		r, err := raft.NewRaft(conf, fsm, logs, store, raft.NewInmemSnapshotStore(), tr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			done := make(chan struct{})
			go func() { r.Shutdown().Error(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Errorf("raft %s did not shut down within 10 s", id)
			}
		})
		return fsm, r
	}
	var oTrans raft.Transport = trans["o"]
	if recv {
		oTrans = withCommitProof(oTrans, transportRules{})
	}
	oFSM, _ := start("o", oTrans, nil, entry(5, 2, "follower"), entry(6, 2, "follower"))
	start("a", trans["a"], nil)
	var lTrans raft.Transport = hook
	if send {
		lTrans = withCommitProof(hook, transportRules{})
	}
	_, leader := start("l", lTrans, &noopGate{release: release})

	within := func(what string, done func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !done(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10 s", what)
			}
		}
	}
	select { // o's replication captured index 4 and waits before reading the commit index
	case <-hook.blocked:
	case <-time.After(10 * time.Second):
		t.Fatal("l's replication to o never reached its second request")
	}
	releaseNoop()
	within("l commits its no-op through a", func() bool { return leader.CommitIndex() >= 5 })
	proceed()
	within("l's replication sends o its request", func() bool { _, ok := hook.sent(); return ok })
	f := leader.Apply([]byte("leader cmd"), 10*time.Second)
	applied := make(chan error, 1)
	go func() { applied <- f.Error() }()
	select {
	case err := <-applied:
		if err != nil {
			t.Fatalf("l applies a command: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("l did not apply a command within 10 s")
	}
	var res raceResult
	within("o applies l's command", func() bool {
		logs, _ := oFSM.upTo(0)
		res.applied = res.applied[:0]
		for _, l := range logs {
			res.applied = append(res.applied, string(l.Data))
		}
		return len(logs) > 0 && string(logs[len(logs)-1].Data) == "leader cmd"
	})
	res.req, _ = hook.sent()
	return res
}

// noopGate is a leader's log store that holds the first no-op entry back
// until release is closed.
type noopGate struct {
	*raft.InmemStore
	release chan struct{}
	once    sync.Once
}

func (g *noopGate) StoreLogs(logs []*raft.Log) error {
	if len(logs) > 0 && logs[0].Type == raft.LogNoop {
		g.once.Do(func() { <-g.release })
	}
	return g.InmemStore.StoreLogs(logs)
}

// raceTransport is l's transport: it fails l's first replication request
// to o, learning the goroutine that sends o's requests (raft runs one per
// follower), holds that goroutine's next EncodePeer until proceed is
// closed (signalling blocked), and keeps the next request it sends o.
type raceTransport struct {
	*raft.InmemTransport
	o                raft.ServerAddress
	blocked, proceed chan struct{}
	blockOnce        sync.Once

	mu     sync.Mutex
	oGID   uint64
	req    raft.AppendEntriesRequest
	gotReq bool
}

func (h *raceTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	if target == h.o && args.PrevLogEntry > 0 { // replication, not a heartbeat
		h.mu.Lock()
		if h.oGID == 0 {
			h.oGID = goroutineID()
			h.mu.Unlock()
			return fmt.Errorf("o unreachable")
		}
		if !h.gotReq {
			h.req, h.gotReq = *args, true
		}
		h.mu.Unlock()
	}
	return h.InmemTransport.AppendEntries(id, target, args, resp)
}

func (h *raceTransport) EncodePeer(id raft.ServerID, addr raft.ServerAddress) []byte {
	h.mu.Lock()
	mine := h.oGID != 0 && h.oGID == goroutineID()
	h.mu.Unlock()
	if mine {
		h.blockOnce.Do(func() {
			close(h.blocked)
			<-h.proceed
		})
	}
	return h.InmemTransport.EncodePeer(id, addr)
}

func (h *raceTransport) sent() (raft.AppendEntriesRequest, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.req, h.gotReq
}

// goroutineID is the calling goroutine's number, from its stack's header.
func goroutineID() uint64 {
	var b [64]byte
	f := strings.Fields(string(b[:runtime.Stack(b[:], false)]))
	id, _ := strconv.ParseUint(f[1], 10, 64)
	return id
}
