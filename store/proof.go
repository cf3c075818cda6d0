package store

import (
	"errors"
	"fmt"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/rlp"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/state"
)

// ErrNotCertified is returned by TxProof for a transaction whose block (or
// any later one) no applied block certifies yet: certificates travel in the
// blocks after the one they certify, so retry in a moment.
var ErrNotCertified = errors.New("block not certified yet, retry shortly")

// historyNodeKey is where commit stores a node of the history tree.
func historyNodeKey(level uint, index uint64) []byte {
	k := make([]byte, 0, len(prefixHistoryNode)+1+8)
	k = append(k, prefixHistoryNode...)
	k = append(k, byte(level))
	return append(k, u64(index)...)
}

// HistoryProof returns the inclusion proof of block index in the history of
// blocks 0..size-1, whose root is header size's MixDigest. It reads the
// O(log size) stored tree nodes it needs (written by commit as blocks are
// applied).
func (d *DB) HistoryProof(index, size uint64) ([]common.Hash, error) {
	tip := d.Tip()
	if tip == nil {
		return nil, state.ErrNoGenesis
	}
	if size > tip.History.Size() {
		return nil, fmt.Errorf("history proof of block %d in %d: only %d blocks applied", index, size, tip.History.Size())
	}
	p, err := chain.HistoryProofNodes(index, size)
	if err != nil {
		return nil, err
	}
	hashes := make([]common.Hash, len(p.Nodes))
	for i, id := range p.Nodes {
		v, err := d.get(historyNodeKey(id.Level, id.Index))
		if err != nil {
			return nil, err
		}
		if len(v) != common.HashLength {
			return nil, fmt.Errorf("history proof of block %d in %d: node (level %d, index %d) not stored (data dir written before history nodes were kept?): %w", index, size, id.Level, id.Index, ErrNotFound)
		}
		hashes[i] = common.BytesToHash(v)
	}
	return p.Build(hashes)
}

// TxProof builds the proof (chain.TxProof, DESIGN.md decision 10) that the
// applied transaction txHash is in the chain: its Merkle paths to its
// block's roots, the history path from the block to the highest certified
// block, that block's certificate, and every validator set change up to
// the set after it with the certificates naming it and the set before it. It returns ErrNotFound
// for an unknown transaction and ErrNotCertified while no block at or
// above the transaction's is certified.
func (d *DB) TxProof(txHash common.Hash) (*chain.TxProof, error) {
	n, idx, err := d.TxLocation(txHash)
	if err != nil {
		return nil, err
	}
	p, err := d.txProof(txHash, n, idx)
	if err != nil && !errors.Is(err, ErrNotCertified) {
		// Past the lookup, a missing piece (block, receipts, history node,
		// certificate) is the data dir's problem, not an unknown transaction.
		return nil, fmt.Errorf("proof of tx %s: %v", txHash, err)
	}
	return p, err
}

func (d *DB) txProof(txHash common.Hash, n uint64, idx uint32) (*chain.TxProof, error) {
	b, err := d.BlockByNumber(n)
	if err != nil {
		return nil, err
	}
	if int(idx) >= len(b.Txs) || b.Txs[idx].Hash() != txHash {
		return nil, fmt.Errorf("index points to block %d position %d, which holds another", n, idx)
	}
	rs, err := d.Receipts(b)
	if err != nil {
		return nil, err
	}
	top, ok, err := d.LastCertified()
	if err != nil {
		return nil, err
	}
	if !ok || top < n {
		return nil, fmt.Errorf("proof of tx %s in block %d (highest certified block %d): %w", txHash, n, top, ErrNotCertified)
	}
	cert, err := d.Certificate(top)
	if err != nil {
		return nil, err
	}
	head, err := d.BlockByNumber(top)
	if err != nil {
		return nil, err
	}
	p := &chain.TxProof{Version: chain.ProofVersion, ChainID: d.chainID, Certificate: cert.Certificate}

	genesisBlock, err := d.BlockByNumber(0)
	if err != nil {
		return nil, err
	}
	p.GenesisHash = genesisBlock.Hash()
	if p.Tx, err = b.Txs[idx].MarshalBinary(); err != nil {
		return nil, fmt.Errorf("encode tx: %w", err)
	}
	rleaves, err := chain.ReceiptLeaves(rs)
	if err != nil {
		return nil, err
	}
	p.Receipt = rleaves[idx]
	var pathLen int
	if p.PathLeft, pathLen, err = chain.MerklePathLeft(uint64(idx), uint64(len(b.Txs))); err != nil {
		return nil, err
	}
	if p.TxPath, err = chain.MerkleProof(chain.TxLeaves(b.Txs), uint64(idx)); err != nil {
		return nil, err
	}
	if p.ReceiptPath, err = chain.MerkleProof(rleaves, uint64(idx)); err != nil {
		return nil, err
	}
	if len(p.TxPath) != pathLen || len(p.ReceiptPath) != pathLen {
		return nil, fmt.Errorf("paths of %d and %d hashes, want %d", len(p.TxPath), len(p.ReceiptPath), pathLen)
	}
	if p.Header, err = encodeHeader(b); err != nil {
		return nil, err
	}
	if p.Head, err = encodeHeader(head); err != nil {
		return nil, err
	}
	p.HistoryPath = []common.Hash{}
	if n < top {
		if p.HistoryPath, err = d.HistoryProof(n, top); err != nil {
			return nil, err
		}
	}
	if p.GenesisPath, err = d.HistoryProof(0, top); err != nil {
		return nil, err
	}
	// The verifier needs the sets in force at top (for its certificate) and
	// at top+1 (its Next): every change up to top+1.
	heights, sets, err := d.ValidatorSetChanges(top + 1)
	if err != nil {
		return nil, err
	}
	p.ValidatorChanges = make([]chain.ValidatorSetChange, len(heights))
	for i, e := range heights {
		c, err := d.Certificate(e - 1)
		if err != nil {
			return nil, fmt.Errorf("the validator set changed at %d, but block %d, whose certificate names the new set, is not certified: %w", e, e-1, err)
		}
		vals := append([]common.Address(nil), sets[i]...)
		chain.SortAddresses(vals)
		p.ValidatorChanges[i] = chain.ValidatorSetChange{Height: e, Validators: vals, Certificate: c.Certificate}
		if e >= 2 { // block e-2's certificate names the set at e-1: it chains this change to the one before
			b, err := d.Certificate(e - 2)
			if err != nil {
				return nil, fmt.Errorf("the validator set changed at %d, but block %d, whose certificate names the set before it, is not certified: %w", e, e-2, err)
			}
			p.ValidatorChanges[i].Before = b.Certificate
		}
	}
	return p, nil
}

func encodeHeader(b *chain.Block) ([]byte, error) {
	enc, err := rlp.EncodeToBytes(b.Header)
	if err != nil {
		return nil, fmt.Errorf("encode header %d: %w", b.Number(), err)
	}
	return enc, nil
}
