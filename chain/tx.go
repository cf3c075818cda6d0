package chain

import (
	"errors"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/crypto"
)

// Admission errors for transactions. They are returned wrapped; match with errors.Is.
var (
	ErrTxTooLarge    = errors.New("transaction too large")
	ErrTxMalformed   = errors.New("malformed transaction")
	ErrTxType        = errors.New("transaction type not supported")
	ErrUnprotected   = errors.New("unprotected legacy transaction (EIP-155 chain id required)")
	ErrWrongChain    = errors.New("wrong chain id")
	ErrHighS         = errors.New("signature S value is not low-S")
	ErrBadSignature  = errors.New("invalid transaction signature")
	ErrContractCreat = errors.New("contract creation is not supported")
)

// MaxTxSize bounds one encoded transaction; a transfer is ~110 bytes and the
// largest system call (a capped batch transfer) stays far below this.
const MaxTxSize = 128 * 1024

// GasPerTransfer is what a receipt reports as gas used for a transfer. Tally
// has no fees; gas fields are accepted and ignored, and this constant only
// keeps client libraries that read gasUsed content.
const GasPerTransfer = 21000

// BlockGasLimit is the gasLimit every header reports. It is not enforced
// (blocks are bounded by transaction count) but must exceed any block's
// reported gasUsed.
const BlockGasLimit = 1 << 40

// NewSigner returns the signer for every transaction type Tally accepts.
func NewSigner(chainID *big.Int) types.Signer {
	return types.NewLondonSigner(chainID)
}

// DecodeTx decodes a transaction in its canonical (EIP-2718) encoding, as
// eth_sendRawTransaction receives it.
func DecodeTx(raw []byte) (*types.Transaction, error) {
	if len(raw) > MaxTxSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTxTooLarge, len(raw), MaxTxSize)
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrTxMalformed)
	}
	tx := new(types.Transaction)
	if err := tx.UnmarshalBinary(raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTxMalformed, err)
	}
	return tx, nil
}

var secp256k1HalfN = new(big.Int).Rsh(new(big.Int).SetBytes(common.FromHex("0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141")), 1)

// CheckTx applies the static rules every transaction must pass before its
// signature is even recovered: type, chain id, protection, low-S and no
// contract creation. go-ethereum's London signer would accept unprotected
// legacy transactions, so they are refused here explicitly.
func CheckTx(tx *types.Transaction, chainID *big.Int) error {
	switch tx.Type() {
	case types.LegacyTxType:
		if !tx.Protected() {
			return ErrUnprotected
		}
	case types.AccessListTxType, types.DynamicFeeTxType:
	default:
		return fmt.Errorf("%w: type %d", ErrTxType, tx.Type())
	}
	if got := tx.ChainId(); got == nil || got.Cmp(chainID) != 0 {
		return fmt.Errorf("%w: have %v, want %v", ErrWrongChain, got, chainID)
	}
	v, r, s := tx.RawSignatureValues()
	if r == nil || s == nil || v == nil || r.Sign() <= 0 || s.Sign() <= 0 {
		return ErrBadSignature
	}
	if s.Cmp(secp256k1HalfN) > 0 {
		return ErrHighS
	}
	if tx.To() == nil {
		return ErrContractCreat
	}
	return nil
}

// Sender checks tx with CheckTx and recovers its sender through go-ethereum's
// signer, which uses libsecp256k1 when built with cgo.
func Sender(signer types.Signer, tx *types.Transaction) (common.Address, error) {
	if err := CheckTx(tx, signer.ChainID()); err != nil {
		return common.Address{}, err
	}
	from, err := types.Sender(signer, tx)
	if err != nil {
		return common.Address{}, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return from, nil
}

// SignTx signs tx for chainID with key (decred secp256k1, always low-S).
func SignTx(tx *types.Transaction, chainID *big.Int, key *crypto.PrivateKey) (*types.Transaction, error) {
	signer := NewSigner(chainID)
	sig, err := key.Sign(signer.Hash(tx))
	if err != nil {
		return nil, fmt.Errorf("sign tx: %w", err)
	}
	return tx.WithSignature(signer, sig)
}
