package rpc

import (
	"math/big"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
)

// headerFields returns the JSON fields of a header as go-ethereum's node
// writes them; ethclient recomputes the hash from these, so every consensus
// field must be present and exact.
func headerFields(h *types.Header, hash common.Hash) map[string]any {
	return map[string]any{
		"number":           (*hexutil.Big)(h.Number),
		"hash":             hash,
		"parentHash":       h.ParentHash,
		"nonce":            h.Nonce,
		"mixHash":          h.MixDigest,
		"sha3Uncles":       h.UncleHash,
		"logsBloom":        h.Bloom,
		"stateRoot":        h.Root,
		"miner":            h.Coinbase,
		"difficulty":       (*hexutil.Big)(h.Difficulty),
		"totalDifficulty":  (*hexutil.Big)(new(big.Int)),
		"extraData":        hexutil.Bytes(h.Extra),
		"gasLimit":         hexutil.Uint64(h.GasLimit),
		"gasUsed":          hexutil.Uint64(h.GasUsed),
		"timestamp":        hexutil.Uint64(h.Time),
		"transactionsRoot": h.TxHash,
		"receiptsRoot":     h.ReceiptHash,
		"baseFeePerGas":    (*hexutil.Big)(h.BaseFee),
	}
}

// blockJSON renders a block; full selects transaction objects over hashes.
func blockJSON(b *chain.Block, senders []common.Address, full bool) (map[string]any, error) {
	fields := headerFields(b.Header, b.Hash())
	enc, err := b.Encode()
	if err != nil {
		return nil, err
	}
	fields["size"] = hexutil.Uint64(len(enc))
	fields["uncles"] = []common.Hash{}
	if full {
		txs := make([]*txJSON, len(b.Txs))
		for i, tx := range b.Txs {
			txs[i] = newTxJSON(tx, senders[i], b, i)
		}
		fields["transactions"] = txs
	} else {
		hashes := make([]common.Hash, len(b.Txs))
		for i, tx := range b.Txs {
			hashes[i] = tx.Hash()
		}
		fields["transactions"] = hashes
	}
	return fields, nil
}

// txJSON is a transaction as eth_getTransactionByHash returns it.
type txJSON struct {
	BlockHash            *common.Hash      `json:"blockHash"`
	BlockNumber          *hexutil.Big      `json:"blockNumber"`
	TransactionIndex     *hexutil.Uint64   `json:"transactionIndex"`
	From                 common.Address    `json:"from"`
	Gas                  hexutil.Uint64    `json:"gas"`
	GasPrice             *hexutil.Big      `json:"gasPrice"`
	MaxFeePerGas         *hexutil.Big      `json:"maxFeePerGas,omitempty"`
	MaxPriorityFeePerGas *hexutil.Big      `json:"maxPriorityFeePerGas,omitempty"`
	Hash                 common.Hash       `json:"hash"`
	Input                hexutil.Bytes     `json:"input"`
	Nonce                hexutil.Uint64    `json:"nonce"`
	To                   *common.Address   `json:"to"`
	Value                *hexutil.Big      `json:"value"`
	Type                 hexutil.Uint64    `json:"type"`
	AccessList           *types.AccessList `json:"accessList"`
	ChainID              *hexutil.Big      `json:"chainId"`
	V                    *hexutil.Big      `json:"v"`
	R                    *hexutil.Big      `json:"r"`
	S                    *hexutil.Big      `json:"s"`
	YParity              *hexutil.Uint64   `json:"yParity"`
}

// newTxJSON renders tx; b is nil for a pending transaction.
func newTxJSON(tx *types.Transaction, from common.Address, b *chain.Block, index int) *txJSON {
	v, r, s := tx.RawSignatureValues()
	al := tx.AccessList()
	if al == nil {
		al = types.AccessList{}
	}
	out := &txJSON{
		From:     from,
		Gas:      hexutil.Uint64(tx.Gas()),
		GasPrice: (*hexutil.Big)(tx.GasPrice()),
		Hash:     tx.Hash(),
		Input:    tx.Data(),
		Nonce:    hexutil.Uint64(tx.Nonce()),
		To:       tx.To(),
		Value:    (*hexutil.Big)(tx.Value()),
		Type:     hexutil.Uint64(tx.Type()),
		ChainID:  (*hexutil.Big)(tx.ChainId()),
		V:        (*hexutil.Big)(v),
		R:        (*hexutil.Big)(r),
		S:        (*hexutil.Big)(s),
	}
	out.AccessList = &al
	parity := hexutil.Uint64(yParity(tx))
	out.YParity = &parity
	if tx.Type() == types.DynamicFeeTxType {
		out.MaxFeePerGas = (*hexutil.Big)(tx.GasFeeCap())
		out.MaxPriorityFeePerGas = (*hexutil.Big)(tx.GasTipCap())
		// The effective gas price: the tip over a zero base fee.
		out.GasPrice = (*hexutil.Big)(effectiveGasPrice(tx))
	}
	if b != nil {
		hash := b.Hash()
		idx := hexutil.Uint64(index)
		out.BlockHash = &hash
		out.BlockNumber = (*hexutil.Big)(b.Header.Number)
		out.TransactionIndex = &idx
	}
	return out
}

// yParity is the recovery bit of the signature, for every type.
func yParity(tx *types.Transaction) uint64 {
	v, _, _ := tx.RawSignatureValues()
	if tx.Type() != types.LegacyTxType {
		return v.Uint64()
	}
	// EIP-155: v = chainId*2 + 35 + parity
	p := new(big.Int).Sub(v, new(big.Int).Add(new(big.Int).Mul(tx.ChainId(), big.NewInt(2)), big.NewInt(35)))
	return p.Uint64()
}

// receiptJSON renders a receipt with the fields ethers.js and ethclient require.
func receiptJSON(r *types.Receipt, tx *types.Transaction, from common.Address) map[string]any {
	logs := r.Logs
	if logs == nil {
		logs = []*types.Log{}
	}
	return map[string]any{
		"blockHash":         r.BlockHash,
		"blockNumber":       (*hexutil.Big)(r.BlockNumber),
		"transactionHash":   r.TxHash,
		"transactionIndex":  hexutil.Uint64(r.TransactionIndex),
		"from":              from,
		"to":                tx.To(),
		"cumulativeGasUsed": hexutil.Uint64(r.CumulativeGasUsed),
		"gasUsed":           hexutil.Uint64(r.GasUsed),
		// go-ethereum's definition: the price per gas deducted from the
		// sender. Tally charges no fee whatever a transaction offers, so
		// it is 0, and a wallet showing gasUsed × effectiveGasPrice as the
		// fee (ethers' receipt.fee) shows the 0 that was taken.
		"effectiveGasPrice": (*hexutil.Big)(new(big.Int)),
		"contractAddress":   nil,
		"logs":              logs,
		"logsBloom":         r.Bloom,
		"status":            hexutil.Uint64(r.Status),
		"type":              hexutil.Uint64(r.Type),
	}
}

// effectiveGasPrice is a transaction's gasPrice field as go-ethereum
// derives it: the signed price, or the priority fee over a base fee of 0.
func effectiveGasPrice(tx *types.Transaction) *big.Int {
	if tx.Type() == types.DynamicFeeTxType {
		return tx.EffectiveGasTipValue(new(big.Int)) // base fee is 0
	}
	return tx.GasPrice()
}
