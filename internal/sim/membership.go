package sim

import (
	"bytes"
	"fmt"
	"math/big"
	"slices"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/node"
	"github.com/tally-ledger/tally/wallet"
)

// Governance faults: validator changes that governance proposes and
// approves on chain, which the leader's membership reconciler
// (node.Membership, the node's own code) follows in Raft. Each is counted
// once the change is in force on the canonical chain.
const (
	FaultAddValidator    Fault = "add-validator"    // a standby node becomes a validator
	FaultRemoveValidator Fault = "remove-validator" // a validator leaves the set
	// FaultRemoveLeader counts the removals whose validator led while its
	// removal was approved and not yet applied: it hands the lead over
	// before it leaves Raft.
	FaultRemoveLeader Fault = "remove-leader"
)

// minValidators is the smallest validator set governance shrinks to in a
// run: below three, one crash stops the chain and the liveness invariant
// says little.
const minValidators = 3

// simIDs names the simulated nodes for the membership reconciler: node i
// is server n<i>, with validator key validatorKey(i).
type simIDs struct {
	pubs  [][]byte
	addrs []common.Address
}

func newSimIDs(n int) (*simIDs, error) {
	ids := &simIDs{}
	for i := 0; i < n; i++ {
		k, err := validatorKey(i)
		if err != nil {
			return nil, err
		}
		ids.pubs = append(ids.pubs, ethcrypto.CompressPubkey(&k.ECDSA().PublicKey))
		ids.addrs = append(ids.addrs, k.Address())
	}
	return ids, nil
}

// ServerID implements node.MemberIDs.
func (ids *simIDs) ServerID(pub []byte) (raft.ServerID, error) {
	for i, p := range ids.pubs {
		if bytes.Equal(p, pub) {
			return raft.ServerID(addr(i)), nil
		}
	}
	return "", fmt.Errorf("sim: no node has the key %x", pub)
}

// Address implements node.MemberIDs.
func (ids *simIDs) Address(id raft.ServerID) (common.Address, error) {
	i, err := parseAddr(raft.ServerAddress(id))
	if err != nil || i >= len(ids.addrs) {
		return common.Address{}, fmt.Errorf("sim: no node %q", id)
	}
	return ids.addrs[i], nil
}

// simMembers is node i's node.MemberNet over the simulated network: a
// member is connected when it is up and no partition cuts the link, and
// its height is what it last applied (the node samples it over its height
// protocol, which the simulator does not model: the answer is immediate).
type simMembers struct {
	*simIDs
	net  *network
	self int
}

var _ node.MemberNet = simMembers{}

// Connected implements node.MemberNet.
func (m simMembers) Connected(id raft.ServerID) bool {
	j, err := parseAddr(raft.ServerAddress(id))
	return err == nil && m.net.reachable(m.self, j)
}

// Height implements node.MemberNet.
func (m simMembers) Height(id raft.ServerID) (uint64, bool) {
	j, err := parseAddr(raft.ServerAddress(id))
	if err != nil || !m.net.reachable(m.self, j) {
		return 0, false
	}
	return m.net.heights[j].Load(), true
}

// Voting implements node.MemberNet.
func (m simMembers) Voting(id raft.ServerID) bool {
	j, err := parseAddr(raft.ServerAddress(id))
	if err != nil || !m.net.reachable(m.self, j) {
		return false
	}
	e := m.net.engines[j].Load()
	return e != nil && e.Voting()
}

// reachable reports whether j is up and i can exchange messages with it.
func (n *network) reachable(i, j int) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return j >= 0 && j < len(n.eps) && n.eps[j] != nil && !n.cut[i][j] && !n.cut[j][i]
}

// govChange is a validator change governance is carrying through.
type govChange struct {
	add    bool
	node   int
	phase  govPhase
	propTx common.Hash
	voteTx common.Hash
	id     uint64 // the proposal
	// led: the validator removed led between the approval of its removal
	// and the block that applied it (it had to hand the lead over).
	led bool
}

type govPhase int

const (
	govProposed govPhase = iota // the proposal is sent
	govVoted                    // the second member's approval is sent
	govApproved                 // approved: waiting for it to be in force
)

// governance is the consortium's governance members (the dev genesis'
// first two of three, threshold 2): one proposes a validator change, the
// other approves it once the proposal is on chain. One change at a time.
type governance struct {
	c        *clients
	proposer *account
	approver *account
	change   *govChange
}

func newGovernance(c *clients) (*governance, error) {
	g := &governance{c: c}
	for i, a := range []**account{&g.proposer, &g.approver} {
		k, err := genesis.DevKey(uint32(genesis.DevGovernanceIndex + i))
		if err != nil {
			return nil, err
		}
		*a = &account{key: k, addr: k.Address()}
	}
	return g, nil
}

// validators is the validator set of the canonical chain's head, as the
// first up node that applied it holds it (nil when none is up).
func (s *Sim) validators() []common.Address {
	for _, sn := range s.nodes {
		if sn.up && sn.checked == s.inv.height {
			vals, err := sn.db.ValidatorInfos()
			if err != nil {
				return nil
			}
			out := make([]common.Address, len(vals))
			for i, v := range vals {
				out[i] = v.Address
			}
			return out
		}
	}
	return nil
}

// isValidator reports whether node i is in set.
func (s *Sim) isValidator(set []common.Address, i int) bool {
	return slices.Contains(set, s.ids.addrs[i])
}

// propose starts a validator change (add or remove) when none is under
// way: the addition of a node that is not a validator, or the removal of
// a validator (any, the leader included) while the set is above
// minValidators.
func (g *governance) propose(add bool) {
	s := g.c.s
	if g.change != nil || g.proposer.busy || !g.c.settled(g.proposer) {
		return
	}
	set := s.validators()
	if set == nil {
		return
	}
	var cands []int
	for i := range s.nodes {
		if s.isValidator(set, i) != add {
			cands = append(cands, i)
		}
	}
	if len(cands) == 0 || (!add && len(set) <= minValidators) {
		return
	}
	target := cands[s.rng.IntN(len(cands))]
	if l := s.leader(); !add && l != nil && slices.Contains(cands, l.id) && s.rng.IntN(2) == 0 {
		target = l.id // the leader leaves: it must hand over first
	}
	var (
		op  wallet.Op
		err error
	)
	if add {
		op, err = wallet.GovernanceOp("proposeAddValidator", fmt.Sprintf("n%d", target), s.ids.pubs[target])
	} else {
		op, err = wallet.GovernanceOp("proposeRemoveValidator", s.ids.addrs[target])
	}
	if err != nil {
		panic(err) // the inputs are ours: a failure is a bug of the simulator
	}
	tx, err := wallet.SignOp(g.proposer.key, s.g.ChainIDBig(), g.proposer.next, op)
	if err != nil {
		panic(err)
	}
	what := map[bool]string{true: "propose-add n" + itoa(target), false: "propose-remove n" + itoa(target)}[add]
	g.c.sendThen(g.proposer, tx, what, func() {
		g.change = &govChange{add: add, node: target, propTx: tx.Hash()}
	})
}

// receipt returns the receipt of canonical transaction h and whether the
// chain has it yet.
func (s *Sim) receipt(h common.Hash) (*types.Receipt, bool) {
	at, ok := s.inv.txAt[h]
	if !ok {
		return nil, false
	}
	for _, sn := range s.nodes {
		if !sn.up || sn.checked < at {
			continue
		}
		b, err := sn.db.BlockByNumber(at)
		if err != nil {
			continue
		}
		rs, err := sn.db.Receipts(b)
		if err != nil {
			continue
		}
		for i, tx := range b.Txs {
			if tx.Hash() == h {
				return rs[i], true
			}
		}
	}
	return nil, false
}

// progress moves the change under way one step: re-sends what is overdue,
// approves the proposal once it is on chain, and counts the change once
// it is in force. A proposal or vote the chain refused (status 0) ends it.
func (g *governance) progress() {
	ch := g.change
	if ch == nil {
		return
	}
	s := g.c.s
	for _, a := range []*account{g.proposer, g.approver} {
		if !g.c.settled(a) {
			g.c.resend(a)
		}
	}
	switch ch.phase {
	case govProposed:
		r, ok := s.receipt(ch.propTx)
		if !ok {
			if g.c.settled(g.proposer) {
				// Its nonce went to another transaction: cannot happen,
				// the proposer sends one at a time.
				s.record("governance: proposal %s lost its nonce", ch.propTx.TerminalString())
				g.change = nil
			}
			return
		}
		id, ok := proposalID(r)
		if r.Status != types.ReceiptStatusSuccessful || !ok {
			s.record("governance: proposal for n%d refused (status %d)", ch.node, r.Status)
			g.change = nil
			return
		}
		ch.id = id
		if g.approver.busy || !g.c.settled(g.approver) {
			return
		}
		op, err := wallet.GovernanceOp("vote", new(big.Int).SetUint64(id), true)
		if err != nil {
			panic(err)
		}
		tx, err := wallet.SignOp(g.approver.key, s.g.ChainIDBig(), g.approver.next, op)
		if err != nil {
			panic(err)
		}
		g.c.sendThen(g.approver, tx, "approve proposal "+itoa(int(id)), func() {
			if g.change == ch {
				ch.voteTx, ch.phase = tx.Hash(), govVoted
			}
		})
	case govVoted:
		r, ok := s.receipt(ch.voteTx)
		if !ok {
			return
		}
		if r.Status != types.ReceiptStatusSuccessful {
			s.record("governance: approval of proposal %d refused", ch.id)
			g.change = nil
			return
		}
		l := s.leader()
		ch.led = !ch.add && l != nil && l.id == ch.node
		s.record("governance: proposal %d approved (the validator it removes leads: %v)", ch.id, ch.led)
		ch.phase = govApproved
	case govApproved:
		if l := s.leader(); !ch.add && l != nil && l.id == ch.node {
			ch.led = true
		}
		set := s.validators()
		if set == nil || s.isValidator(set, ch.node) != ch.add {
			return
		}
		f := map[bool]Fault{true: FaultAddValidator, false: FaultRemoveValidator}[ch.add]
		s.count(f)
		if ch.led {
			s.count(FaultRemoveLeader)
		}
		s.record("governance: %s n%d applied by block %d (proposal %d)", f, ch.node, s.inv.height, ch.id)
		g.change = nil
	}
}

// idle reports whether no validator change is under way.
func (g *governance) idle() bool { return g.change == nil }

// proposalID reads the proposal number from a proposal's Proposed event.
func proposalID(r *types.Receipt) (uint64, bool) {
	ev := chain.GovernanceABI.Events["Proposed"].ID
	for _, l := range r.Logs {
		if l.Address == chain.GovernanceAddress && len(l.Topics) > 1 && l.Topics[0] == ev {
			return l.Topics[1].Big().Uint64(), true
		}
	}
	return 0, false
}

// membersOf returns the voters of node sn's latest Raft configuration.
func membersOf(sn *simNode) []int {
	f := sn.engine.Raft.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	var out []int
	for _, srv := range f.Configuration().Servers {
		if srv.Suffrage != raft.Voter {
			continue
		}
		if i, err := parseAddr(srv.Address); err == nil {
			out = append(out, i)
		}
	}
	return out
}

// votersAreValidators checks DESIGN.md decision 8 on a leader whose
// applied state is current (LeaderReady): every Raft voter is a validator
// at its head (an addition is promoted once in force; a removal leaves
// Raft before it takes effect).
func (s *Sim) votersAreValidators() error {
	for _, sn := range s.nodes {
		if !sn.up || !sn.engine.LeaderReady() {
			continue
		}
		for _, i := range membersOf(sn) {
			if !sn.db.IsValidator(s.ids.addrs[i]) {
				head, _ := sn.db.Head()
				return fmt.Errorf("invariant voters-are-validators: leader n%d has n%d as a Raft voter, not a validator at its head %d", sn.id, i, head.Number)
			}
		}
	}
	return nil
}

// quorumIn reports whether the nodes of q (up and pairwise connected)
// can make progress: they hold a majority of set, the validators in force
// (node indices), and of the Raft voters (voters[i]: node i's latest
// configuration) that each of them that is a voter knows, so that
// whichever of them campaigns can win; and one of them is a voter.
func quorumIn(q, set []int, voters [][]int) bool {
	if !majority(q, set) {
		return false
	}
	voter := false
	for _, i := range q {
		if !slices.Contains(voters[i], i) {
			continue
		}
		voter = true
		if !majority(q, voters[i]) {
			return false
		}
	}
	return voter
}

// validatorNodes returns the nodes in the validator set in force.
func (s *Sim) validatorNodes() []int {
	var out []int
	for i := range s.nodes {
		if s.isValidator(s.inv.set, i) {
			out = append(out, i)
		}
	}
	return out
}

func majority(q, set []int) bool {
	n := 0
	for _, i := range set {
		if slices.Contains(q, i) {
			n++
		}
	}
	return len(set) > 0 && n > len(set)/2
}
