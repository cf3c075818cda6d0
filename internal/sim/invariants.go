package sim

import (
	"fmt"
	"slices"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
)

// canonBlock is the canonical chain at one height: what the first node to
// apply it applied, which every other node must match.
type canonBlock struct {
	hash, root common.Hash
	from       int    // the node it was first seen on
	index      uint64 // the Raft index it was applied from there
}

// invariants checks DESIGN.md's invariants after every scheduler step:
// every node's applied blocks equal the canonical chain (same hash and
// state root at every height), no transaction is applied twice and no
// sender's nonce is used twice, no bank reference mints twice, no node
// halts, a node never loses a block it applied (crashes included),
// supply is conserved per asset, and a connected quorum keeps producing
// blocks. The canonical chain only grows, so a receipted transaction can
// never be lost without a hash mismatch at its height.
type invariants struct {
	s      *Sim
	canon  map[uint64]canonBlock
	height uint64
	// txAt is the height of every transaction in the canonical chain.
	txAt map[common.Hash]uint64
	// nonces holds each (sender, nonce) the canonical chain used.
	nonces map[senderNonce]common.Hash
	// minted holds the bank references minted (status 1) and by which tx.
	minted map[common.Hash]common.Hash
	signer types.Signer
	checks int
	certs  int // commit certificates carried by canonical blocks

	// set is the validator set in force at the canonical head, as last
	// read (Sim.validators): the liveness check's quorum is of it.
	set   []common.Address
	setAt uint64 // the canonical height set was read at

	progressAt  time.Time // when the canonical chain last grew
	quorumSince time.Time // since when a quorum is up and connected (zero: none)
}

type senderNonce struct {
	from  common.Address
	nonce uint64
}

func newInvariants(s *Sim) *invariants {
	return &invariants{s: s, canon: map[uint64]canonBlock{}, txAt: map[common.Hash]uint64{},
		nonces: map[senderNonce]common.Hash{}, minted: map[common.Hash]common.Hash{},
		signer: chain.NewSigner(s.g.ChainIDBig()), progressAt: time.Now(), set: s.ids.addrs[:s.cfg.Nodes]}
}

// conserveEvery is how many steps apart supply conservation is checked on
// one node (every node at the end); the FSM itself checks each block's
// writes, this checks the whole state.
const conserveEvery = 64

func (iv *invariants) check(final bool) error {
	s := iv.s
	s.observing.Store(true) // its reads are an observer's (fs.go)
	defer s.observing.Store(false)
	for _, sn := range s.nodes {
		if !sn.up {
			continue
		}
		iv.checks++
		if d := sn.died(); d != nil {
			// Its process ended on a fatal disk error (fs.go): the
			// operator replaces the disk; a restart brings it back.
			s.record("n%d's process ended: %s", sn.id, d.reason)
			s.res.DiskDeaths++
			if err := sn.bury(d, s.net); err != nil {
				s.record("stop n%d: %v", sn.id, err)
			}
			continue
		}
		if err := sn.engine.Halted(); err != nil {
			if !sn.diskFailing() {
				return fmt.Errorf("invariant no-halt: n%d halted: %w", sn.id, err)
			}
			// The halt the failing disk calls for: the node's operator
			// stops it, replaces the disk and clears the halt at its
			// next start.
			s.record("n%d halted on its disk error: %v", sn.id, err)
			s.res.DiskHalts++
			if err := sn.crash(s.net, nil, 0); err != nil {
				s.record("stop n%d: %v", sn.id, err)
			}
			sn.repairDisk()
			sn.clearHalt = true
			continue
		}
		head, _ := sn.db.Head()
		if head.Number < sn.checked {
			return fmt.Errorf("invariant durable-apply: n%d is at height %d after applying %d", sn.id, head.Number, sn.checked)
		}
		for h := sn.checked + 1; h <= head.Number; h++ {
			if err := iv.block(sn, h); err != nil {
				return err
			}
			sn.checked = h
		}
	}
	if iv.setAt != iv.height {
		if set := s.validators(); set != nil {
			iv.set, iv.setAt = set, iv.height
		}
	}
	if err := s.votersAreValidators(); err != nil {
		return err
	}
	if final || s.step%conserveEvery == 0 {
		for _, sn := range s.nodes {
			if !sn.up || (!final && sn.id != s.step/conserveEvery%len(s.nodes)) {
				continue
			}
			iv.checks++
			if err := sn.db.CheckConservation(); err != nil {
				return fmt.Errorf("invariant conservation: n%d: %w", sn.id, err)
			}
		}
	}
	if err := iv.liveness(); err != nil {
		return err
	}
	if final {
		return iv.converged()
	}
	return nil
}

// block compares node sn's block h with the canonical chain, extending it
// when sn is the first to apply h.
func (iv *invariants) block(sn *simNode, h uint64) error {
	b, err := sn.db.BlockByNumber(h)
	if err != nil {
		return fmt.Errorf("n%d: read block %d: %w", sn.id, h, err)
	}
	got := canonBlock{hash: b.Hash(), root: b.Header.Root, from: sn.id, index: sn.raftIndexOf(h)}
	iv.checks++
	if c, ok := iv.canon[h]; ok {
		if c.hash != got.hash || c.root != got.root {
			head, _ := sn.db.Head()
			return fmt.Errorf("invariant same-chain: n%d has block %d hash %s root %s (proposer %s, %d txs, raft index %d; its head %d at raft index %d), canonical hash %s root %s (from n%d, raft index %d)",
				sn.id, h, got.hash, got.root, b.Header.Coinbase, len(b.Txs), sn.raftIndexOf(h), head.Number, head.RaftIndex, c.hash, c.root, c.from, c.index)
		}
		return nil
	}
	if h != iv.height+1 {
		return fmt.Errorf("invariant same-chain: n%d applied block %d past the canonical height %d", sn.id, h, iv.height)
	}
	receipts, err := sn.db.Receipts(b)
	if err != nil {
		return fmt.Errorf("n%d: receipts of block %d: %w", sn.id, h, err)
	}
	for i, tx := range b.Txs {
		th := tx.Hash()
		if at, ok := iv.txAt[th]; ok {
			return fmt.Errorf("invariant once: tx %s applied at %d and again at %d", th, at, h)
		}
		iv.txAt[th] = h
		from, err := types.Sender(iv.signer, tx)
		if err != nil {
			return fmt.Errorf("block %d tx %s: sender: %w", h, th, err)
		}
		sn := senderNonce{from, tx.Nonce()}
		if other, ok := iv.nonces[sn]; ok {
			return fmt.Errorf("invariant once: %s nonce %d used by %s and again by %s at %d", from, tx.Nonce(), other, th, h)
		}
		iv.nonces[sn] = th
		if ref, ok := iv.s.cl.refOf[th]; ok && receipts[i].Status == types.ReceiptStatusSuccessful {
			if other, ok := iv.minted[ref]; ok {
				return fmt.Errorf("invariant mint-once: bank reference %s minted by %s and again by %s at %d", ref, other, th, h)
			}
			iv.minted[ref] = th
		}
	}
	iv.certs += len(b.Certs)
	iv.canon[h] = got
	iv.height = h
	iv.progressAt = time.Now()
	iv.s.record("block %d %s txs=%d", h, got.hash.TerminalString(), len(b.Txs))
	return nil
}

// liveness fails when a quorum of nodes has been up and connected for
// longer than livenessBound without a new canonical block.
func (iv *invariants) liveness() error {
	if !iv.s.quorumConnected() {
		iv.quorumSince = time.Time{}
		return nil
	}
	if iv.quorumSince.IsZero() {
		iv.quorumSince = time.Now()
	}
	since := iv.quorumSince
	if iv.progressAt.After(since) {
		since = iv.progressAt
	}
	iv.checks++
	if d := time.Since(since); d > livenessBound {
		return fmt.Errorf("invariant liveness: a quorum has been connected for %s without a new block (height %d)", d, iv.height)
	}
	return nil
}

// allAt reports whether every node is up and every validator in force
// has applied height h (a node governance removed, or never added, stops
// receiving blocks).
func (iv *invariants) allAt(h uint64) bool {
	for _, sn := range iv.s.nodes {
		if !sn.up || (iv.s.isValidator(iv.set, sn.id) && sn.checked < h) {
			return false
		}
	}
	return true
}

// setSettled reports whether a leader's Raft voters are exactly the
// validators in force: membership has followed the chain.
func (iv *invariants) setSettled() bool {
	l := iv.s.leader()
	if l == nil || !l.engine.LeaderReady() {
		return false
	}
	voters := membersOf(l)
	slices.Sort(voters)
	return slices.Equal(voters, iv.s.validatorNodes())
}

// converged is the final check: every node has the whole canonical
// chain, and every receipted transaction where the canonical chain has it.
func (iv *invariants) converged() error {
	if !iv.allAt(iv.height) {
		var hs []string
		for _, sn := range iv.s.nodes {
			hs = append(hs, fmt.Sprintf("n%d up=%v at %d", sn.id, sn.up, sn.checked))
		}
		return fmt.Errorf("invariant converge: canonical height %d, nodes %v after %s of healed cluster", iv.height, hs, settleTime)
	}
	if !iv.setSettled() {
		var voters []int
		if l := iv.s.leader(); l != nil {
			voters = membersOf(l)
		}
		return fmt.Errorf("invariant membership: the leader's Raft voters %v are not the validators in force %v after %s of healed cluster", voters, iv.s.validatorNodes(), settleTime)
	}
	for _, sn := range iv.s.nodes {
		if !iv.s.isValidator(iv.set, sn.id) {
			continue // removed or never added: its chain is a prefix, checked block by block
		}
		for th, h := range iv.txAt {
			iv.checks++
			at, _, err := sn.db.TxLocation(th)
			if err != nil || at != h {
				return fmt.Errorf("invariant receipted-kept: n%d has tx %s at %d (%v), canonical %d", sn.id, th, at, err, h)
			}
		}
	}
	if err := iv.s.cl.calls.ackedKept(); err != nil {
		return err
	}
	return iv.s.cl.allReceipted()
}

// crashed and restarted follow a node's instances.
func (iv *invariants) crashed(*simNode) {}

func (iv *invariants) restarted(sn *simNode) {
	// sn.checked stays: the new instance must hold at least what the old
	// one applied (the state database syncs every block).
}

// durableLog is the durable-log invariant of node id restarted with a
// Raft log (or its newest snapshot) ending at raftLast and a state that
// applied up to Raft index applied; restored is the Raft index of the
// state the node's last snapshot restore put in place (0: none).
//
// Raft hands the FSM only entries it holds in its own log, synced before
// it commits them (a follower's appendEntries stores them before it
// advances its commit index; a leader's dispatchLogs stores them before
// it counts itself in the commitment), so a state past the log's end is a
// log that lost a synced write. The one exception is a snapshot the node
// installed: raft labels a snapshot with the index the FSM had applied
// when raft asked for it (FSM.Snapshot), but the FSM takes the state's
// checkpoint later, in Persist, while the FSM goes on applying, so the
// checkpoint may hold entries past that label, and the node that
// installs it has a state past its log and the snapshot's index. That
// is safe: they are entries the snapshot's source applied, hence
// committed, and every node holds the same committed entry at an index
// (Raft's log matching and leader completeness), so when raft hands them
// again after the snapshot the FSM skips them as applied
// (consensus.TestSnapshotCarriesEntriesPastItsIndex). The state may
// therefore reach past raftLast only up to what a restore gave it, and
// not by one entry more (found as seed 47 with the OnWake hooks of
// branch simrepro-hooks: n1 restored a snapshot labelled 17 that held
// index 18, and crashed before its log reached 18).
func durableLog(id int, raftLast, applied, restored uint64) error {
	if applied <= raftLast || applied <= restored {
		return nil
	}
	return fmt.Errorf("invariant durable-log: n%d restarted with its Raft log (and snapshot) ending at %d, below the index %d its state applied (a snapshot restore gave it %d)",
		id, raftLast, applied, restored)
}

// quorumConnected reports whether a group of up and pairwise connected
// nodes can make progress (quorumIn): a majority of the validators in
// force, and of the Raft voters its members know.
func (s *Sim) quorumConnected() bool {
	set := s.validatorNodes()
	n := len(s.nodes)
	voters := make([][]int, n) // each up node's Raft voters, read once
	for i, sn := range s.nodes {
		if sn.up {
			voters[i] = membersOf(sn)
		}
	}
	for mask := 1; mask < 1<<n; mask++ {
		var members []int
		for i := 0; i < n; i++ {
			if mask&(1<<i) != 0 {
				members = append(members, i)
			}
		}
		if !majority(members, set) {
			continue
		}
		ok := true
		for _, i := range members {
			// A fresh member that does not hold the log yet grants no
			// vote (consensus.voteGate): no quorum counts on it.
			if !s.nodes[i].up || !s.nodes[i].engine.Voting() {
				ok = false
				break
			}
			for _, j := range members {
				if i < j && !s.net.connected(i, j) {
					ok = false
				}
			}
		}
		if ok && quorumIn(members, set, voters) {
			return true
		}
	}
	return false
}
