package chain

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"

	"github.com/ethereum/go-ethereum/common"
)

// ProofVersion is the format version of TxProof this code writes and reads.
// Version 2 added ValidatorSetChange.Before, without which a change left
// out of a proof could go unnoticed; version 1 proofs are refused.
const ProofVersion = 2

// Bounds on a transaction proof, so a hostile file cannot make a verifier
// allocate without limit.
const (
	// MaxProofSize bounds an encoded proof.
	MaxProofSize = 16 << 20
	// MaxPathLen bounds a Merkle path (a tree of 2^63 leaves is beyond any chain).
	MaxPathLen = 63
	// sigLen is the length of a vote signature (R‖S‖V).
	sigLen = 65
)

// ErrProofMalformed wraps every reason a proof file does not decode: bad
// JSON, a missing, null or unknown field, bad hex, a wrong length, or any
// departure from the canonical form Encode writes.
var ErrProofMalformed = errors.New("malformed transaction proof")

// TxProof proves to anyone holding only the genesis file that a transaction
// is in the chain with a given receipt (DESIGN.md decision 10), offline:
//
//   - Tx and Receipt are leaves of block H's tx and receipt trees (Header):
//     TxPath and ReceiptPath lead from them to the header's TxHash and
//     ReceiptHash. Both leaves are at the same position, given by PathLeft.
//   - Header H is in the history committed by Head (header T, T >= H):
//     HistoryPath leads from H's hash at index H to Head.MixDigest, the root
//     of the history of blocks 0..T-1 (empty when T == H, where Head must be
//     Header). GenesisPath leads from block 0's hash (GenesisHash) to the
//     same root, so the proof is bound to this chain's genesis.
//   - Certificate is the commit certificate of Head, signed by a quorum of
//     the validators in force at T.
//   - ValidatorChanges lets the verifier follow the validator set from the
//     genesis set to the one in force at T and T+1: every change at a height
//     E <= T+1, with the certificate of block E-1 whose Next names the new
//     set, and the certificate of block E-2 whose Next names the set the
//     proof has in force at E-1 (the previous change's, or the genesis
//     set). The second chains each change to the one before it: a proof
//     that leaves a change out claims a set at E-1 that the honest quorum
//     of block E-2 did not sign, so it fails.
//
// The JSON form (Encode, DecodeTxProof) is canonical: one encoding per
// proof, so a file altered in any byte either does not decode or says
// something else, which verification then refuses.
type TxProof struct {
	Version     uint64
	ChainID     uint64
	GenesisHash common.Hash
	// Tx is the transaction's EIP-2718 encoding; its hash is the tx tree leaf.
	Tx []byte
	// Receipt is the receipt's consensus encoding, the receipt tree leaf.
	Receipt []byte
	// PathLeft has bit j set when TxPath[j] and ReceiptPath[j] are the left
	// sibling at step j up from the leaf. (RFC 6962 roots do not commit to
	// a tree's size, so a leaf's index and the block's tx count could not
	// be checked; the sides they imply can, and they are all a verifier
	// needs. Equal sides in two trees of one shape mean the same leaf, so
	// the receipt is the transaction's.)
	PathLeft    uint64
	TxPath      []common.Hash
	ReceiptPath []common.Hash
	// Header is the RLP encoding of block H's header.
	Header []byte
	// Head is the RLP encoding of header T, the certified head.
	Head             []byte
	HistoryPath      []common.Hash
	GenesisPath      []common.Hash
	Certificate      *Certificate
	ValidatorChanges []ValidatorSetChange
}

// ValidatorSetChange is a change of the validator set in a proof: from
// Height on, Validators (sorted, strictly increasing) are in force, as the
// certificate of block Height-1 attests (its Next is their ValidatorSetHash).
type ValidatorSetChange struct {
	Height      uint64
	Validators  []common.Address
	Certificate *Certificate
	// Before is the certificate of block Height-2, whose Next names the set
	// in force at Height-1 (nil when Height is 1: that set is the genesis
	// set).
	Before *Certificate
}

// MerklePathLeft returns the side bits of the RFC 6962 inclusion path of
// leaf index in a tree of size leaves (bit j set when the j-th path hash is
// a left sibling) and the path's length; see TxProof.PathLeft.
func MerklePathLeft(index, size uint64) (left uint64, length int, err error) {
	if index >= size {
		return 0, 0, fmt.Errorf("merkle path: index %d out of range %d", index, size)
	}
	// As RFC 6962's verifier: below the level where the paths to index and
	// to the last leaf part, the side follows index's bits; above it every
	// sibling is a left one (the border).
	inner := bits.Len64(index ^ (size - 1))
	border := bits.OnesCount64(index >> inner)
	length = inner + border
	left = index & (1<<inner - 1)
	for j := inner; j < length; j++ {
		left |= 1 << j
	}
	return left, length, nil
}

// VerifyMerklePath checks that leaf leads to root along path with the side
// bits left (see MerklePathLeft). It is VerifyMerkleProof on the perfect
// tree of 2^len(path) leaves, where a leaf's index is exactly its side bits.
func VerifyMerklePath(leaf []byte, left uint64, path []common.Hash, root common.Hash) error {
	if len(path) > MaxPathLen {
		return fmt.Errorf("%w: path of %d hashes, limit %d", ErrProof, len(path), MaxPathLen)
	}
	if left>>len(path) != 0 {
		return fmt.Errorf("%w: side bits %#x beyond a path of %d hashes", ErrProof, left, len(path))
	}
	return VerifyMerkleProof(leaf, left, uint64(1)<<len(path), path, root)
}

// The wire form. Pointers and nil slices tell a missing or null field from
// a zero one; field order is the canonical order.
type proofJSON struct {
	Version          *uint64               `json:"version"`
	ChainID          *uint64               `json:"chainId"`
	GenesisHash      *string               `json:"genesisHash"`
	Tx               *string               `json:"tx"`
	Receipt          *string               `json:"receipt"`
	PathLeft         *uint64               `json:"pathLeft"`
	TxPath           []string              `json:"txPath"`
	ReceiptPath      []string              `json:"receiptPath"`
	Header           *string               `json:"header"`
	Head             *string               `json:"head"`
	HistoryPath      []string              `json:"historyPath"`
	GenesisPath      []string              `json:"genesisPath"`
	Certificate      *certJSON             `json:"certificate"`
	ValidatorChanges []validatorChangeJSON `json:"validatorChanges"`
}

type certJSON struct {
	Height     *uint64  `json:"height"`
	Hash       *string  `json:"hash"`
	Next       *string  `json:"next"`
	Signatures []string `json:"signatures"`
}

type validatorChangeJSON struct {
	Height      *uint64   `json:"height"`
	Validators  []string  `json:"validators"`
	Certificate *certJSON `json:"certificate"`
	Before      *certJSON `json:"before"`
}

func hexOf(b []byte) *string { s := "0x" + hex.EncodeToString(b); return &s }

func hashesJSON(hs []common.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = *hexOf(h[:])
	}
	return out
}

func u64p(v uint64) *uint64 { return &v }

func certToJSON(c *Certificate) (*certJSON, error) {
	if c == nil {
		return nil, errors.New("certificate missing")
	}
	sigs := make([]string, len(c.Sigs))
	for i, s := range c.Sigs {
		sigs[i] = *hexOf(s)
	}
	return &certJSON{Height: u64p(c.Height), Hash: hexOf(c.Hash[:]), Next: hexOf(c.Next[:]), Signatures: sigs}, nil
}

// Encode returns the canonical JSON form of p: compact, fields in a fixed
// order, numbers in decimal, bytes as lowercase 0x-hex.
func (p *TxProof) Encode() ([]byte, error) {
	cert, err := certToJSON(p.Certificate)
	if err != nil {
		return nil, fmt.Errorf("encode proof: %w", err)
	}
	w := proofJSON{
		Version: u64p(p.Version), ChainID: u64p(p.ChainID), GenesisHash: hexOf(p.GenesisHash[:]),
		Tx: hexOf(p.Tx), Receipt: hexOf(p.Receipt), PathLeft: u64p(p.PathLeft),
		TxPath: hashesJSON(p.TxPath), ReceiptPath: hashesJSON(p.ReceiptPath),
		Header: hexOf(p.Header), Head: hexOf(p.Head),
		HistoryPath: hashesJSON(p.HistoryPath), GenesisPath: hashesJSON(p.GenesisPath),
		Certificate: cert, ValidatorChanges: make([]validatorChangeJSON, len(p.ValidatorChanges)),
	}
	for i, ch := range p.ValidatorChanges {
		c, err := certToJSON(ch.Certificate)
		if err != nil {
			return nil, fmt.Errorf("encode proof: validator change %d: %w", i, err)
		}
		vals := make([]string, len(ch.Validators))
		for j, a := range ch.Validators {
			vals[j] = *hexOf(a[:])
		}
		var before *certJSON
		if ch.Before != nil {
			if before, err = certToJSON(ch.Before); err != nil {
				return nil, fmt.Errorf("encode proof: validator change %d: %w", i, err)
			}
		}
		w.ValidatorChanges[i] = validatorChangeJSON{Height: u64p(ch.Height), Validators: vals, Certificate: c, Before: before}
	}
	return json.Marshal(w)
}

// MarshalJSON returns Encode's canonical form (so an RPC server sends it as is).
func (p *TxProof) MarshalJSON() ([]byte, error) { return p.Encode() }

// UnmarshalJSON decodes with DecodeTxProof's rules.
func (p *TxProof) UnmarshalJSON(data []byte) error {
	dec, err := DecodeTxProof(data)
	if err != nil {
		return err
	}
	*p = *dec
	return nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProofMalformed, fmt.Sprintf(format, args...))
}

// parseHex decodes strict lowercase 0x-hex; want < 0 accepts any length.
func parseHex(field string, s *string, want int) ([]byte, error) {
	if s == nil {
		return nil, malformed("field %s missing or null", field)
	}
	v := *s
	if len(v) < 2 || v[:2] != "0x" {
		return nil, malformed("field %s: not 0x-hex", field)
	}
	for i := 2; i < len(v); i++ {
		if c := v[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return nil, malformed("field %s: character %q at %d is not lowercase hex", field, c, i)
		}
	}
	if len(v)%2 != 0 {
		return nil, malformed("field %s: odd number of hex digits", field)
	}
	b, err := hex.DecodeString(v[2:])
	if err != nil {
		return nil, malformed("field %s: %v", field, err)
	}
	if want >= 0 && len(b) != want {
		return nil, malformed("field %s: %d bytes, want %d", field, len(b), want)
	}
	return b, nil
}

func parseHash(field string, s *string) (common.Hash, error) {
	b, err := parseHex(field, s, common.HashLength)
	return common.BytesToHash(b), err
}

func parseHashes(field string, ss []string) ([]common.Hash, error) {
	if ss == nil {
		return nil, malformed("field %s missing or null", field)
	}
	if len(ss) > MaxPathLen {
		return nil, malformed("field %s: %d hashes, limit %d", field, len(ss), MaxPathLen)
	}
	out := make([]common.Hash, len(ss))
	for i := range ss {
		h, err := parseHash(fmt.Sprintf("%s[%d]", field, i), &ss[i])
		if err != nil {
			return nil, err
		}
		out[i] = h
	}
	return out, nil
}

func needU64(field string, v *uint64) (uint64, error) {
	if v == nil {
		return 0, malformed("field %s missing or null", field)
	}
	return *v, nil
}

func parseCert(field string, c *certJSON) (*Certificate, error) {
	if c == nil {
		return nil, malformed("field %s missing or null", field)
	}
	h, err := needU64(field+".height", c.Height)
	if err != nil {
		return nil, err
	}
	out := &Certificate{Height: h}
	if out.Hash, err = parseHash(field+".hash", c.Hash); err != nil {
		return nil, err
	}
	if out.Next, err = parseHash(field+".next", c.Next); err != nil {
		return nil, err
	}
	if c.Signatures == nil {
		return nil, malformed("field %s.signatures missing or null", field)
	}
	if len(c.Signatures) > MaxValidators {
		return nil, malformed("field %s.signatures: %d, limit %d", field, len(c.Signatures), MaxValidators)
	}
	out.Sigs = make([][]byte, len(c.Signatures))
	for i := range c.Signatures {
		if out.Sigs[i], err = parseHex(fmt.Sprintf("%s.signatures[%d]", field, i), &c.Signatures[i], sigLen); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// DecodeTxProof decodes a proof in the canonical form Encode writes and
// nothing else: unknown, missing or null fields, duplicate keys, spaces,
// uppercase hex, unsorted validator lists and every other variation are
// refused with ErrProofMalformed naming the problem. It checks the form,
// not the proof: that is the verifier's job.
func DecodeTxProof(data []byte) (*TxProof, error) {
	if len(data) > MaxProofSize {
		return nil, malformed("%d bytes, limit %d", len(data), MaxProofSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var w proofJSON
	if err := dec.Decode(&w); err != nil {
		return nil, malformed("%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, malformed("data after the proof object")
	}
	p := &TxProof{}
	var err error
	if p.Version, err = needU64("version", w.Version); err != nil {
		return nil, err
	}
	if p.Version != ProofVersion {
		return nil, malformed("version %d, this verifier reads version %d", p.Version, ProofVersion)
	}
	if p.ChainID, err = needU64("chainId", w.ChainID); err != nil {
		return nil, err
	}
	if p.GenesisHash, err = parseHash("genesisHash", w.GenesisHash); err != nil {
		return nil, err
	}
	if p.Tx, err = parseHex("tx", w.Tx, -1); err != nil {
		return nil, err
	}
	if p.Receipt, err = parseHex("receipt", w.Receipt, -1); err != nil {
		return nil, err
	}
	if p.PathLeft, err = needU64("pathLeft", w.PathLeft); err != nil {
		return nil, err
	}
	if p.TxPath, err = parseHashes("txPath", w.TxPath); err != nil {
		return nil, err
	}
	if p.ReceiptPath, err = parseHashes("receiptPath", w.ReceiptPath); err != nil {
		return nil, err
	}
	if p.Header, err = parseHex("header", w.Header, -1); err != nil {
		return nil, err
	}
	if p.Head, err = parseHex("head", w.Head, -1); err != nil {
		return nil, err
	}
	if p.HistoryPath, err = parseHashes("historyPath", w.HistoryPath); err != nil {
		return nil, err
	}
	if p.GenesisPath, err = parseHashes("genesisPath", w.GenesisPath); err != nil {
		return nil, err
	}
	if p.Certificate, err = parseCert("certificate", w.Certificate); err != nil {
		return nil, err
	}
	if w.ValidatorChanges == nil {
		return nil, malformed("field validatorChanges missing or null")
	}
	p.ValidatorChanges = make([]ValidatorSetChange, len(w.ValidatorChanges))
	for i, ch := range w.ValidatorChanges {
		field := fmt.Sprintf("validatorChanges[%d]", i)
		out := &p.ValidatorChanges[i]
		if out.Height, err = needU64(field+".height", ch.Height); err != nil {
			return nil, err
		}
		if ch.Validators == nil {
			return nil, malformed("field %s.validators missing or null", field)
		}
		if len(ch.Validators) == 0 || len(ch.Validators) > MaxValidators {
			return nil, malformed("field %s.validators: %d, want 1 to %d", field, len(ch.Validators), MaxValidators)
		}
		out.Validators = make([]common.Address, len(ch.Validators))
		for j := range ch.Validators {
			b, err := parseHex(fmt.Sprintf("%s.validators[%d]", field, j), &ch.Validators[j], common.AddressLength)
			if err != nil {
				return nil, err
			}
			out.Validators[j] = common.BytesToAddress(b)
			if j > 0 && bytes.Compare(out.Validators[j-1][:], b) >= 0 {
				return nil, malformed("field %s.validators: not in strictly increasing order at %d", field, j)
			}
		}
		if out.Certificate, err = parseCert(field+".certificate", ch.Certificate); err != nil {
			return nil, err
		}
		if ch.Before != nil {
			if out.Before, err = parseCert(field+".before", ch.Before); err != nil {
				return nil, err
			}
		}
	}
	// Whatever the checks above let through (duplicate keys, spaces,
	// exponents, escapes, key case), the canonical form does not.
	again, err := p.Encode()
	if err != nil {
		return nil, malformed("%v", err)
	}
	if !bytes.Equal(again, data) {
		return nil, malformed("not in canonical form (compact, fields in order, decimal numbers, lowercase hex)")
	}
	return p, nil
}
