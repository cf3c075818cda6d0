package node

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/consensus"
	"github.com/tally-ledger/tally/internal/logrepeat"
	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/store"
)

// MemberIDs maps validator keys to Raft server IDs and back. A node's
// server IDs are libp2p peer IDs, which embed the key (libp2pMembers); the
// cluster simulator names its nodes itself.
type MemberIDs interface {
	// ServerID is the Raft server ID of the node holding the validator
	// key publicKey (33-byte compressed secp256k1).
	ServerID(publicKey []byte) (raft.ServerID, error)
	// Address is the validator address of the key behind a server ID.
	Address(id raft.ServerID) (common.Address, error)
}

// MemberNet is what the membership reconciler needs of the network
// between the nodes: the identities, and what the leader knows of each
// member. The node implements it over libp2p (libp2pMembers), the cluster
// simulator (internal/sim) over its simulated network, so that both run
// this same reconciler.
type MemberNet interface {
	MemberIDs
	// Connected reports whether this node has a connection to id (a new
	// validator is added to Raft only once it is reachable).
	Connected(id raft.ServerID) bool
	// Height is id's applied height as last sampled, and false when there
	// is no recent sample (the member is unreachable).
	Height(id raft.ServerID) (uint64, bool)
	// Voting reports whether id, as last sampled, grants votes: false
	// for a fresh member not caught up (consensus voteGate) and when
	// there is no recent sample.
	Voting(id raft.ServerID) bool
}

// MembershipConfig configures a Membership.
type MembershipConfig struct {
	// Self is this node's Raft server ID.
	Self raft.ServerID
	// DB is this node's state: the validator set and the approved changes.
	DB *store.DB
	// Net is the network between the nodes.
	Net MemberNet
	// CatchUpLag is how close to the leader's height a new validator must
	// be before it is promoted (builder.max-voter-lag; defaultCatchUpLag
	// when 0).
	CatchUpLag uint64
	Log        *slog.Logger
	// Changed, if set, is told each change made, by action (the node's
	// tally_raft_membership_changes_total).
	Changed func(action string)
	// Refresh, if set, is called before each pass and around each change
	// (the node's connection gater follows the validators and members).
	Refresh func()
	// HandedOver, if set, runs in its own goroutine after this node handed
	// the lead over: what clients sent to it while it led is in its pool
	// only, and the node re-forwards it to the new leader.
	HandedOver func()
}

// Membership is the leader's reconciliation of the Raft configuration to
// the chain's validator set (the file comment of validators.go). It is
// the same code in a node and in the cluster simulator; only MemberNet
// differs.
type Membership struct {
	cfg    MembershipConfig
	engine atomic.Pointer[consensus.Engine]
	kick   chan struct{} // an applied block

	// Owned by the Run goroutine.
	lastTransfer time.Time
	waitLogged   map[raft.ServerID]time.Time
	// repeats holds back a change failing again at every reconcile (250
	// ms apart): logged once per doubling interval with the count held back.
	repeats *logrepeat.Limiter
}

// NewMembership sets up the reconciler; Run starts it once consensus runs.
func NewMembership(cfg MembershipConfig) *Membership {
	if cfg.CatchUpLag == 0 {
		cfg.CatchUpLag = defaultCatchUpLag
	}
	return &Membership{cfg: cfg, kick: make(chan struct{}, 1), waitLogged: make(map[raft.ServerID]time.Time), repeats: logrepeat.New(time.Now)}
}

// Kick wakes the loop (after an applied block).
func (m *Membership) Kick() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Run reconciles while this node leads, until stop is closed.
func (m *Membership) Run(e *consensus.Engine, stop <-chan struct{}) {
	m.engine.Store(e)
	t := time.NewTicker(reconcileInterval)
	defer t.Stop()
	var last time.Time
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		case <-m.kick:
			if d := reconcileSpacing - time.Since(last); d > 0 {
				select {
				case <-stop:
					return
				case <-time.After(d):
				}
			}
		}
		last = time.Now()
		// Only once the leader's applied state includes every earlier
		// entry (its Barrier), so it never acts on a stale validator set.
		if !e.LeaderReady() || e.Halted() != nil {
			continue
		}
		m.reconcile(e)
	}
}

func (m *Membership) refresh() {
	if m.cfg.Refresh != nil {
		m.cfg.Refresh()
	}
}

// reconcile makes the configuration changes the plan asks for, one at a
// time, planning again after each.
func (m *Membership) reconcile(e *consensus.Engine) {
	m.refresh()
	for range 8 {
		if !e.LeaderReady() {
			return
		}
		acts, waits, err := m.plan(e)
		if err != nil {
			m.cfg.Log.Error("membership: cannot plan", "err", err)
			return
		}
		m.logWaits(waits)
		if len(acts) == 0 {
			return
		}
		if err := m.act(e, acts[0]); err != nil {
			kind := acts[0].kind.String() + " " + string(acts[0].id) + ": " + logrepeat.Kind(err.Error())
			if ok, suppressed := m.repeats.Allow(kind); ok && !errors.Is(err, errTransferSpaced) {
				m.cfg.Log.Warn("membership: change failed; retrying", "action", acts[0].kind.String(), "peer_id", acts[0].id, "validator", acts[0].addr,
					"repeats_suppressed", suppressed, "err", err)
			}
			return
		}
	}
}

// plan reads the chain and Raft and plans.
func (m *Membership) plan(e *consensus.Engine) ([]memberAction, []memberWait, error) {
	vals, err := m.cfg.DB.ValidatorInfos()
	if err != nil {
		return nil, nil, err
	}
	pending, err := m.cfg.DB.PendingValidatorChanges()
	if err != nil {
		return nil, nil, err
	}
	f := e.Raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, nil, err
	}
	return planMembership(memberInputs{
		self:       m.cfg.Self,
		validators: vals,
		pending:    pending,
		servers:    f.Configuration().Servers,
		ids:        m.cfg.Net,
		connected:  m.cfg.Net.Connected,
		caughtUp:   m.caughtUp,
		live:       m.live,
	})
}

// caughtUp reports whether a non-voter's applied height, as last sampled,
// is caught up with this node's (caughtUpAt).
func (m *Membership) caughtUp(id raft.ServerID) (bool, string) {
	head, _ := m.cfg.DB.Head()
	h, ok := m.cfg.Net.Height(id)
	if !ok {
		return false, "it has not answered a height query recently"
	}
	return caughtUpAt(h, head.Number, m.cfg.CatchUpLag)
}

// live reports whether a voter keeps up with this node and grants votes
// (memberInputs.live).
func (m *Membership) live(id raft.ServerID) (bool, string) {
	if ok, why := m.caughtUp(id); !ok {
		return false, why
	}
	if !m.cfg.Net.Voting(id) {
		return false, "it grants no vote yet (a fresh member not caught up)"
	}
	return true, ""
}

// caughtUpAt reports whether a non-voter at applied height h is caught up
// with a leader at head: within lag blocks of it, and past genesis. A node
// that applied no block has stored none of the log: on a chain younger
// than lag blocks it would be promoted with nothing replicated, a voter
// whose disk may never have stored an entry (the cluster simulator's
// seed 68 with disk-stall: a node whose Raft log stalled before its
// first entry became a voter, and its start after the stall was then
// refused as a lost data directory).
func caughtUpAt(h, head, lag uint64) (bool, string) {
	switch {
	case h == 0 && head > 0:
		return false, fmt.Sprintf("at height 0, the leader at %d (it has applied no block of the log yet)", head)
	case h+lag < head:
		return false, fmt.Sprintf("at height %d, the leader at %d (more than %d behind)", h, head, lag)
	}
	return true, fmt.Sprintf("caught up: at height %d, the leader at %d", h, head)
}

func (m *Membership) logWaits(waits []memberWait) {
	now := time.Now()
	for _, w := range waits {
		if now.Sub(m.waitLogged[w.id]) < waitLogEvery {
			continue
		}
		m.waitLogged[w.id] = now
		head, _ := m.cfg.DB.Head()
		m.cfg.Log.Info("membership: validator waiting", "peer_id", w.id, "validator", w.addr, "head", head.Number, "why", w.why)
	}
}

var errTransferSpaced = errors.New("leadership transfer tried recently")

// act makes one change.
func (m *Membership) act(e *consensus.Engine, a memberAction) error {
	r := e.Raft
	head, _ := m.cfg.DB.Head()
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
		m.cfg.Log.Info("membership: removing server from raft", attrs...)
		err = e.Await(r.RemoveServer(a.id, 0, membershipTimeout))
	case actAddNonvoter:
		m.cfg.Log.Info("membership: adding validator to raft as non-voter", attrs...)
		m.refresh()
		err = e.Await(r.AddNonvoter(a.id, raft.ServerAddress(a.id), 0, membershipTimeout))
	case actPromote:
		m.cfg.Log.Info("membership: promoting validator to voter", attrs...)
		err = e.Await(r.AddVoter(a.id, raft.ServerAddress(a.id), 0, membershipTimeout))
	case actTransfer:
		if time.Since(m.lastTransfer) < transferRetry {
			return errTransferSpaced
		}
		m.lastTransfer = time.Now()
		target, ok := m.TransferTarget()
		if ok {
			attrs = append(attrs, "to", target)
		}
		m.cfg.Log.Warn("membership: transferring leadership", attrs...)
		if ok {
			err = e.Await(r.LeadershipTransferToServer(target, raft.ServerAddress(target)))
		} else {
			err = e.Await(r.LeadershipTransfer())
		}
	}
	if err != nil {
		return err
	}
	if a.kind == actTransfer && m.cfg.HandedOver != nil {
		// Before this node (if it is leaving) is cut off when its
		// removal takes effect.
		go m.cfg.HandedOver()
	}
	if m.cfg.Changed != nil {
		m.cfg.Changed(a.kind.String())
	}
	done := map[actionKind]string{actRemove: "membership: removed server from raft", actAddNonvoter: "membership: added validator as non-voter",
		actPromote: "membership: promoted validator to voter", actTransfer: "membership: leadership transferred"}[a.kind]
	// head is the applied height when the change was made: a removal's is
	// below the block that applies it, which the builder held meanwhile.
	now, _ := m.cfg.DB.Head()
	m.cfg.Log.Info(done, "peer_id", a.id, "validator", a.addr, "effective_height", a.effective, "head", head.Number, "head_now", now.Number)
	if a.kind == actRemove {
		m.refresh()
	}
	return nil
}

// TransferTarget picks the voter to hand the lead to: a validator that is
// not leaving, with the highest recently sampled height.
func (m *Membership) TransferTarget() (raft.ServerID, bool) {
	e := m.engine.Load()
	if e == nil {
		return "", false
	}
	pending, _ := m.cfg.DB.PendingValidatorChanges()
	leaving := map[common.Address]bool{}
	for _, c := range pending {
		if !c.Add {
			leaving[c.Validator.Address] = true
		}
	}
	f := e.Raft.GetConfiguration()
	if f.Error() != nil {
		return "", false
	}
	var (
		best   raft.ServerID
		bestH  uint64
		chosen bool
	)
	for _, s := range f.Configuration().Servers {
		if s.Suffrage != raft.Voter || s.ID == m.cfg.Self {
			continue
		}
		addr, err := m.cfg.Net.Address(s.ID)
		if err != nil || !m.cfg.DB.IsValidator(addr) || leaving[addr] {
			continue
		}
		h, ok := m.cfg.Net.Height(s.ID)
		if !ok {
			continue
		}
		if !chosen || h > bestH {
			best, bestH, chosen = s.ID, h, true
		}
	}
	return best, chosen
}

// Hold is the builder's Hold: it holds block number (built on base) while
// it would apply the removal of a validator that is still in the Raft
// configuration, so a validator always leaves Raft before its removal
// takes effect. With governance.activationDelay 1 a removal applies in the
// very block that approves it and cannot be held; the leader then removes
// the server right after.
func (m *Membership) Hold(base state.Reader, number uint64) string {
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
	e := m.engine.Load()
	if e == nil {
		return "membership reconciliation not started yet"
	}
	f := e.Raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Sprintf("cannot read the raft configuration: %v", err)
	}
	for i, c := range due {
		if c.add || !applies[i] {
			continue
		}
		for _, s := range f.Configuration().Servers {
			if a, err := m.cfg.Net.Address(s.ID); err == nil && a == c.addr {
				m.Kick()
				return fmt.Sprintf("block %d applies the removal of validator %s (proposal %d, in effect at height %d): waiting for it to leave the raft configuration", number, c.addr, c.id, c.height)
			}
		}
	}
	return ""
}
