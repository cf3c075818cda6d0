package chain

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/rlp"

	"github.com/tally-ledger/tally/crypto"
)

// Bounds on certificates.
const (
	// MaxValidators bounds the validator set, and so a certificate's signatures.
	MaxValidators = 64
	// MaxCertsPerBlock bounds the certificates one block carries.
	MaxCertsPerBlock = 64
)

// Certificate errors. A certificate failing VerifyCertificate wraps one of them.
var (
	ErrCertSignature = errors.New("certificate signature invalid")
	ErrCertSigner    = errors.New("certificate signed by a non-validator")
	ErrCertOrder     = errors.New("certificate signatures not in strictly increasing signer order")
	ErrCertQuorum    = errors.New("certificate lacks a quorum")
)

// voteDomain tags what validators sign, so a vote can never pass for a
// header seal or a transaction signature, or count on another chain.
var voteDomain = []byte("tally-commit-v1")

// Certificate is a commit certificate (DESIGN.md decision 10): a quorum of
// the validators in force at Height signed that they applied the block
// Hash at Height, and that after it the validator set hashes to Next
// (ValidatorSetHash of the set in force at Height+1). Next lets a verifier
// with only the genesis set follow validator changes: the certificate of
// the last block under the old set names the new one.
type Certificate struct {
	Height uint64
	Hash   common.Hash
	Next   common.Hash
	// Sigs are 65-byte signatures over VoteHash, ordered by strictly
	// increasing signer address (so signers are distinct and the encoding
	// canonical).
	Sigs [][]byte
}

// EmptyCertRoot is the certificate root of a block carrying none.
var EmptyCertRoot = CertRoot(nil)

// CertRoot is keccak256 of the RLP list of certificates (what header Extra commits to).
func CertRoot(certs []*Certificate) common.Hash {
	if certs == nil {
		certs = []*Certificate{}
	}
	enc, err := rlp.EncodeToBytes(certs)
	if err != nil {
		panic(fmt.Sprintf("encode certificates: %v", err)) // plain fields always encode
	}
	return crypto.Keccak256(enc)
}

// VoteHash is what a validator signs for a block it applied.
func VoteHash(chainID, height uint64, hash, next common.Hash) common.Hash {
	var buf [16]byte
	binary.BigEndian.PutUint64(buf[:8], chainID)
	binary.BigEndian.PutUint64(buf[8:], height)
	return crypto.Keccak256(voteDomain, buf[:], hash[:], next[:])
}

// ValidatorSetHash commits to a validator set: keccak256 of the RLP list of
// the addresses in increasing order. It sorts a copy; the input is not changed.
func ValidatorSetHash(set []common.Address) common.Hash {
	sorted := append([]common.Address(nil), set...)
	SortAddresses(sorted)
	enc, err := rlp.EncodeToBytes(sorted)
	if err != nil {
		panic(fmt.Sprintf("encode validator set: %v", err))
	}
	return crypto.Keccak256(enc)
}

// SortAddresses sorts addresses in increasing byte order.
func SortAddresses(as []common.Address) {
	slices.SortFunc(as, func(a, b common.Address) int { return bytes.Compare(a[:], b[:]) })
}

// Quorum is the number of signatures a set of n validators must give: a
// majority, as Raft's.
func Quorum(n int) int { return n/2 + 1 }

// Vote is one validator's signature for a block it applied.
type Vote struct {
	Height uint64
	Hash   common.Hash
	Next   common.Hash
	Sig    []byte
}

// SignVote signs the vote for block hash at height with next the hash of
// the validator set after it.
func SignVote(chainID, height uint64, hash, next common.Hash, key *crypto.PrivateKey) (*Vote, error) {
	sig, err := key.Sign(VoteHash(chainID, height, hash, next))
	if err != nil {
		return nil, fmt.Errorf("sign vote for block %d: %w", height, err)
	}
	return &Vote{Height: height, Hash: hash, Next: next, Sig: sig}, nil
}

// Signer recovers who signed v.
func (v *Vote) Signer(chainID uint64) (common.Address, error) {
	a, err := crypto.Recover(VoteHash(chainID, v.Height, v.Hash, v.Next), v.Sig)
	if err != nil {
		return common.Address{}, fmt.Errorf("%w: %v", ErrCertSignature, err)
	}
	return a, nil
}

// Signers recovers the signers of c in order, checking each signature and
// that the signers strictly increase.
func (c *Certificate) Signers(chainID uint64) ([]common.Address, error) {
	msg := VoteHash(chainID, c.Height, c.Hash, c.Next)
	out := make([]common.Address, len(c.Sigs))
	for i, sig := range c.Sigs {
		a, err := crypto.Recover(msg, sig)
		if err != nil {
			return nil, fmt.Errorf("%w: signature %d: %v", ErrCertSignature, i, err)
		}
		if i > 0 && bytes.Compare(a[:], out[i-1][:]) <= 0 {
			return nil, fmt.Errorf("%w: signature %d by %s", ErrCertOrder, i, a)
		}
		out[i] = a
	}
	return out, nil
}

// VerifyCertificate checks that every signature of c is valid and by a
// member of validators (the set in force at c.Height), and that there are
// at least Quorum(len(validators)) of them. Whether c.Hash is the block at
// c.Height, and c.Next the next set, is the caller's question.
func VerifyCertificate(c *Certificate, chainID uint64, validators []common.Address) error {
	signers, err := c.Signers(chainID)
	if err != nil {
		return fmt.Errorf("certificate for block %d: %w", c.Height, err)
	}
	set := make(map[common.Address]bool, len(validators))
	for _, v := range validators {
		set[v] = true
	}
	for _, s := range signers {
		if !set[s] {
			return fmt.Errorf("certificate for block %d: %w: %s", c.Height, ErrCertSigner, s)
		}
	}
	if q := Quorum(len(set)); len(signers) < q {
		return fmt.Errorf("certificate for block %d: %w: %d of %d validators signed, %d needed", c.Height, ErrCertQuorum, len(signers), len(set), q)
	}
	return nil
}

// NewCertificate assembles a certificate from votes for the same block
// (signers already recovered, one vote per signer).
func NewCertificate(height uint64, hash, next common.Hash, votes map[common.Address][]byte) *Certificate {
	signers := make([]common.Address, 0, len(votes))
	for a := range votes {
		signers = append(signers, a)
	}
	SortAddresses(signers)
	c := &Certificate{Height: height, Hash: hash, Next: next, Sigs: make([][]byte, len(signers))}
	for i, a := range signers {
		c.Sigs[i] = votes[a]
	}
	return c
}
