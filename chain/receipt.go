package chain

import (
	"fmt"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rlp"
)

// NewReceipt returns the receipt of the transaction at index in a block,
// with its bloom computed from logs. cumGas is the gas used by the block up
// to and including this transaction.
func NewReceipt(tx *types.Transaction, status uint64, gasUsed, cumGas uint64, logs []*types.Log) *types.Receipt {
	r := &types.Receipt{
		Type:              tx.Type(),
		Status:            status,
		CumulativeGasUsed: cumGas,
		Logs:              logs,
		TxHash:            tx.Hash(),
		GasUsed:           gasUsed,
	}
	if r.Logs == nil {
		r.Logs = []*types.Log{}
	}
	r.Bloom = types.CreateBloom(r)
	return r
}

// ReceiptLeaves returns the leaves ReceiptRoot commits to: each receipt's
// consensus encoding (EIP-2718 typed, with status, cumulative gas, bloom, logs).
func ReceiptLeaves(rs []*types.Receipt) ([][]byte, error) {
	leaves := make([][]byte, len(rs))
	for i, r := range rs {
		b, err := r.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("encode receipt %d: %w", i, err)
		}
		leaves[i] = b
	}
	return leaves, nil
}

// ReceiptRoot is the Merkle root over the receipts' consensus encodings.
func ReceiptRoot(rs []*types.Receipt) (common.Hash, error) {
	leaves, err := ReceiptLeaves(rs)
	if err != nil {
		return common.Hash{}, err
	}
	return MerkleRoot(leaves), nil
}

// EncodeReceipts returns the storage form of a block's receipts (status,
// cumulative gas, logs; everything else is derived from the block on read).
func EncodeReceipts(rs []*types.Receipt) ([]byte, error) {
	stored := make([]*types.ReceiptForStorage, len(rs))
	for i, r := range rs {
		stored[i] = (*types.ReceiptForStorage)(r)
	}
	return rlp.EncodeToBytes(stored)
}

// DecodeReceipts decodes the storage form and derives every other field from
// the block the receipts belong to: type, tx hash, gas used, bloom, and the
// log positions.
func DecodeReceipts(data []byte, b *Block) ([]*types.Receipt, error) {
	var stored []*types.ReceiptForStorage
	if err := rlp.DecodeBytes(data, &stored); err != nil {
		return nil, fmt.Errorf("decode receipts of block %d: %w", b.Number(), err)
	}
	if len(stored) != len(b.Txs) {
		return nil, fmt.Errorf("decode receipts of block %d: %d receipts for %d txs", b.Number(), len(stored), len(b.Txs))
	}
	out := make([]*types.Receipt, len(stored))
	var prevGas uint64
	var logIndex uint
	for i, s := range stored {
		r := (*types.Receipt)(s)
		tx := b.Txs[i]
		r.Type = tx.Type()
		r.TxHash = tx.Hash()
		r.GasUsed = r.CumulativeGasUsed - prevGas
		prevGas = r.CumulativeGasUsed
		r.BlockHash = b.Hash()
		r.BlockNumber = b.Header.Number
		r.TransactionIndex = uint(i)
		if r.Logs == nil {
			r.Logs = []*types.Log{}
		}
		for _, l := range r.Logs {
			l.TxHash = r.TxHash
			l.TxIndex = uint(i)
			l.BlockHash = r.BlockHash
			l.BlockNumber = b.Number()
			l.BlockTimestamp = b.Header.Time
			l.Index = logIndex
			logIndex++
		}
		r.Bloom = types.CreateBloom(r)
		out[i] = r
	}
	return out, nil
}
