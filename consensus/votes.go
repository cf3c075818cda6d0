package consensus

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/store"
)

// VoteConfig bounds the commit vote machinery (DESIGN.md decision 10).
type VoteConfig struct {
	// Window is how many heights below the applied head votes are kept for
	// (by the collector, and by a validator re-sending its own); older
	// ones are dropped. A block this far behind the head that is still
	// not certified stays uncertified.
	Window uint64
	// MaxAhead is how many heights above the applied head the collector
	// holds votes for (a follower may apply a block before the leader);
	// votes further ahead are dropped, and their senders send them again.
	MaxAhead uint64
}

// DefaultVoteConfig is the vote configuration of a node that sets nothing.
var DefaultVoteConfig = VoteConfig{Window: 1024, MaxAhead: 64}

func (c VoteConfig) withDefaults() VoteConfig {
	if c.Window == 0 {
		c.Window = DefaultVoteConfig.Window
	}
	if c.MaxAhead == 0 {
		c.MaxAhead = DefaultVoteConfig.MaxAhead
	}
	return c
}

// Vote refusals. Add returns them wrapped with the vote's height.
var (
	ErrVoteSigner = errors.New("vote not signed by a validator of its height")
	ErrVoteHash   = errors.New("vote for a block hash this node did not apply")
	ErrVoteNext   = errors.New("vote names the wrong next validator set")
	ErrVoteStale  = errors.New("vote for a height outside the window")
)

// CertChain is what the vote machinery reads of the applied chain. The
// node passes DBChain; tests may pass a chain of their own.
type CertChain interface {
	ChainID() uint64
	// HeadNumber is the applied head's height.
	HeadNumber() uint64
	// BlockHash is the hash of applied block n.
	BlockHash(n uint64) (common.Hash, error)
	// ValidatorsAt is the validator set in force at height n.
	ValidatorsAt(n uint64) ([]common.Address, error)
	// Certified reports whether an applied block carries a certificate for block n.
	Certified(n uint64) (bool, error)
}

// DBChain is the CertChain of a state database.
type DBChain struct{ *store.DB }

// HeadNumber implements CertChain.
func (c DBChain) HeadNumber() uint64 { h, _ := c.Head(); return h.Number }

// BlockHash implements CertChain.
func (c DBChain) BlockHash(n uint64) (common.Hash, error) {
	if h, ok := c.Head(); ok && h.Number == n {
		return h.Hash, nil
	}
	b, err := c.BlockByNumber(n)
	if err != nil {
		return common.Hash{}, err
	}
	return b.Hash(), nil
}

// NextSetHash is the Next a vote or certificate for block n names: the
// hash of the validator set in force at n+1.
func NextSetHash(c CertChain, n uint64) (common.Hash, error) {
	next, err := c.ValidatorsAt(n + 1)
	if err != nil {
		return common.Hash{}, fmt.Errorf("validators after block %d: %w", n, err)
	}
	return chain.ValidatorSetHash(next), nil
}

// heightVotes are the votes for one applied block.
type heightVotes struct {
	hash, next common.Hash
	validators map[common.Address]bool
	quorum     int
	sigs       map[common.Address][]byte
}

// VoteCollector assembles commit certificates on the leader from the votes
// validators send. It keeps at most one signature per validator per
// height, for heights in a window below the applied head, and holds votes
// for a few heights above the head until the leader applies them. It has
// no clock and no network: the node feeds it.
type VoteCollector struct {
	chain CertChain
	cfg   VoteConfig

	mu      sync.Mutex
	heights map[uint64]*heightVotes
	ahead   map[uint64][]*chain.Vote // votes above the head, unverified
	aheadN  int
	// applied are the hashes of blocks applied lately (Applied), so a
	// vote's block need not be read back from the store.
	applied map[uint64]common.Hash
}

// NewVoteCollector returns a collector over c.
func NewVoteCollector(c CertChain, cfg VoteConfig) *VoteCollector {
	return &VoteCollector{chain: c, cfg: cfg.withDefaults(), heights: map[uint64]*heightVotes{}, ahead: map[uint64][]*chain.Vote{},
		applied: map[uint64]common.Hash{}}
}

// Applied records the hash of a block this node applied (the FSM calls it
// after each block), sparing the store a read per height voted on.
func (vc *VoteCollector) Applied(height uint64, hash common.Hash) {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	vc.applied[height] = hash
	if height > vc.cfg.Window {
		delete(vc.applied, height-vc.cfg.Window-1)
	}
}

// Add verifies votes and keeps the valid ones. It returns how many were
// kept (or held for a height above the head) and the refusals, each
// naming the vote's height. A duplicate of a vote already kept counts as
// kept.
func (vc *VoteCollector) Add(votes []*chain.Vote) (kept int, refused []error) {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	head := vc.chain.HeadNumber()
	vc.releaseAheadLocked(head)
	if uint64(len(vc.heights)) > vc.cfg.Window {
		vc.pruneLocked(head) // a follower never calls Ready
	}
	for _, v := range votes {
		ok, err := vc.addLocked(v, head)
		if err != nil {
			refused = append(refused, err)
		} else if ok {
			kept++
		}
	}
	return kept, refused
}

// addLocked handles one vote: kept (true, nil), ignored as already
// certified (false, nil) or refused.
func (vc *VoteCollector) addLocked(v *chain.Vote, head uint64) (bool, error) {
	switch {
	case v.Height == 0:
		return false, fmt.Errorf("vote for block 0: %w", ErrVoteStale)
	case v.Height > head:
		if v.Height > head+vc.cfg.MaxAhead {
			return false, fmt.Errorf("vote for block %d, head %d: %w", v.Height, head, ErrVoteStale)
		}
		limit := int(vc.cfg.MaxAhead) * chain.MaxValidators
		if vc.aheadN >= limit {
			return false, fmt.Errorf("vote for block %d above head %d: %d votes held already: %w", v.Height, head, vc.aheadN, ErrVoteStale)
		}
		vc.ahead[v.Height] = append(vc.ahead[v.Height], v)
		vc.aheadN++
		return true, nil
	case head >= vc.cfg.Window && v.Height < head-vc.cfg.Window:
		return false, fmt.Errorf("vote for block %d, head %d, window %d: %w", v.Height, head, vc.cfg.Window, ErrVoteStale)
	}
	hv, err := vc.heightLocked(v.Height)
	if err != nil || hv == nil {
		return false, err
	}
	signer, err := v.Signer(vc.chain.ChainID())
	if err != nil {
		return false, fmt.Errorf("vote for block %d: %w", v.Height, err)
	}
	if !hv.validators[signer] {
		return false, fmt.Errorf("vote for block %d by %s: %w", v.Height, signer, ErrVoteSigner)
	}
	if v.Hash != hv.hash {
		return false, fmt.Errorf("vote for block %d by %s: hash %s, applied %s: %w", v.Height, signer, v.Hash, hv.hash, ErrVoteHash)
	}
	if v.Next != hv.next {
		return false, fmt.Errorf("vote for block %d by %s: next %s, want %s: %w", v.Height, signer, v.Next, hv.next, ErrVoteNext)
	}
	hv.sigs[signer] = v.Sig
	return true, nil
}

// heightLocked returns the entry for applied height n, creating it; nil
// (and no error) once n is certified on the chain.
func (vc *VoteCollector) heightLocked(n uint64) (*heightVotes, error) {
	if hv, ok := vc.heights[n]; ok {
		return hv, nil
	}
	done, err := vc.chain.Certified(n)
	if err != nil || done {
		return nil, err
	}
	hash, ok := vc.applied[n]
	if !ok {
		if hash, err = vc.chain.BlockHash(n); err != nil {
			return nil, fmt.Errorf("vote for block %d: %w", n, err)
		}
	}
	vals, err := vc.chain.ValidatorsAt(n)
	if err != nil {
		return nil, fmt.Errorf("vote for block %d: %w", n, err)
	}
	next, err := NextSetHash(vc.chain, n)
	if err != nil {
		return nil, err
	}
	hv := &heightVotes{hash: hash, next: next, validators: map[common.Address]bool{}, sigs: map[common.Address][]byte{}}
	for _, a := range vals {
		hv.validators[a] = true
	}
	hv.quorum = chain.Quorum(len(hv.validators))
	vc.heights[n] = hv
	return hv, nil
}

// releaseAheadLocked moves held votes the head has reached into the
// ordinary path. Refusals among them are dropped silently: they were
// counted as kept when they arrived, and their senders re-send.
func (vc *VoteCollector) releaseAheadLocked(head uint64) {
	for h, votes := range vc.ahead {
		if h > head {
			continue
		}
		delete(vc.ahead, h)
		vc.aheadN -= len(votes)
		for _, v := range votes {
			vc.addLocked(v, head)
		}
	}
}

// pruneLocked forgets heights below the window.
func (vc *VoteCollector) pruneLocked(head uint64) {
	if head < vc.cfg.Window {
		return
	}
	for h := range vc.heights {
		if h < head-vc.cfg.Window {
			delete(vc.heights, h)
		}
	}
}

// Ready returns certificates with a quorum for heights below number not
// yet certified on the chain, in increasing height, and forgets heights
// that are certified or have left the window. It is the builder's
// BuilderConfig.Certificates.
func (vc *VoteCollector) Ready(number uint64) []*chain.Certificate {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	head := vc.chain.HeadNumber()
	vc.releaseAheadLocked(head)
	heights := make([]uint64, 0, len(vc.heights))
	for h := range vc.heights {
		heights = append(heights, h)
	}
	slices.Sort(heights)
	var out []*chain.Certificate
	for _, h := range heights {
		hv := vc.heights[h]
		if head >= vc.cfg.Window && h < head-vc.cfg.Window {
			delete(vc.heights, h)
			delete(vc.applied, h)
			continue
		}
		if done, err := vc.chain.Certified(h); err != nil || done {
			if done {
				delete(vc.heights, h)
			}
			continue
		}
		if h >= number || len(hv.sigs) < hv.quorum || len(out) == chain.MaxCertsPerBlock {
			continue
		}
		out = append(out, chain.NewCertificate(h, hv.hash, hv.next, hv.sigs))
	}
	return out
}

// Pending reports how many heights the collector holds votes for, and how
// many votes wait above the head (metrics and tests).
func (vc *VoteCollector) Pending() (heights, ahead int) {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	return len(vc.heights), vc.aheadN
}

// VoteSender is a validator's side: it signs a vote for every block it
// applies while its key is a validator at that height, and keeps the
// votes not yet certified on the chain so they can be sent again (to a
// new leader, or after a loss). Like the collector it has no clock and no
// network: the node's loop calls Fresh, All and Forget.
type VoteSender struct {
	chain CertChain
	key   *crypto.PrivateKey
	cfg   VoteConfig

	mu      sync.Mutex
	toSign  []appliedBlock
	pending map[uint64]*chain.Vote
	fresh   []uint64 // heights signed and not yet handed out
}

type appliedBlock struct {
	height uint64
	hash   common.Hash
}

// NewVoteSender returns a sender signing with key.
func NewVoteSender(c CertChain, key *crypto.PrivateKey, cfg VoteConfig) *VoteSender {
	return &VoteSender{chain: c, key: key, cfg: cfg.withDefaults(), pending: map[uint64]*chain.Vote{}}
}

// Applied records an applied block. It is cheap (the FSM calls it); the
// vote is signed by the next Fresh.
func (vs *VoteSender) Applied(height uint64, hash common.Hash) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	vs.toSign = append(vs.toSign, appliedBlock{height, hash})
	if over := len(vs.toSign) - int(vs.cfg.Window); over > 0 {
		vs.toSign = vs.toSign[over:]
	}
}

// Resume queues the blocks of the window below the applied head that are
// not certified yet, so a restarted validator votes again for what it
// applied before it stopped (its votes were only in memory).
func (vs *VoteSender) Resume() error {
	head := vs.chain.HeadNumber()
	from := uint64(1)
	if head >= vs.cfg.Window {
		from = head - vs.cfg.Window + 1
	}
	var todo []appliedBlock
	for h := from; h <= head && h > 0; h++ {
		done, err := vs.chain.Certified(h)
		if err != nil {
			return fmt.Errorf("resume votes at block %d: %w", h, err)
		}
		if done {
			continue
		}
		hash, err := vs.chain.BlockHash(h)
		if err != nil {
			return fmt.Errorf("resume votes at block %d: %w", h, err)
		}
		todo = append(todo, appliedBlock{h, hash})
	}
	vs.mu.Lock()
	defer vs.mu.Unlock()
	vs.toSign = append(todo, vs.toSign...)
	return nil
}

// Fresh signs the votes for blocks applied since the last call (where
// this node's key is a validator) and returns the votes not handed out
// before, in increasing height.
func (vs *VoteSender) Fresh() ([]*chain.Vote, error) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	var errs []error
	for _, b := range vs.toSign {
		vals, err := vs.chain.ValidatorsAt(b.height)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !slices.Contains(vals, vs.key.Address()) {
			continue
		}
		next, err := NextSetHash(vs.chain, b.height)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		v, err := chain.SignVote(vs.chain.ChainID(), b.height, b.hash, next, vs.key)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if _, ok := vs.pending[b.height]; !ok {
			vs.fresh = append(vs.fresh, b.height)
		}
		vs.pending[b.height] = v
	}
	vs.toSign = vs.toSign[:0]
	vs.pruneLocked(false)
	out := make([]*chain.Vote, 0, len(vs.fresh))
	for _, h := range vs.fresh {
		if v, ok := vs.pending[h]; ok {
			out = append(out, v)
		}
	}
	vs.fresh = vs.fresh[:0]
	return out, errors.Join(errs...)
}

// All returns every vote not yet certified on the chain, in increasing
// height (to re-send, or to send to a new leader).
func (vs *VoteSender) All() []*chain.Vote {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	vs.pruneLocked(true)
	heights := make([]uint64, 0, len(vs.pending))
	for h := range vs.pending {
		heights = append(heights, h)
	}
	slices.Sort(heights)
	out := make([]*chain.Vote, len(heights))
	for i, h := range heights {
		out[i] = vs.pending[h]
	}
	return out
}

// pruneLocked drops votes out of the window and, with certified, those
// certified on the chain (a store read per vote: All does it, once per
// resend, not Fresh after every block).
func (vs *VoteSender) pruneLocked(certified bool) {
	head := vs.chain.HeadNumber()
	for h := range vs.pending {
		if head >= vs.cfg.Window && h < head-vs.cfg.Window {
			delete(vs.pending, h)
			continue
		}
		if certified {
			if done, err := vs.chain.Certified(h); err == nil && done {
				delete(vs.pending, h)
			}
		}
	}
}

// Reset drops every vote and everything waiting to be signed (the state
// was replaced by a snapshot: heights may no longer mean what they did).
func (vs *VoteSender) Reset() {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	vs.toSign = nil
	vs.fresh = nil
	vs.pending = map[uint64]*chain.Vote{}
}

// Batches splits votes into messages of at most max votes.
func Batches(votes []*chain.Vote, max int) [][]*chain.Vote {
	var out [][]*chain.Vote
	for len(votes) > 0 {
		n := min(len(votes), max)
		out = append(out, votes[:n])
		votes = votes[n:]
	}
	return out
}
