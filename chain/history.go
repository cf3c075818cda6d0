package chain

import (
	"fmt"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/rlp"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
)

// History is the Merkle Mountain Range over the hashes of blocks 0..Size()-1:
// the compact range holds one peak per set bit of the size, so appending a
// block and computing the root cost O(log n) hashes and the state is O(log n)
// bytes. Header N's MixDigest is the root of the history of blocks 0..N-1, so
// any block can later be proven an ancestor of a head with an RFC 6962
// inclusion proof. Not safe for concurrent use.
type History struct {
	r *compact.Range
}

// NewHistory returns the empty history (the one block 0 commits to).
func NewHistory() *History { return &History{r: rangeFactory.NewEmptyRange(0)} }

// Size is the number of block hashes appended.
func (h *History) Size() uint64 { return h.r.End() }

// Append adds the hash of the next block.
func (h *History) Append(blockHash common.Hash) { h.AppendVisit(blockHash, nil) }

// HistoryNodeVisitor receives a node of the history tree: the node at level
// (0 for the leaves) and index (from the left, at that level) covering the
// leaves [index<<level, (index+1)<<level).
type HistoryNodeVisitor func(level uint, index uint64, hash common.Hash)

// AppendVisit adds the hash of the next block and reports every node of
// the tree that the addition completes, the leaf included, to visit (if not
// nil). A store that keeps every reported node can serve an inclusion proof
// for any block in any later history in O(log n) reads (see
// HistoryProofNodes); nothing else is ever needed.
func (h *History) AppendVisit(blockHash common.Hash, visit HistoryNodeVisitor) {
	var v compact.VisitFn
	if visit != nil {
		v = func(id compact.NodeID, hash []byte) { visit(id.Level, id.Index, common.BytesToHash(hash)) }
	}
	if err := h.r.Append(Hasher{}.HashLeaf(blockHash.Bytes()), v); err != nil {
		panic(fmt.Sprintf("history append: %v", err)) // cannot fail for a range from 0
	}
}

// HistoryNodeID names a node of the history tree, as HistoryNodeVisitor does.
type HistoryNodeID struct {
	Level uint
	Index uint64
}

// HistoryProof describes how to build the inclusion proof of block index
// in the history of size blocks from stored nodes: fetch the hash of every
// node of Nodes (each one was reported by AppendVisit), in order, and pass
// them to Build.
type HistoryProof struct {
	Nodes []HistoryNodeID
	nodes proof.Nodes
}

// HistoryProofNodes returns the nodes the inclusion proof of block index in
// the history of size blocks is made of. It requires index < size.
func HistoryProofNodes(index, size uint64) (*HistoryProof, error) {
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("history proof of block %d in %d: %w", index, size, err)
	}
	ids := make([]HistoryNodeID, len(nodes.IDs))
	for i, id := range nodes.IDs {
		ids[i] = HistoryNodeID{Level: id.Level, Index: id.Index}
	}
	return &HistoryProof{Nodes: ids, nodes: nodes}, nil
}

// Build turns the hashes of p.Nodes (in order) into the inclusion proof
// VerifyMerkleProof checks, combining the nodes of the right edge that
// stand for one node of a perfect tree.
func (p *HistoryProof) Build(hashes []common.Hash) ([]common.Hash, error) {
	hs := make([][]byte, len(hashes))
	for i := range hashes {
		hs[i] = hashes[i].Bytes()
	}
	hs, err := p.nodes.Rehash(hs, Hasher{}.HashChildren)
	if err != nil {
		return nil, fmt.Errorf("history proof: %w", err)
	}
	out := make([]common.Hash, len(hs))
	for i, h := range hs {
		out[i] = common.BytesToHash(h)
	}
	return out, nil
}

// Root returns the history root; the empty history's root is the zero hash.
func (h *History) Root() common.Hash {
	if h.r.End() == 0 {
		return common.Hash{}
	}
	root, err := h.r.GetRootHash(nil)
	if err != nil {
		panic(fmt.Sprintf("history root: %v", err))
	}
	return common.BytesToHash(root)
}

// Clone returns an independent copy.
func (h *History) Clone() *History {
	// Append rewrites peaks in place, so the copy must not share them.
	peaks := make([][]byte, len(h.r.Hashes()))
	for i, p := range h.r.Hashes() {
		peaks[i] = append([]byte(nil), p...)
	}
	c, err := rangeFactory.NewRange(0, h.r.End(), peaks)
	if err != nil {
		panic(fmt.Sprintf("history clone: %v", err))
	}
	return &History{r: c}
}

type historyRLP struct {
	Size  uint64
	Peaks [][]byte
}

// MarshalBinary encodes the size and peaks.
func (h *History) MarshalBinary() ([]byte, error) {
	return rlp.EncodeToBytes(historyRLP{Size: h.r.End(), Peaks: h.r.Hashes()})
}

// UnmarshalBinary decodes what MarshalBinary wrote, checking that the number
// of peaks fits the size.
func (h *History) UnmarshalBinary(b []byte) error {
	var dec historyRLP
	if err := rlp.DecodeBytes(b, &dec); err != nil {
		return fmt.Errorf("decode history: %w", err)
	}
	for _, p := range dec.Peaks {
		if len(p) != 32 {
			return fmt.Errorf("decode history: peak of %d bytes", len(p))
		}
	}
	r, err := rangeFactory.NewRange(0, dec.Size, dec.Peaks)
	if err != nil {
		return fmt.Errorf("decode history: %w", err)
	}
	h.r = r
	return nil
}
