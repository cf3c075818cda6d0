package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/ethereum/go-ethereum/common/hexutil"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/rpc"
	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/store"
)

// ErrSource wraps every failure to read the input (a source, the genesis
// file, a checkpoint): the audit could not run, as opposed to a check that
// failed. The CLI exits 2 on it.
var ErrSource = errors.New("cannot read the audit input")

// Source is where the audited chain comes from: a node's data dir or its
// JSON-RPC. Both give the same raw data, so the checks and the report are
// the same.
type Source interface {
	// Describe names the source in the report ("datadir DIR", "rpc URL").
	Describe() string
	// StateDigest is the digest of the source's head state; its Height is
	// the head the audit goes up to.
	StateDigest(ctx context.Context) (store.StateDigest, error)
	// RawBlocks returns stored blocks from, from+1, … (at least one when
	// from is at or below the head, at most count), with nil encodings for
	// a block missing below the head.
	RawBlocks(ctx context.Context, from uint64, count int) ([]store.RawBlock, error)
	// Close releases the source.
	Close() error
}

// stateLister is a source that can read its state, so a final-state
// mismatch can name the first key that differs.
type stateLister interface {
	stateDB() *store.DB
}

// DataDir is a node's data dir opened read-only.
type DataDir struct {
	db  *store.DB
	dir string
}

// dataDirBatch is how many blocks one read of a data dir returns.
const dataDirBatch = 64

// OpenDataDir opens a data dir read-only. A dir held by a running node
// fails with store.ErrInUse (its message advises auditing a copy made with
// `tally admin checkpoint`). Every error wraps ErrSource.
func OpenDataDir(dir string) (*DataDir, error) {
	db, err := openReadOnly(dir)
	if err != nil {
		return nil, err
	}
	return &DataDir{db: db, dir: dir}, nil
}

func openReadOnly(dir string) (*store.DB, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: data dir: %v", ErrSource, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%w: data dir %s is not a directory", ErrSource, dir)
	}
	db, err := store.Open(dir, store.Options{ReadOnly: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSource, err)
	}
	if _, ok := db.Head(); !ok {
		db.Close()
		return nil, fmt.Errorf("%w: data dir %s: %w", ErrSource, dir, state.ErrNoGenesis)
	}
	return db, nil
}

// Describe implements Source.
func (d *DataDir) Describe() string { return "datadir " + d.dir }

// StateDigest implements Source.
func (d *DataDir) StateDigest(context.Context) (store.StateDigest, error) {
	dg, err := d.db.StateDigest()
	if err != nil {
		return dg, fmt.Errorf("%w: data dir %s: %w", ErrSource, d.dir, err)
	}
	return dg, nil
}

// RawBlocks implements Source.
func (d *DataDir) RawBlocks(_ context.Context, from uint64, count int) ([]store.RawBlock, error) {
	raws, err := d.db.RawBlocks(from, min(count, dataDirBatch), 8<<20)
	if err != nil {
		return nil, fmt.Errorf("%w: data dir %s: %w", ErrSource, d.dir, err)
	}
	return raws, nil
}

// Close implements Source.
func (d *DataDir) Close() error { return d.db.Close() }

func (d *DataDir) stateDB() *store.DB { return d.db }

// RPC is a node's JSON-RPC endpoint (tally_stateDigest, tally_getRawBlocks).
type RPC struct {
	c       *gethrpc.Client
	url     string
	timeout time.Duration
}

// rpcCallTimeout bounds one call (up to the node's http.max-response-bytes).
const rpcCallTimeout = 2 * time.Minute

// DialRPC connects to a node's JSON-RPC over HTTP(S) or WebSocket. Every
// error of the source wraps ErrSource.
func DialRPC(ctx context.Context, url string) (*RPC, error) {
	// A response holds up to the node's http.max-response-bytes, or one block
	// of up to chain.MaxBlockSize: above go-ethereum's WebSocket default.
	c, err := gethrpc.DialOptions(ctx, url, gethrpc.WithWebsocketMessageSizeLimit(4*chain.MaxBlockSize))
	if err != nil {
		return nil, fmt.Errorf("%w: rpc %s: %v", ErrSource, url, err)
	}
	return &RPC{c: c, url: url, timeout: rpcCallTimeout}, nil
}

// Describe implements Source.
func (r *RPC) Describe() string { return "rpc " + r.url }

func (r *RPC) call(ctx context.Context, out any, method string, args ...any) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.c.CallContext(ctx, out, method, args...); err != nil {
		return fmt.Errorf("%w: rpc %s: %s: %v", ErrSource, r.url, method, err)
	}
	return nil
}

// StateDigest implements Source.
func (r *RPC) StateDigest(ctx context.Context) (store.StateDigest, error) {
	var d *rpc.StateDigest
	if err := r.call(ctx, &d, "tally_stateDigest"); err != nil {
		return store.StateDigest{}, err
	}
	if d == nil {
		return store.StateDigest{}, fmt.Errorf("%w: rpc %s: tally_stateDigest returned null", ErrSource, r.url)
	}
	return store.StateDigest{Height: uint64(d.Height), StateRoot: d.StateRoot, Keys: uint64(d.Keys), Digest: d.Digest}, nil
}

// RawBlocks implements Source.
func (r *RPC) RawBlocks(ctx context.Context, from uint64, count int) ([]store.RawBlock, error) {
	var raws []rpc.RawBlock
	if err := r.call(ctx, &raws, "tally_getRawBlocks", hexutil.Uint64(from), hexutil.Uint64(min(count, rpc.MaxRawBlocks))); err != nil {
		return nil, err
	}
	out := make([]store.RawBlock, len(raws))
	for i, raw := range raws {
		out[i] = raw.Stored()
	}
	return out, nil
}

// Close implements Source.
func (r *RPC) Close() error {
	r.c.Close()
	return nil
}
