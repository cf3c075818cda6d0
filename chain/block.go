package chain

import (
	"errors"
	"fmt"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rlp"
)

// MaxBlockSize bounds an encoded block, and so a Raft log entry a peer can
// make a node decode.
const MaxBlockSize = 64 << 20

// ErrBlockMalformed is returned for a block that does not decode.
var ErrBlockMalformed = errors.New("malformed block")

// Block is a header, its transactions and the commit certificates it
// carries for earlier blocks (DESIGN.md decision 10; the header commits to
// them through HeaderCertRoot). A Block is immutable once built: Hash is
// computed once and cached.
type Block struct {
	Header *types.Header
	Txs    []*types.Transaction
	Certs  []*Certificate

	hash common.Hash
}

// NewBlock wraps a header and transactions; it does not copy them.
func NewBlock(h *types.Header, txs []*types.Transaction) *Block {
	return &Block{Header: h, Txs: txs}
}

// Hash is the header hash, the one every Ethereum client computes.
func (b *Block) Hash() common.Hash {
	if b.hash == (common.Hash{}) {
		b.hash = b.Header.Hash()
	}
	return b.hash
}

// Number is the block height.
func (b *Block) Number() uint64 { return b.Header.Number.Uint64() }

type blockRLP struct {
	Header *types.Header
	Txs    []*types.Transaction
	Certs  []*Certificate
}

// Encode returns the block's RLP encoding (the Raft log entry and the stored form).
func (b *Block) Encode() ([]byte, error) {
	return rlp.EncodeToBytes(blockRLP{Header: b.Header, Txs: b.Txs, Certs: b.Certs})
}

// DecodeBlock decodes what Encode wrote. The input is bounded by MaxBlockSize.
func DecodeBlock(data []byte) (*Block, error) {
	if len(data) > MaxBlockSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrBlockMalformed, len(data), MaxBlockSize)
	}
	var dec blockRLP
	if err := rlp.DecodeBytes(data, &dec); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBlockMalformed, err)
	}
	if dec.Header == nil || dec.Header.Number == nil || dec.Header.Difficulty == nil {
		return nil, fmt.Errorf("%w: incomplete header", ErrBlockMalformed)
	}
	if len(dec.Certs) > MaxCertsPerBlock {
		return nil, fmt.Errorf("%w: %d certificates, limit %d", ErrBlockMalformed, len(dec.Certs), MaxCertsPerBlock)
	}
	for i, c := range dec.Certs {
		if c == nil || len(c.Sigs) > MaxValidators {
			return nil, fmt.Errorf("%w: certificate %d malformed", ErrBlockMalformed, i)
		}
	}
	return &Block{Header: dec.Header, Txs: dec.Txs, Certs: dec.Certs}, nil
}

// TxRoot is the Merkle root over the transactions' hashes, in block order.
func TxRoot(txs []*types.Transaction) common.Hash {
	return MerkleRoot(TxLeaves(txs))
}

// TxLeaves returns the leaves TxRoot commits to (the transaction hashes).
func TxLeaves(txs []*types.Transaction) [][]byte {
	leaves := make([][]byte, len(txs))
	for i, tx := range txs {
		h := tx.Hash()
		leaves[i] = h[:]
	}
	return leaves
}
