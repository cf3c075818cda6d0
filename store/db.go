package store

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rlp"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/state"
)

// Errors of the database.
var (
	// ErrNotFound is returned by reads of a block, receipt or transaction that does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyApplied is returned by ApplyBlock for a Raft index at or below the recorded one.
	ErrAlreadyApplied = errors.New("raft index already applied")
	// ErrBlockRejected wraps every reason a block is skipped (decision 5).
	ErrBlockRejected = errors.New("block rejected")
	// ErrGenesisMismatch is returned when a data dir was created from another genesis.
	ErrGenesisMismatch = errors.New("data dir belongs to a different genesis")
	// ErrInUse is returned when a data dir is held by another process
	// (HeldError).
	ErrInUse = errors.New("data dir in use")
)

// Head describes the last applied block and Raft entry.
type Head struct {
	Number    uint64
	Hash      common.Hash
	StateRoot common.Hash
	TimeMs    uint64
	// RaftIndex is the last Raft log index applied (a block or a skipped one).
	RaftIndex uint64
}

// Tip is the head together with the history of every block up to and
// including it. A Tip and its History are immutable once published; clone
// the History before appending.
type Tip struct {
	Head    Head
	History *chain.History
}

// Parent returns the tip as a parent.
func (t *Tip) Parent() state.Parent {
	return state.Parent{Hash: t.Head.Hash, Root: t.Head.StateRoot, Number: t.Head.Number, TimeMs: t.Head.TimeMs, History: t.History}
}

// Options configure Open.
type Options struct {
	// NoSync skips fsync on commit (tests and benchmarks only).
	NoSync bool
	Logger *slog.Logger
	// CacheSize is Pebble's block cache size in bytes (0: 64 MiB).
	CacheSize int64
	// ReadOnly opens an existing database for reading only (the audit).
	// It fails with ErrInUse while a process (a running node) has it open.
	ReadOnly bool
	// HistoryBlocks is how many recent blocks' states StateAt serves, the
	// head's included (0: DefaultHistoryBlocks; 1: only the head, nothing
	// recorded); at most MaxHistoryBlocks. See past.go.
	HistoryBlocks uint64
	// BlockCacheBytes and ReceiptCacheBytes bound the decoded recent
	// blocks and receipts kept in memory, in estimated heap bytes (0:
	// DefaultBlockCacheBytes, DefaultReceiptCacheBytes).
	BlockCacheBytes, ReceiptCacheBytes int64
	// FS is the file system the database lives on (nil: the operating
	// system's). The cluster simulator (internal/sim) passes an in-memory,
	// crashable, fault-injecting one so that a seed replays a run.
	FS vfs.FS
	// Stalls watches the disk for an operation that hangs (stall.go;
	// the zero value watches nothing). Not for a read-only instance.
	Stalls Stalls
}

// fs is the file system of opts: FS, or the operating system's.
func (opts Options) fs() vfs.FS {
	if opts.FS == nil {
		return vfs.Default
	}
	return opts.FS
}

// DB is the node's state database. Reads are safe concurrently with
// ApplyBlock; ApplyBlock, InitGenesis and ReplaceWith must be called by one
// goroutine (the FSM's).
type DB struct {
	// mu guards pdb against ReplaceWith: readers hold it shared, the
	// replacement exclusively. Writers are the FSM goroutine, which is also
	// the only caller of ReplaceWith, so they need not hold it. Its
	// waiters block on channels (swaplock.go).
	mu   swapLock
	pdb  *pebble.DB
	dir  string
	opts Options
	log  *slog.Logger
	tip  atomic.Pointer[Tip]
	// pastFloor is the lowest height StateAt serves (past.go).
	pastFloor atomic.Uint64

	chainID    uint64
	validators atomic.Pointer[map[common.Address]bool]

	// Decoded recent blocks and receipts: wallets ask for the receipts of
	// the block just applied, one transaction at a time.
	// Each is bounded in bytes (Options.BlockCacheBytes,
	// ReceiptCacheBytes): a block of 5,000 transfers weighs as much as
	// hundreds of small ones.
	blocks   *byteLRU[*chain.Block]
	receipts *byteLRU[[]*types.Receipt]

	closeOnce sync.Once
	// closed: a failed ReplaceWith left pdb closed (guarded by mu).
	closed bool

	// bg watches pdb's background jobs (nil for a read-only instance;
	// guarded by mu as pdb is). background.go.
	bg *background
	// diskErr is the first disk failure (wrapping ErrDiskFailed), of a
	// background job or of a commit; writesFailed says a commit failed,
	// after which the database refuses every write (diskfail.go).
	diskErr      atomic.Pointer[error]
	writesFailed atomic.Bool
	hookMu       sync.Mutex
	hook         func(error)
	// probe writes a synced no-op while the disk is watched (stall.go).
	probe *Prober
}

// Open opens (creating if needed) the database in dir.
func Open(dir string, opts Options) (*DB, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.HistoryBlocks > MaxHistoryBlocks {
		return nil, fmt.Errorf("open state db: history of %d blocks is over the %d limit", opts.HistoryBlocks, MaxHistoryBlocks)
	}
	if !opts.ReadOnly {
		if err := recoverReplace(opts.fs(), dir); err != nil {
			return nil, err
		}
	}
	d := &DB{mu: newSwapLock(), dir: dir, opts: opts, log: opts.Logger}
	pdb, bg, err := d.openPebble(dir, opts)
	if err != nil {
		return nil, err
	}
	d.pdb, d.bg = pdb, bg
	d.blocks = newByteLRU(cmp.Or(opts.BlockCacheBytes, DefaultBlockCacheBytes), blockHeapBytes)
	d.receipts = newByteLRU(cmp.Or(opts.ReceiptCacheBytes, DefaultReceiptCacheBytes), receiptsHeapBytes)
	if err := d.load(); err != nil {
		d.closePebble()
		return nil, err
	}
	if !opts.ReadOnly && !opts.NoSync {
		d.probe = opts.Stalls.StartProbe(d.probeWrite)
	}
	return d, nil
}

// openPebble opens the Pebble instance in dir; one that writes comes with
// the watch of its background jobs (background.go), which reports a
// persistent failure to d.
func (d *DB) openPebble(dir string, opts Options) (pdb *pebble.DB, bg *background, err error) {
	po := &pebble.Options{Logger: PebbleLogger(opts.Logger, dir, slog.LevelDebug), ReadOnly: opts.ReadOnly, FS: opts.FS}
	if !opts.ReadOnly {
		bg = watch(po, opts.fs(), dir, opts.Logger, d.diskFailed, opts.Stalls)
	}
	pdb, err = openPebbleWith(dir, opts, po)
	if err != nil {
		if bg != nil {
			bg.close()
			bg.closed()
		}
		return nil, nil, err
	}
	if bg != nil {
		bg.open()
	}
	return pdb, bg, nil
}

func openPebbleWith(dir string, opts Options, po *pebble.Options) (pdb *pebble.DB, err error) {
	defer func() {
		if err != nil && !errors.Is(err, ErrInUse) {
			err = fmt.Errorf("open state db %s: %w", dir, err)
		}
	}()
	// Open writes a MANIFEST in its own goroutine (a new database's
	// first): a failure there is fatal to Pebble, and an error of Open
	// here (FatalError).
	defer RecoverFatal(dir, &err)
	size := opts.CacheSize
	if size == 0 {
		size = 64 << 20
	}
	c := pebble.NewCache(size)
	defer c.Unref()
	po.Cache = c
	pdb, err = pebble.Open(dir, po)
	if err != nil && isLockError(err) {
		err = HeldError(dir, "a running node", err)
		if opts.ReadOnly {
			return nil, fmt.Errorf("%w: audit a copy made with `tally admin checkpoint --out DIR` instead", err)
		}
		return nil, err
	}
	return pdb, err
}

// HeldError says that dir, a Pebble database whose open failed with err,
// is held by another process, and what that process probably is (holder:
// "a running node", "a running bridge"), wrapping ErrInUse. The node, the
// audit and the bridge all say it in these words; an err that is not a
// lock error is returned unchanged.
func HeldError(dir, holder string, err error) error {
	if err == nil || !isLockError(err) {
		return err
	}
	return fmt.Errorf("%w: %s is held by another process (%s?): %v", ErrInUse, dir, holder, err)
}

// isLockError reports whether err is Pebble failing to take the
// directory's lock: held by this process, or (EAGAIN/EWOULDBLOCK from
// flock) by another one.
func isLockError(err error) bool {
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK) || strings.Contains(err.Error(), "lock held")
}

// load reads the head, history, chain id and validators, if initialised.
func (d *DB) load() error {
	v, err := d.get(keyHead)
	if err != nil {
		return err
	}
	if v == nil {
		if d.tip.Load() != nil {
			return errors.New("state db has no head")
		}
		return nil
	}
	var h Head
	if err := rlp.DecodeBytes(v, &h); err != nil {
		return fmt.Errorf("decode head: %w", err)
	}
	hv, err := d.get(keyHistory)
	if err != nil {
		return err
	}
	hist := chain.NewHistory()
	if err := hist.UnmarshalBinary(hv); err != nil {
		return err
	}
	if hist.Size() != h.Number+1 {
		return fmt.Errorf("state db: history holds %d blocks, head is %d", hist.Size(), h.Number)
	}
	d.tip.Store(&Tip{Head: h, History: hist})
	if err := d.loadPastFloor(h.Number); err != nil {
		return err
	}
	g, err := d.Genesis()
	if err != nil {
		return err
	}
	d.chainID = g.ChainID
	return d.loadValidators()
}

func (d *DB) loadValidators() error {
	set := map[common.Address]bool{}
	d.mu.RLock()
	defer d.mu.RUnlock()
	it, err := d.pdb.NewIter(&pebble.IterOptions{LowerBound: prefixValidator, UpperBound: upperBound(prefixValidator)})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		set[common.BytesToAddress(it.Key()[len(prefixValidator):])] = true
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("read validators: %w", err)
	}
	d.validators.Store(&set)
	return nil
}

// probeWrite is the probe's synced no-op write (stall.go): refused, as
// any write, once the disk failed, and a failure of its own is one.
func (d *DB) probeWrite() {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return
	}
	_ = d.guard(func() error { return d.pdb.LogData(nil, pebble.Sync) })
}

// Close closes the database.
func (d *DB) Close() error {
	var err error
	d.closeOnce.Do(func() {
		d.probe.Stop()
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.closed {
			return // a failed ReplaceWith closed it
		}
		err = d.closePebble()
	})
	return err
}

// closePebble closes pdb, first releasing the background jobs that wait
// for it (background.go), since Pebble's Close waits for them; the stall
// watch goes on until Close returned (a Close that hangs on the disk
// ends the process as any stalled operation does).
func (d *DB) closePebble() error {
	if d.bg != nil {
		d.bg.close()
	}
	err := d.pdb.Close()
	if d.bg != nil {
		d.bg.closed()
	}
	return err
}

// Dir is the database directory.
func (d *DB) Dir() string { return d.dir }

// FS is the file system the database lives on (Options.FS, or the
// operating system's): snapshots of it are taken and installed there.
func (d *DB) FS() vfs.FS { return d.opts.fs() }

// Checkpoint writes a consistent copy of the database into dir, which must
// not exist. It is safe concurrently with ApplyBlock.
// On a failed disk (DiskFailed) it refuses: a node whose disk failed
// halts, and gives no snapshot of what it may no longer hold.
func (d *DB) Checkpoint(dir string) error {
	if err := d.DiskFailed(); err != nil {
		return fmt.Errorf("checkpoint state: %w", err)
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if err := d.guard(func() error { return d.pdb.Checkpoint(dir, pebble.WithFlushedWAL()) }); err != nil {
		return fmt.Errorf("checkpoint state: %w", err)
	}
	return nil
}

// Flush writes the memtables out as sstables, waiting until it is done,
// the disk is declared failed (background.go: Pebble's own Flush waits
// for ever on a disk that fails every flush) or the database is closed.
// Pebble flushes by itself as memtables fill; tools and tests flush at
// will. A database whose commit failed refuses (diskfail.go: the flush
// would rotate the write-ahead log, which ends the process).
func (d *DB) Flush() error {
	d.mu.RLock()
	bg := d.bg
	var flushed <-chan struct{}
	err := d.guard(func() error {
		var err error
		flushed, err = d.pdb.AsyncFlush()
		return err
	})
	d.mu.RUnlock()
	if err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	if bg == nil {
		<-flushed
		return nil
	}
	select {
	case <-flushed:
		return nil
	case <-bg.stop:
		return bg.cause
	case <-bg.release:
		return errors.New("flush: the database was closed")
	}
}

// StartFlush asks for a flush of the memtable, as a memtable filling up
// does, and returns once Pebble has moved the writes to a new memtable
// and write-ahead log, without waiting for the flush itself (Flush
// waits). The cluster simulator flushes this way, in its scheduler, so
// that the log's rotation runs before it slows the disk (a rotation
// holds Pebble's commit mutex across the old log's sync).
func (d *DB) StartFlush() error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if err := d.guard(func() error { _, err := d.pdb.AsyncFlush(); return err }); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return nil
}

func (d *DB) get(key []byte) ([]byte, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	v, closer, err := d.pdb.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: state db get %x: %w", state.ErrStorage, key, err)
	}
	out := append([]byte(nil), v...)
	closer.Close()
	return out, nil
}

// Get implements Reader over the latest applied state.
func (d *DB) Get(key []byte) ([]byte, error) { return d.get(key) }

func (d *DB) writeOpts() *pebble.WriteOptions {
	if d.opts.NoSync {
		return pebble.NoSync
	}
	return pebble.Sync
}

// Head returns the last applied block; ok is false before genesis.
func (d *DB) Head() (Head, bool) {
	t := d.tip.Load()
	if t == nil {
		return Head{}, false
	}
	return t.Head, true
}

// Tip returns the head and history, consistent with each other; nil before genesis.
func (d *DB) Tip() *Tip { return d.tip.Load() }

// ChainID returns the chain id of the genesis the DB was created from.
func (d *DB) ChainID() uint64 { return d.chainID }

// IsValidator reports whether a is in the current validator set.
func (d *DB) IsValidator(a common.Address) bool {
	set := d.validators.Load()
	return set != nil && (*set)[a]
}

// Validators returns the current validator set (a new slice, sorted by address).
func (d *DB) Validators() []common.Address {
	set := d.validators.Load()
	if set == nil {
		return nil
	}
	out := make([]common.Address, 0, len(*set))
	for a := range *set {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b common.Address) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// Genesis returns the genesis the DB was created from.
func (d *DB) Genesis() (*genesis.Genesis, error) {
	v, err := d.get(keyGenesis)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, state.ErrNoGenesis
	}
	return genesis.Parse(v)
}

// InitGenesis writes block 0 for g into an empty database, or checks that an
// initialised one was created from g.
func (d *DB) InitGenesis(g *genesis.Genesis) error {
	if _, ok := d.Head(); ok {
		stored, err := d.Genesis()
		if err != nil {
			return err
		}
		if stored.Hash() != g.Hash() {
			return fmt.Errorf("%w: stored %s, given %s", ErrGenesisMismatch, stored.Hash(), g.Hash())
		}
		return nil
	}
	b, writes, err := state.GenesisBlock(g)
	if err != nil {
		return err
	}
	batch := d.pdb.NewBatch()
	defer batch.Close()
	if err := d.writeState(batch, writes); err != nil {
		return err
	}
	if err := batch.Set(keyGenesis, g.Canonical(), nil); err != nil {
		return err
	}
	if err := batch.Set(keyPastFloor, u64(0), nil); err != nil {
		return err
	}
	d.pastFloor.Store(0)
	d.chainID = g.ChainID
	if err := d.commit(batch, b, nil, nil, 0); err != nil {
		return fmt.Errorf("write genesis: %w", err)
	}
	return d.loadValidators()
}

func (d *DB) writeState(batch *pebble.Batch, o *state.Overlay) error {
	for _, k := range o.SortedKeys() {
		v, _ := o.Written(k)
		var err error
		if len(v) == 0 {
			err = batch.Delete([]byte(k), nil)
		} else {
			err = batch.Set([]byte(k), v, nil)
		}
		if err != nil {
			return fmt.Errorf("batch state write: %w", err)
		}
	}
	return nil
}

// commit writes the block, receipts, indexes, head and history into batch
// and commits it. State writes must already be in batch.
func (d *DB) commit(batch *pebble.Batch, b *chain.Block, senders []common.Address, receipts []*types.Receipt, raftIndex uint64) error {
	n := b.Number()
	// A block decoded from its Raft entry is stored as those bytes: the
	// decoder accepts the canonical encoding only (chain.DecodeBlock), so
	// encoding it again would give them back at a cost.
	enc := b.Raw()
	if enc == nil {
		var err error
		if enc, err = b.Encode(); err != nil {
			return err
		}
	}
	rcpts, err := chain.EncodeReceipts(receipts)
	if err != nil {
		return err
	}
	hash := b.Hash()
	batch.Set(numKey(prefixBlock, n), enc, nil)
	batch.Set(hashKey(prefixHash, hash), binary.BigEndian.AppendUint64(nil, n), nil)
	batch.Set(numKey(prefixRcpt, n), rcpts, nil)
	for i, tx := range b.Txs {
		loc := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64(make([]byte, 0, 12), n), uint32(i))
		batch.Set(hashKey(prefixTx, tx.Hash()), loc, nil)
	}
	for _, c := range b.Certs {
		batch.Set(numKey(prefixCert, c.Height), u64(n), nil)
	}
	indexAccounts(batch, b, senders, receipts)
	indexLogs(batch, n, receipts)
	hist := chain.NewHistory()
	if t := d.tip.Load(); t != nil {
		hist = t.History.Clone()
	}
	hist.AppendVisit(hash, func(level uint, index uint64, h common.Hash) {
		batch.Set(historyNodeKey(level, index), h[:], nil)
	})
	hv, err := hist.MarshalBinary()
	if err != nil {
		return err
	}
	batch.Set(keyHistory, hv, nil)
	timeMs, err := chain.TimeMs(b.Header)
	if err != nil {
		return err
	}
	head := &Head{Number: n, Hash: hash, StateRoot: b.Header.Root, TimeMs: timeMs, RaftIndex: raftIndex}
	if err := d.setHead(batch, head); err != nil {
		return err
	}
	if err := d.guard(func() error { return batch.Commit(d.writeOpts()) }); err != nil {
		return fmt.Errorf("commit block %d: %w", n, err)
	}
	d.tip.Store(&Tip{Head: *head, History: hist})
	d.blocks.Add(n, b.WithoutRaw()) // the encoding is stored: keep only the decoded block
	return nil
}

func (d *DB) setHead(batch *pebble.Batch, h *Head) error {
	hv, err := rlp.EncodeToBytes(h)
	if err != nil {
		return err
	}
	return batch.Set(keyHead, hv, nil)
}

// indexAccounts writes the per-account history entries of b: the sender,
// a plain transfer's recipient, and both sides of every ERC-20 Transfer
// log (so token transfers, mints and forced transfers appear in the
// parties' histories).
func indexAccounts(batch *pebble.Batch, b *chain.Block, senders []common.Address, receipts []*types.Receipt) {
	transferID := chain.AssetABI.Events["Transfer"].ID
	for i, tx := range b.Txs {
		flags := map[common.Address]byte{senders[i]: HistorySent}
		if to := *tx.To(); !chain.IsSystemAddress(to) {
			flags[to] |= HistoryReceived
		}
		if i < len(receipts) {
			for _, l := range receipts[i].Logs {
				if len(l.Topics) != 3 || l.Topics[0] != transferID {
					continue
				}
				for j, flag := range []byte{HistorySent, HistoryReceived} {
					a := common.BytesToAddress(l.Topics[1+j][:])
					if a != (common.Address{}) && !chain.IsSystemAddress(a) {
						flags[a] |= flag
					}
				}
			}
		}
		for a, f := range flags { // distinct keys: the order of writes into the batch does not matter
			batch.Set(acctKey(a, b.Number(), uint32(i)), []byte{f}, nil)
		}
	}
}
