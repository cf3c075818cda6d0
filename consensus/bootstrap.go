package consensus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/ethereum/go-ethereum/common"
	"github.com/hashicorp/raft"
)

// ErrDataDirLost is the refusal of Start to bootstrap a genesis validator
// whose data directory holds no Raft state and a state at genesis while
// its peers tell that the chain ran with this node in it: the directory
// was lost and only nodekey restored. A bootstrap would start it at term
// 1 with the genesis configuration, having forgotten the votes it cast
// and the entries it acknowledged (Raft's election safety and its commit
// rule rest on both being durable): the same hazard as a lost raft/
// directory (ErrRaftStateLost), which the node's own state cannot show
// here since it went too. The way out is the same: a fresh member
// (FreshRaft, tallyd --raft-fresh), started after a few election timeouts.
var ErrDataDirLost = errors.New("data directory lost")

// PeerAnswer is one configured peer's answer to a node about to bootstrap
// (the node's p2p member protocol, or the simulator's network).
type PeerAnswer struct {
	// Peer names the peer (its Raft server id).
	Peer string
	// Err is why the peer gave no answer (unreachable, not serving yet,
	// timed out); nil when it answered.
	Err error
	// Height is the peer's applied height.
	Height uint64
	// KnowsUs: the peer saw the asking node's Raft running
	// (Engine.KnowsMember): the asking node ran before.
	KnowsUs bool
}

// BootstrapVerdict is what a genesis validator with no Raft state and a
// state at genesis does, decided by DecideBootstrap.
type BootstrapVerdict int

const (
	// Bootstrap: a first start; bootstrap the genesis configuration.
	Bootstrap BootstrapVerdict = iota
	// JoinFresh: a late first start; the chain runs, and every peer
	// answered that it never heard this node's Raft: start with no
	// configuration and let the leader send the log.
	JoinFresh
	// Refuse: the directory was lost (ErrDataDirLost), or the node
	// cannot tell and the chain runs.
	Refuse
)

func (v BootstrapVerdict) String() string {
	switch v {
	case Bootstrap:
		return "bootstrap"
	case JoinFresh:
		return "join fresh"
	}
	return "refuse"
}

// DecideBootstrap is the rule for a genesis validator that finds no Raft
// state and a state at genesis, given its peers' answers:
//
//   - a peer whose Raft has heard this node answer knows that it ran:
//     refuse (its votes and acknowledged entries are forgotten);
//   - the chain is past genesis (some peer applied a block) and every
//     peer answered, none knowing this node: it never took part, a late
//     first start; join as a fresh member (the leader sends the log);
//   - the chain is past genesis and some peer did not answer: that peer
//     may be the one that knew this node, so it cannot tell: refuse;
//   - otherwise (every peer that answered is at genesis, or none
//     answered): the cluster's first start, as every validator of a new
//     chain makes it, at once or one after the other: bootstrap.
//
// The reason names the peers the verdict rests on.
func DecideBootstrap(answers []PeerAnswer) (BootstrapVerdict, string) {
	var (
		past, silent []string
		answered     int
	)
	for _, a := range answers {
		if a.Err != nil {
			silent = append(silent, fmt.Sprintf("%s (%v)", a.Peer, a.Err))
			continue
		}
		answered++
		if a.KnowsUs {
			return Refuse, fmt.Sprintf("peer %s saw this node's Raft running (it is at height %d): this node ran before", a.Peer, a.Height)
		}
		if a.Height > 0 {
			past = append(past, fmt.Sprintf("%s at height %d", a.Peer, a.Height))
		}
	}
	switch {
	case len(past) > 0 && len(silent) == 0:
		return JoinFresh, fmt.Sprintf("the chain runs (%s) and none of the %d peers ever saw this node's Raft running: a late first start", strings.Join(past, ", "), answered)
	case len(past) > 0:
		return Refuse, fmt.Sprintf("the chain runs (%s) and %s did not answer, so whether this node ran before cannot be told", strings.Join(past, ", "), strings.Join(silent, ", "))
	case answered == 0 && len(answers) > 0:
		return Bootstrap, "no peer answered: a first start (" + strings.Join(silent, ", ") + ")"
	}
	return Bootstrap, fmt.Sprintf("%d of %d peers answered, all at genesis: a first start", answered, len(answers))
}

// checkBootstrap asks the peers (cfg.AskPeers) whether this genesis
// validator may bootstrap, and logs the verdict. An error is the refusal.
func checkBootstrap(cfg Config) (BootstrapVerdict, error) {
	if cfg.AskPeers == nil {
		return Bootstrap, nil
	}
	ctx := context.Background()
	if cfg.PeerCheckTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.PeerCheckTimeout)
		defer cancel()
	}
	answers := cfg.AskPeers(ctx)
	if len(answers) == 0 {
		return Bootstrap, nil
	}
	v, why := DecideBootstrap(answers)
	switch v {
	case Refuse:
		return v, fmt.Errorf("%w: %s holds no Raft state and the state database is at genesis, but %s. "+
			"Bootstrapping would forget the votes this node cast and the entries it acknowledged, and could let it vote twice in a term; "+
			"restore the data directory, or start the node once as a fresh member after a few election timeouts (tallyd --raft-fresh, docs/cluster.md)",
			ErrDataDirLost, cfg.Dir, why)
	case JoinFresh:
		cfg.Logger.Warn("raft: no Raft state on a running chain that never heard this node: joining as a fresh member; waiting for the leader", "why", why)
	default:
		cfg.Logger.Info("raft: bootstrapping the genesis configuration", "why", why)
	}
	return v, nil
}

// knownMembers remembers, durably in the Raft stable store, every
// validator whose Raft this node saw running: one that answered one of
// this node's Raft RPCs (a follower's answer to a heartbeat or a
// replication, a voter's answer to a vote request), one whose Raft sent
// this node a request (a leader's heartbeat or replication, a candidate's
// vote or pre-vote request: observer), and one that proposed a block this
// node applied. Any of them may have voted or acknowledged entries, or
// led a term; a peer restarted on a lost data directory asks
// (Engine.KnowsMember, DecideBootstrap). The record is written once per
// validator and process; a write lost to a crash is made durable by the
// next synced write of the Raft log.
type knownMembers struct {
	mu    sync.Mutex
	known map[common.Address]bool
	// ids are the server ids already recorded: sawServer runs on every
	// heartbeat and replication, and maps an id only the first time.
	ids   map[raft.ServerID]bool
	store *RaftStore
	// address maps a server id to its validator address (Config.Address).
	address func(raft.ServerID) (common.Address, error)
	log     *slog.Logger
}

// knownKey is the stable-store key of a's record.
func knownKey(a common.Address) []byte { return append([]byte("tally-member/"), a.Bytes()...) }

// sawServer records that server id's Raft ran: it answered an RPC of
// this node's, or sent it one.
func (k *knownMembers) sawServer(id raft.ServerID) {
	if k.address == nil {
		return
	}
	k.mu.Lock()
	done := k.ids[id]
	k.ids[id] = true
	k.mu.Unlock()
	if done {
		return
	}
	if a, err := k.address(id); err == nil {
		k.saw(a)
	}
}

// observer records the servers whose Raft sent this node a request,
// which their answers to this node's requests do not show: the leader of
// a term (raft observes a new leader when it accepts the leader's
// heartbeat or replication: setLeader in appendEntries, after the term
// check) and a candidate (requestVote and requestPreVote observe the
// request before judging it). Without it, a leader elected that proposed
// no block before its data directory was lost is recorded by no peer, and
// neither is a candidate that lost its election: both cast votes (their
// own) that a bootstrap would forget. The filter runs in raft's goroutine
// and passes nothing on (the observer has no channel), so no observation
// is dropped.
func (k *knownMembers) observer(self raft.ServerID) *raft.Observer {
	return raft.NewObserver(nil, false, func(o *raft.Observation) bool {
		k.observed(self, o.Data)
		return false
	})
}

// observed records the sender of the request that raft observation o
// shows (the observer's filter).
func (k *knownMembers) observed(self raft.ServerID, o any) {
	var id raft.ServerID
	switch d := o.(type) {
	case raft.LeaderObservation:
		id = d.LeaderID
	case raft.RequestVoteRequest:
		id = raft.ServerID(d.ID)
	case raft.RequestPreVoteRequest:
		id = raft.ServerID(d.ID)
	}
	if id != "" && id != self {
		k.sawServer(id)
	}
}

// saw records that validator a's Raft ran.
func (k *knownMembers) saw(a common.Address) {
	k.mu.Lock()
	if k.known[a] {
		k.mu.Unlock()
		return
	}
	k.known[a] = true
	k.mu.Unlock()
	if _, err := k.store.Get(knownKey(a)); err == nil {
		return
	}
	if err := k.store.Set(knownKey(a), []byte{1}); err != nil {
		k.log.Warn("raft: record a validator seen running", "address", a, "err", err)
	}
}

// knows reports whether validator a's Raft was ever seen running.
func (k *knownMembers) knows(a common.Address) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.known[a] {
		return true
	}
	if _, err := k.store.Get(knownKey(a)); err == nil {
		k.known[a] = true
		return true
	}
	return false
}

// KnowsMember reports whether this node ever saw the Raft of validator a
// running (it answered this node's Raft RPCs, sent it one, or proposed a
// block this node applied): the answer a peer that lost its data directory asks for
// before it bootstraps.
func (e *Engine) KnowsMember(a common.Address) bool { return e.known.knows(a) }
