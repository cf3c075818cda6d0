package chain

import (
	"errors"
	"fmt"
	"math"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rlp"
)

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
	size int // encoded size, once known
	// raw is the encoding DecodeBlock read the block from (nil for a block
	// built here): the canonical encoding, since the decoder accepts no
	// other (TestDecodeBlockCanonical, FuzzDecodeBlock).
	raw []byte
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
	enc, err := rlp.EncodeToBytes(blockRLP{Header: b.Header, Txs: b.Txs, Certs: b.Certs})
	if err == nil {
		b.size = len(enc)
	}
	return enc, err
}

// Size is the length of the block's encoding (known without encoding again
// once the block was decoded or encoded).
func (b *Block) Size() int {
	if b.size == 0 {
		if _, err := b.Encode(); err != nil {
			return math.MaxInt // a header that does not encode fits nowhere
		}
	}
	return b.size
}

// Raw returns the bytes DecodeBlock decoded the block from, or nil for a
// block that was not decoded. They are the canonical encoding, what Encode
// would give, so the state database stores them as they arrived in the
// Raft entry instead of encoding the block again. The caller must not
// modify them.
func (b *Block) Raw() []byte { return b.raw }

// WithoutRaw returns b without the bytes it was decoded from: a shallow
// copy sharing the header, transactions and certificates (and the hash
// and size already known), for a block kept in memory once those bytes
// are stored, so that a cache of decoded blocks does not hold every
// block's encoding as well.
func (b *Block) WithoutRaw() *Block {
	if b.raw == nil {
		return b
	}
	c := *b
	c.raw = nil
	return &c
}

// DecodeBlock decodes what Encode wrote: RLP in its canonical form only
// (go-ethereum's rlp refuses every other form, and a list with more
// elements; TestDecodeBlockCanonical), so a block that decodes re-encodes
// to data, which Raw returns. data is kept, not copied: the caller must
// not modify it. The input is bounded by MaxBlockSize, and the block
// decoded by CheckBlockLimits.
func DecodeBlock(data []byte) (*Block, error) {
	if len(data) > MaxBlockSize {
		return nil, fmt.Errorf("%w: %w: %d bytes, limit %d", ErrBlockMalformed, ErrBlockTooLarge, len(data), MaxBlockSize)
	}
	var dec blockRLP
	if err := rlp.DecodeBytes(data, &dec); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBlockMalformed, err)
	}
	if dec.Header == nil || dec.Header.Number == nil || dec.Header.Difficulty == nil {
		return nil, fmt.Errorf("%w: incomplete header", ErrBlockMalformed)
	}
	b := &Block{Header: dec.Header, Txs: dec.Txs, Certs: dec.Certs, size: len(data), raw: data}
	if err := CheckBlockLimits(b); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBlockMalformed, err)
	}
	return b, nil
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
