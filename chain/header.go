package chain

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rlp"

	"github.com/tally-ledger/tally/crypto"
)

// Layout of Header.Extra. Every block: the block time in milliseconds (8
// bytes, big-endian). Block 0: then the keccak256 of the genesis file's
// canonical form. Other blocks: then the root of the commit certificates the
// block carries (CertRoot, 32 bytes), so the block hash commits to them,
// then the proposer's 65-byte signature over SealHash.
const (
	extraTimeLen = 8
	certRootLen  = 32
	extraSealed  = extraTimeLen + certRootLen // what SealHash covers of Extra
	SealLen      = 65
	// ExtraLen is the length of Extra in every block but block 0.
	ExtraLen = extraSealed + SealLen
)

// Header errors.
var (
	ErrBadExtra    = errors.New("header extra data malformed")
	ErrBadSeal     = errors.New("header seal invalid")
	ErrNotProposer = errors.New("header sealed by someone other than its coinbase")
)

// sealDomain tags the seal hash so a header signature can never be replayed
// as a transaction signature or on another chain.
var sealDomain = []byte("tally-seal-v1")

// NewHeader returns an unsealed header with the fields Tally fixes (London
// shape, base fee 0, no uncles, difficulty 0).
func NewHeader(parent common.Hash, number uint64, timeMs uint64, proposer common.Address) *types.Header {
	extra := make([]byte, extraSealed, ExtraLen)
	binary.BigEndian.PutUint64(extra, timeMs)
	copy(extra[extraTimeLen:], EmptyCertRoot[:])
	return &types.Header{
		ParentHash:  parent,
		UncleHash:   types.EmptyUncleHash,
		Coinbase:    proposer,
		TxHash:      types.EmptyRootHash,
		ReceiptHash: types.EmptyRootHash,
		Difficulty:  new(big.Int),
		Number:      new(big.Int).SetUint64(number),
		GasLimit:    BlockGasLimit,
		Time:        timeMs / 1000,
		Extra:       extra,
		BaseFee:     new(big.Int),
	}
}

// NewGenesisHeader returns block 0's header before its state root: no
// parent, no proposer, and Extra = time ‖ genesisHash (block 0 carries no
// certificates and no seal; it commits to the whole genesis file instead).
func NewGenesisHeader(timeMs uint64, genesisHash common.Hash) *types.Header {
	h := NewHeader(common.Hash{}, 0, timeMs, common.Address{})
	h.Extra = append(h.Extra[:extraTimeLen:extraTimeLen], genesisHash[:]...)
	return h
}

// TimeMs returns the block time in milliseconds from Extra.
func TimeMs(h *types.Header) (uint64, error) {
	if len(h.Extra) < extraTimeLen {
		return 0, fmt.Errorf("%w: %d bytes", ErrBadExtra, len(h.Extra))
	}
	return binary.BigEndian.Uint64(h.Extra[:extraTimeLen]), nil
}

// HeaderCertRoot returns the certificate root a header (not block 0) commits to.
func HeaderCertRoot(h *types.Header) (common.Hash, error) {
	if len(h.Extra) < extraSealed {
		return common.Hash{}, fmt.Errorf("%w: %d bytes", ErrBadExtra, len(h.Extra))
	}
	return common.BytesToHash(h.Extra[extraTimeLen:extraSealed]), nil
}

// SetCertRoot records the root of the block's certificates in an unsealed header.
func SetCertRoot(h *types.Header, root common.Hash) error {
	if len(h.Extra) != extraSealed {
		return fmt.Errorf("%w: set cert root on %d bytes (sealed?)", ErrBadExtra, len(h.Extra))
	}
	copy(h.Extra[extraTimeLen:], root[:])
	return nil
}

// SealHash is what the proposer signs: the header without its signature,
// tagged with the domain and the chain id.
func SealHash(h *types.Header, chainID uint64) common.Hash {
	cpy := types.CopyHeader(h)
	if len(cpy.Extra) > extraSealed {
		cpy.Extra = cpy.Extra[:extraSealed]
	}
	enc, err := rlp.EncodeToBytes(cpy)
	if err != nil {
		panic(fmt.Sprintf("encode header: %v", err)) // a header always encodes
	}
	var id [8]byte
	binary.BigEndian.PutUint64(id[:], chainID)
	return crypto.Keccak256(sealDomain, id[:], enc)
}

// Seal signs h with key, which must be the key of h.Coinbase.
func Seal(h *types.Header, chainID uint64, key *crypto.PrivateKey) error {
	if key.Address() != h.Coinbase {
		return fmt.Errorf("seal: key %s is not coinbase %s", key.Address(), h.Coinbase)
	}
	if len(h.Extra) < extraSealed {
		return ErrBadExtra
	}
	sig, err := key.Sign(SealHash(h, chainID))
	if err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	h.Extra = append(h.Extra[:extraSealed:extraSealed], sig...)
	return nil
}

// VerifySeal checks that h carries a valid signature by h.Coinbase. Whether
// the coinbase may propose is the caller's question (the validator set).
func VerifySeal(h *types.Header, chainID uint64) error {
	if len(h.Extra) != ExtraLen {
		return fmt.Errorf("%w: %d bytes, want %d", ErrBadExtra, len(h.Extra), ExtraLen)
	}
	signer, err := crypto.Recover(SealHash(h, chainID), h.Extra[extraSealed:])
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadSeal, err)
	}
	if signer != h.Coinbase {
		return fmt.Errorf("%w: signed by %s, coinbase %s", ErrNotProposer, signer, h.Coinbase)
	}
	return nil
}
