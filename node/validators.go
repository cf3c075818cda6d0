package node

// Raft membership follows the chain (DESIGN.md decision 8): the leader
// reconciles the Raft configuration to the validator set the state holds
// and to the validator changes governance approved but that are not in
// effect yet. Followers do nothing; whichever node leads next picks the
// work up where it was left, since everything is derived again from the
// chain and the Raft configuration on every pass.
//
//   - A validator (current, or approved and pending) that is not in the
//     configuration is added as a non-voter once it is connected, so it
//     replicates before its addition takes effect; once it is a validator
//     (never before: voters are always validators) it is promoted to voter
//     once its applied height (height protocol) is within
//     builder.max-voter-lag of the leader's and above 0 (caughtUpAt), and
//     only while the voters up and voting, with it, are a majority of the
//     configuration with it (quorumWith).
//   - A validator whose approved removal will apply is removed from the
//     configuration before the block that applies the removal is proposed:
//     the builder holds that block (Membership.Hold) until it is gone. A leader
//     that is leaving hands the lead to a validator first; the next leader
//     removes it.
//   - A voter that is neither a validator nor an approved addition is
//     removed; a leader that is not a validator hands the lead over (its
//     builder proposes nothing: every node would reject its blocks).
//   - Non-voters that are not validators are observers (admin API): left
//     alone.

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/hashicorp/raft"
	libp2pnet "github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/p2p"
	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/store"
)

const (
	// reconcileInterval is how often the leader reconciles Raft membership
	// when no block is applied; an applied block wakes it, at most every
	// reconcileSpacing (under load blocks come every few milliseconds).
	reconcileInterval = 250 * time.Millisecond
	reconcileSpacing  = 50 * time.Millisecond
	// membershipTimeout bounds enqueueing one configuration change.
	membershipTimeout = 10 * time.Second
	// defaultCatchUpLag is how close to the leader's height a new validator
	// must be before it is promoted, when builder.max-voter-lag is 0.
	defaultCatchUpLag = 64
	// transferRetry spaces leadership transfer attempts.
	transferRetry = 2 * time.Second
	// waitLogEvery spaces the log lines of a validator that waits (for a
	// connection, or to catch up).
	waitLogEvery = 5 * time.Second
)

// peerAddresses caches the validator address of each peer ID (the peer ID
// embeds the node's compressed secp256k1 public key).
var peerAddresses sync.Map // peer ID string → common.Address

// peerAddress returns the address of the key behind a Raft server ID (a
// libp2p peer ID).
func peerAddress(id raft.ServerID) (common.Address, error) {
	if a, ok := peerAddresses.Load(string(id)); ok {
		return a.(common.Address), nil
	}
	pid, err := peer.Decode(string(id))
	if err != nil {
		return common.Address{}, err
	}
	pub, err := pid.ExtractPublicKey()
	if err != nil {
		return common.Address{}, fmt.Errorf("peer %s: %w", id, err)
	}
	raw, err := pub.Raw()
	if err != nil {
		return common.Address{}, fmt.Errorf("peer %s: %w", id, err)
	}
	pk, err := ethcrypto.DecompressPubkey(raw)
	if err != nil {
		return common.Address{}, fmt.Errorf("peer %s: not a secp256k1 key: %w", id, err)
	}
	a := ethcrypto.PubkeyToAddress(*pk)
	peerAddresses.Store(string(id), a)
	return a, nil
}

// libp2pIDs are a node's server IDs: libp2p peer IDs, which embed the
// node's compressed secp256k1 public key.
type libp2pIDs struct{}

// ServerID implements MemberIDs.
func (libp2pIDs) ServerID(pub []byte) (raft.ServerID, error) {
	id, err := p2p.PeerIDFromPublicKey(pub)
	if err != nil {
		return "", err
	}
	return raft.ServerID(id.String()), nil
}

// Address implements MemberIDs.
func (libp2pIDs) Address(id raft.ServerID) (common.Address, error) { return peerAddress(id) }

// libp2pMembers is a node's MemberNet: libp2p connections, and the
// heights the leader samples with the height protocol (pollHeights).
type libp2pMembers struct {
	libp2pIDs
	n *Node
}

// Connected implements MemberNet.
func (m libp2pMembers) Connected(id raft.ServerID) bool {
	pid, err := peer.Decode(string(id))
	return err == nil && m.n.host.Libp2p().Network().Connectedness(pid) == libp2pnet.Connected
}

// Height implements MemberNet.
func (m libp2pMembers) Height(id raft.ServerID) (uint64, bool) {
	s, ok := m.sample(id)
	return s.height, ok
}

// Voting implements MemberNet.
func (m libp2pMembers) Voting(id raft.ServerID) bool {
	s, ok := m.sample(id)
	return ok && s.voting
}

// sample is id's last height sample, if recent.
func (m libp2pMembers) sample(id raft.ServerID) (heightSample, bool) {
	pid, err := peer.Decode(string(id))
	if err != nil {
		return heightSample{}, false
	}
	m.n.heightsMu.Lock()
	s, ok := m.n.heights[pid]
	m.n.heightsMu.Unlock()
	if !ok || time.Since(s.at) > heightFresh {
		return heightSample{}, false
	}
	return s, true
}

// newMembership sets up the reconciler of a networked node (before
// consensus starts applying blocks, which wake it).
func (n *Node) newMembership() {
	n.memberChanges = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tally_raft_membership_changes_total",
		Help: "Raft membership changes this node made as leader to follow the validator set, by action."}, []string{"action"})
	n.metrics.reg.MustRegister(n.memberChanges)
	n.members = NewMembership(MembershipConfig{
		Self:       raft.ServerID(n.host.ID().String()),
		DB:         n.db,
		Net:        libp2pMembers{n: n},
		CatchUpLag: n.cfg.Builder.MaxVoterLag,
		Log:        n.log,
		Changed:    func(action string) { n.memberChanges.WithLabelValues(action).Inc() },
		Refresh:    func() { n.refreshAllowed() },
		HandedOver: n.reforward,
	})
}

// valChange is a validator change as the plan needs it.
type valChange struct {
	add  bool
	addr common.Address
}

// changesApply reports, for each change in order, whether it will apply to
// set, by the state's rules (state.changeValidators): an addition applies
// unless the address is a validator already or the set is full; a removal
// applies unless the address is not a validator or is the last one.
func changesApply(set []common.Address, changes []valChange) []bool {
	cur := make(map[common.Address]bool, len(set))
	for _, a := range set {
		cur[a] = true
	}
	out := make([]bool, len(changes))
	for i, c := range changes {
		switch {
		case c.add && !cur[c.addr] && len(cur) < genesis.MaxValidators:
			cur[c.addr] = true
			out[i] = true
		case !c.add && cur[c.addr] && len(cur) > 1:
			delete(cur, c.addr)
			out[i] = true
		}
	}
	return out
}

// memberInputs is what a membership plan is computed from.
type memberInputs struct {
	self       raft.ServerID
	validators []state.ValidatorInfo
	pending    []store.ValidatorChange
	servers    []raft.Server
	// ids maps keys to server IDs and back (libp2p peer IDs when nil).
	ids MemberIDs
	// connected reports whether the leader has a connection to id.
	connected func(raft.ServerID) bool
	// caughtUp reports whether id's applied height is close enough to the
	// leader's to vote, and if not, why.
	caughtUp func(raft.ServerID) (bool, string)
	// live reports whether the voter id, connected, keeps up with the
	// leader and grants votes, and if not, why: only such voters count
	// for the quorum a configuration change needs (quorumWithout,
	// quorumWith).
	live func(raft.ServerID) (bool, string)
}

type actionKind int

const (
	actRemove actionKind = iota + 1
	actTransfer
	actAddNonvoter
	actPromote
)

func (k actionKind) String() string {
	return map[actionKind]string{actRemove: "remove", actTransfer: "transfer-leadership", actAddNonvoter: "add-nonvoter", actPromote: "promote"}[k]
}

// memberAction is one change of the Raft configuration (or of the leader).
type memberAction struct {
	kind      actionKind
	id        raft.ServerID
	addr      common.Address
	name      string
	effective uint64 // the height of the validator change behind it; 0: none
	why       string
}

// memberWait is a validator whose next step waits on something.
type memberWait struct {
	id   raft.ServerID
	addr common.Address
	why  string
}

// planMembership computes the configuration changes the leader should
// make, most urgent first, and the validators still waiting. It is a pure
// function of the chain's view and Raft's.
func planMembership(in memberInputs) ([]memberAction, []memberWait, error) {
	keys := in.ids
	if keys == nil {
		keys = libp2pIDs{}
	}
	set := make([]common.Address, len(in.validators))
	current := make(map[raft.ServerID]state.ValidatorInfo, len(in.validators))
	for i, v := range in.validators {
		set[i] = v.Address
		id, err := keys.ServerID(v.PublicKey)
		if err != nil {
			return nil, nil, fmt.Errorf("validator %s: %w", v.Address, err)
		}
		current[id] = v
	}
	changes := make([]valChange, len(in.pending))
	for i, c := range in.pending {
		changes[i] = valChange{add: c.Add, addr: c.Validator.Address}
	}
	applies := changesApply(set, changes)
	leaving := make(map[raft.ServerID]store.ValidatorChange)
	joining := make(map[raft.ServerID]store.ValidatorChange)
	for i, c := range in.pending {
		if !applies[i] {
			continue
		}
		var id raft.ServerID
		if len(c.Validator.PublicKey) > 0 {
			sid, err := keys.ServerID(c.Validator.PublicKey)
			if err != nil {
				return nil, nil, fmt.Errorf("proposal %d: validator %s: %w", c.ProposalID, c.Validator.Address, err)
			}
			id = sid
		} else {
			for sid, v := range current {
				if v.Address == c.Validator.Address {
					id = sid
				}
			}
		}
		if id == "" {
			continue
		}
		m := joining
		if !c.Add {
			m = leaving
		}
		if _, ok := m[id]; !ok {
			m[id] = c // the earliest
		}
	}
	inConfig := make(map[raft.ServerID]raft.ServerSuffrage, len(in.servers))
	for _, s := range in.servers {
		inConfig[s.ID] = s.Suffrage
	}

	var acts []memberAction
	var waits []memberWait
	// 1. Validators leaving: out of the configuration before the removal
	// applies (the builder holds that block meanwhile); this node, if it
	// is leaving, hands the lead over and the next leader removes it.
	for _, s := range in.servers {
		if c, ok := leaving[s.ID]; ok && s.ID != in.self {
			if ok, why := quorumWithout(in, s.ID); !ok {
				waits = append(waits, memberWait{id: s.ID, addr: c.Validator.Address, why: why})
				continue
			}
			acts = append(acts, memberAction{kind: actRemove, id: s.ID, addr: c.Validator.Address, name: c.Validator.Name, effective: c.EffectiveHeight,
				why: fmt.Sprintf("governance proposal %d removes the validator at height %d", c.ProposalID, c.EffectiveHeight)})
		}
	}
	if c, ok := leaving[in.self]; ok {
		acts = append(acts, memberAction{kind: actTransfer, id: in.self, addr: c.Validator.Address, name: c.Validator.Name, effective: c.EffectiveHeight,
			why: fmt.Sprintf("this node leaves the validator set at height %d (proposal %d); the next leader removes it from Raft", c.EffectiveHeight, c.ProposalID)})
	} else if _, ok := current[in.self]; !ok {
		// 2. A leader that is not a validator proposes nothing.
		addr, _ := keys.Address(in.self)
		acts = append(acts, memberAction{kind: actTransfer, id: in.self, addr: addr,
			why: "this node's key is not a validator at the next height: its blocks would be rejected"})
	}
	// 3. Validators (current, or approved and pending) join as non-voters;
	// current validators are promoted once caught up.
	wanted := func(id raft.ServerID) (state.ValidatorInfo, uint64, bool) {
		if _, ok := leaving[id]; ok {
			return state.ValidatorInfo{}, 0, false
		}
		if v, ok := current[id]; ok {
			return v, 0, true
		}
		if c, ok := joining[id]; ok {
			return c.Validator, c.EffectiveHeight, true
		}
		return state.ValidatorInfo{}, 0, false
	}
	var ids []raft.ServerID
	for id := range current {
		ids = append(ids, id)
	}
	for id := range joining {
		if _, ok := current[id]; !ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		v, eff, ok := wanted(id)
		if !ok || id == in.self {
			continue
		}
		suffrage, member := inConfig[id]
		switch {
		case !member && !inputsConnected(in, id):
			waits = append(waits, memberWait{id: id, addr: v.Address, why: "not connected to this node yet (it dials the peers in its p2p.peers once the chain admits it)"})
		case !member:
			acts = append(acts, memberAction{kind: actAddNonvoter, id: id, addr: v.Address, name: v.Name, effective: eff, why: validatorWhy(eff)})
		case suffrage == raft.Voter:
		case eff != 0:
			// Voters are always validators (DESIGN.md decision 8): an
			// approved addition replicates as a non-voter until it is in effect.
			waits = append(waits, memberWait{id: id, addr: v.Address, why: fmt.Sprintf("stays a non-voter until its addition takes effect at height %d", eff)})
		default:
			if ok, why := inputsCaughtUp(in, id); !ok {
				waits = append(waits, memberWait{id: id, addr: v.Address, why: "stays a non-voter until caught up: " + why})
			} else if ok, qwhy := quorumWith(in, id); !ok {
				waits = append(waits, memberWait{id: id, addr: v.Address, why: qwhy})
			} else {
				acts = append(acts, memberAction{kind: actPromote, id: id, addr: v.Address, name: v.Name, effective: eff, why: why})
			}
		}
	}
	// 4. Voters that are neither validators nor approved additions.
	for _, s := range in.servers {
		if s.Suffrage != raft.Voter || s.ID == in.self {
			continue
		}
		if _, ok := leaving[s.ID]; ok {
			continue
		}
		if _, _, ok := wanted(s.ID); ok {
			continue
		}
		addr, _ := keys.Address(s.ID)
		if ok, why := quorumWithout(in, s.ID); !ok {
			waits = append(waits, memberWait{id: s.ID, addr: addr, why: why})
			continue
		}
		acts = append(acts, memberAction{kind: actRemove, id: s.ID, addr: addr, why: "a voter that is not a validator"})
	}
	return acts, waits, nil
}

// quorumWithout reports whether the voters other than id that are up and
// voting (liveVoters; this leader among them) are a majority of them,
// and if not, why. hashicorp/raft's single-server change takes effect when it
// is appended, not when it commits: a removal appended while too few of
// the remaining voters are up can never commit, and once the leader
// that appended it loses the lead, no node can win an election (its
// latest configuration asks only those voters; a node restarted fresh
// after a lost data directory grants no vote until a leader catches it
// up; the cluster simulator's seed 84 with governance and lost
// directories, and seed 53 with disk-stall). So the removal waits, and
// the builder holds the block that applies it, until they are up.
func quorumWithout(in memberInputs, id raft.ServerID) (bool, string) {
	voters, live, down := liveVoters(in, id)
	if live > voters/2 {
		return true, ""
	}
	return false, fmt.Sprintf("stays a voter while %d of the %d other voters are up and voting: the configuration without it could not commit its own removal (%d needed; %s)", live, voters, voters/2+1, strings.Join(down, "; "))
}

// quorumWith reports whether the voters up and voting (liveVoters; this
// leader among them), with the caught-up non-voter id, are a majority of
// the configuration that promotes id, and if not, why.
// hashicorp/raft's promotion, like any configuration change, takes effect
// when it is appended: from then on every commit, the promotion's own
// among them, needs a majority of the larger configuration. A voter that
// is connected but grants no vote (a fresh member not caught up) acks
// entries but elects no one: should the leader lose the lead, only
// voters that vote can go on. The newcomer counts: it is caught up
// (caughtUpAt). etcd's strict reconfiguration check
// (server.isReadyToAddVotingMember) does not count it; here that would
// hold a validator's promotion, and with it a removal governance
// scheduled, until a voter down came back, and the builder holds the
// block that applies the removal meanwhile (the cluster simulator's
// seed 53).
func quorumWith(in memberInputs, id raft.ServerID) (bool, string) {
	voters, live, down := liveVoters(in, id)
	need := (voters+1)/2 + 1
	if live+1 >= need {
		return true, ""
	}
	return false, fmt.Sprintf("stays a non-voter while %d of the %d voters are up and voting: the configuration with it needs %d of its %d voters (%s)", live, voters, need, voters+1, strings.Join(down, "; "))
}

// liveVoters counts the voters of the configuration other than id, those
// of them that count for a change's quorum (inputsLive), and why each
// other does not.
func liveVoters(in memberInputs, id raft.ServerID) (voters, live int, down []string) {
	for _, s := range in.servers {
		if s.Suffrage != raft.Voter || s.ID == id {
			continue
		}
		voters++
		if ok, why := inputsLive(in, s.ID); ok {
			live++
		} else {
			down = append(down, fmt.Sprintf("%s %s", s.ID, why))
		}
	}
	return voters, live, down
}

// inputsLive reports whether voter id counts for a configuration
// change's quorum: this leader itself, or connected and live. A voter
// connected but not voting (a fresh member back after a lost Raft
// directory grants no vote until it caught up) does not: were the leader
// to lose the lead after the change, it could elect no one (the cluster
// simulator's seed 53: the removal of the old leader appended with a
// fresh member as the only other voter).
func inputsLive(in memberInputs, id raft.ServerID) (bool, string) {
	if id == in.self {
		return true, ""
	}
	if !inputsConnected(in, id) {
		return false, "not connected"
	}
	if in.live == nil {
		return true, ""
	}
	return in.live(id)
}

func inputsConnected(in memberInputs, id raft.ServerID) bool {
	return in.connected == nil || in.connected(id)
}

func inputsCaughtUp(in memberInputs, id raft.ServerID) (bool, string) {
	if in.caughtUp == nil {
		return true, ""
	}
	return in.caughtUp(id)
}

func validatorWhy(effective uint64) string {
	if effective == 0 {
		return "a validator not in the Raft configuration"
	}
	return fmt.Sprintf("an approved validator (in effect at height %d)", effective)
}

// scheduledChange is a validator change in the governance schedule.
type scheduledChange struct {
	valChange
	id, height uint64
}

// dueValidatorChanges returns the validator changes that block number,
// built on base, applies at its end (the schedule's entries at height
// number+1 or before), in order.
func dueValidatorChanges(base state.Reader, number uint64) ([]scheduledChange, error) {
	o := state.NewOverlay(base)
	sched, err := o.Schedule()
	if err != nil || len(sched) == 0 {
		return nil, err
	}
	var out []scheduledChange
	for _, s := range sched {
		if s.Height > number+1 {
			continue
		}
		p, ok, err := o.Proposal(s.ID)
		if err != nil {
			return nil, err
		}
		if !ok || (p.Kind != state.KindAddValidator && p.Kind != state.KindRemoveValidator) {
			continue
		}
		c, err := decodeValidatorChange(p)
		if err != nil {
			return nil, fmt.Errorf("proposal %d: %w", s.ID, err)
		}
		out = append(out, scheduledChange{valChange: c, id: s.ID, height: s.Height})
	}
	return out, nil
}

// decodeValidatorChange decodes a proposeAddValidator or
// proposeRemoveValidator proposal's change.
func decodeValidatorChange(p state.Proposal) (valChange, error) {
	if len(p.Change) < 4 {
		return valChange{}, errors.New("short change")
	}
	m, err := chain.GovernanceABI.MethodById(p.Change[:4])
	if err != nil {
		return valChange{}, err
	}
	args, err := m.Inputs.Unpack(p.Change[4:])
	if err != nil {
		return valChange{}, err
	}
	if p.Kind == state.KindRemoveValidator {
		a, _ := args[0].(common.Address)
		return valChange{addr: a}, nil
	}
	pub, _ := args[1].([]byte)
	pk, err := ethcrypto.DecompressPubkey(pub)
	if err != nil {
		return valChange{}, err
	}
	return valChange{add: true, addr: ethcrypto.PubkeyToAddress(*pk)}, nil
}

// TransferLeadership hands the Raft lead to the voter with peer ID id (or,
// with "", to the most up-to-date voter), for maintenance of this node.
// Call it on the leader. The target must be a validator: a leader that is
// not one proposes nothing.
func (api *AdminAPI) TransferLeadership(id string) (string, error) {
	n := api.n
	if err := n.requireLeader(); err != nil {
		return "", err
	}
	if n.members == nil {
		return "", errors.New("transfer leadership: this node runs without peers (no p2p.listen): there is no other voter to hand the lead to")
	}
	r := n.engine.Raft
	if id == "" {
		if target, ok := n.members.TransferTarget(); ok {
			id = string(target)
		}
	}
	if id == "" {
		if err := n.engine.Await(r.LeadershipTransfer()); err != nil {
			return "", fmt.Errorf("transfer leadership: %w", err)
		}
	} else {
		pid, err := peer.Decode(id)
		if err != nil {
			return "", fmt.Errorf("peer id: %w", err)
		}
		if pid == n.host.ID() {
			return "", errors.New("this node already leads")
		}
		f := r.GetConfiguration()
		if err := f.Error(); err != nil {
			return "", err
		}
		if !slices.ContainsFunc(f.Configuration().Servers, func(s raft.Server) bool { return s.ID == raft.ServerID(id) && s.Suffrage == raft.Voter }) {
			return "", fmt.Errorf("%s is not a voter of this cluster", id)
		}
		if addr, err := peerAddress(raft.ServerID(id)); err != nil || !n.db.IsValidator(addr) {
			return "", fmt.Errorf("%s is not a validator at the next height", id)
		}
		if err := n.engine.Await(r.LeadershipTransferToServer(raft.ServerID(id), raft.ServerAddress(id))); err != nil {
			return "", fmt.Errorf("transfer leadership to %s: %w", id, err)
		}
	}
	go n.reforward()
	_, leader := r.LeaderWithID()
	n.log.Info("leadership transferred by admin", "to", id, "leader", leader)
	return string(leader), nil
}

// allowedPeers returns the peers the gater admits besides the Raft
// configuration's members: the current validators and the approved
// additions not yet in effect (so a new validator can connect and catch up
// before its addition applies).
func (n *Node) allowedPeers() ([]peer.ID, error) {
	out, err := n.validatorPeers()
	if err != nil {
		return nil, err
	}
	pending, err := n.db.PendingValidatorChanges()
	if err != nil {
		return nil, err
	}
	for _, c := range pending {
		if !c.Add {
			continue
		}
		id, err := p2p.PeerIDFromPublicKey(c.Validator.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("proposal %d: %w", c.ProposalID, err)
		}
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out, nil
}
