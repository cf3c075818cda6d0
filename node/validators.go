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
//     as soon as its applied height (height protocol) is within
//     builder.max-voter-lag of the leader's.
//   - A validator whose approved removal will apply is removed from the
//     configuration before the block that applies the removal is proposed:
//     the builder holds that block (holdBlock) until it is gone. A leader
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
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/hashicorp/raft"
	libp2pnet "github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/consensus"
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

// reconciler is the leader's membership state between passes.
type reconciler struct {
	kick         chan struct{} // an applied block
	lastTransfer time.Time
	waitLogged   map[raft.ServerID]time.Time
	changes      *prometheus.CounterVec
}

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

// valChange is a validator change as the simulation needs it.
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
	// connected reports whether the leader has a connection to id.
	connected func(raft.ServerID) bool
	// caughtUp reports whether id's applied height is close enough to the
	// leader's to vote, and if not, why.
	caughtUp func(raft.ServerID) (bool, string)
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
	set := make([]common.Address, len(in.validators))
	current := make(map[raft.ServerID]state.ValidatorInfo, len(in.validators))
	for i, v := range in.validators {
		set[i] = v.Address
		id, err := p2p.PeerIDFromPublicKey(v.PublicKey)
		if err != nil {
			return nil, nil, fmt.Errorf("validator %s: %w", v.Address, err)
		}
		current[raft.ServerID(id.String())] = v
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
			pid, err := p2p.PeerIDFromPublicKey(c.Validator.PublicKey)
			if err != nil {
				return nil, nil, fmt.Errorf("proposal %d: validator %s: %w", c.ProposalID, c.Validator.Address, err)
			}
			id = raft.ServerID(pid.String())
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
			acts = append(acts, memberAction{kind: actRemove, id: s.ID, addr: c.Validator.Address, name: c.Validator.Name, effective: c.EffectiveHeight,
				why: fmt.Sprintf("governance proposal %d removes the validator at height %d", c.ProposalID, c.EffectiveHeight)})
		}
	}
	if c, ok := leaving[in.self]; ok {
		acts = append(acts, memberAction{kind: actTransfer, id: in.self, addr: c.Validator.Address, name: c.Validator.Name, effective: c.EffectiveHeight,
			why: fmt.Sprintf("this node leaves the validator set at height %d (proposal %d); the next leader removes it from Raft", c.EffectiveHeight, c.ProposalID)})
	} else if _, ok := current[in.self]; !ok {
		// 2. A leader that is not a validator proposes nothing.
		addr, _ := peerAddress(in.self)
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
			if ok, why := inputsCaughtUp(in, id); ok {
				acts = append(acts, memberAction{kind: actPromote, id: id, addr: v.Address, name: v.Name, effective: eff, why: why})
			} else {
				waits = append(waits, memberWait{id: id, addr: v.Address, why: "stays a non-voter until caught up: " + why})
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
		addr, _ := peerAddress(s.ID)
		acts = append(acts, memberAction{kind: actRemove, id: s.ID, addr: addr, why: "a voter that is not a validator"})
	}
	return acts, waits, nil
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

// newReconciler sets up the membership loop's state (before consensus
// starts applying blocks, which wake it).
func (n *Node) newReconciler() {
	n.recon = &reconciler{
		kick:       make(chan struct{}, 1),
		waitLogged: make(map[raft.ServerID]time.Time),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tally_raft_membership_changes_total",
			Help: "Raft membership changes this node made as leader to follow the validator set, by action."}, []string{"action"}),
	}
	n.metrics.reg.MustRegister(n.recon.changes)
}

// startReconciler starts the leader's membership loop.
func (n *Node) startReconciler() {
	n.bg.Add(1)
	go n.reconcileLoop()
}

// kickReconciler wakes the membership loop (after an applied block).
func (n *Node) kickReconciler() {
	if n.recon == nil {
		return
	}
	select {
	case n.recon.kick <- struct{}{}:
	default:
	}
}

func (n *Node) reconcileLoop() {
	defer n.bg.Done()
	t := time.NewTicker(reconcileInterval)
	defer t.Stop()
	var last time.Time
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		case <-n.recon.kick:
			if d := reconcileSpacing - time.Since(last); d > 0 {
				select {
				case <-n.stop:
					return
				case <-time.After(d):
				}
			}
		}
		last = time.Now()
		// Only once the leader's applied state includes every earlier
		// entry (its Barrier), so it never acts on a stale validator set.
		if !n.engine.LeaderReady() || n.engine.Halted() != nil {
			continue
		}
		n.reconcile()
	}
}

// reconcile makes the configuration changes the plan asks for, one at a
// time, planning again after each.
func (n *Node) reconcile() {
	n.refreshAllowed()
	for range 8 {
		if !n.engine.LeaderReady() {
			return
		}
		acts, waits, err := n.planMembership()
		if err != nil {
			n.log.Error("membership: cannot plan", "err", err)
			return
		}
		n.logWaits(waits)
		if len(acts) == 0 {
			return
		}
		if err := n.act(acts[0]); err != nil {
			if !errors.Is(err, errTransferSpaced) {
				n.log.Warn("membership: change failed; retrying", "action", acts[0].kind.String(), "peer_id", acts[0].id, "validator", acts[0].addr, "err", err)
			}
			return
		}
	}
}

// planMembership reads the chain and Raft and plans.
func (n *Node) planMembership() ([]memberAction, []memberWait, error) {
	vals, err := n.db.ValidatorInfos()
	if err != nil {
		return nil, nil, err
	}
	pending, err := n.db.PendingValidatorChanges()
	if err != nil {
		return nil, nil, err
	}
	f := n.engine.Raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, nil, err
	}
	return planMembership(memberInputs{
		self:       raft.ServerID(n.host.ID().String()),
		validators: vals,
		pending:    pending,
		servers:    f.Configuration().Servers,
		connected: func(id raft.ServerID) bool {
			pid, err := peer.Decode(string(id))
			return err == nil && n.host.Libp2p().Network().Connectedness(pid) == libp2pnet.Connected
		},
		caughtUp: n.caughtUp,
	})
}

// caughtUp reports whether a non-voter's applied height, as it last
// answered the height protocol, is within the catch-up lag of this node's.
func (n *Node) caughtUp(id raft.ServerID) (bool, string) {
	pid, err := peer.Decode(string(id))
	if err != nil {
		return false, err.Error()
	}
	lag := n.cfg.Builder.MaxVoterLag
	if lag == 0 {
		lag = defaultCatchUpLag
	}
	head, _ := n.db.Head()
	n.heightsMu.Lock()
	s, ok := n.heights[pid]
	n.heightsMu.Unlock()
	switch {
	case !ok || time.Since(s.at) > heightFresh:
		return false, "it has not answered a height query recently"
	case s.height+lag < head.Number:
		return false, fmt.Sprintf("at height %d, the leader at %d (more than %d behind)", s.height, head.Number, lag)
	}
	return true, fmt.Sprintf("caught up: at height %d, the leader at %d", s.height, head.Number)
}

func (n *Node) logWaits(waits []memberWait) {
	now := time.Now()
	for _, w := range waits {
		if now.Sub(n.recon.waitLogged[w.id]) < waitLogEvery {
			continue
		}
		n.recon.waitLogged[w.id] = now
		head, _ := n.db.Head()
		n.log.Info("membership: validator waiting", "peer_id", w.id, "validator", w.addr, "head", head.Number, "why", w.why)
	}
}

var errTransferSpaced = errors.New("leadership transfer tried recently")

// act makes one change.
func (n *Node) act(a memberAction) error {
	r := n.engine.Raft
	head, _ := n.db.Head()
	attrs := []any{"peer_id", a.id, "validator", a.addr, "head", head.Number, "why", a.why}
	if a.name != "" {
		attrs = append(attrs, "name", a.name)
	}
	if a.effective != 0 {
		attrs = append(attrs, "effective_height", a.effective)
	}
	var err error
	switch a.kind {
	case actRemove:
		n.log.Info("membership: removing server from raft", attrs...)
		err = r.RemoveServer(a.id, 0, membershipTimeout).Error()
	case actAddNonvoter:
		n.log.Info("membership: adding validator to raft as non-voter", attrs...)
		n.refreshAllowed()
		err = r.AddNonvoter(a.id, raft.ServerAddress(a.id), 0, membershipTimeout).Error()
	case actPromote:
		n.log.Info("membership: promoting validator to voter", attrs...)
		err = r.AddVoter(a.id, raft.ServerAddress(a.id), 0, membershipTimeout).Error()
	case actTransfer:
		if time.Since(n.recon.lastTransfer) < transferRetry {
			return errTransferSpaced
		}
		n.recon.lastTransfer = time.Now()
		target, ok := n.transferTarget()
		if ok {
			attrs = append(attrs, "to", target)
		}
		n.log.Warn("membership: transferring leadership", attrs...)
		if ok {
			err = r.LeadershipTransferToServer(target, raft.ServerAddress(target)).Error()
		} else {
			err = r.LeadershipTransfer().Error()
		}
	}
	if err != nil {
		return err
	}
	if a.kind == actTransfer {
		// What clients sent to this node while it led is in its pool
		// only: hand it to the new leader now, before this node (if it is
		// leaving) is cut off when its removal takes effect.
		go n.reforward()
	}
	n.recon.changes.WithLabelValues(a.kind.String()).Inc()
	done := map[actionKind]string{actRemove: "membership: removed server from raft", actAddNonvoter: "membership: added validator as non-voter",
		actPromote: "membership: promoted validator to voter", actTransfer: "membership: leadership transferred"}[a.kind]
	// head is the applied height when the change was made: a removal's is
	// below the block that applies it, which the builder held meanwhile.
	now, _ := n.db.Head()
	n.log.Info(done, "peer_id", a.id, "validator", a.addr, "effective_height", a.effective, "head", head.Number, "head_now", now.Number)
	if a.kind == actRemove {
		n.refreshAllowed()
	}
	return nil
}

// transferTarget picks the voter to hand the lead to: a validator that is
// not leaving, with the highest recently sampled height.
func (n *Node) transferTarget() (raft.ServerID, bool) {
	pending, _ := n.db.PendingValidatorChanges()
	leaving := map[common.Address]bool{}
	for _, c := range pending {
		if !c.Add {
			leaving[c.Validator.Address] = true
		}
	}
	f := n.engine.Raft.GetConfiguration()
	if f.Error() != nil {
		return "", false
	}
	var (
		best   raft.ServerID
		bestH  uint64
		chosen bool
	)
	self := n.host.ID().String()
	for _, s := range f.Configuration().Servers {
		if s.Suffrage != raft.Voter || string(s.ID) == self {
			continue
		}
		addr, err := peerAddress(s.ID)
		if err != nil || !n.db.IsValidator(addr) || leaving[addr] {
			continue
		}
		pid, err := peer.Decode(string(s.ID))
		if err != nil {
			continue
		}
		n.heightsMu.Lock()
		h, ok := n.heights[pid]
		n.heightsMu.Unlock()
		if !ok || time.Since(h.at) > heightFresh {
			continue
		}
		if !chosen || h.height > bestH {
			best, bestH, chosen = s.ID, h.height, true
		}
	}
	return best, chosen
}

// holdBlock is the builder's Hold: it holds block number (built on base)
// while it would apply the removal of a validator that is still in the
// Raft configuration, so a validator always leaves Raft before its removal
// takes effect. With governance.activationDelay 1 a removal applies in the
// very block that approves it and cannot be held; the leader then removes
// the server right after.
func (n *Node) holdBlock(base state.Reader, number uint64) string {
	due, err := dueValidatorChanges(base, number)
	if err != nil {
		return fmt.Sprintf("cannot read the governance schedule: %v", err)
	}
	if !slices.ContainsFunc(due, func(c scheduledChange) bool { return !c.add }) {
		return ""
	}
	set, err := consensus.ValidatorsAt(base)
	if err != nil {
		return fmt.Sprintf("cannot read the %v", err)
	}
	changes := make([]valChange, len(due))
	for i, c := range due {
		changes[i] = c.valChange
	}
	applies := changesApply(set, changes)
	f := n.engine.Raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Sprintf("cannot read the raft configuration: %v", err)
	}
	for i, c := range due {
		if c.add || !applies[i] {
			continue
		}
		for _, s := range f.Configuration().Servers {
			if a, err := peerAddress(s.ID); err == nil && a == c.addr {
				n.kickReconciler()
				return fmt.Sprintf("block %d applies the removal of validator %s (proposal %d, in effect at height %d): waiting for it to leave the raft configuration", number, c.addr, c.id, c.height)
			}
		}
	}
	return ""
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
	r := n.engine.Raft
	if id == "" {
		if target, ok := n.transferTarget(); ok {
			id = string(target)
		}
	}
	if id == "" {
		if err := r.LeadershipTransfer().Error(); err != nil {
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
		if err := r.LeadershipTransferToServer(raft.ServerID(id), raft.ServerAddress(id)).Error(); err != nil {
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
