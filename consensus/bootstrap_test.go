package consensus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/ethereum/go-ethereum/common"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/internal/diskfault"
	"github.com/tally-ledger/tally/internal/durable"
	"github.com/tally-ledger/tally/mempool"
)

// TestDecideBootstrap: a node with no Raft state and a state at genesis
// bootstraps only on a first start that enough peers confirm, joins fresh
// when a running chain never heard of it (or when it is no genesis
// validator), refuses when a peer heard its Raft (its data directory was
// lost), and waits while a peer that might have is silent or too few
// answered.
func TestDecideBootstrap(t *testing.T) {
	down := errors.New("connection refused")
	genesisPeer := func(p string) PeerAnswer { return PeerAnswer{Peer: p} }
	runningPeer := func(p string, h uint64, knows bool) PeerAnswer {
		return PeerAnswer{Peer: p, Height: h, KnowsUs: knows}
	}
	silentPeer := func(p string) PeerAnswer { return PeerAnswer{Peer: p, Err: down} }
	for _, tc := range []struct {
		name    string
		voters  int
		answers []PeerAnswer
		want    BootstrapVerdict
		reason  string // in the reason
	}{
		{"all at genesis", 3, []PeerAnswer{genesisPeer("b"), genesisPeer("c")}, Bootstrap, "2 of 2 peers answered"},
		{"the only validator", 1, nil, Bootstrap, "only validator"},
		{"unreachable: the first node of a first start waits", 3, []PeerAnswer{silentPeer("b"), silentPeer("c")}, Wait, "0 of the 2 other genesis validators answered, 2 needed"},
		{"one at genesis, one not up yet: {this, c} may have run", 3, []PeerAnswer{genesisPeer("b"), silentPeer("c")}, Wait, "silent: c (connection refused)"},
		{"four validators: two of three answers", 4, []PeerAnswer{genesisPeer("b"), genesisPeer("c"), silentPeer("d")}, Bootstrap, "2 of 3 peers answered (2 needed)"},
		{"five validators: two of four answers", 5, []PeerAnswer{genesisPeer("b"), genesisPeer("c"), silentPeer("d"), silentPeer("e")}, Wait, "3 needed"},
		{"five validators: three of four answers", 5, []PeerAnswer{genesisPeer("b"), genesisPeer("c"), genesisPeer("d"), silentPeer("e")}, Bootstrap, "3 of 4"},
		{"a validator left unasked counts as silent", 3, []PeerAnswer{genesisPeer("b")}, Wait, "not asked"},
		{"past genesis, knows this node: lost directory", 3, []PeerAnswer{runningPeer("b", 7, true), runningPeer("c", 7, false)}, Refuse, "peer b saw this node's Raft"},
		{"a peer at genesis knows this node", 3, []PeerAnswer{runningPeer("b", 0, true), genesisPeer("c")}, Refuse, "peer b"},
		{"knows this node, the other silent", 3, []PeerAnswer{silentPeer("b"), runningPeer("c", 3, true)}, Refuse, "peer c"},
		{"past genesis, the other silent: cannot tell yet", 3, []PeerAnswer{runningPeer("b", 5, false), silentPeer("c")}, Wait, "c (connection refused) did not answer"},
		{"Raft ran, no block yet, the other silent", 3, []PeerAnswer{{Peer: "b", Ran: true}, silentPeer("c")}, Wait, "b at height 0"},
		{"past genesis, nobody knows it: late first start", 3, []PeerAnswer{runningPeer("b", 5, false), runningPeer("c", 4, false)}, JoinFresh, "late first start"},
		{"mixed: one running, one at genesis, none knows it", 3, []PeerAnswer{runningPeer("b", 2, false), genesisPeer("c")}, JoinFresh, "b at height 2"},
		{"another bootstrapped first: join it", 3, []PeerAnswer{{Peer: "b", Ran: true}, genesisPeer("c")}, JoinFresh, "late first start"},
		{"added after genesis, a peer knows it as a voter", 0, []PeerAnswer{{Peer: "b", Height: 9, KnowsUs: true, Voter: true, Ran: true}, silentPeer("c")}, Refuse, "peer b saw"},
		{"added after genesis, known by one, a voter for another", 0, []PeerAnswer{{Peer: "b", Height: 9, Voter: true, Ran: true}, {Peer: "c", Height: 9, KnowsUs: true, Ran: true}}, Refuse, "peer c saw"},
		// The gap the voter set closes: the leaders it followed are
		// silent, and the peers that answer never heard it, but one holds
		// the configuration entry that made it a voter.
		{"added after genesis, a voter for a peer that never heard it", 0, []PeerAnswer{
			{Peer: "b", Height: 9, Ran: true, Voter: true, HasVoters: true, Voters: []string{"a", "b", "c", "me"}}, silentPeer("a")}, Refuse, "peer b has this node as a voter"},
		{"the voter set names it, the flag does not", 0, []PeerAnswer{
			{Peer: "b", Height: 9, Ran: true, HasVoters: true, Voters: []string{"b", "me"}}}, Refuse, "peer b has this node as a voter"},
		{"an observer that ran: no voter", 0, []PeerAnswer{{Peer: "b", Height: 9, KnowsUs: true, Ran: true}}, JoinFresh, "observer"},
		{"not a genesis validator, nobody answers: cannot tell", 0, []PeerAnswer{silentPeer("b")}, JoinUnknown, "grants no vote until it caught up"},
		{"not a genesis validator, the answers at genesis: cannot tell", 0, []PeerAnswer{genesisPeer("a"), {Peer: "b", HasVoters: true}}, JoinUnknown, "2 answered, at genesis"},
		{"an older build that runs tells no voters: as before", 0, []PeerAnswer{{Peer: "b", Height: 9, Ran: true}, silentPeer("c")}, JoinFresh, "an older build"},
		// Three current voters: had this node been a fourth, each quorum
		// of three with it holds two of them, so two answers of three
		// meet every one.
		{"first start: two of three current voters answer", 0, []PeerAnswer{
			{Peer: "a", Height: 9, Ran: true, HasVoters: true, Voters: []string{"a", "b", "c"}},
			{Peer: "b", Height: 9, Ran: true, HasVoters: true, Voters: []string{"a", "b", "c"}}, silentPeer("c")}, JoinFresh, "2 of 3"},
		{"one of three current voters answers: wait", 0, []PeerAnswer{
			{Peer: "a", Height: 9, Ran: true, HasVoters: true, Voters: []string{"a", "b", "c"}}, silentPeer("b")}, Wait, "1 of the 3 current voters (peer a's configuration) answered, 2 needed before this node can tell it never was one; silent: b (connection refused), c (not asked)"},
		{"two current voters: both must answer", 0, []PeerAnswer{
			{Peer: "a", Height: 9, Ran: true, HasVoters: true, Voters: []string{"a", "d"}}, silentPeer("d")}, Wait, "1 of the 2 current voters"},
		// A lagging peer tells an older configuration: each told must be met.
		{"two configurations told, the newer one not met", 0, []PeerAnswer{
			{Peer: "a", Height: 9, Ran: true, HasVoters: true, Voters: []string{"a", "b", "c"}},
			{Peer: "b", Height: 8, Ran: true, HasVoters: true, Voters: []string{"a", "b", "c"}},
			{Peer: "c", Height: 3, Ran: true, HasVoters: true, Voters: []string{"c", "d", "e"}}, silentPeer("d"), silentPeer("e")}, Wait, "peer c's configuration"},
		// Two directories lost: a voter that holds no Raft state any more
		// answers, but holds no entry: its answer does not count.
		{"a current voter with no Raft state does not count", 0, []PeerAnswer{
			{Peer: "a", Height: 9, Ran: true, HasVoters: true, Voters: []string{"a", "b", "c"}}, {Peer: "b", HasVoters: true}, silentPeer("c")}, Wait, "b (no Raft configuration"},
		// Back as a fresh member, it has a term and no log yet.
		{"a current voter with a term and no configuration does not count", 0, []PeerAnswer{
			{Peer: "a", Height: 9, Ran: true, HasVoters: true, Voters: []string{"a", "b", "c"}}, {Peer: "b", Ran: true, HasVoters: true}, silentPeer("c")}, Wait, "b (no Raft configuration"},
		{"the chain's only voter runs and answers", 0, []PeerAnswer{
			{Peer: "a", Height: 1, Ran: true, HasVoters: true, Voters: []string{"a"}}}, JoinFresh, "1 of 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, why := DecideBootstrap("me", tc.voters, tc.answers)
			if got != tc.want || !strings.Contains(why, tc.reason) {
				t.Fatalf("DecideBootstrap = %s (%s), want %s (%q)", got, why, tc.want, tc.reason)
			}
		})
	}
	for voters, want := range map[int]int{1: 0, 2: 1, 3: 2, 4: 2, 5: 3, 6: 3, 7: 4} {
		if got := BootstrapQuorum(voters); got != want {
			t.Errorf("BootstrapQuorum(%d) = %d, want %d", voters, got, want)
		}
		// Every quorum of the configuration that includes this node meets
		// the answers: (quorum-1) + need > voters-1.
		if q := voters/2 + 1; voters > 1 && q-1+BootstrapQuorum(voters) <= voters-1 {
			t.Errorf("BootstrapQuorum(%d) = %d misses a quorum of %d", voters, BootstrapQuorum(voters), q)
		}
	}
}

// TestStartAsksPeersBeforeBootstrap: Start asks the peers, a round bounded
// by peerRound, before it bootstraps a state at genesis; a refusal names
// the directory and the way out (ErrDataDirLost), a late first start
// comes up with no configuration (it waits for the leader), a first start
// bootstraps once enough peers answered, asking again while they are too
// few, and gives up after PeerCheckTimeout (ErrPeersSilent). A node with
// Raft state asks nobody.
func TestStartAsksPeersBeforeBootstrap(t *testing.T) {
	val, _ := genesis.DevKey(genesis.DevValidatorIndex)
	id := raft.ServerID("n0")
	peers := []raft.Server{{Suffrage: raft.Voter, ID: id, Address: "n0"}, {Suffrage: raft.Voter, ID: "n1", Address: "n1"}}
	start := func(e *fsmEnv, fs vfs.FS, fresh bool, answers func(round int) []PeerAnswer, asked *int) (*Engine, error) {
		_, trans := raft.NewInmemTransport(raft.ServerAddress(id))
		senders := chain.NewSenderCache(chain.NewSigner(big.NewInt(genesis.DevChainID)), 16)
		return Start(Config{Dir: "/data/raft", FS: fs, Snapshots: raft.NewInmemSnapshotStore(), LocalID: id, Transport: trans,
			Bootstrap: peers, Key: val, Logger: testLogger(t), FreshRaft: fresh, PeerCheckTimeout: 1500 * time.Millisecond,
			AskPeers: func(ctx context.Context) []PeerAnswer {
				*asked++
				if d, ok := ctx.Deadline(); !ok || time.Until(d) > peerRound {
					t.Errorf("AskPeers' context is not bounded by peerRound (deadline %v, %v)", d, ok)
				}
				return answers(*asked)
			}},
			e.db, mempool.New(mempool.DefaultConfig, e.db, senders), senders)
	}
	always := func(a ...PeerAnswer) func(int) []PeerAnswer { return func(int) []PeerAnswer { return a } }
	servers := func(eng *Engine) int {
		f := eng.Raft.GetConfiguration()
		if err := f.Error(); err != nil {
			t.Fatal(err)
		}
		return len(f.Configuration().Servers)
	}

	lost := always(PeerAnswer{Peer: "n1", Height: 9, KnowsUs: true})
	var asked int
	if _, err := start(newFSMEnv(t), vfs.NewMem(), false, lost, &asked); !errors.Is(err, ErrDataDirLost) ||
		!strings.Contains(err.Error(), "/data/raft") || !strings.Contains(err.Error(), "--raft-fresh") || !strings.Contains(err.Error(), "peer n1") {
		t.Fatalf("start with a peer that knows this node: %v, want ErrDataDirLost naming the directory, the peer and --raft-fresh", err)
	}
	// --raft-fresh: no question, no configuration of its own.
	asked = 0
	eng, err := start(newFSMEnv(t), vfs.NewMem(), true, lost, &asked)
	if err != nil {
		t.Fatalf("start as a fresh member: %v", err)
	}
	if n := servers(eng); n != 0 || asked != 0 {
		t.Fatalf("a fresh member has %d servers and asked %d times; want none, not asking", n, asked)
	}
	eng.Shutdown()

	// A late first start joins fresh.
	eng, err = start(newFSMEnv(t), vfs.NewMem(), false, always(PeerAnswer{Peer: "n1", Height: 9}), &asked)
	if err != nil {
		t.Fatalf("late first start: %v", err)
	}
	if n := servers(eng); n != 0 {
		t.Fatalf("a late first start bootstrapped %d servers; it must wait for the leader", n)
	}
	eng.Shutdown()

	// Nobody answers: no bootstrap; the node asks again until
	// PeerCheckTimeout, then gives up naming the silent peer.
	asked = 0
	began := time.Now()
	silent := always(PeerAnswer{Peer: "n1", Err: errors.New("refused")})
	if _, err := start(newFSMEnv(t), vfs.NewMem(), false, silent, &asked); !errors.Is(err, ErrPeersSilent) ||
		!strings.Contains(err.Error(), "n1 (refused)") || !strings.Contains(err.Error(), "raft.peer-check-timeout") {
		t.Fatalf("start with no answer: %v, want ErrPeersSilent naming the silent peer and the key", err)
	}
	if asked < 2 || time.Since(began) < 1500*time.Millisecond {
		t.Fatalf("gave up after %d questions and %v; want questions until raft.peer-check-timeout", asked, time.Since(began))
	}

	// A first start bootstraps once the peer answers; its restart asks
	// nobody.
	e, fs := newFSMEnv(t), vfs.NewMem()
	asked = 0
	eng, err = start(e, fs, false, func(round int) []PeerAnswer {
		if round == 1 {
			return []PeerAnswer{{Peer: "n1", Err: errors.New("refused")}}
		}
		return []PeerAnswer{{Peer: "n1"}}
	}, &asked)
	if err != nil {
		t.Fatalf("first start: %v", err)
	}
	if n := servers(eng); n != 2 || asked != 2 {
		t.Fatalf("a first start has %d servers after asking %d times, want the bootstrap configuration after two questions", n, asked)
	}
	eng.Shutdown()
	eng, err = start(e, fs, false, lost, &asked)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer eng.Shutdown()
	if asked != 2 {
		t.Fatal("a node with Raft state asked its peers")
	}
}

// TestKnowsMemberRecordsAnswers: a leader records every voter whose Raft
// answered it, durably in its Raft stable store, and no other server.
func TestKnowsMemberRecordsAnswers(t *testing.T) {
	var dirs []string
	c := newTestClusterWith(t, 3, func(i int, cfg *Config) {
		dirs = append(dirs, cfg.Dir)
		cfg.Address = func(id raft.ServerID) (common.Address, error) { return common.HexToAddress(string(id)), nil }
	})
	l := c.leader()
	c.waitHeight(1)
	for i := range c.engines {
		if i != l && !c.engines[l].KnowsMember(c.keys[i].Address()) {
			t.Errorf("the leader does not know voter %d, which answered its heartbeats", i)
		}
	}
	// Every node knows the proposer of every block it applied (a
	// leader's followers send it no request).
	c.waitHeight(2)
	for i, e := range c.engines {
		head, _ := c.dbs[i].Head()
		for h := uint64(1); h <= head.Number; h++ {
			b, err := c.dbs[i].BlockByNumber(h)
			if err != nil {
				t.Fatal(err)
			}
			if !e.KnowsMember(b.Header.Coinbase) {
				t.Errorf("node %d does not know %s, whose block %d it applied", i, b.Header.Coinbase, h)
			}
		}
	}
	if c.engines[l].KnowsMember(common.Address{1}) {
		t.Fatal("the leader knows a validator it never saw")
	}
	if err := c.engines[l].Shutdown(); err != nil {
		t.Fatal(err)
	}
	s, err := OpenRaftStore(filepath.Join(dirs[l], "log"), RaftStoreOptions{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k := &knownMembers{known: map[common.Address]bool{}, ids: map[raft.ServerID]bool{}, store: s}
	for i := range c.engines {
		if i != l && !k.knows(c.keys[i].Address()) {
			t.Errorf("voter %d's record did not survive the leader's restart", i)
		}
	}
}

// TestKnowsMemberRecordsSilentLeader: a leader that proposes no block is
// still recorded by its followers (they accepted its heartbeats), and a
// candidate by the voters it asked: a data directory lost after either
// must not be taken for a first start.
func TestKnowsMemberRecordsSilentLeader(t *testing.T) {
	c := newTestClusterWith(t, 3, func(i int, cfg *Config) {
		cfg.Address = func(id raft.ServerID) (common.Address, error) { return common.HexToAddress(string(id)), nil }
		cfg.Builder.Heartbeat = time.Hour // no transactions, no empty blocks: the leader proposes nothing
	})
	l := c.leader()
	leader := c.keys[l].Address()
	deadline := time.Now().Add(10 * time.Second)
	for i := range c.engines {
		if i == l {
			continue
		}
		for !c.engines[i].KnowsMember(leader) {
			if time.Now().After(deadline) {
				t.Fatalf("follower %d does not know leader %d, whose heartbeats it accepted", i, l)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for i, db := range c.dbs {
		if head, _ := db.Head(); head.Number != 0 {
			t.Fatalf("node %d applied block %d: the leader proposed, so its followers know it from the block", i, head.Number)
		}
	}

	// A candidate's vote request (and pre-vote) is recorded by the voter
	// it reached, whatever the vote: raft observes the request before it
	// judges it.
	e := c.engines[(l+1)%3]
	for _, req := range []any{
		raft.RequestVoteRequest{RPCHeader: raft.RPCHeader{ID: []byte(common.Address{7}.Hex())}},
		raft.RequestPreVoteRequest{RPCHeader: raft.RPCHeader{ID: []byte(common.Address{8}.Hex())}},
	} {
		e.known.sawServer(observedSender(e.cfg.LocalID, req))
	}
	for _, a := range []common.Address{{7}, {8}} {
		if !e.KnowsMember(a) {
			t.Errorf("a voter does not know candidate %s, whose vote request it received", a)
		}
	}
}

// TestStartAddedValidatorAsks: a node that is not a genesis validator,
// on an empty Raft directory and a state at genesis, asks its peers too:
// refused when one has it as a voter (a validator added by governance
// whose directory was lost: the leader promotes only a validator that
// ran), started waiting for the leader once enough of the current voters
// the answers told answered without having it as a voter (its first
// start), and waiting while too few did; with no answer at all it
// starts but grants no vote until it caught up.
func TestStartAddedValidatorAsks(t *testing.T) {
	val, _ := genesis.DevKey(genesis.DevValidatorIndex)
	id := raft.ServerID("n5")
	start := func(answers func(round int) []PeerAnswer) (*Engine, int, error) {
		_, trans := raft.NewInmemTransport(raft.ServerAddress(id))
		e := newFSMEnv(t)
		senders := chain.NewSenderCache(chain.NewSigner(big.NewInt(genesis.DevChainID)), 16)
		asked := 0
		eng, err := Start(Config{Dir: "/data/raft", FS: vfs.NewMem(), Snapshots: raft.NewInmemSnapshotStore(), LocalID: id, Transport: trans,
			Key: val, Logger: testLogger(t), PeerCheckTimeout: 1500 * time.Millisecond,
			AskPeers: func(context.Context) []PeerAnswer { asked++; return answers(asked) }},
			e.db, mempool.New(mempool.DefaultConfig, e.db, senders), senders)
		return eng, asked, err
	}
	always := func(a ...PeerAnswer) func(int) []PeerAnswer { return func(int) []PeerAnswer { return a } }
	silent := func(p string) PeerAnswer { return PeerAnswer{Peer: p, Err: errors.New("refused")} }
	current := []string{"n1", "n2", "n3"}
	runs := func(p string, voters ...string) PeerAnswer {
		return PeerAnswer{Peer: p, Height: 9, Ran: true, HasVoters: true, Voters: voters}
	}
	if _, _, err := start(always(PeerAnswer{Peer: "n1", Height: 9, Ran: true, Voter: true, KnowsUs: true}, silent("n2"))); !errors.Is(err, ErrDataDirLost) || !strings.Contains(err.Error(), "peer n1") {
		t.Fatalf("an added validator a peer knows: %v, want ErrDataDirLost naming the peer", err)
	}
	// The leaders it followed are down; a follower that never heard it
	// has it as a voter.
	if _, _, err := start(always(runs("n2", append(current, "n5")...), silent("n1"))); !errors.Is(err, ErrDataDirLost) || !strings.Contains(err.Error(), "peer n2 has this node as a voter") {
		t.Fatalf("an added validator a peer has as a voter: %v, want ErrDataDirLost naming the peer", err)
	}
	// Too few of the current voters answer: it waits, then gives up.
	if _, asked, err := start(always(runs("n1", current...), silent("n2"))); !errors.Is(err, ErrPeersSilent) || asked < 2 || !strings.Contains(err.Error(), "n3 (not asked)") {
		t.Fatalf("one of three current voters answered: %v after %d questions; want ErrPeersSilent after asking again", err, asked)
	}
	// Nobody answers (a node not yet admitted: every peer's gate refuses
	// it; or every peer down): it starts, waiting for the leader, and
	// grants no vote until it caught up.
	eng, _, err := start(always(silent("n1"), silent("n2")))
	if err != nil {
		t.Fatalf("an added validator nobody answers: %v; want a start", err)
	}
	if eng.Voting() {
		t.Fatal("a node that could not tell whether it ran grants votes")
	}
	eng.Shutdown()
	// Its first start: once two of the three answered (the second round
	// asked n2, which the first named), it waits for the leader.
	eng, asked, err := start(func(round int) []PeerAnswer {
		if round == 1 {
			return []PeerAnswer{runs("n1", current...)}
		}
		return []PeerAnswer{runs("n1", current...), runs("n2", current...), silent("n3")}
	})
	if err != nil || asked != 2 {
		t.Fatalf("an added validator's first start: %v after %d questions; want a start after two", err, asked)
	}
	defer eng.Shutdown()
	if f := eng.Raft.GetConfiguration(); f.Error() != nil || len(f.Configuration().Servers) != 0 {
		t.Fatalf("an added validator's first start has configuration %+v (%v); want none: it waits for the leader", f.Configuration(), f.Error())
	}
	if !eng.Voting() {
		t.Fatal("a first start the current voters told holds back its votes")
	}
}

// TestKnowsMemberRecordsSigners: every node that applies a block learns
// the signers of the commit certificates it carries (a validator votes
// on a block it applied: its Raft ran), and nobody else; a certificate
// whose signature does not recover records nothing.
func TestKnowsMemberRecordsSigners(t *testing.T) {
	s, err := OpenRaftStore(filepath.Join(t.TempDir(), "log"), RaftStoreOptions{Logger: testLogger(t), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k := &knownMembers{known: map[common.Address]bool{}, ids: map[raft.ServerID]bool{}, store: s, log: testLogger(t)}
	const chainID = genesis.DevChainID
	hash, next := common.Hash{1}, common.Hash{2}
	votes := map[common.Address][]byte{}
	var signers []common.Address
	for i := range uint32(2) {
		key, _ := genesis.DevKey(i)
		sig, err := key.Sign(chain.VoteHash(chainID, 5, hash, next))
		if err != nil {
			t.Fatal(err)
		}
		votes[key.Address()] = sig
		signers = append(signers, key.Address())
	}
	bad := &chain.Certificate{Height: 6, Hash: hash, Next: next, Sigs: [][]byte{make([]byte, 65)}}
	k.signed([]*chain.Certificate{bad, chain.NewCertificate(5, hash, next, votes)}, chainID)
	for _, a := range signers {
		if !k.knows(a) {
			t.Errorf("%s signed a certificate of an applied block, and is not known", a)
		}
	}
	other, _ := genesis.DevKey(3)
	if k.knows(other.Address()) {
		t.Fatal("a validator that signed nothing is known")
	}
	// Durable: a new record over the same store knows them.
	k2 := &knownMembers{known: map[common.Address]bool{}, ids: map[raft.ServerID]bool{}, store: s}
	if !k2.knows(signers[0]) {
		t.Fatal("the signer's record is not in the stable store")
	}
}

// TestKnownMemberRecordSurvivesCrash: a peer's record of a validator is
// on disk once written, whichever path wrote it (an answer to this
// node's request, a block's proposer or signer: at once; a leader's or
// candidate's request: the engine's record goroutine): a crash right
// after it, keeping exactly what was synced, leaves the record, since
// the Raft store writes it with a sync of its own (RaftStoreOptions,
// not NoSync) and not with the next write of the log.
func TestKnownMemberRecordSurvivesCrash(t *testing.T) {
	fs := vfs.NewCrashableMem()
	if err := durable.MkdirAll(fs, "/data/raft"); err != nil { // as Start makes it
		t.Fatal(err)
	}
	s, err := OpenRaftStore("/data/raft/log", RaftStoreOptions{FS: fs, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addrOf := func(id raft.ServerID) (common.Address, error) { return common.HexToAddress(string(id)), nil }
	k := &knownMembers{known: map[common.Address]bool{}, ids: map[raft.ServerID]bool{}, store: s, address: addrOf,
		log: testLogger(t), wake: make(chan struct{}, 1)}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); k.record(stop) }()
	defer func() { close(stop); <-done }()

	answered, leader := common.Address{1}, common.Address{2}
	k.sawServer(raft.ServerID(answered.Hex())) // a follower's answer: written at once
	// A leader's heartbeat, as raft's observer sees it: the record
	// goroutine writes it.
	k.observe("self", &raft.Observation{Data: raft.LeaderObservation{LeaderID: raft.ServerID(leader.Hex())}})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, err := s.Get(knownKey(leader)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the record goroutine did not write the leader's record")
		}
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{}) // exactly what was synced
	after, err := OpenRaftStore("/data/raft/log", RaftStoreOptions{FS: crashed, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close()
	k2 := &knownMembers{known: map[common.Address]bool{}, ids: map[raft.ServerID]bool{}, store: after}
	for _, a := range []common.Address{answered, leader} {
		if !k2.knows(a) {
			t.Errorf("the record of %s did not survive a crash right after it was written", a)
		}
	}
}

// BenchmarkKnownMemberRecord is the cost of one record (a synced write
// of the Raft stable store on the machine's disk), paid once per
// validator and process.
func BenchmarkKnownMemberRecord(b *testing.B) {
	s, err := OpenRaftStore(filepath.Join(b.TempDir(), "log"), RaftStoreOptions{Logger: testLogger(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	k := &knownMembers{known: map[common.Address]bool{}, ids: map[raft.ServerID]bool{}, store: s, log: testLogger(b)}
	for i := 0; b.Loop(); i++ {
		var a common.Address
		binary.BigEndian.PutUint64(a[:8], uint64(i))
		k.saw(a)
	}
}

// TestAnswerWaitsForSendersRecord: a candidate's vote request reaches a
// node whose disk holds the sync of the candidate's record back. Raft
// grants the vote and persists it, but the answer leaves only once the
// record is durable: a crash before that loses the answer with the
// record, so the candidate never counts a vote from a peer that would
// not remember it ran (it could come back on a lost data directory and
// be let in by that peer). Without heard (the transport's rule) the
// answer leaves while the record is not written.
func TestAnswerWaitsForSendersRecord(t *testing.T) {
	for _, rule := range []bool{false, true} {
		t.Run(fmt.Sprintf("rule=%v", rule), func(t *testing.T) {
			mem := vfs.NewCrashableMem()
			var holding atomic.Bool
			release := make(chan struct{})
			fs := diskfault.Hold(mem, func(op errorfs.Op) bool {
				return holding.Load() && (op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpFileSyncData || op.Kind == errorfs.OpFileSyncTo)
			}, release)
			records, err := OpenRaftStore("/records/log", RaftStoreOptions{FS: fs, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer records.Close()
			releaseAll := sync.OnceFunc(func() { close(release) })
			defer releaseAll() // before Close, which syncs
			addrOf := func(id raft.ServerID) (common.Address, error) { return common.HexToAddress(string(id)), nil }
			k := &knownMembers{known: map[common.Address]bool{}, ids: map[raft.ServerID]bool{}, store: records, address: addrOf,
				log: testLogger(t), wake: make(chan struct{}, 1)}
			stop, done := make(chan struct{}), make(chan struct{})
			go func() { defer close(done); k.record(stop) }()
			defer func() { close(stop); <-done }()

			raftStore, err := OpenRaftStore("/raft/log", RaftStoreOptions{FS: vfs.NewMem(), Logger: testLogger(t), NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			rules := transportRules{}
			if rule {
				rules.heard = k.heard
			}
			_, peer := startMember(t, raftStore, time.Minute, func(trans raft.Transport) raft.Transport { return withCommitProof(trans, rules) })

			holding.Store(true)
			cand := common.Address{7}
			req := raft.RequestVoteRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(cand.Hex()), Addr: []byte(cand.Hex())},
				Term: 3, LastLogIndex: 5, LastLogTerm: 2}
			answered := make(chan raft.RequestVoteResponse, 1)
			go func() {
				var resp raft.RequestVoteResponse
				if err := peer.RequestVote("f", "f", &req, &resp); err != nil {
					t.Error(err)
				}
				answered <- resp
			}()
			// Raft persists its vote (no configuration yet: it grants).
			waitFor(t, 10*time.Second, "raft's persisted vote", func() bool { v, err := raftStore.GetUint64([]byte("LastVoteTerm")); return err == nil && v == 3 })
			select {
			case resp := <-answered:
				if rule {
					t.Fatalf("the vote (granted %v) left before the candidate's record was durable", resp.Granted)
				}
				if _, err := records.Get(knownKey(cand)); err == nil {
					t.Fatal("the record was written with its sync held")
				}
				return // without the rule: the hazard
			case <-time.After(300 * time.Millisecond):
				if !rule {
					t.Fatal("without the rule the answer did not leave")
				}
			}
			// A crash now: the record is lost, and so is the answer.
			crashed := mem.CrashClone(vfs.CrashCloneCfg{})
			after, err := OpenRaftStore("/records/log", RaftStoreOptions{FS: crashed, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := after.Get(knownKey(cand)); err == nil {
				t.Fatal("the record was durable while its sync was held")
			}
			after.Close()
			holding.Store(false)
			releaseAll()
			select {
			case resp := <-answered:
				if !resp.Granted {
					t.Fatal("the vote was refused")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the answer never left once the record was durable")
			}
			if !k.knows(cand) {
				t.Fatal("the candidate is not recorded")
			}
		})
	}
}
