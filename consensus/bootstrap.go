package consensus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/chain"
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
// A validator added after genesis is refused the same way: it would join
// with an empty log and forgotten votes.
var ErrDataDirLost = errors.New("data directory lost")

// ErrPeersSilent is the refusal of Start when the peers that answered
// within PeerCheckTimeout are too few to tell a first start from a lost
// data directory (DecideBootstrap's Wait).
var ErrPeersSilent = errors.New("too few peers answered")

// PeerAnswer is one peer's answer to a node about to start Raft on an
// empty Raft directory and a state at genesis (the node's p2p member
// protocol, or the simulator's network).
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
	// Ran: the peer's Raft has a term or a log (Engine.RaftRan): the
	// cluster's Raft started, whether or not a block was built.
	Ran bool
	// Voter: the asking node is a voter of the peer's Raft configuration
	// (a validator added by governance learns it is one this way: its own
	// state is at genesis).
	Voter bool
	// HasVoters: the answer tells the voters of the peer's latest Raft
	// configuration (a peer of an older build does not: p2p.MemberProtocolV1).
	HasVoters bool
	// Voters are those voters' Raft server ids (none while the peer's
	// Raft has no configuration).
	Voters []string
}

// runs reports whether a shows that the cluster's Raft started.
func (a PeerAnswer) runs() bool { return a.Height > 0 || a.Ran }

// BootstrapVerdict is what a node with no Raft state and a state at
// genesis does, decided by DecideBootstrap.
type BootstrapVerdict int

const (
	// Bootstrap: a first start; bootstrap the genesis configuration.
	Bootstrap BootstrapVerdict = iota
	// JoinFresh: start with no configuration and let the leader send the
	// log: a genesis validator's late first start (the chain runs, and
	// every peer answered that it never heard this node's Raft), or a
	// node that is not a genesis validator and that no peer knows as a
	// voter that ran.
	JoinFresh
	// Refuse: the directory was lost (ErrDataDirLost).
	Refuse
	// Wait: too few peers answered to tell; ask again.
	Wait
	// JoinUnknown: as JoinFresh, for a node that is not a genesis
	// validator and learned no voter set (no peer whose Raft runs
	// answered: a node not yet admitted gets no answer at all). It cannot
	// tell whether it ran, so it grants no vote until it caught up, as a
	// fresh member its operator started (voteGate).
	JoinUnknown
)

func (v BootstrapVerdict) String() string {
	switch v {
	case Bootstrap:
		return "bootstrap"
	case JoinFresh:
		return "join fresh"
	case Wait:
		return "wait"
	case JoinUnknown:
		return "join fresh, not voting until caught up"
	}
	return "refuse"
}

// BootstrapQuorum is how many of the other genesis validators must
// answer, at genesis and not knowing it, before a genesis validator of
// voters bootstraps: enough that every quorum of the genesis
// configuration (voters/2+1) that could have run with this node in it
// holds one of them. Such a quorum has q-1 members besides this node,
// all of which ran (their term and log are durable), and they are missed
// only if every answer came from the other voters-q: so voters-q+1
// answers. A lone validator (1) needs none: nobody else could tell.
func BootstrapQuorum(voters int) int {
	if voters <= 1 {
		return 0
	}
	return voters - (voters/2 + 1) + 1
}

// DecideBootstrap is the rule for a node (Raft server id self) that
// finds no Raft state and a state at genesis, given its peers' answers;
// voters is the size of its bootstrap configuration (the genesis
// validators, itself among them), 0 when it is not a genesis validator
// (decideNotGenesis):
//
//   - a peer whose Raft heard this node run knows that it ran: refuse,
//     for a genesis validator and for a validator added after genesis (a
//     peer answers that it is a voter); a node known only as a non-voter
//     (an observer) joins fresh: its forgotten log counted for nothing;
//   - the only genesis validator: bootstrap (nobody could tell);
//   - the cluster's Raft started (a peer applied a block or has a term or
//     log) and every peer answered, none knowing this node: it never took
//     part, a late first start; join fresh. Some peer silent: it may be
//     the one that knew this node (a follower is known only to the
//     leaders it followed): wait;
//   - every peer that answered is at genesis, with no Raft state: a
//     first start once BootstrapQuorum of them answered (then no quorum
//     can have run with this node unseen): bootstrap; fewer: wait. A
//     validator alone cannot make progress in a cluster of several, so
//     the wait costs nothing, and the first start of a chain whose
//     validators start minutes apart bootstraps as the needed ones come.
//
// The reason names the peers the verdict rests on.
func DecideBootstrap(self string, voters int, answers []PeerAnswer) (BootstrapVerdict, string) {
	if voters == 0 {
		return decideNotGenesis(self, answers)
	}
	var (
		past, silent []string
		answered     int
		known        *PeerAnswer
	)
	for i, a := range answers {
		if a.Err != nil {
			silent = append(silent, fmt.Sprintf("%s (%v)", a.Peer, a.Err))
			continue
		}
		answered++
		if a.KnowsUs && known == nil {
			known = &answers[i]
		}
		if a.runs() {
			past = append(past, fmt.Sprintf("%s at height %d", a.Peer, a.Height))
		}
	}
	for i := len(answers); i < voters-1; i++ {
		silent = append(silent, "an unnamed validator (not asked)")
	}
	switch {
	case known != nil:
		return Refuse, knownWhy(known)
	case voters == 1:
		return Bootstrap, "the chain's only validator"
	case len(past) > 0 && len(silent) == 0:
		return JoinFresh, fmt.Sprintf("the chain runs (%s) and none of the %d peers ever saw this node's Raft running: a late first start", strings.Join(past, ", "), answered)
	case len(past) > 0:
		return Wait, fmt.Sprintf("the chain runs (%s) and %s did not answer: it may be one that saw this node run", strings.Join(past, ", "), strings.Join(silent, ", "))
	}
	need := BootstrapQuorum(voters)
	if answered >= need {
		return Bootstrap, fmt.Sprintf("%d of %d peers answered (%d needed), all at genesis: a first start", answered, voters-1, need)
	}
	return Wait, fmt.Sprintf("%d of the %d other genesis validators answered, %d needed before a first start can be told from a lost data directory; silent: %s",
		answered, voters-1, need, strings.Join(silent, ", "))
}

// knownWhy is the refusal's reason when peer a saw this node's Raft run.
func knownWhy(a *PeerAnswer) string {
	return fmt.Sprintf("peer %s saw this node's Raft running (it is at height %d): this node ran before", a.Peer, a.Height)
}

// decideNotGenesis is DecideBootstrap for a node that is not a genesis
// validator: a validator added by governance (its state at genesis does
// not say so), an observer, or a node not yet added. It learns the
// current voters from the answers (PeerAnswer.Voters) and treats them as
// a genesis validator treats the genesis configuration:
//
//   - a peer has this node as a voter: refuse. The leader promotes a
//     validator to voter only once it runs and caught up (node's
//     membership reconciler), so this node ran as a voter, and a peer
//     that has it as one holds the configuration entry that made it one;
//   - a peer saw this node's Raft run, and none has it as a voter: an
//     observer (or a validator not yet promoted): join fresh;
//   - no peer whose Raft runs told its voters: a node not yet admitted
//     gets no answer at all (every peer's connection gate refuses it),
//     and one whose peers are down gets none either, so it cannot tell:
//     JoinUnknown, granting no vote until it caught up (voteGate), as a
//     fresh member: a forgotten vote or acknowledgement then elects no
//     leader that lacks an entry. One of an older build (no voter set:
//     p2p.MemberProtocolV1) that answered its Raft runs: join fresh, as
//     that build did;
//   - for each configuration a peer told (C, without this node): had
//     this node been a voter of C and this node, every quorum of that
//     configuration holding it must hold a member that answered, since
//     each member of a quorum that counted this node's acknowledgement
//     holds the entry that made it a voter. BootstrapQuorum(|C|+1)
//     answers from members of C whose Raft has a configuration ensure it
//     (a member with none holds no entry: it lost its directory too, or
//     waits to start or for the log; its answer does not count, so a
//     second lost directory among them makes this node wait, not join);
//     fewer: wait, naming the others; enough for every configuration
//     told: join fresh, waiting for the leader to add it, as any new
//     node.
func decideNotGenesis(self string, answers []PeerAnswer) (BootstrapVerdict, string) {
	var (
		known, voter *PeerAnswer
		olderRuns    bool
		answered     = map[string]bool{}
		errs         = map[string]error{}
		configs      [][]string
		told         []string
	)
	for i, a := range answers {
		if a.Err != nil {
			errs[a.Peer] = a.Err
			continue
		}
		if a.KnowsUs && known == nil {
			known = &answers[i]
		}
		if (a.Voter || slices.Contains(a.Voters, self)) && voter == nil {
			voter = &answers[i]
		}
		// Only a peer whose Raft holds a log (a configuration) can hold the
		// entry that made this node a voter; one of an older build tells
		// only whether its Raft ran.
		answered[a.Peer] = a.runs() && (!a.HasVoters || len(a.Voters) > 0)
		if !a.runs() {
			continue
		}
		if !a.HasVoters {
			olderRuns = true
			continue
		}
		c := slices.Sorted(slices.Values(a.Voters))
		c = slices.Compact(c)
		if len(c) > 0 && !slices.ContainsFunc(configs, func(o []string) bool { return slices.Equal(o, c) }) {
			configs = append(configs, c)
			told = append(told, a.Peer)
		}
	}
	switch {
	case known != nil && voter != nil:
		return Refuse, knownWhy(known)
	case voter != nil:
		return Refuse, fmt.Sprintf("peer %s has this node as a voter of its Raft configuration (it is at height %d): a validator becomes a voter only once it ran and caught up, so this node ran before", voter.Peer, voter.Height)
	case known != nil:
		return JoinFresh, fmt.Sprintf("peer %s saw this node's Raft running, but no peer has it as a voter: an observer, waiting for the leader", known.Peer)
	case len(configs) == 0 && olderRuns:
		return JoinFresh, fmt.Sprintf("not a genesis validator, none of the %d peers that answered saw this node's Raft running, and none told its voters (an older build): waiting for the leader to add it", len(answered))
	case len(configs) == 0:
		silent := make([]string, 0, len(errs))
		for p, err := range errs {
			silent = append(silent, fmt.Sprintf("%s (%v)", p, err))
		}
		slices.Sort(silent)
		if len(silent) == 0 {
			silent = []string{"none"}
		}
		return JoinUnknown, fmt.Sprintf("not a genesis validator, and no peer whose Raft runs told its voters (%d answered, at genesis; silent: %s): a first start cannot be told from a lost data directory, so this node grants no vote until it caught up; waiting for the leader to add it",
			len(answered), strings.Join(silent, ", "))
	}
	var sizes []string
	for i, c := range configs {
		var in, silent []string
		for _, v := range c {
			ran, ok := answered[v]
			switch {
			case ran:
				in = append(in, v)
			case ok:
				silent = append(silent, v+" (no Raft configuration: its directory was lost too, or it waits to start or for the log)")
			case errs[v] != nil:
				silent = append(silent, fmt.Sprintf("%s (%v)", v, errs[v]))
			default:
				silent = append(silent, v+" (not asked)")
			}
		}
		need := BootstrapQuorum(len(c) + 1)
		if len(in) < need {
			return Wait, fmt.Sprintf("%d of the %d current voters (peer %s's configuration) answered, %d needed before this node can tell it never was one; silent: %s",
				len(in), len(c), told[i], need, strings.Join(silent, ", "))
		}
		sizes = append(sizes, fmt.Sprintf("%d of %d", len(in), len(c)))
	}
	return JoinFresh, fmt.Sprintf("not a genesis validator, and none of the current voters that answered (%s) has it as a voter or saw its Raft running: waiting for the leader to add it", strings.Join(sizes, "; "))
}

// Bootstrap waits: a round of questions is bounded by peerRound, rounds
// start peerRetry apart, and the wait is logged when its reason changes
// and every peerWaitLog.
const (
	peerRound   = 2 * time.Second
	peerRetry   = time.Second
	peerWaitLog = 30 * time.Second
)

// checkBootstrap asks the peers (cfg.AskPeers) what a node with no Raft
// state and a state at genesis does, again every peerRetry while the
// answer is Wait, for at most cfg.PeerCheckTimeout (0: until it can
// tell), and logs the verdict. An error is the refusal.
func checkBootstrap(cfg Config) (BootstrapVerdict, error) {
	voters := len(cfg.Bootstrap)
	if cfg.AskPeers == nil {
		if voters == 0 {
			return JoinFresh, nil
		}
		return Bootstrap, nil
	}
	start := time.Now()
	var (
		lastWhy string
		logged  time.Time
	)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), peerRound)
		answers := cfg.AskPeers(ctx)
		cancel()
		v, why := DecideBootstrap(string(cfg.LocalID), voters, answers)
		switch v {
		case Refuse:
			return v, fmt.Errorf("%w: %s holds no Raft state and the state database is at genesis, but %s. "+
				"Starting would forget the votes this node cast and the entries it acknowledged, and could let it vote twice in a term; "+
				"restore the data directory, or start the node once as a fresh member after a few election timeouts (tallyd --raft-fresh, docs/cluster.md)",
				ErrDataDirLost, cfg.Dir, why)
		case JoinFresh:
			if voters > 0 {
				cfg.Logger.Warn("raft: no Raft state on a running chain that never heard this node: joining as a fresh member; waiting for the leader", "why", why)
			}
			return v, nil
		case JoinUnknown:
			cfg.Logger.Warn("raft: no Raft state and no current validator answered: joining as a fresh member that grants no vote until it caught up", "why", why)
			return v, nil
		case Bootstrap:
			cfg.Logger.Info("raft: bootstrapping the genesis configuration", "why", why)
			return v, nil
		}
		waited := time.Since(start)
		if cfg.PeerCheckTimeout > 0 && waited >= cfg.PeerCheckTimeout {
			return Refuse, fmt.Errorf("%w: %s holds no Raft state and the state database is at genesis, and after %v %s. "+
				"Start the other validators, or raise raft.peer-check-timeout (0 waits until they answer; docs/cluster.md)",
				ErrPeersSilent, cfg.Dir, waited.Round(time.Second), why)
		}
		if why != lastWhy || time.Since(logged) >= peerWaitLog {
			msg := "raft: waiting for the other genesis validators before starting Raft on an empty Raft directory"
			if voters == 0 {
				msg = "raft: waiting for the current validators before starting Raft on an empty Raft directory"
			}
			cfg.Logger.Warn(msg, "why", why,
				"waited", waited.Round(time.Second), "peer_check_timeout", cfg.PeerCheckTimeout)
			lastWhy, logged = why, time.Now()
		}
		time.Sleep(peerRetry)
	}
}

// knownMembers remembers, durably in the Raft stable store, every
// validator whose Raft this node saw running: one that answered one of
// this node's Raft RPCs (a follower's answer to a heartbeat or a
// replication, a voter's answer to a vote request), one whose Raft sent
// this node a request (a leader's heartbeat or replication, a candidate's
// vote or pre-vote request: observer), and one that proposed a block this
// node applied or signed a commit certificate it carries (signed). Any
// of them may have voted or acknowledged entries, or led a term; a peer
// restarted on a lost data directory asks (Engine.KnowsMember,
// DecideBootstrap). The record is written once per validator and
// process, with a synced write of the stable store of its own (about
// 0.6 ms on a loaded 2-core machine's disk: BenchmarkKnownMemberRecord),
// so it survives a crash once written. A leader's or a candidate's
// record is durable before this node's answer to its request leaves
// (heard, the transport's receiving side): a crash after raft persisted
// a vote or an acknowledged entry, before the record, loses the answer
// too, so every vote and acknowledgement a leader counted comes from a
// peer that remembers it ran.
type knownMembers struct {
	mu    sync.Mutex
	known map[common.Address]bool
	// writing holds, for each address whose record is being written, a
	// channel closed once the write ended (guarded by mu): a second
	// writer waits on it instead of returning before the record is
	// durable. A channel, not a mutex: in the cluster simulator's bubble
	// a goroutine waiting on a mutex is not durably blocked, and the
	// write can wait on a disk's slow sync.
	writing map[common.Address]chan struct{}
	// ids are the server ids already recorded durably: sawServer runs on
	// every heartbeat and replication, and maps an id only the first
	// time.
	ids map[raft.ServerID]bool
	// waits holds, for each server id whose record heard asked for and
	// record has not yet made durable, a channel closed once it is
	// (guarded by mu). A failed write leaves it open: the node halts,
	// and the answers held for it are never sent.
	waits map[raft.ServerID]chan struct{}
	store *RaftStore
	// address maps a server id to its validator address (Config.Address).
	address func(raft.ServerID) (common.Address, error)
	log     *slog.Logger
	// observedIDs are the senders raft's observer saw and record has not
	// yet recorded (guarded by mu); wake tells record of them.
	observedIDs []raft.ServerID
	wake        chan struct{}
}

// knownKey is the stable-store key of a's record.
func knownKey(a common.Address) []byte { return append([]byte("tally-member/"), a.Bytes()...) }

// sawServer records that server id's Raft ran: it answered an RPC of
// this node's, or sent it one. It returns once the record is durable,
// or its write failed.
func (k *knownMembers) sawServer(id raft.ServerID) {
	if k.address == nil {
		return
	}
	k.mu.Lock()
	done := k.ids[id]
	k.mu.Unlock()
	if done {
		return
	}
	if a, err := k.address(id); err == nil {
		if k.saw(a) != nil {
			return
		}
	}
	// Recorded, or not a validator (nothing to record).
	k.mu.Lock()
	k.ids[id] = true
	if ch := k.waits[id]; ch != nil {
		close(ch)
		delete(k.waits, id)
	}
	k.mu.Unlock()
}

// heard notes that server id's Raft sent this node a request raft is to
// answer, and returns a channel closed once id's record is durable, or
// nil if it already is: the transport holds raft's answer until then
// (commitProofTransport.holdAnswer). The record goroutine writes it.
func (k *knownMembers) heard(id raft.ServerID) <-chan struct{} {
	if k.address == nil || id == "" {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ids[id] {
		return nil
	}
	ch := k.waits[id]
	if ch == nil {
		if k.waits == nil {
			k.waits = map[raft.ServerID]chan struct{}{}
		}
		ch = make(chan struct{})
		k.waits[id] = ch
		k.noteLocked(id)
	}
	return ch
}

// noteLocked queues id for record and wakes it (k.mu held).
func (k *knownMembers) noteLocked(id raft.ServerID) {
	if !slices.Contains(k.observedIDs, id) {
		k.observedIDs = append(k.observedIDs, id)
	}
	select {
	case k.wake <- struct{}{}:
	default:
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
// is dropped; it only notes the sender, and record writes it down: raft
// holds its observers' lock while the filter runs, and a write to the
// stable store can take a disk's sync, or fail and halt the node (the
// cluster simulator's bubble deadlocked on that: a goroutine waiting to
// deregister another observer is not durably blocked, so the clock never
// reached the end of the halt's slow sync).
func (k *knownMembers) observer(self raft.ServerID) *raft.Observer {
	return raft.NewObserver(nil, false, func(o *raft.Observation) bool { return k.observe(self, o) })
}

// observe is the observer's filter: it notes the sender of the request
// o shows, if any, for record, and passes nothing on.
func (k *knownMembers) observe(self raft.ServerID, o *raft.Observation) bool {
	if id := observedSender(self, o.Data); id != "" {
		k.mu.Lock()
		if !k.ids[id] {
			k.noteLocked(id)
		}
		k.mu.Unlock()
	}
	return false
}

// record writes down the senders the observer noted, until stop is
// closed.
func (k *knownMembers) record(stop <-chan struct{}) {
	for {
		select {
		case <-k.wake:
		case <-stop:
			return
		}
		k.mu.Lock()
		ids := k.observedIDs
		k.observedIDs = nil
		k.mu.Unlock()
		for _, id := range ids {
			k.sawServer(id)
		}
	}
}

// observedSender is the sender of the request that raft observation o
// shows, "" if none or self.
func observedSender(self raft.ServerID, o any) raft.ServerID {
	var id raft.ServerID
	switch d := o.(type) {
	case raft.LeaderObservation:
		id = d.LeaderID
	case raft.RequestVoteRequest:
		id = requestSender(d.RPCHeader)
	case raft.RequestPreVoteRequest:
		id = requestSender(d.RPCHeader)
	}
	if id == self {
		return ""
	}
	return id
}

// signed records the signers of the commit certificates a block carries:
// a validator signs its vote on a block after applying it, so its Raft
// ran. Unlike the other records, this one is the chain's: every node that
// applies the block learns it, so a validator that ever voted is known to
// any peer past that block, not only to the leaders it followed. The
// state transition verified the certificates; one that does not recover
// is skipped.
func (k *knownMembers) signed(certs []*chain.Certificate, chainID uint64) {
	for _, c := range certs {
		signers, err := c.Signers(chainID)
		if err != nil {
			continue
		}
		for _, a := range signers {
			k.saw(a)
		}
	}
}

// saw records that validator a's Raft ran, and returns once the record
// is durable (nil) or its write failed.
func (k *knownMembers) saw(a common.Address) error {
	for {
		k.mu.Lock()
		if k.known[a] {
			k.mu.Unlock()
			return nil
		}
		if ch := k.writing[a]; ch != nil {
			k.mu.Unlock()
			<-ch // then known, or the write failed: try again
			continue
		}
		if k.writing == nil {
			k.writing = map[common.Address]chan struct{}{}
		}
		ch := make(chan struct{})
		k.writing[a] = ch
		k.mu.Unlock()
		var err error
		if _, err = k.store.Get(knownKey(a)); err != nil {
			if err = k.store.Set(knownKey(a), []byte{1}); err != nil {
				k.log.Warn("raft: record a validator seen running", "address", a, "err", err)
			}
		}
		k.mu.Lock()
		delete(k.writing, a)
		if err == nil {
			k.known[a] = true
		}
		close(ch)
		k.mu.Unlock()
		return err
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

// RaftRan reports whether this node's Raft has a term or a log: the
// cluster's Raft started here (PeerAnswer.Ran). A node that waits for a
// leader on an empty directory has neither.
func (e *Engine) RaftRan() bool { return e.Raft.LastIndex() > 0 || e.Raft.CurrentTerm() > 0 }

// Voters are the voters of this node's latest Raft configuration (the
// member answer's voter set, PeerAnswer.Voters; none before Raft has a
// configuration).
func (e *Engine) Voters() []raft.ServerID {
	f := e.Raft.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	var out []raft.ServerID
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			out = append(out, s.ID)
		}
	}
	return out
}

// IsVoter reports whether id is a voter of this node's Raft configuration.
func (e *Engine) IsVoter(id raft.ServerID) bool { return IsVoter(e.Raft, id) }

// IsVoter reports whether id is a voter of r's latest Raft configuration
// (read at once: hashicorp/raft answers GetConfiguration without its
// main loop).
func IsVoter(r *raft.Raft, id raft.ServerID) bool {
	f := r.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if s.ID == id {
			return s.Suffrage == raft.Voter
		}
	}
	return false
}
