package consensus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/mempool"
	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/store"
)

// BuilderConfig tunes block production.
type BuilderConfig struct {
	// MaxBlockTxs caps the transactions of one block. A block also stops
	// at chain.MaxBlockSize of encoding and chain.BlockGasLimit of gas
	// (state.Build), rules every node checks.
	MaxBlockTxs int
	// MaxInflight is how many proposed blocks may be uncommitted at once;
	// block N+1 is built while block N replicates.
	MaxInflight int
	// BlockInterval is the longest the builder waits to fill a block while
	// another is in flight.
	BlockInterval time.Duration
	// Heartbeat is the idle interval after which an empty block is proposed,
	// so tools waiting for confirmations do not hang.
	Heartbeat time.Duration
	// ApplyTimeout bounds how long raft.Apply may wait to enqueue a block.
	ApplyTimeout time.Duration
	// MaxVoterLag is how many blocks the slowest reachable voter may trail
	// this node's applied head before the builder pauses; 0 disables it.
	MaxVoterLag uint64
	// SlowestVoter reports the lowest applied height among the other
	// voters that answered recently (ok false when there is none).
	SlowestVoter func() (height uint64, ok bool)
	// Hold, if set, is asked before each block: a non-empty answer is why
	// block number, built on base (the state after its parent), must wait
	// (the node holds the block that applies a validator removal until the
	// validator has left the Raft configuration). The builder asks again
	// every HoldPoll and after every change.
	Hold func(base state.Reader, number uint64) string
	// Certificates, if set, returns commit certificates ready to be carried
	// by block number (for applied blocks not yet certified on the chain),
	// in increasing height. The builder leaves out those an in-flight block
	// already carries and keeps at most chain.MaxCertsPerBlock.
	Certificates func(number uint64) []*chain.Certificate
	// BlockClock, if set, is the clock the block times come from instead
	// of time.Now (a block's time is still at least its parent's + 1 ms).
	// It is a test hook: a node test moves block time past a day-long
	// expiry without waiting for it. The builder's own timing (intervals,
	// heartbeats) stays on time.Now.
	BlockClock func() time.Time
}

// HoldPoll is how often a held builder (Hold, or this node's key not being
// a validator) looks again.
const HoldPoll = 20 * time.Millisecond

// ErrNotValidator is why a leader whose key is not a validator of the block
// it would build proposes nothing: every node would reject the block
// (DESIGN.md decision 8). The node hands the lead to a validator.
var ErrNotValidator = errors.New("this node's key is not a validator at the next height")

// heldError is a block the builder may not propose yet.
type heldError struct{ reason string }

func (e *heldError) Error() string { return "block held: " + e.reason }

// DefaultBuilderConfig is the builder configuration of a node that sets nothing.
var DefaultBuilderConfig = BuilderConfig{
	MaxBlockTxs:   5000,
	MaxInflight:   2,
	BlockInterval: 10 * time.Millisecond,
	Heartbeat:     time.Second,
	ApplyTimeout:  10 * time.Second,
}

// Proposer is what the builder proposes through: raft.Raft in a node.
type Proposer interface {
	Apply(cmd []byte, timeout time.Duration) raft.ApplyFuture
}

// specBlock is a block the builder proposed that it has not seen applied.
type specBlock struct {
	built *state.Built
	txs   []mempool.Pending
}

// Builder is the leader's block builder. It builds each block on its
// speculative head (the last block it proposed, or the applied head), so
// several blocks can be in flight; if any of them is not applied as built,
// it starts again from the applied head and returns their transactions to
// the pool.
type Builder struct {
	cfg      BuilderConfig
	db       *store.DB
	pool     *mempool.Pool
	proposer Proposer
	key      *crypto.PrivateKey
	chainID  uint64
	log      *slog.Logger
	now      func() time.Time
	// OnProposed is called after each proposal (metrics).
	onProposed func(b *chain.Block)
	// onBroken is called when building met a broken invariant (supply not
	// conserved) or a failed read of the state (state.ErrStorage): the
	// engine halts the FSM with it.
	onBroken func(error)
	// own receives the execution of each block before it is proposed, so
	// the FSM applies the block without executing it again (nil: none).
	own *ownBlocks
	// stop bounds the wait on each proposal's future (the engine's
	// lifetime; nil: unbounded): raft may never answer it (waitFuture).
	stop chan struct{}
	// awaits counts the goroutines settling proposals (await), so the
	// engine's Shutdown returns only once they have.
	awaits sync.WaitGroup

	mu    sync.Mutex
	spec  []*specBlock
	stale bool // a proposal failed: reset before the next build
	// retryAt is when a proposal Raft refused (a leadership transfer in
	// progress, a full apply queue) may be tried again: proposing at once
	// would build, sign and refuse blocks in a tight loop.
	retryAt time.Time
	changed chan struct{} // a proposal finished or a block was applied
	// shrink, when above 0, caps the transactions of the next block: a
	// block was found invalid for a reason no single transaction
	// explains, so the next one takes half as many (down to one, whose
	// transaction is then dropped), and never the same block again. It
	// clears once one of this builder's blocks is applied.
	shrink int
	// badCerts are certificates (by CertRoot of the one) that made a
	// block invalid; the builder never carries them again.
	badCerts map[common.Hash]bool

	// uncertain are proposals whose outcome Raft could not tell, by height.
	uncertainMu sync.Mutex
	uncertain   map[uint64]common.Hash

	lastLagLog  time.Time // Run's goroutine only
	lastHeldLog time.Time // Run's goroutine only
	lastHeld    string    // Run's goroutine only
}

// NewBuilder returns a builder proposing through p, signing with key.
func NewBuilder(cfg BuilderConfig, db *store.DB, pool *mempool.Pool, p Proposer, key *crypto.PrivateKey, logger *slog.Logger, onProposed func(*chain.Block)) *Builder {
	if onProposed == nil {
		onProposed = func(*chain.Block) {}
	}
	return &Builder{
		cfg: cfg, db: db, pool: pool, proposer: p, key: key, chainID: db.ChainID(), log: logger,
		now: time.Now, onProposed: onProposed, changed: make(chan struct{}, 1),
	}
}

// Notify wakes the builder; the FSM calls it after each applied block.
func (b *Builder) Notify() {
	select {
	case b.changed <- struct{}{}:
	default:
	}
}

// Run builds and proposes blocks until ctx ends. The caller runs it only
// while this node is the leader, after a raft Barrier, so the applied head
// includes every entry of earlier terms.
func (b *Builder) Run(ctx context.Context) {
	b.mu.Lock()
	b.stale = true
	b.mu.Unlock()
	defer b.abandon()
	lastProposal := b.now()
	for {
		if ctx.Err() != nil {
			return
		}
		inflight := b.prune()
		maxInflight := b.cfg.MaxInflight
		throttled := b.votersTrail()
		if throttled {
			maxInflight = 1
		}
		if inflight >= maxInflight {
			if !b.wait(ctx, nil, 0) {
				return
			}
			continue
		}
		if !b.pool.HasReady() {
			idle := b.cfg.Heartbeat - b.now().Sub(lastProposal)
			if idle > 0 {
				if !b.wait(ctx, b.pool.Ready(), idle) {
					return
				}
				continue
			}
		} else if inflight > 0 {
			b.fill(ctx)
		}
		if d := b.retryIn(); d > 0 {
			if !b.sleep(ctx, d) {
				return
			}
			continue
		}
		if err := b.propose(); err != nil {
			var held *heldError
			if errors.As(err, &held) {
				b.logHeld(held.reason)
				if !b.wait(ctx, nil, HoldPoll) {
					return
				}
				continue
			}
			var pe *PanicError
			if (errors.Is(err, state.ErrConservation) || errors.Is(err, state.ErrStorage) || errors.As(err, &pe)) && b.onBroken != nil {
				// The execution itself is wrong, or the disk under the
				// state fails its reads (no block can be built on it, and
				// a leader that only retried would stall the chain while
				// it keeps the lead): halt, propose nothing more.
				b.onBroken(err)
				return
			}
			b.log.Error("propose block", "err", err)
			if !b.wait(ctx, nil, b.cfg.BlockInterval) {
				return
			}
			continue
		}
		lastProposal = b.now()
		b.logHeld("")
		if throttled && !b.sleep(ctx, b.cfg.BlockInterval) {
			return
		}
	}
}

// laggardFactor: a voter trailing by more than this many times MaxVoterLag
// is catching up (by log or snapshot) rather than slow, and pacing the
// majority would not help it.
const laggardFactor = 16

// votersTrail reports whether the slowest voter trails the applied head by
// more than MaxVoterLag blocks (but is not simply catching up); the builder
// then slows down, one block in flight at a time with a pause between, so
// the voter's queue shrinks while writes and heartbeats go on.
func (b *Builder) votersTrail() bool {
	if b.cfg.MaxVoterLag == 0 || b.cfg.SlowestVoter == nil {
		return false
	}
	slowest, ok := b.cfg.SlowestVoter()
	if !ok {
		return false
	}
	head, _ := b.db.Head()
	if head.Number <= slowest+b.cfg.MaxVoterLag || head.Number > slowest+laggardFactor*b.cfg.MaxVoterLag {
		return false
	}
	if now := b.now(); now.Sub(b.lastLagLog) > 5*time.Second {
		b.lastLagLog = now
		b.log.Warn("slowing block production: a voter trails", "head", head.Number, "slowest_voter", slowest, "max_lag", b.cfg.MaxVoterLag)
	}
	return true
}

// logHeld logs why blocks are held when that changes (and every 5 s while
// it lasts), and when they resume ("").
func (b *Builder) logHeld(reason string) {
	now := b.now()
	switch {
	case reason == "" && b.lastHeld != "":
		b.log.Info("block production resumes", "was_held_for", b.lastHeld)
	case reason != "" && (reason != b.lastHeld || now.Sub(b.lastHeldLog) > 5*time.Second):
		b.lastHeldLog = now
		b.log.Warn("holding the next block", "reason", reason)
	}
	b.lastHeld = reason
}

// IsValidatorAt reports whether a is in the validator set that checks the
// proposer of the block built on base (the state after that block's
// parent): base may be a proposed block not yet applied, whose governance
// changes the database's set does not show yet.
func IsValidatorAt(base state.Reader, a common.Address) (bool, error) {
	list, err := ValidatorsAt(base)
	return slices.Contains(list, a), err
}

// ValidatorsAt returns the validator set on base (governance's
// validators() view), sorted by address.
func ValidatorsAt(base state.Reader) ([]common.Address, error) {
	out, _, err := state.Call(base, state.BlockContext{}, common.Address{}, chain.GovernanceAddress, nil, validatorsCall)
	if err != nil {
		return nil, fmt.Errorf("validator set: %w", err)
	}
	vals, err := chain.GovernanceABI.Unpack("validators", out)
	if err != nil {
		return nil, fmt.Errorf("validator set: %w", err)
	}
	list, _ := vals[0].([]common.Address)
	return list, nil
}

var validatorsCall = func() []byte {
	data, err := chain.GovernanceABI.Pack("validators")
	if err != nil {
		panic(err) // the embedded ABI has it
	}
	return data
}()

// sleep waits d unless ctx ends first; it reports false when ctx ended.
func (b *Builder) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// wait blocks until something changes, ready fires, d passes (if > 0) or ctx
// ends; it reports false when ctx ended.
func (b *Builder) wait(ctx context.Context, ready <-chan struct{}, d time.Duration) bool {
	var timer <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-ctx.Done():
		return false
	case <-b.changed:
	case <-ready:
	case <-timer:
	}
	return true
}

// fill waits up to BlockInterval for the pool to hold a full block, or for
// an in-flight block to finish.
func (b *Builder) fill(ctx context.Context) {
	deadline := b.now().Add(b.cfg.BlockInterval)
	for {
		queued, _ := b.pool.Stats()
		left := deadline.Sub(b.now())
		if queued >= b.cfg.MaxBlockTxs || left <= 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-b.changed:
			return
		case <-time.After(min(left, time.Millisecond)):
		}
	}
}

// prune drops proposed blocks that are now applied and returns how many
// are still in flight. If the applied chain diverged from what was
// proposed, or a proposal failed, it resets to the applied head.
func (b *Builder) prune() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	head, _ := b.db.Head()
	for len(b.spec) > 0 && b.spec[0].built.Block.Number() <= head.Number {
		sb := b.spec[0]
		if n, err := b.db.BlockNumberByHash(sb.built.Block.Hash()); err != nil || n != sb.built.Block.Number() {
			b.stale = true
			break
		}
		b.spec = b.spec[1:]
		b.shrink = 0
	}
	if b.stale {
		b.resetLocked()
	}
	return len(b.spec)
}

// resetLocked forgets every proposal not applied and returns its
// transactions to the pool. If such a block is applied after all, the
// pool's Applied removes its transactions again. A proposal at or below
// the applied height is not applied when another block took its height
// (an earlier proposal committed while this one was built on a stale
// head): its transactions go back too.
func (b *Builder) resetLocked() {
	for _, sb := range b.spec {
		blk := sb.built.Block
		if n, err := b.db.BlockNumberByHash(blk.Hash()); err != nil || n != blk.Number() {
			b.pool.Return(sb.txs)
		}
	}
	b.spec = nil
	b.stale = false
	b.own.drop() // built on a speculative chain given up
}

// abandon runs when leadership ends.
func (b *Builder) abandon() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.resetLocked()
}

// parentLocked is what the next block builds on, and the state under it.
func (b *Builder) parentLocked() (state.Parent, state.Reader) {
	if n := len(b.spec); n > 0 {
		sb := b.spec[n-1].built
		return sb.AsParent(), sb.Writes
	}
	return b.db.Tip().Parent(), b.db
}

// propose builds one block from the pool on the speculative head, checks
// it with the rules every node applies (state.CheckBlock) and hands it to
// Raft. A block breaking a rule is never proposed: what broke it is
// handled (invalid) and the next build differs.
func (b *Builder) propose() error {
	b.mu.Lock()
	send, err := b.proposeLocked()
	b.mu.Unlock()
	// Raft's Apply may wait (its queue full while the leader's log syncs):
	// not under b.mu, which the goroutines awaiting earlier proposals take.
	// A goroutine waiting on a mutex never lets the cluster simulator's
	// clock move, so the wait never ended there (seed 102 in TestSim).
	if send != nil {
		send()
	}
	return err
}

// proposeLocked builds the next block under b.mu and returns what proposes
// it, to run once b.mu is released.
func (b *Builder) proposeLocked() (func(), error) {
	par, base := b.parentLocked()
	number := par.Number + 1
	vals, err := ValidatorsAt(base)
	switch {
	case err != nil:
		return nil, err
	case !slices.Contains(vals, b.key.Address()):
		return nil, &heldError{reason: fmt.Sprintf("%v (block %d, key %s)", ErrNotValidator, number, b.key.Address())}
	}
	if b.cfg.Hold != nil {
		if why := b.cfg.Hold(base, number); why != "" {
			return nil, &heldError{reason: why}
		}
	}
	max := b.cfg.MaxBlockTxs
	if b.shrink > 0 {
		max = min(max, b.shrink)
	}
	pend := b.pool.Take(max)
	txs := make([]*types.Transaction, len(pend))
	froms := make([]common.Address, len(pend))
	for i, p := range pend {
		txs[i], froms[i] = p.Tx, p.From
	}
	blockNow := b.now
	if b.cfg.BlockClock != nil {
		blockNow = b.cfg.BlockClock
	}
	built, err := buildRecovering(base, par, txs, froms, b.certsLocked(number), uint64(blockNow().UnixMilli()), b.key, b.chainID)
	if err != nil {
		b.pool.Return(pend)
		return nil, err
	}
	var stale, later []mempool.Pending
	for _, d := range built.Dropped {
		if errors.Is(d.Err, state.ErrNonceTooLow) || errors.Is(d.Err, state.ErrNonceMax) {
			stale = append(stale, pend[d.Index])
		} else {
			later = append(later, pend[d.Index]) // a nonce gap, a full block
		}
	}
	b.pool.Discard(stale)
	b.pool.Return(later)
	kept := make([]mempool.Pending, len(built.Included))
	for i, idx := range built.Included {
		kept[i] = pend[idx]
	}
	enc, err := built.Block.Encode() // before the check: it sets the size
	if err != nil {
		b.pool.Return(kept)
		return nil, err
	}
	if vs := b.checkLocked(built.Block, kept, par, vals); len(vs) > 0 {
		b.invalidLocked(built.Block, kept, vs[0], "built")
		b.pool.Return(kept)
		return nil, fmt.Errorf("block %d not proposed: %w", number, &vs[0])
	}
	sb := &specBlock{built: built, txs: kept}
	b.spec = append(b.spec, sb)
	b.own.offer(&store.Executed{Hash: built.Block.Hash(), ParentHash: par.Hash, ParentRoot: par.Root, Result: built.Result})
	return func() {
		fut := b.proposer.Apply(enc, b.cfg.ApplyTimeout)
		b.onProposed(built.Block)
		b.awaits.Add(1)
		go func() {
			defer b.awaits.Done()
			b.await(fut, sb)
		}()
	}, nil
}

// checkLocked applies state.CheckBlock, the FSM's rules, to a block built
// on par: the senders are the pool's (recovered at admission through
// chain.Sender) with chain.CheckTx applied again, the chain is the applied
// one with the speculative blocks' certificates.
func (b *Builder) checkLocked(blk *chain.Block, kept []mempool.Pending, par state.Parent, vals []common.Address) []state.Violation {
	prep := &state.Prepared{Block: blk, Senders: make([]common.Address, len(kept)), SealErr: chain.VerifySeal(blk.Header, b.chainID)}
	id := new(big.Int).SetUint64(b.chainID)
	for i, p := range kept {
		prep.Senders[i] = p.From
		if err := chain.CheckTx(p.Tx, id); err != nil {
			if prep.SenderErrs == nil {
				prep.SenderErrs = make([]error, len(kept))
			}
			prep.SenderErrs[i] = err
		}
	}
	head, _ := b.db.Head()
	return state.CheckBlock(prep, par, &specView{ChainView: b.db.View(head.Number), spec: b.spec, number: blk.Number(), vals: vals}, b.chainID)
}

// specView is the applied chain seen from a block built on the
// speculative head: the validators of that block are the speculative
// state's, and a certificate carried by an in-flight block counts as
// carried.
type specView struct {
	state.ChainView
	spec   []*specBlock
	number uint64
	vals   []common.Address
}

func (v *specView) ValidatorsAt(n uint64) ([]common.Address, error) {
	if n == v.number {
		return v.vals, nil
	}
	return v.ChainView.ValidatorsAt(n)
}

func (v *specView) Certified(n uint64) (bool, error) {
	for _, sb := range v.spec {
		for _, c := range sb.built.Block.Certs {
			if c.Height == n {
				return true, nil
			}
		}
	}
	return v.ChainView.Certified(n)
}

// invalidLocked handles a block of this builder found invalid (how: "built"
// before proposing it, "rejected" by the FSM), so the next block differs:
// a transaction that breaks a rule is dropped from the pool; certificates
// that do are left out of the next blocks; a block breaking a rule no
// single transaction explains makes the next one half as large, and a
// one-transaction block drops its transaction. Rules on the block's place
// in the chain (link, time, history root: its parent was not applied) say
// nothing of its content: its transactions go back unchanged. The caller
// returns the transactions it still holds to the pool.
func (b *Builder) invalidLocked(blk *chain.Block, txs []mempool.Pending, v state.Violation, how string) {
	log := b.log.With("number", blk.Number(), "hash", blk.Hash(), "how", how, "rule", v.Rule, "err", v.Err)
	switch {
	case v.Rule == state.RuleLink || v.Rule == state.RuleTime || v.Rule == state.RuleHistoryRoot:
		return
	case v.Tx >= 0 && v.Tx < len(txs):
		bad := txs[v.Tx]
		log.Warn("dropping a transaction that makes blocks invalid", "tx", bad.Tx.Hash(), "from", bad.From, "nonce", bad.Tx.Nonce())
		b.pool.Discard([]mempool.Pending{bad})
	case len(blk.Certs) > 0 && (v.Rule == state.RuleCertificate || v.Rule == state.RuleCertificateQuorum || v.Rule == state.RuleCertRoot || len(txs) == 0):
		b.dropCertsLocked(blk.Certs, log)
	case len(txs) == 1:
		log.Warn("dropping a transaction that makes a block invalid on its own", "tx", txs[0].Tx.Hash(), "from", txs[0].From, "nonce", txs[0].Tx.Nonce())
		b.pool.Discard(txs)
	default:
		b.shrink = max(1, len(txs)/2)
		log.Error("invalid block: the next block takes fewer transactions", "txs", len(txs), "next_max", b.shrink)
	}
}

// dropCertsLocked marks the certificates of an invalid block that fail
// state.CheckCert (all of them when none does alone: their order, or a
// height certified before) so no later block carries them.
func (b *Builder) dropCertsLocked(certs []*chain.Certificate, log *slog.Logger) {
	head, _ := b.db.Head()
	view := b.db.View(head.Number)
	var bad []*chain.Certificate
	for _, c := range certs {
		if err := state.CheckCert(c, view, b.chainID); err != nil {
			bad = append(bad, c)
		}
	}
	if len(bad) == 0 {
		bad = certs
	}
	if b.badCerts == nil || len(b.badCerts) > 16*chain.MaxCertsPerBlock {
		b.badCerts = map[common.Hash]bool{} // bounded: forget old ones
	}
	for _, c := range bad {
		log.Warn("leaving out a certificate that makes blocks invalid", "certified", c.Height, "certified_hash", c.Hash, "signatures", len(c.Sigs))
		b.badCerts[certKey(c)] = true
	}
}

func certKey(c *chain.Certificate) common.Hash { return chain.CertRoot([]*chain.Certificate{c}) }

// certsLocked returns the certificates block number carries: the ready
// ones no in-flight block carries and none found bad, in increasing
// height, at most chain.MaxCertsPerBlock.
func (b *Builder) certsLocked(number uint64) []*chain.Certificate {
	if b.cfg.Certificates == nil {
		return nil
	}
	inflight := map[uint64]bool{}
	for _, sb := range b.spec {
		for _, c := range sb.built.Block.Certs {
			inflight[c.Height] = true
		}
	}
	var out []*chain.Certificate
	for _, c := range b.cfg.Certificates(number) {
		if c.Height >= number || inflight[c.Height] || (len(out) > 0 && c.Height <= out[len(out)-1].Height) || b.badCerts[certKey(c)] {
			continue
		}
		if out = append(out, c); len(out) == chain.MaxCertsPerBlock {
			break
		}
	}
	return out
}

// await settles one proposal. An error from Raft (lost leadership, timeout)
// does not prove the entry was not committed, so the builder only resets
// and lets the applied chain settle which transactions remain pending.
// When Raft cannot tell (leadership lost or Raft shut down while the entry
// replicated), the block is remembered and Applied logs what became of it:
// a block committed by the next leader is not reported as lost. The wait
// ends with the engine (b.stop): raft never answers the future of an entry
// it committed but had not applied when it shut down, and await then
// reports ErrRaftShutdown, an uncertain outcome like any other.
func (b *Builder) await(fut raft.ApplyFuture, sb *specBlock) {
	err := waitFuture(fut, b.stop)
	if err == nil {
		if rerr, ok := fut.Response().(error); ok {
			err = rerr
		}
	}
	if err != nil {
		blk := sb.built.Block
		if errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrRaftShutdown) {
			b.log.Info("proposal outcome unknown until the next leader commits its height", "number", blk.Number(), "hash", blk.Hash(), "err", err)
			b.uncertainMu.Lock()
			if b.uncertain == nil {
				b.uncertain = make(map[uint64]common.Hash)
			}
			if len(b.uncertain) < maxUncertain {
				b.uncertain[blk.Number()] = blk.Hash()
			}
			b.uncertainMu.Unlock()
		} else {
			b.log.Warn("proposal not applied", "number", blk.Number(), "hash", blk.Hash(), "err", err)
		}
		b.mu.Lock()
		var v *state.Violation
		if errors.As(err, &v) {
			// The FSM skipped it: see that the next block differs
			// before its transactions go back to the pool.
			b.invalidLocked(sb.built.Block, sb.txs, *v, "rejected")
		} else {
			// Raft refused or lost it: wait before the next proposal.
			b.retryAt = b.now().Add(max(b.cfg.BlockInterval, time.Millisecond))
		}
		b.stale = true
		b.mu.Unlock()
	}
	b.Notify()
}

// retryIn is how long the builder waits before proposing again after Raft
// refused a proposal (0: it may propose now).
func (b *Builder) retryIn() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.retryAt.Sub(b.now())
}

// maxUncertain bounds the proposals whose outcome Applied reports (at most
// MaxInflight per lost leadership are ever added).
const maxUncertain = 64

// Applied reports, for a block applied at its height, what became of a
// proposal of this node whose outcome Raft could not tell; the FSM calls
// it after each applied block.
func (b *Builder) Applied(number uint64, hash common.Hash) {
	b.uncertainMu.Lock()
	defer b.uncertainMu.Unlock()
	if len(b.uncertain) == 0 {
		return
	}
	for n, h := range b.uncertain {
		switch {
		case n == number && h == hash:
			b.log.Info("proposal committed after this node lost the lead", "number", n, "hash", h)
		case n == number:
			b.log.Warn("proposal not applied: another block was committed at its height", "number", n, "hash", h, "committed", hash)
		case n < number:
			b.log.Warn("proposal not applied", "number", n, "hash", h)
		default:
			continue
		}
		delete(b.uncertain, n)
	}
}

// PanicError is a panic caught while building or applying a block: a broken
// invariant in execution (or the database failing), which halts the node
// rather than crash it.
type PanicError struct {
	What  string // what panicked ("building block 12")
	Value any
	Stack string
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic %s: %v", e.What, e.Value) }

// buildRecovering is state.Build with a panic turned into a *PanicError:
// the leader executes each block first, so a transaction that makes
// execution panic would otherwise crash every leader in turn.
func buildRecovering(base state.Reader, par state.Parent, txs []*types.Transaction, froms []common.Address, certs []*chain.Certificate,
	nowMs uint64, key *crypto.PrivateKey, chainID uint64) (built *state.Built, err error) {
	defer func() {
		if r := recover(); r != nil {
			built, err = nil, &PanicError{What: fmt.Sprintf("building block %d", par.Number+1), Value: r, Stack: string(debug.Stack())}
		}
	}()
	return state.Build(base, par, txs, froms, certs, nowMs, key, chainID)
}
