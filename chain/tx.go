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
	ErrTxMalformed   = errors.New("malformed transaction")
	ErrTxType        = errors.New("transaction type not supported")
	ErrUnprotected   = errors.New("unprotected legacy transaction (EIP-155 chain id required)")
	ErrWrongChain    = errors.New("wrong chain id")
	ErrHighS         = errors.New("signature S value is not low-S")
	ErrBadSignature  = errors.New("invalid transaction signature")
	ErrContractCreat = errors.New("contract creation is not supported")
)

// GasPerTransfer is what a receipt reports as gas used for a transfer. Tally
// has no fees; gas fields are accepted and ignored, and this constant only
// keeps client libraries that read gasUsed content.
const GasPerTransfer = 21000

// BlockGasLimit is the gasLimit every header reports; a block's gas used
// may not exceed it (CheckHeaderShape). Gas is not charged: every
// transaction uses a fixed amount, so blocks are bounded by MaxBlockSize
// long before they reach this.
const BlockGasLimit = 1 << 40

// NewSigner returns the signer for every transaction type Tally accepts.
func NewSigner(chainID *big.Int) types.Signer {
	return types.NewLondonSigner(chainID)
}

// DecodeTx decodes a transaction in its canonical (EIP-2718) encoding, as
// eth_sendRawTransaction receives it.
func DecodeTx(raw []byte) (*types.Transaction, error) {
	if len(raw) > MaxTxSize {
		return nil, fmt.Errorf("%w: transaction size %d, limit %d", ErrTxTooLarge, len(raw), MaxTxSize)
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
// signature is even recovered: type, chain id, protection, low-S, no
// contract creation and the limits (CheckTxLimits). go-ethereum's London
// signer would accept unprotected legacy transactions, so they are refused
// here explicitly. Every sender recovery (Sender, SenderCache) calls it, so
// admission, the FSM and the audit apply the same rules.
func CheckTx(tx *types.Transaction, chainID *big.Int) error {
	if err := CheckTxLimits(tx); err != nil {
		return err
	}
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
