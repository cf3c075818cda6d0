package mempool

import (
	"cmp"
	"container/list"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/state"
)

// Admission errors (wrapped with detail; match with errors.Is). Where
// go-ethereum's pool refuses for the same cause, the words are its own
// (core/error.go, core/txpool/errors.go, legacypool), since client
// libraries classify errors by them: ethers v6 and viem find insufficient
// funds, nonce too low and too high, a refused replacement and an
// already known transaction by these texts.
var (
	ErrKnown          = errors.New("already known")
	ErrAlreadyApplied = errors.New("transaction already applied")
	ErrNonceTooLow    = errors.New("nonce too low")
	// ErrNonceGap is go-ethereum's core.ErrNonceTooHigh: a nonce further
	// ahead of the account's next than the pool holds for one sender.
	ErrNonceGap = errors.New("nonce too high")
	// ErrNonceTaken is go-ethereum's txpool.ErrReplaceUnderpriced: another
	// transaction with this nonce is pending. Without fees there is no
	// price to outbid it with, so a pending transaction is never replaced.
	ErrNonceTaken = errors.New("replacement transaction underpriced")
	// ErrInsufficientFunds is go-ethereum's core.ErrInsufficientFunds.
	ErrInsufficientFunds = errors.New("insufficient funds for gas * price + value")
	// ErrAccountFull is go-ethereum's txpool.ErrAccountLimitExceeded.
	ErrAccountFull = errors.New("account limit exceeded")
	// ErrPoolFull is go-ethereum's legacypool.ErrTxPoolOverflow.
	ErrPoolFull = errors.New("txpool is full")
	// ErrGasLimit is go-ethereum's txpool.ErrGasLimit: more gas than a
	// block's gas limit (chain.BlockGasLimit).
	ErrGasLimit       = errors.New("exceeds block gas limit")
	ErrDataNotAllowed = errors.New("calldata is only accepted by system addresses")
	ErrNotVerified    = errors.New("sender is not KYC-verified: tier 0 may only receive")
	ErrIntrinsicGas   = errors.New("intrinsic gas too low")
	// ErrTipAboveFeeCap is go-ethereum's core.ErrTipAboveFeeCap, which its
	// pool refuses whatever the base fee: no fee is charged here either
	// way, but a wallet that signs such a transaction has a bug that
	// go-ethereum would show it, and viem classifies the text
	// (TipAboveFeeCapError).
	ErrTipAboveFeeCap = errors.New("max priority fee per gas higher than max fee per gas")
	ErrInvalidCall    = errors.New("invalid system call")
	// ErrMissingNonce refuses a transaction behind a nonce gap that has
	// been open longer than GapGrace: the account's transactions wait for
	// a nonce that never arrived (lost with a crashed node, or never
	// sent), and the wallet must send that nonce (again) first.
	ErrMissingNonce = errors.New("missing nonce")
)

// ErrMulticallReadOnly refuses every transaction to Multicall3, which Tally
// serves to eth_call and eth_estimateGas only (chain.MulticallAddress).
var ErrMulticallReadOnly = errors.New("transaction to Multicall3 (" + chain.MulticallAddress.Hex() + ") refused: it is read-only on Tally; read through it with eth_call")

// Config bounds the pool.
type Config struct {
	// MaxPerAccount is the most pending transactions of one sender (and the
	// largest nonce gap accepted).
	MaxPerAccount int
	// MaxTotal is the most pending transactions overall.
	MaxTotal int
	// GapGrace is how long an account's transactions may wait behind a
	// missing nonce before new transactions behind the same gap are
	// refused with ErrMissingNonce (naming the nonce). Transactions of
	// one sender may arrive slightly out of order (several connections,
	// forwarding in parallel), so a young gap is normal.
	GapGrace time.Duration
	// GapExpiry is how long transactions wait behind a missing nonce
	// before they leave the pool (ExpireGaps): they hold pool space and
	// would never run, and a wallet that sees them gone re-sends.
	GapExpiry time.Duration
	// OnAdmit, if set, is called with each transaction the pool admits
	// and its sender (the node publishes them to newPendingTransactions
	// subscribers and filters). It runs under the pool's lock: it must be
	// quick, never block and never call the pool.
	OnAdmit func(tx *types.Transaction, from common.Address)
}

// DefaultConfig is the pool configuration of a node that sets nothing.
var DefaultConfig = Config{MaxPerAccount: 4096, MaxTotal: 500_000, GapGrace: 10 * time.Second, GapExpiry: time.Minute}

// State is the applied state the pool admits against.
type State interface {
	Nonce(a common.Address) (uint64, error)
	Balance(asset uint32, a common.Address) (*big.Int, error)
	HasTx(h common.Hash) (bool, error)
	// Account is the sender's compliance record (tier, frozen).
	Account(a common.Address) (state.Account, error)
	// Rules are the rules in force (assets that exist).
	Rules() (*state.Rules, error)
	// HeldDue reports whether a held payment is due to expire at the
	// head's block time (state.HeldDue).
	HeldDue() (bool, error)
}

type entry struct {
	tx       *types.Transaction
	from     common.Address
	inflight bool
	// seq is the order the pool admitted it in (All).
	seq uint64
}

type account struct {
	next     uint64 // nonce of the next tx to hand to the builder
	queued   map[uint64]*entry
	inflight int
	outflow  *big.Int // values of queued and in-flight txs
	// gapSince is when the account's queued transactions started waiting
	// for the missing nonce next; zero while there is no gap.
	gapSince time.Time
	// ready is the account's place in Pool.ready, nil when not there.
	ready *list.Element
}

// Pool is the mempool.
type Pool struct {
	cfg     Config
	state   State
	senders *chain.SenderCache

	mu       sync.Mutex
	accounts map[common.Address]*account
	byHash   map[common.Hash]*entry
	ready    *list.List // FIFO of common.Address: accounts with an executable tx
	queued   int        // not in flight
	seq      uint64     // admissions so far (entry.seq)
	notify   chan struct{}
	now      func() time.Time
}

// New returns an empty pool admitting against st.
func New(cfg Config, st State, senders *chain.SenderCache) *Pool {
	if cfg.MaxPerAccount <= 0 {
		cfg.MaxPerAccount = DefaultConfig.MaxPerAccount
	}
	if cfg.MaxTotal <= 0 {
		cfg.MaxTotal = DefaultConfig.MaxTotal
	}
	if cfg.GapGrace <= 0 {
		cfg.GapGrace = DefaultConfig.GapGrace
	}
	if cfg.GapExpiry <= 0 {
		cfg.GapExpiry = DefaultConfig.GapExpiry
	}
	return &Pool{
		cfg: cfg, state: st, senders: senders,
		accounts: make(map[common.Address]*account),
		byHash:   make(map[common.Hash]*entry),
		ready:    list.New(),
		notify:   make(chan struct{}, 1),
		now:      time.Now,
	}
}

// Ready is signalled (without blocking) whenever an executable transaction
// becomes available; the builder waits on it.
func (p *Pool) Ready() <-chan struct{} { return p.notify }

// Add admits tx, a client's submission, and returns its sender. The
// sender is recovered before the pool lock is taken, so admissions recover
// signatures in parallel.
func (p *Pool) Add(tx *types.Transaction) (common.Address, error) { return p.add(tx, true) }

// AddRelayed admits tx that another node already acknowledged to its
// client (replicated by the leader, or re-sent to a new leader): as Add,
// but never refused for waiting behind a stale nonce gap, since relayed
// transactions arrive in any order and are what fills the gap.
func (p *Pool) AddRelayed(tx *types.Transaction) (common.Address, error) { return p.add(tx, false) }

func (p *Pool) add(tx *types.Transaction, client bool) (common.Address, error) {
	from, err := p.senders.Sender(tx)
	if err != nil {
		return common.Address{}, err
	}
	if err := p.checkCall(tx, from, client); err != nil {
		return from, err
	}
	h := tx.Hash()
	applied, err := p.state.HasTx(h)
	if err != nil {
		return from, err
	}
	if applied {
		return from, fmt.Errorf("%w: %s", ErrAlreadyApplied, h)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.byHash[h]; ok {
		return from, fmt.Errorf("%w: %s", ErrKnown, h)
	}
	acct, err := p.account(from)
	if err != nil {
		return from, err
	}
	n := tx.Nonce()
	switch {
	case n < acct.next:
		// The block applying tx may have landed between HasTx above and
		// the account's read: that is no refusal but "already applied"
		// (a follower keeping its copy of a transaction it forwarded
		// answered its client "could not keep its copy: nonce too low"
		// for one the leader had already included; e2e
		// TestClusterTransfersThroughFollower under load).
		if applied, err := p.state.HasTx(h); err == nil && applied {
			return from, fmt.Errorf("%w: %s", ErrAlreadyApplied, h)
		}
		return from, fmt.Errorf("%w: next nonce %d, tx nonce %d", ErrNonceTooLow, acct.next, n)
	case n-acct.next >= uint64(p.cfg.MaxPerAccount):
		return from, fmt.Errorf("%w: tx nonce %d, next nonce %d: at most %d ahead (mempool.max-per-account)", ErrNonceGap, n, acct.next, p.cfg.MaxPerAccount-1)
	case acct.queued[n] != nil:
		return from, fmt.Errorf("%w: nonce %d is taken by pending transaction %s, which is never replaced (no fees to outbid it)", ErrNonceTaken, n, acct.queued[n].tx.Hash())
	case client && n > acct.next && p.staleGap(acct):
		return from, fmt.Errorf("%w %d: %d transactions of %s have waited %s for it; send nonce %d first",
			ErrMissingNonce, acct.next, len(acct.queued), from, p.now().Sub(acct.gapSince).Round(time.Second), acct.next)
	case len(acct.queued)+acct.inflight >= p.cfg.MaxPerAccount:
		return from, fmt.Errorf("%w: pooled %d txs, limit %d (mempool.max-per-account)", ErrAccountFull, len(acct.queued)+acct.inflight, p.cfg.MaxPerAccount)
	case p.queued >= p.cfg.MaxTotal:
		return from, fmt.Errorf("%w: %d transactions pending, limit %d (mempool.max-total)", ErrPoolFull, p.queued, p.cfg.MaxTotal)
	}
	bal, err := p.state.Balance(state.NativeAsset, from)
	if err != nil {
		return from, err
	}
	need := new(big.Int).Add(acct.outflow, tx.Value())
	if bal.Cmp(need) < 0 {
		// go-ethereum's words (txpool.ValidateTransactionWithState); a
		// transaction costs its value, since gas is not charged.
		over := new(big.Int).Sub(need, bal)
		if acct.outflow.Sign() == 0 {
			return from, fmt.Errorf("%w: balance %s, tx cost %s, overshot %s", ErrInsufficientFunds, bal, tx.Value(), over)
		}
		return from, fmt.Errorf("%w: balance %s, queued cost %s, tx cost %s, overshot %s", ErrInsufficientFunds, bal, acct.outflow, tx.Value(), over)
	}
	p.seq++
	e := &entry{tx: tx, from: from, seq: p.seq}
	acct.queued[n] = e
	acct.outflow = need
	p.byHash[h] = e
	p.queued++
	if n == acct.next {
		p.markReady(from, acct)
	}
	p.checkGap(acct)
	if p.cfg.OnAdmit != nil {
		p.cfg.OnAdmit(tx, from)
	}
	return from, nil
}

// checkGap notes when a's queued transactions start or stop waiting for
// a missing nonce. Every change to an account's queue or next nonce ends
// with it. Caller holds p.mu.
func (p *Pool) checkGap(a *account) {
	gapped := len(a.queued) > 0 && a.queued[a.next] == nil
	switch {
	case !gapped:
		a.gapSince = time.Time{}
	case a.gapSince.IsZero():
		a.gapSince = p.now()
	}
}

// staleGap reports whether a's gap has been open longer than GapGrace.
// Caller holds p.mu.
func (p *Pool) staleGap(a *account) bool {
	return !a.gapSince.IsZero() && p.now().Sub(a.gapSince) > p.cfg.GapGrace
}

// checkCall refuses what can never succeed, before it takes a nonce:
// a priority fee above the fee cap, calldata to a plain account, a
// malformed or unknown system call, too little gas, and a sender below
// tier 1 (DESIGN.md decision 8). What
// depends on the state when the block runs (balances, limits, freezes) is
// left to execution, which includes the transaction with status 0.
func (p *Pool) checkCall(tx *types.Transaction, from common.Address, client bool) error {
	to := *tx.To()
	if tx.GasFeeCapIntCmp(tx.GasTipCap()) < 0 {
		return ErrTipAboveFeeCap // go-ethereum's pool says no more
	}
	if tx.Gas() > chain.BlockGasLimit {
		return fmt.Errorf("%w: gas %d, block gas limit %d", ErrGasLimit, tx.Gas(), uint64(chain.BlockGasLimit))
	}
	if need := chain.GasOf(to); tx.Gas() < need {
		return fmt.Errorf("%w: gas %d, minimum needed %d", ErrIntrinsicGas, tx.Gas(), need)
	}
	if to == chain.MulticallAddress {
		return ErrMulticallReadOnly
	}
	if !chain.IsSystemAddress(to) {
		if len(tx.Data()) != 0 {
			return ErrDataNotAllowed
		}
	} else {
		if tx.Value().Sign() != 0 {
			return fmt.Errorf("%w: system operations take no value", ErrInvalidCall)
		}
		rules, err := p.state.Rules()
		if err != nil {
			return err
		}
		if err := state.CheckCall(rules, to, tx.Data()); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidCall, err)
		}
	}
	if state.IsExpirePayments(to, tx.Data()) {
		// Open to any sender, a node's unverified keeper account too
		// (docs/payments.md), but only while a payment is due: otherwise
		// it could only revert, and an unverified account would have
		// written the state. A relayed copy was checked so by the node
		// that admitted it; this node's head may not have reached the
		// block that made the payment due.
		if !client {
			return nil
		}
		due, err := p.state.HeldDue()
		if err != nil {
			return err
		}
		if !due {
			return fmt.Errorf("%w: no held payment is due to expire", ErrInvalidCall)
		}
		return nil
	}
	acc, err := p.state.Account(from)
	if err != nil {
		return err
	}
	return CheckSender(acc, from)
}

// CheckSender is admission's rule on the sender alone (DESIGN.md decision
// 8): an account below KYC tier 1 may only receive, so any transaction it
// signs is refused. eth_estimateGas applies it too, so that an estimate
// fails when sending would.
func CheckSender(acc state.Account, from common.Address) error {
	if acc.Tier < 1 {
		return fmt.Errorf("%w: %s", ErrNotVerified, from)
	}
	return nil
}

// account returns from's account, creating it from the applied state.
// Caller holds p.mu.
func (p *Pool) account(from common.Address) (*account, error) {
	if a, ok := p.accounts[from]; ok {
		return a, nil
	}
	n, err := p.state.Nonce(from)
	if err != nil {
		return nil, err
	}
	a := &account{next: n, queued: make(map[uint64]*entry), outflow: new(big.Int)}
	p.accounts[from] = a
	return a, nil
}

func (p *Pool) markReady(from common.Address, a *account) {
	if a.ready != nil {
		return
	}
	a.ready = p.ready.PushBack(from)
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

// Pending is one executable transaction with its sender.
type Pending struct {
	Tx   *types.Transaction
	From common.Address
}

// Take hands out up to max executable transactions, round robin across
// senders and in nonce order within each, and marks them in flight.
func (p *Pool) Take(max int) []Pending {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Pending, 0, min(max, p.queued))
	for len(out) < max && p.ready.Len() > 0 {
		from := p.ready.Remove(p.ready.Front()).(common.Address)
		a := p.accounts[from]
		a.ready = nil
		e := a.queued[a.next]
		if e == nil {
			continue
		}
		delete(a.queued, a.next)
		e.inflight = true
		a.inflight++
		a.next++
		p.queued--
		out = append(out, Pending{Tx: e.tx, From: from})
		if a.queued[a.next] != nil {
			a.ready = p.ready.PushBack(from)
		}
		p.checkGap(a)
	}
	return out
}

// HasReady reports whether Take would return something.
func (p *Pool) HasReady() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ready.Len() > 0
}

// Return puts in-flight transactions back (their block was not applied), so
// they are handed out again in nonce order.
func (p *Pool) Return(txs []Pending) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range txs {
		e := p.byHash[t.Tx.Hash()]
		if e == nil || !e.inflight {
			continue
		}
		a := p.accounts[t.From]
		e.inflight = false
		a.inflight--
		a.queued[t.Tx.Nonce()] = e
		p.queued++
		if t.Tx.Nonce() < a.next {
			a.next = t.Tx.Nonce()
		}
	}
	for _, t := range txs {
		if a := p.accounts[t.From]; a != nil {
			if a.queued[a.next] != nil {
				p.markReady(t.From, a)
			}
			p.checkGap(a)
		}
	}
}

// Applied removes the transactions of an applied block, whoever proposed
// it, and drops any pending transaction its nonces made stale.
func (p *Pool) Applied(txs []*types.Transaction, senders []common.Address) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, tx := range txs {
		from := senders[i]
		a := p.accounts[from]
		if a == nil {
			continue
		}
		if e := p.byHash[tx.Hash()]; e != nil {
			p.removeLocked(from, a, e)
		}
		if tx.Nonce() >= a.next {
			// Applied from elsewhere (another leader's block): move past it
			// and drop what its nonce made stale.
			for n, e := range a.queued {
				if n <= tx.Nonce() {
					p.removeLocked(from, a, e)
				}
			}
			a.next = tx.Nonce() + 1
			if a.queued[a.next] != nil {
				p.markReady(from, a)
			}
		}
		p.checkGap(a)
	}
}

// removeLocked forgets e, queued or in flight, and its account once empty.
func (p *Pool) removeLocked(from common.Address, a *account, e *entry) {
	delete(p.byHash, e.tx.Hash())
	a.outflow.Sub(a.outflow, e.tx.Value())
	if e.inflight {
		a.inflight--
	} else {
		delete(a.queued, e.tx.Nonce())
		p.queued--
	}
	if len(a.queued) == 0 && a.inflight == 0 {
		// Invariant: every address in p.ready has an account.
		if a.ready != nil {
			p.ready.Remove(a.ready)
			a.ready = nil
		}
		delete(p.accounts, from)
	}
}

// PendingNonce returns the nonce a's next transaction should carry: the
// applied nonce plus every transaction of a pending without a gap.
func (p *Pool) PendingNonce(a common.Address) (uint64, error) {
	p.mu.Lock()
	acct, ok := p.accounts[a]
	if ok {
		n := acct.next
		for acct.queued[n] != nil {
			n++
		}
		p.mu.Unlock()
		return n, nil
	}
	p.mu.Unlock()
	return p.state.Nonce(a)
}

// Get returns a pending transaction and its sender.
func (p *Pool) Get(h common.Hash) (*types.Transaction, common.Address, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.byHash[h]
	if !ok {
		return nil, common.Address{}, false
	}
	return e.tx, e.from, true
}

// Stats returns how many transactions are queued and in flight.
func (p *Pool) Stats() (queued, inflight int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.queued, len(p.byHash) - p.queued
}

// Discard removes in-flight transactions that can never be included (their
// nonce is already used in the state the builder executed on).
func (p *Pool) Discard(txs []Pending) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range txs {
		e := p.byHash[t.Tx.Hash()]
		if e == nil || !e.inflight {
			continue
		}
		a := p.accounts[t.From]
		p.removeLocked(t.From, a, e)
		p.checkGap(a)
	}
}

// Resync re-reads every pending account's nonce from the state after the
// state was replaced (a snapshot was installed): transactions whose nonce
// the new state has used are dropped, and each account resumes at its state
// nonce.
func (p *Pool) Resync() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for from, a := range p.accounts {
		n, err := p.state.Nonce(from)
		if err != nil {
			return err
		}
		if n <= a.next {
			continue
		}
		for nonce, e := range a.queued {
			if nonce < n {
				p.removeLocked(from, a, e)
			}
		}
		a.next = n
		if a.queued[a.next] != nil {
			p.markReady(from, a)
		}
		p.checkGap(a)
	}
	return nil
}

// All returns every pending transaction (queued and in flight), each
// sender's in nonce order, so a new leader receiving them in this order
// sees no gap, and the senders in the order this pool first admitted one
// of their pending transactions, so that the new leader's blocks keep the
// order this node's clients were served in (not Go's map order, which
// differs from run to run: the cluster simulator's seeds did not replay).
// The slice is the caller's.
func (p *Pool) All() []*types.Transaction {
	p.mu.Lock()
	defer p.mu.Unlock()
	type sender struct {
		first   uint64 // the lowest entry.seq
		entries []*entry
	}
	byFrom := make(map[common.Address]*sender, len(p.accounts))
	for _, e := range p.byHash {
		s := byFrom[e.from]
		if s == nil {
			s = &sender{first: e.seq}
			byFrom[e.from] = s
		}
		s.first = min(s.first, e.seq)
		s.entries = append(s.entries, e)
	}
	senders := slices.SortedFunc(maps.Values(byFrom), func(a, b *sender) int { return cmp.Compare(a.first, b.first) })
	out := make([]*types.Transaction, 0, len(p.byHash))
	for _, s := range senders {
		slices.SortFunc(s.entries, func(a, b *entry) int { return cmp.Compare(a.tx.Nonce(), b.tx.Nonce()) })
		for _, e := range s.entries {
			out = append(out, e.tx)
		}
	}
	return out
}

// ExpireGaps drops the queued transactions of every account whose gap has
// been open longer than GapExpiry (DESIGN.md: a wallet learns to re-send
// by seeing them gone) and returns them. The node calls it periodically.
func (p *Pool) ExpireGaps() []*types.Transaction {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	var out []*types.Transaction
	for from, a := range p.accounts {
		if a.gapSince.IsZero() || now.Sub(a.gapSince) <= p.cfg.GapExpiry {
			continue
		}
		for _, e := range a.queued {
			out = append(out, e.tx)
			p.removeLocked(from, a, e)
		}
		a.gapSince = time.Time{}
	}
	return out
}

// AccountStatus is what the pool holds for one sender.
type AccountStatus struct {
	// Next is the nonce the pool hands to the builder next: every lower
	// nonce is applied or in a proposed block.
	Next uint64
	// PendingNonce is the nonce the sender's next transaction should
	// carry (Next plus the pending run without a gap).
	PendingNonce uint64
	// InFlight counts the transactions in proposed blocks not yet applied.
	InFlight int
	// Queued are the nonces of the transactions waiting, in order.
	Queued []uint64
	// Missing is the nonce the queued transactions wait for, when there
	// is a gap, and GapSince when it opened.
	Missing  *uint64
	GapSince time.Time
}

// Status returns what the pool holds for a (the state's nonce when it
// holds nothing).
func (p *Pool) Status(a common.Address) (AccountStatus, error) {
	p.mu.Lock()
	acct, ok := p.accounts[a]
	if !ok {
		p.mu.Unlock()
		n, err := p.state.Nonce(a)
		return AccountStatus{Next: n, PendingNonce: n}, err
	}
	st := AccountStatus{Next: acct.next, InFlight: acct.inflight, GapSince: acct.gapSince}
	for n := range acct.queued {
		st.Queued = append(st.Queued, n)
	}
	st.PendingNonce = acct.next
	for acct.queued[st.PendingNonce] != nil {
		st.PendingNonce++
	}
	if !acct.gapSince.IsZero() {
		missing := acct.next
		st.Missing = &missing
	}
	p.mu.Unlock()
	slices.Sort(st.Queued)
	return st, nil
}
