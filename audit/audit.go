package audit

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/store"
)

// DefaultMaxFailures bounds the failures a report lists; the rest are counted.
const DefaultMaxFailures = 1000

// Config is what Run audits.
type Config struct {
	// Genesis is the genesis file the chain must start from.
	Genesis *genesis.Genesis
	Source  Source
	// From is the first height checked. Above 0 the audit starts from
	// Checkpoint, a data dir copy whose head is From-1 (its state is
	// trusted as the starting state).
	From       uint64
	Checkpoint string
	// To is the last height checked; nil means the source's head (only
	// then is the final state compared with the stored one).
	To *uint64
	// ScratchDir is where the replayed state lives while the audit runs
	// (a temporary directory under it, removed at the end; "" is the
	// system's temporary directory).
	ScratchDir string
	// Workers decode blocks and recover senders ahead of the check
	// (0: GOMAXPROCS).
	Workers int
	// MaxFailures bounds the failures listed (0: DefaultMaxFailures).
	MaxFailures int
	// Progress, when set, is called after each block with the blocks
	// checked and the total.
	Progress func(done, total uint64)
}

// Run audits the chain cfg.Source serves against cfg.Genesis. An error
// means the input could not be read (it wraps ErrSource) or the scratch
// state failed; a failed check is in the report (Report.OK false).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	g := cfg.Genesis
	if g == nil || cfg.Source == nil {
		return nil, fmt.Errorf("%w: no genesis or source", ErrSource)
	}
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("%w: genesis: %v", ErrSource, err)
	}
	if cfg.From > 0 && cfg.Checkpoint == "" {
		return nil, fmt.Errorf("%w: --from %d needs --checkpoint, a data dir copy whose head is %d", ErrSource, cfg.From, cfg.From-1)
	}
	if cfg.From == 0 && cfg.Checkpoint != "" {
		return nil, fmt.Errorf("%w: --checkpoint is for --from N > 0", ErrSource)
	}
	digest, err := cfg.Source.StateDigest(ctx)
	if err != nil {
		return nil, err
	}
	to := digest.Height
	if cfg.To != nil {
		if *cfg.To > digest.Height {
			return nil, fmt.Errorf("%w: --to %d is above the source's head %d", ErrSource, *cfg.To, digest.Height)
		}
		to = *cfg.To
	}
	if cfg.From > to {
		return nil, fmt.Errorf("%w: --from %d is above --to %d", ErrSource, cfg.From, to)
	}
	scratch, err := os.MkdirTemp(cfg.ScratchDir, "tally-audit-")
	if err != nil {
		return nil, fmt.Errorf("scratch dir: %w", err)
	}
	defer os.RemoveAll(scratch)

	a := &auditor{
		cfg:     cfg,
		g:       g,
		chainID: g.ChainID,
		signer:  chain.NewSigner(g.ChainIDBig()),
		rep: &Report{Source: cfg.Source.Describe(), GenesisHash: g.Hash(), ChainID: g.ChainID, Head: digest.Height,
			From: cfg.From, To: cfg.From, Supply: []SupplyLine{}, Failures: []Failure{}},
		seen:   map[failKey]bool{},
		minted: map[uint32]*big.Int{},
		burned: map[uint32]*big.Int{},
		max:    cfg.MaxFailures,
	}
	if a.max == 0 {
		a.max = DefaultMaxFailures
	}
	defer a.close()
	ok, err := a.start(ctx, scratch)
	if err != nil {
		return nil, err
	}
	if ok {
		if err := a.blocks(ctx, to); err != nil {
			return nil, err
		}
		if err := a.finish(ctx, digest); err != nil {
			return nil, err
		}
		if l, ok := cfg.Source.(stateLister); ok && a.rep.FinalStateChecked {
			if err := a.records(l.stateDB()); err != nil {
				return nil, err
			}
		}
	}
	a.rep.OK = len(a.rep.Failures) == 0 && a.rep.FailuresOmitted == 0
	return a.rep, nil
}

type failKey struct {
	height uint64
	tx     int
	check  string
}

// auditor is one audit's state. Everything but the fetch and decode
// pipeline runs on one goroutine.
type auditor struct {
	cfg     Config
	g       *genesis.Genesis
	chainID uint64
	signer  types.Signer
	rep     *Report
	seen    map[failKey]bool
	max     int

	replay     *store.Replay
	checkpoint *store.DB

	// The chain so far, as the stored headers say.
	prevHash   common.Hash
	prevTimeMs uint64
	prevRoot   common.Hash
	// hist is the history of the blocks before the next one; when
	// histPending, the last block's hash is not in it yet: the next
	// header's parent hash is appended (the link check compares it with
	// the hash), so one bad hash fails the link once, not every later
	// history root.
	hist        *chain.History
	histPending bool
	hashBase    uint64 // the first block of index
	// index holds the hash of every block from hashBase on and the block
	// carrying each checked certificate, in bounded memory.
	index *chainIndex

	// certified[(h-hashBase)/64] has bit (h-hashBase)%64 set once block h's
	// certificate was checked (a bitset: one bit per block).
	certified []uint64
	// certifiedOld holds heights below hashBase (in the checkpoint)
	// certified by the blocks checked.
	certifiedOld map[uint64]bool
	// startSupply is the issuance at the starting state; minted and
	// burned add the Minted, WithdrawalReturned, WithdrawalSettled and
	// MintReversed events since.
	startSupply    []store.AssetSupply
	minted, burned map[uint32]*big.Int
	scratch        big.Int
}

func (a *auditor) close() {
	if a.replay != nil {
		a.replay.Close()
	}
	if a.checkpoint != nil {
		a.checkpoint.Close()
	}
	if a.index != nil {
		a.index.close()
	}
}

// fail records a failure once per (height, tx, check); tx < 0 is none.
func (a *auditor) fail(height uint64, tx int, check, expected, found, detail string) {
	k := failKey{height, tx, check}
	if a.seen[k] {
		return
	}
	a.seen[k] = true
	if len(a.rep.Failures) >= a.max {
		a.rep.FailuresOmitted++
		return
	}
	f := Failure{Height: height, Check: check, Expected: expected, Found: found, Detail: detail}
	if tx >= 0 {
		i := tx
		f.TxIndex = &i
	}
	a.rep.Failures = append(a.rep.Failures, f)
}

// start checks block 0 against the genesis file and sets up the starting
// state: the genesis state, or the checkpoint's. ok is false when the
// chain is not the genesis file's (nothing else can be checked).
func (a *auditor) start(ctx context.Context, scratch string) (ok bool, err error) {
	raws, err := a.cfg.Source.RawBlocks(ctx, 0, 1)
	if err != nil {
		return false, err
	}
	if len(raws) == 0 || raws[0].Number != 0 {
		return false, fmt.Errorf("%w: the source returned no block 0", ErrSource)
	}
	want, _, err := state.GenesisBlock(a.g)
	if err != nil {
		return false, fmt.Errorf("%w: genesis: %v", ErrSource, err)
	}
	if raws[0].Block == nil {
		a.fail(0, -1, CheckGenesis, want.Hash().Hex(), "none", "the source has no block 0")
		return false, nil
	}
	b0, err := chain.DecodeBlock(raws[0].Block)
	if err != nil {
		a.fail(0, -1, CheckGenesis, want.Hash().Hex(), "undecodable", err.Error())
		return false, nil
	}
	if b0.Hash() != want.Hash() {
		detail := "block 0 is not the genesis file's block 0"
		// Block 0's Extra ends with the genesis file's hash.
		if x := b0.Header.Extra; len(x) >= 40 && common.BytesToHash(x[len(x)-32:]) != a.g.Hash() {
			detail = fmt.Sprintf("block 0 commits to genesis file %s, the given file hashes to %s: the chain was made from another genesis file",
				common.BytesToHash(x[len(x)-32:]), a.g.Hash())
		}
		a.fail(0, -1, CheckGenesis, want.Hash().Hex(), b0.Hash().Hex(), detail)
		return false, nil
	}
	if a.cfg.From == 0 {
		if a.replay, _, err = store.NewReplay(scratch, a.g); err != nil {
			return false, fmt.Errorf("replay: %w", err)
		}
		a.prevHash, a.prevRoot = b0.Hash(), b0.Header.Root
		a.prevTimeMs, _ = chain.TimeMs(b0.Header)
		a.hist, a.histPending = chain.NewHistory(), true
		a.hashBase = 0
		if a.index, err = openChainIndex(filepath.Join(scratch, "index"), 0, b0.Hash()); err != nil {
			return false, err
		}
		a.rep.To = 0
	} else {
		if err := a.fromCheckpoint(scratch); err != nil {
			return false, err
		}
	}
	if a.startSupply, err = a.replay.DB().SupplyTable(); err != nil {
		return false, fmt.Errorf("replay: %w", err)
	}
	return true, nil
}

// fromCheckpoint opens the trusted checkpoint (head From-1, same genesis)
// and starts the replay from its state.
func (a *auditor) fromCheckpoint(scratch string) error {
	db, err := openReadOnly(a.cfg.Checkpoint)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	a.checkpoint = db
	cg, err := db.Genesis()
	if err != nil {
		return fmt.Errorf("%w: checkpoint %s: %v", ErrSource, a.cfg.Checkpoint, err)
	}
	if cg.Hash() != a.g.Hash() {
		return fmt.Errorf("%w: checkpoint %s was made from genesis %s, not the given file (%s)", ErrSource, a.cfg.Checkpoint, cg.Hash(), a.g.Hash())
	}
	tip := db.Tip()
	if tip.Head.Number != a.cfg.From-1 {
		return fmt.Errorf("%w: checkpoint %s has head %d; --from %d needs head %d", ErrSource, a.cfg.Checkpoint, tip.Head.Number, a.cfg.From, a.cfg.From-1)
	}
	// The checkpoint is trusted, but not blindly: its head record must be
	// its own head block (a damaged record would make every later check
	// compare against the wrong parent).
	hb, err := db.BlockByNumber(tip.Head.Number)
	if err != nil {
		return fmt.Errorf("%w: checkpoint %s: head block %d: %v", ErrSource, a.cfg.Checkpoint, tip.Head.Number, err)
	}
	if hbTime, _ := chain.TimeMs(hb.Header); hb.Hash() != tip.Head.Hash || hbTime != tip.Head.TimeMs || hb.Header.Root != tip.Head.StateRoot {
		return fmt.Errorf("%w: checkpoint %s: its head record (hash %s, time %d ms, state root %s) is not its block %d (hash %s, time %d ms, state root %s)",
			ErrSource, a.cfg.Checkpoint, tip.Head.Hash, tip.Head.TimeMs, tip.Head.StateRoot, tip.Head.Number, hb.Hash(), hbTime, hb.Header.Root)
	}
	if a.replay, err = store.NewReplayFrom(scratch, db); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	h := tip.Head
	a.prevHash, a.prevRoot, a.prevTimeMs = h.Hash, h.StateRoot, h.TimeMs
	a.hist, a.histPending = tip.History.Clone(), false
	a.hashBase = h.Number
	if a.index, err = openChainIndex(filepath.Join(scratch, "index"), h.Number, h.Hash); err != nil {
		return err
	}
	a.rep.To = h.Number
	return nil
}

// hashAt returns the hash of block h (checked or in the checkpoint).
func (a *auditor) hashAt(h uint64) (common.Hash, bool, error) {
	if h >= a.hashBase {
		return a.index.hashAt(h)
	}
	if a.checkpoint != nil {
		if b, err := a.checkpoint.BlockByNumber(h); err == nil {
			return b.Hash(), true, nil
		}
	}
	return common.Hash{}, false, nil
}

// wasCertified reports whether a certificate for h was already checked
// (or is in the checkpoint).
func (a *auditor) wasCertified(h uint64) bool {
	if h < a.hashBase {
		if a.checkpoint == nil || a.certifiedOld[h] {
			return a.certifiedOld[h]
		}
		done, err := a.checkpoint.Certified(h)
		return err == nil && done
	}
	i := h - a.hashBase
	return i/64 < uint64(len(a.certified)) && a.certified[i/64]&(1<<(i%64)) != 0
}

// setCertified records that block h's certificate was checked (h is below
// the block being checked, so at most the number of blocks checked).
func (a *auditor) setCertified(h uint64) {
	if h < a.hashBase {
		if a.certifiedOld == nil {
			a.certifiedOld = map[uint64]bool{}
		}
		a.certifiedOld[h] = true
		return
	}
	i := h - a.hashBase
	for uint64(len(a.certified)) <= i/64 {
		a.certified = append(a.certified, 0)
	}
	a.certified[i/64] |= 1 << (i % 64)
}

// blocks checks every block after the starting one up to to, with the
// decode and sender recovery running ahead on every core.
func (a *auditor) blocks(ctx context.Context, to uint64) error {
	first := a.rep.To + 1
	if first > to {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	p := newPipeline(ctx, a.cfg.Source, a.cfg.Workers, a.signer, a.chainID)
	// The fetcher and the workers read the source (a data dir's Pebble
	// among it), which the caller closes once the audit returns: stop them
	// and wait for them first, however the loop below ends.
	defer p.stop(cancel)
	p.goFetch(first, to)
	total := to - first + 1
	for n := first; n <= to; n++ {
		it, err := p.next(ctx)
		if err != nil {
			return err
		}
		stop, err := a.block(it)
		if err != nil {
			return err
		}
		if stop {
			return nil
		}
		for _, c := range it.b.Certs {
			if err := a.index.setCarrier(c.Height, n); err != nil {
				return err
			}
		}
		for _, bad := range it.txIndexBad {
			a.fail(n, -1, CheckTxIndex, "the block's transactions", "another index", bad)
		}
		a.rep.To = n
		if a.cfg.Progress != nil {
			a.cfg.Progress(n-first+1, total)
		}
		it.release()
	}
	return nil
}

// item is one block moving through the pipeline.
type item struct {
	raw        store.RawBlock
	b          *chain.Block
	decodeErr  error
	receipts   []*types.Receipt
	rcptErr    error
	senders    []common.Address
	senderErrs []error
	sealErr    error
	// txIndexBad lists the transactions a data dir's index does not lead to.
	txIndexBad []string
	done       chan struct{}
}

func (it *item) release() {
	it.raw, it.b, it.receipts, it.senders, it.senderErrs, it.txIndexBad = store.RawBlock{}, nil, nil, nil, nil, nil
}

// pipeline fetches raw blocks in order and decodes them and recovers
// their senders on worker goroutines, ahead of the in-order check.
type pipeline struct {
	ctx     context.Context
	src     Source
	signer  types.Signer
	chainID uint64
	ordered chan *item
	work    chan *item
	errMu   sync.Mutex
	err     error
	workers int
	// running counts the fetcher and the workers.
	running sync.WaitGroup
}

func newPipeline(ctx context.Context, src Source, workers int, signer types.Signer, chainID uint64) *pipeline {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	p := &pipeline{ctx: ctx, src: src, signer: signer, chainID: chainID, workers: workers,
		ordered: make(chan *item, 8*workers+64), work: make(chan *item, 8*workers+64)}
	p.running.Add(workers)
	for range workers {
		go func() {
			defer p.running.Done()
			p.worker()
		}()
	}
	return p
}

// goFetch starts the fetcher for blocks first..to.
func (p *pipeline) goFetch(first, to uint64) {
	p.running.Add(1)
	go func() {
		defer p.running.Done()
		p.fetch(first, to)
	}()
}

// stop cancels the pipeline's context and waits until the fetcher and every
// worker have returned, so nothing reads the source after it.
func (p *pipeline) stop(cancel context.CancelFunc) {
	cancel()
	p.running.Wait()
}

// fetch reads blocks first..to in batches and queues them.
func (p *pipeline) fetch(first, to uint64) {
	defer close(p.ordered)
	defer close(p.work)
	for n := first; n <= to; {
		raws, err := p.src.RawBlocks(p.ctx, n, int(min(to-n+1, 1<<16)))
		if err == nil && len(raws) == 0 {
			err = fmt.Errorf("%w: the source returned no block %d (its head is at least %d)", ErrSource, n, to)
		}
		if err != nil {
			p.errMu.Lock()
			p.err = err
			p.errMu.Unlock()
			return
		}
		for _, raw := range raws {
			if raw.Number != n {
				p.errMu.Lock()
				p.err = fmt.Errorf("%w: asked for block %d, the source returned %d", ErrSource, n, raw.Number)
				p.errMu.Unlock()
				return
			}
			it := &item{raw: raw, done: make(chan struct{})}
			select {
			case p.ordered <- it:
			case <-p.ctx.Done():
				return
			}
			select {
			case p.work <- it:
			case <-p.ctx.Done():
				return
			}
			if n == to {
				return
			}
			n++
		}
	}
}

func (p *pipeline) worker() {
	l, isDir := p.src.(stateLister)
	for it := range p.work {
		if p.ctx.Err() != nil {
			continue // drained after a stop: nobody waits for it
		}
		prepare(it, p.signer, p.chainID)
		if isDir && it.b != nil {
			it.txIndexBad = checkTxIndex(l.stateDB(), it.b)
		}
		close(it.done)
	}
}

// next returns the next block in order once its worker is done.
func (p *pipeline) next(ctx context.Context) (*item, error) {
	var it *item
	var ok bool
	select {
	case it, ok = <-p.ordered:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if !ok {
		p.errMu.Lock()
		defer p.errMu.Unlock()
		if p.err != nil {
			return nil, p.err
		}
		return nil, ctx.Err()
	}
	select {
	case <-it.done:
		return it, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// prepare decodes a raw block and its receipts, recovers every sender and
// checks the seal: the work that needs no earlier block.
func prepare(it *item, signer types.Signer, chainID uint64) {
	if it.raw.Block == nil {
		return
	}
	it.b, it.decodeErr = decodeRawBlock(it.raw)
	if it.decodeErr != nil {
		return
	}
	it.receipts, it.rcptErr = decodeRawReceipts(it.raw, it.b)
	it.senders = make([]common.Address, len(it.b.Txs))
	for i, tx := range it.b.Txs {
		from, err := chain.Sender(signer, tx)
		if err != nil {
			if it.senderErrs == nil {
				it.senderErrs = make([]error, len(it.b.Txs))
			}
			it.senderErrs[i] = err
			continue
		}
		it.senders[i] = from
	}
	if it.b.Number() > 0 {
		it.sealErr = chain.VerifySeal(it.b.Header, chainID)
	}
}

// decodeRawBlock decodes a raw block and checks it is the block it is
// stored as.
func decodeRawBlock(raw store.RawBlock) (*chain.Block, error) {
	b, err := chain.DecodeBlock(raw.Block)
	if err != nil {
		return nil, err
	}
	if !b.Header.Number.IsUint64() || b.Number() != raw.Number {
		return nil, fmt.Errorf("stored as block %d, its header says %v", raw.Number, b.Header.Number)
	}
	return b, nil
}

// decodeRawReceipts decodes the stored receipts of b.
func decodeRawReceipts(raw store.RawBlock, b *chain.Block) ([]*types.Receipt, error) {
	if raw.Receipts == nil {
		return nil, errors.New("no stored receipts")
	}
	return chain.DecodeReceipts(raw.Receipts, b)
}
