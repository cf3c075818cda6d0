package rpctest

import (
	"context"
	"errors"
	"math/big"
	"net/http/httptest"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/rpc"
	"github.com/tally-ledger/tally/store"
)

// ErrReadOnly is what Backend answers to a submission.
var ErrReadOnly = errors.New("read-only test backend: transactions are not accepted")

// Backend is an rpc.Backend over a state database alone.
type Backend struct {
	db      *store.DB
	senders *chain.SenderCache
	heads   *rpc.HeadFeed
}

// NewBackend serves db; senders may be nil (a fresh cache is made).
func NewBackend(db *store.DB, senders *chain.SenderCache) *Backend {
	if senders == nil {
		senders = chain.NewSenderCache(chain.NewSigner(new(big.Int).SetUint64(db.ChainID())), 1024)
	}
	return &Backend{db: db, senders: senders, heads: rpc.NewHeadFeed(4)}
}

// State implements rpc.Backend.
func (b *Backend) State() *store.DB { return b.db }

// Senders implements rpc.Backend.
func (b *Backend) Senders() *chain.SenderCache { return b.senders }

// SubmitTx implements rpc.Backend: always ErrReadOnly.
func (b *Backend) SubmitTx(context.Context, *types.Transaction) error { return ErrReadOnly }

// PendingNonce implements rpc.Backend: the applied nonce.
func (b *Backend) PendingNonce(a common.Address) (uint64, error) { return b.db.Nonce(a) }

// PendingTx implements rpc.Backend: nothing is pending.
func (b *Backend) PendingTx(common.Hash) (*types.Transaction, common.Address, bool) {
	return nil, common.Address{}, false
}

// Syncing implements rpc.Backend.
func (b *Backend) Syncing() (bool, uint64, uint64) { return false, 0, 0 }

// Heads implements rpc.Backend (no block is ever published).
func (b *Backend) Heads() *rpc.HeadFeed { return b.heads }

// Serve serves b with limits on 127.0.0.1 until the test ends.
func Serve(t testing.TB, b rpc.Backend, limits rpc.Limits) *httptest.Server {
	t.Helper()
	srv, err := rpc.NewServer(b, limits, "test")
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() { ts.Close(); srv.Stop() })
	return ts
}
