package monitor

import (
	"errors"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/store"
)

// Activity is what the rules see of one block: its place in the hash
// chain, its time, the value each successful transaction moved and each
// failed transaction.
type Activity struct {
	Number uint64
	Hash   common.Hash
	Parent common.Hash
	TimeMs uint64
	Txs    int
	// Transfers are in block order: a transaction's Transfer logs, or
	// the value of a plain native transfer.
	Transfers []Transfer
	Failures  []Failure
}

// Transfer is value moved by a successful transaction. From is the zero
// address for a mint, To for a burn; a facade address (chain.AssetID)
// holds escrow (a withdrawal, an offer).
type Transfer struct {
	Tx     common.Hash
	Asset  uint32
	From   common.Address
	To     common.Address
	Amount *big.Int
}

// Failure is a transaction included with status 0.
type Failure struct {
	Tx     common.Hash
	From   common.Address
	Reason string
}

// ErrChain is returned (wrapped) when a block does not continue the hash
// chain from the cursor or does not match its own header: the node
// answered something that is not the chain the monitor has followed. The
// follower stops on it rather than judge it.
var ErrChain = errors.New("not the followed chain")

// nativeTransfer reports whether tx moves the native asset by its value
// (not a system call, which takes none).
func nativeTransfer(tx *types.Transaction) bool {
	to := tx.To()
	return to != nil && !chain.IsSystemAddress(*to) && tx.Value().Sign() > 0
}

// transferEvent is the ERC-20 Transfer event every asset facade emits.
var transferEvent = chain.AssetABI.Events["Transfer"]

// decodeActivity decodes one stored block and its receipts, checks that
// its parent is prev (when prev is not zero) and that its header commits
// to the transactions and receipts given, and extracts its activity.
// senders recovers the senders of native transfers and failed
// transactions, on all cores (the other transfers name their sender in
// their logs).
func decodeActivity(raw store.RawBlock, prev common.Hash, senders *chain.SenderCache) (*Activity, error) {
	if raw.Block == nil || raw.Receipts == nil && raw.Number > 0 {
		return nil, fmt.Errorf("block %d: the node has no block at this height", raw.Number)
	}
	b, err := chain.DecodeBlock(raw.Block)
	if err != nil {
		return nil, fmt.Errorf("block %d: %w", raw.Number, err)
	}
	if b.Number() != raw.Number {
		return nil, fmt.Errorf("block %d: %w: the node sent block %d", raw.Number, ErrChain, b.Number())
	}
	if prev != (common.Hash{}) && b.Header.ParentHash != prev {
		return nil, fmt.Errorf("block %d: %w: its parent is %s, the block before it was %s", raw.Number, ErrChain, b.Header.ParentHash, prev)
	}
	if root := chain.TxRoot(b.Txs); root != b.Header.TxHash {
		return nil, fmt.Errorf("block %d: %w: its transactions hash to %s, the header says %s", raw.Number, ErrChain, root, b.Header.TxHash)
	}
	var rs []*types.Receipt
	if raw.Receipts != nil || len(b.Txs) > 0 {
		if rs, err = chain.DecodeReceipts(raw.Receipts, b); err != nil {
			return nil, fmt.Errorf("block %d: %w", raw.Number, err)
		}
	}
	if b.Number() > 0 {
		root, err := chain.ReceiptRoot(rs)
		if err != nil {
			return nil, fmt.Errorf("block %d: %w", raw.Number, err)
		}
		if root != b.Header.ReceiptHash {
			return nil, fmt.Errorf("block %d: %w: its receipts hash to %s, the header says %s", raw.Number, ErrChain, root, b.Header.ReceiptHash)
		}
	}
	t, err := chain.TimeMs(b.Header)
	if err != nil {
		return nil, fmt.Errorf("block %d: %w", raw.Number, err)
	}
	act := &Activity{Number: raw.Number, Hash: b.Hash(), Parent: b.Header.ParentHash, TimeMs: t, Txs: len(b.Txs)}
	reasons := map[uint32]string{}
	for _, r := range raw.Reasons {
		reasons[r.Index] = r.Reason
	}
	// The transactions whose sender is needed, recovered in parallel.
	var need []*types.Transaction
	for i, tx := range b.Txs {
		if rs[i].Status == types.ReceiptStatusFailed || nativeTransfer(tx) {
			need = append(need, tx)
		}
	}
	froms, errs := senders.Senders(need)
	for k, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("block %d tx %s: sender: %w", raw.Number, need[k].Hash(), err)
		}
	}
	k := 0
	for i, tx := range b.Txs {
		r := rs[i]
		if r.Status == types.ReceiptStatusFailed {
			act.Failures = append(act.Failures, Failure{Tx: tx.Hash(), From: froms[k], Reason: reasons[uint32(i)]})
			k++
			continue
		}
		if nativeTransfer(tx) {
			act.Transfers = append(act.Transfers, Transfer{Tx: tx.Hash(), Asset: 0, From: froms[k], To: *tx.To(), Amount: new(big.Int).Set(tx.Value())})
			k++
		}
		for _, l := range r.Logs {
			id, ok := chain.AssetID(l.Address)
			if !ok || len(l.Topics) != 3 || l.Topics[0] != transferEvent.ID || len(l.Data) != 32 {
				continue
			}
			act.Transfers = append(act.Transfers, Transfer{Tx: tx.Hash(), Asset: id,
				From: common.BytesToAddress(l.Topics[1][:]), To: common.BytesToAddress(l.Topics[2][:]), Amount: new(big.Int).SetBytes(l.Data)})
		}
	}
	return act, nil
}
