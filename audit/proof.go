package audit

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rlp"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/state"
)

// Proof verification errors. Every failure of VerifyProof wraps
// ErrProofInvalid and one of the others, which names the part at fault.
var (
	ErrProofInvalid = errors.New("transaction proof invalid")
	// ErrProofFormat: a field is out of its range (version, lengths, orders).
	ErrProofFormat = errors.New("proof format")
	// ErrProofChain: the proof is for another chain id.
	ErrProofChain = errors.New("proof chain id")
	// ErrProofGenesis: the proof is not bound to the given genesis (its
	// genesis hash, or block 0's path to the certified head).
	ErrProofGenesis = errors.New("proof genesis")
	// ErrProofValidators: a validator set change does not follow from the
	// sets before it (order, height, certificate, named set).
	ErrProofValidators = errors.New("proof validator changes")
	// ErrProofCertificate: the head's certificate is not a valid quorum
	// certificate of the head under the validators of its height.
	ErrProofCertificate = errors.New("proof certificate")
	// ErrProofHistory: the block is not in the history the certified head
	// commits to.
	ErrProofHistory = errors.New("proof history path")
	// ErrProofHeader: the block's header is malformed, badly sealed, or
	// sealed by a non-validator.
	ErrProofHeader = errors.New("proof block header")
	// ErrProofTx: the transaction does not decode, is not validly signed
	// for this chain, or is not in the block's tx tree.
	ErrProofTx = errors.New("proof transaction")
	// ErrProofReceipt: the receipt does not decode or is not the
	// transaction's leaf of the block's receipt tree.
	ErrProofReceipt = errors.New("proof receipt")
)

func proofFail(kind error, format string, args ...any) error {
	return fmt.Errorf("%w: %w: "+format, append([]any{ErrProofInvalid, kind}, args...)...)
}

// ProofResult is what a valid proof establishes.
type ProofResult struct {
	TxHash common.Hash
	Sender common.Address
	To     common.Address
	// Block is the block holding the transaction.
	BlockNumber uint64
	BlockHash   common.Hash
	BlockTimeMs uint64
	// Status is the receipt's status (1 success, 0 failed at execution).
	Status uint64
	Logs   int
	// Head is the certified block the proof reaches (Head >= BlockNumber).
	Head     uint64
	HeadHash common.Hash
	// Signers signed the head's certificate, of Validators in force at Head.
	Signers    int
	Validators int
	// ValidatorChanges is how many validator set changes the proof followed.
	ValidatorChanges int
}

// proofSets is the validator set timeline a proof claims, from the genesis set.
type proofSets struct {
	from []uint64 // from[i]: height set i takes effect (from[0] = 0)
	sets [][]common.Address
}

func (s *proofSets) at(h uint64) []common.Address {
	i := len(s.from) - 1
	for i > 0 && s.from[i] > h {
		i--
	}
	return s.sets[i]
}

// decodeProofHeader decodes a header given as RLP, refusing any encoding
// but the canonical one.
func decodeProofHeader(what string, enc []byte) (*types.Header, error) {
	var h types.Header
	if err := rlp.DecodeBytes(enc, &h); err != nil {
		return nil, proofFail(ErrProofHeader, "%s: %w", what, err)
	}
	if h.Number == nil || h.Difficulty == nil {
		return nil, proofFail(ErrProofHeader, "%s: incomplete", what)
	}
	again, err := rlp.EncodeToBytes(&h)
	if err != nil || !bytes.Equal(again, enc) {
		return nil, proofFail(ErrProofHeader, "%s: not in canonical RLP", what)
	}
	return &h, nil
}

// VerifyProof checks a transaction proof (chain.TxProof) offline, with
// nothing but the genesis file: the genesis and chain id it is bound to, the
// validator sets from the genesis set through every change (each attested
// by a certificate of the set before it, and chained to the change before
// it by the certificate of the block two below it, so that leaving a
// change out fails), the certificate of the head under
// the set of its height, the block's place in the head's history, the
// block's seal by a validator of its height, the transaction's and the
// receipt's places in the block, and the transaction's signature. Every
// field is checked and every signature must be valid (not only a quorum of
// them). Cheap hash checks run before signature recovery.
//
// Trust: a quorum of each validator set signs only blocks it applied, so a
// block the chain skipped (a deposed leader's) has no certificate and no
// place in a certified head's history, and cannot be proven.
func VerifyProof(p *chain.TxProof, g *genesis.Genesis) (*ProofResult, error) {
	v, err := NewProofVerifier(g)
	if err != nil {
		return nil, err
	}
	return v.Verify(p)
}

// ProofVerifier verifies proofs against one genesis, deriving what it
// needs of the genesis (block 0's hash, the genesis validator set) once.
type ProofVerifier struct {
	g           *genesis.Genesis
	genesisHash common.Hash
	validators  []common.Address
}

// NewProofVerifier prepares the verification of proofs against g.
func NewProofVerifier(g *genesis.Genesis) (*ProofVerifier, error) {
	gb, _, err := state.GenesisBlock(g)
	if err != nil {
		return nil, fmt.Errorf("genesis: %w", err)
	}
	vals := g.ValidatorAddresses()
	chain.SortAddresses(vals)
	return &ProofVerifier{g: g, genesisHash: gb.Hash(), validators: vals}, nil
}

// Verify is VerifyProof against the verifier's genesis.
func (v *ProofVerifier) Verify(p *chain.TxProof) (*ProofResult, error) {
	g := v.g
	if p == nil || p.Certificate == nil {
		return nil, proofFail(ErrProofFormat, "proof or its certificate missing")
	}
	if p.Version != chain.ProofVersion {
		return nil, proofFail(ErrProofFormat, "version %d, want %d", p.Version, chain.ProofVersion)
	}
	if p.ChainID != g.ChainID {
		return nil, proofFail(ErrProofChain, "proof for chain %d, genesis of chain %d", p.ChainID, g.ChainID)
	}
	if v.genesisHash != p.GenesisHash {
		return nil, proofFail(ErrProofGenesis, "genesis hash %s, the genesis file gives %s", p.GenesisHash, v.genesisHash)
	}
	header, err := decodeProofHeader("header", p.Header)
	if err != nil {
		return nil, err
	}
	head, err := decodeProofHeader("head", p.Head)
	if err != nil {
		return nil, err
	}
	if !header.Number.IsUint64() || !head.Number.IsUint64() {
		return nil, proofFail(ErrProofHeader, "block number out of range")
	}
	H, T := header.Number.Uint64(), head.Number.Uint64()
	if H == 0 {
		return nil, proofFail(ErrProofHeader, "block 0 holds no transactions")
	}
	if T < H {
		return nil, proofFail(ErrProofHistory, "head %d below the block %d", T, H)
	}

	// The validator sets, from the genesis set (hash checks here, signatures below).
	sets := &proofSets{from: []uint64{0}, sets: [][]common.Address{v.validators}}
	for i, ch := range p.ValidatorChanges {
		if ch.Certificate == nil {
			return nil, proofFail(ErrProofValidators, "change %d: certificate missing", i)
		}
		prev := sets.from[len(sets.from)-1]
		if ch.Height <= prev || ch.Height > T+1 {
			return nil, proofFail(ErrProofValidators, "change %d at height %d: want above %d and at most %d", i, ch.Height, prev, T+1)
		}
		if len(ch.Validators) == 0 || len(ch.Validators) > chain.MaxValidators {
			return nil, proofFail(ErrProofValidators, "change %d: %d validators", i, len(ch.Validators))
		}
		for j := 1; j < len(ch.Validators); j++ {
			if bytes.Compare(ch.Validators[j-1][:], ch.Validators[j][:]) >= 0 {
				return nil, proofFail(ErrProofValidators, "change %d: validators not in strictly increasing order", i)
			}
		}
		if ch.Certificate.Height != ch.Height-1 {
			return nil, proofFail(ErrProofValidators, "change %d at height %d: certificate of block %d, want %d", i, ch.Height, ch.Certificate.Height, ch.Height-1)
		}
		if next := chain.ValidatorSetHash(ch.Validators); ch.Certificate.Next != next {
			return nil, proofFail(ErrProofValidators, "change %d at height %d: certificate names set %s, the listed set hashes to %s", i, ch.Height, ch.Certificate.Next, next)
		}
		// The set the proof has in force at E-1 (the last one so far) must
		// be the one block E-2's certificate names: a change left out
		// before E shows here.
		switch {
		case ch.Height == 1 && ch.Before != nil:
			return nil, proofFail(ErrProofValidators, "change %d at height 1: a certificate of the block before block 0", i)
		case ch.Height > 1 && ch.Before == nil:
			return nil, proofFail(ErrProofValidators, "change %d at height %d: certificate of block %d missing", i, ch.Height, ch.Height-2)
		case ch.Height > 1 && ch.Before.Height != ch.Height-2:
			return nil, proofFail(ErrProofValidators, "change %d at height %d: certificate of block %d, want %d", i, ch.Height, ch.Before.Height, ch.Height-2)
		case ch.Height > 1 && ch.Before.Next != chain.ValidatorSetHash(sets.sets[len(sets.sets)-1]):
			return nil, proofFail(ErrProofValidators, "change %d at height %d: block %d's certificate names the set after it as %s, the proof's changes give %s (a validator change missing?)",
				i, ch.Height, ch.Height-2, ch.Before.Next, chain.ValidatorSetHash(sets.sets[len(sets.sets)-1]))
		}
		sets.from = append(sets.from, ch.Height)
		sets.sets = append(sets.sets, ch.Validators)
	}

	// The head's certificate names the head and the set after it.
	cert := p.Certificate
	if cert.Height != T || cert.Hash != head.Hash() {
		return nil, proofFail(ErrProofCertificate, "certificate of block %d (%s), head is %d (%s)", cert.Height, cert.Hash, T, head.Hash())
	}
	if next := chain.ValidatorSetHash(sets.at(T + 1)); cert.Next != next {
		return nil, proofFail(ErrProofCertificate, "certificate names the set after %d as %s, the proof's changes give %s (a validator change missing?)", T, cert.Next, next)
	}

	// The block in the head's history, and block 0 too.
	if H == T {
		if !bytes.Equal(p.Header, p.Head) || len(p.HistoryPath) != 0 {
			return nil, proofFail(ErrProofHistory, "the head is the block: header and head must be equal and the history path empty")
		}
	} else if err := chain.VerifyMerkleProof(header.Hash().Bytes(), H, T, p.HistoryPath, head.MixDigest); err != nil {
		return nil, proofFail(ErrProofHistory, "block %d (%s) in the history of head %d: %w", H, header.Hash(), T, err)
	}
	if err := chain.VerifyMerkleProof(p.GenesisHash.Bytes(), 0, T, p.GenesisPath, head.MixDigest); err != nil {
		return nil, proofFail(ErrProofGenesis, "block 0 in the history of head %d: %w", T, err)
	}

	// The transaction and its receipt in the block.
	tx, err := chain.DecodeTx(p.Tx)
	if err != nil {
		return nil, proofFail(ErrProofTx, "%w", err)
	}
	if again, err := tx.MarshalBinary(); err != nil || !bytes.Equal(again, p.Tx) {
		return nil, proofFail(ErrProofTx, "not in canonical encoding")
	}
	txHash := tx.Hash()
	if err := chain.VerifyMerklePath(txHash[:], p.PathLeft, p.TxPath, header.TxHash); err != nil {
		return nil, proofFail(ErrProofTx, "tx %s not in block %d's tx tree: %w", txHash, H, err)
	}
	var receipt types.Receipt
	if err := receipt.UnmarshalBinary(p.Receipt); err != nil {
		return nil, proofFail(ErrProofReceipt, "%w", err)
	}
	if again, err := receipt.MarshalBinary(); err != nil || !bytes.Equal(again, p.Receipt) {
		return nil, proofFail(ErrProofReceipt, "not in canonical encoding")
	}
	if receipt.Type != tx.Type() {
		return nil, proofFail(ErrProofReceipt, "receipt of type %d for a tx of type %d", receipt.Type, tx.Type())
	}
	if len(p.ReceiptPath) != len(p.TxPath) {
		return nil, proofFail(ErrProofReceipt, "receipt path of %d hashes, tx path of %d: not the same leaf", len(p.ReceiptPath), len(p.TxPath))
	}
	if err := chain.VerifyMerklePath(p.Receipt, p.PathLeft, p.ReceiptPath, header.ReceiptHash); err != nil {
		return nil, proofFail(ErrProofReceipt, "not in block %d's receipt tree at the tx's position: %w", H, err)
	}

	// Signatures, the expensive part: header seal, transaction, certificates.
	if err := chain.VerifySeal(header, g.ChainID); err != nil {
		return nil, proofFail(ErrProofHeader, "block %d: %w", H, err)
	}
	if !proofHasValidator(sets.at(H), header.Coinbase) {
		return nil, proofFail(ErrProofHeader, "block %d sealed by %s, not a validator at that height", H, header.Coinbase)
	}
	sender, err := chain.Sender(chain.NewSigner(g.ChainIDBig()), tx)
	if err != nil {
		return nil, proofFail(ErrProofTx, "tx %s: %w", txHash, err)
	}
	for i, ch := range p.ValidatorChanges {
		if err := chain.VerifyCertificate(ch.Certificate, g.ChainID, sets.at(ch.Height-1)); err != nil {
			return nil, proofFail(ErrProofValidators, "change %d at height %d: %w", i, ch.Height, err)
		}
		if ch.Before == nil {
			continue
		}
		if err := chain.VerifyCertificate(ch.Before, g.ChainID, sets.at(ch.Height-2)); err != nil {
			return nil, proofFail(ErrProofValidators, "change %d at height %d: certificate of block %d: %w", i, ch.Height, ch.Height-2, err)
		}
	}
	if err := chain.VerifyCertificate(cert, g.ChainID, sets.at(T)); err != nil {
		return nil, proofFail(ErrProofCertificate, "%w", err)
	}
	timeMs, err := chain.TimeMs(header)
	if err != nil {
		return nil, proofFail(ErrProofHeader, "%w", err)
	}
	res := &ProofResult{
		TxHash: txHash, Sender: sender, BlockNumber: H, BlockHash: header.Hash(), BlockTimeMs: timeMs,
		Status: receipt.Status, Logs: len(receipt.Logs), Head: T, HeadHash: head.Hash(),
		Signers: len(cert.Sigs), Validators: len(sets.at(T)), ValidatorChanges: len(p.ValidatorChanges),
	}
	if to := tx.To(); to != nil {
		res.To = *to
	}
	return res, nil
}

func proofHasValidator(set []common.Address, a common.Address) bool {
	for _, v := range set {
		if v == a {
			return true
		}
	}
	return false
}
