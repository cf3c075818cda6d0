package chain

import (
	"errors"
	"fmt"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/crypto/sha3"
)

// Hasher is the RFC 6962 tree hasher with keccak256: leaves are hashed as
// keccak(0x00 || data) and inner nodes as keccak(0x01 || left || right), so a
// leaf can never be passed off as an inner node.
type Hasher struct{}

// EmptyRoot is the root of an empty tree.
func (Hasher) EmptyRoot() []byte { return types.EmptyRootHash.Bytes() }

// HashLeaf hashes a leaf.
func (Hasher) HashLeaf(leaf []byte) []byte {
	h := sha3.NewLegacyKeccak256()
	h.Write([]byte{0})
	h.Write(leaf)
	return h.Sum(nil)
}

// HashChildren hashes an inner node.
func (Hasher) HashChildren(l, r []byte) []byte {
	h := sha3.NewLegacyKeccak256()
	h.Write([]byte{1})
	h.Write(l)
	h.Write(r)
	return h.Sum(nil)
}

// Size is the hash size.
func (Hasher) Size() int { return 32 }

var rangeFactory = &compact.RangeFactory{Hash: Hasher{}.HashChildren}

// MerkleRoot returns the root over leaves (each hashed with HashLeaf). An
// empty list gives types.EmptyRootHash, the value Ethereum clients expect for
// an empty body.
func MerkleRoot(leaves [][]byte) common.Hash {
	if len(leaves) == 0 {
		return types.EmptyRootHash
	}
	r := rangeFactory.NewEmptyRange(0)
	for _, l := range leaves {
		if err := r.Append(Hasher{}.HashLeaf(l), nil); err != nil {
			panic(fmt.Sprintf("merkle append: %v", err)) // cannot fail for a range from 0
		}
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		panic(fmt.Sprintf("merkle root: %v", err))
	}
	return common.BytesToHash(root)
}

// MerkleProof returns the inclusion proof of leaves[index] in MerkleRoot(leaves).
func MerkleProof(leaves [][]byte, index uint64) ([]common.Hash, error) {
	size := uint64(len(leaves))
	if index >= size {
		return nil, fmt.Errorf("merkle proof: index %d out of range %d", index, size)
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("merkle proof: %w", err)
	}
	stored := make(map[compact.NodeID][]byte)
	r := rangeFactory.NewEmptyRange(0)
	visit := func(id compact.NodeID, h []byte) { stored[id] = h }
	for i, l := range leaves {
		h := Hasher{}.HashLeaf(l)
		stored[compact.NewNodeID(0, uint64(i))] = h
		if err := r.Append(h, visit); err != nil {
			return nil, err
		}
	}
	if _, err := r.GetRootHash(visit); err != nil {
		return nil, err
	}
	hashes := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		h, ok := stored[id]
		if !ok {
			return nil, fmt.Errorf("merkle proof: node %+v not computed", id)
		}
		hashes[i] = h
	}
	hashes, err = nodes.Rehash(hashes, Hasher{}.HashChildren)
	if err != nil {
		return nil, err
	}
	out := make([]common.Hash, len(hashes))
	for i, h := range hashes {
		out[i] = common.BytesToHash(h)
	}
	return out, nil
}

// ErrProof is returned when an inclusion proof does not lead to the root.
var ErrProof = errors.New("merkle proof does not match root")

// VerifyMerkleProof checks that leaf is at index in a tree of size leaves with root.
func VerifyMerkleProof(leaf []byte, index, size uint64, path []common.Hash, root common.Hash) error {
	p := make([][]byte, len(path))
	for i := range path {
		p[i] = path[i].Bytes()
	}
	if err := proof.VerifyInclusion(Hasher{}, index, size, Hasher{}.HashLeaf(leaf), p, root.Bytes()); err != nil {
		return fmt.Errorf("%w: %v", ErrProof, err)
	}
	return nil
}
