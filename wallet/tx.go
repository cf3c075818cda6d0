package wallet

import (
	"errors"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
)

// SignTransfer builds and signs a transfer of value base units of the native
// asset to to, with no network access, so load tools can sign ahead of time
// and on all cores. legacy selects an EIP-155 (type 0) transaction with gas
// price 0, for clients that predate EIP-1559; otherwise it is an EIP-1559
// (type 2) transaction with both fee caps 0. Gas is chain.GasPerTransfer:
// Tally charges no fees, but client libraries expect a transfer's gas.
func SignTransfer(key *crypto.PrivateKey, chainID *big.Int, nonce uint64, to common.Address, value *big.Int, legacy bool) (*types.Transaction, error) {
	if key == nil {
		return nil, errors.New("sign transfer: nil key")
	}
	if chainID == nil || chainID.Sign() <= 0 {
		return nil, fmt.Errorf("sign transfer: chain id must be positive, got %v", chainID)
	}
	if value == nil || value.Sign() < 0 {
		return nil, fmt.Errorf("sign transfer: value must be non-negative, got %v", value)
	}
	var inner types.TxData
	if legacy {
		inner = &types.LegacyTx{
			Nonce:    nonce,
			GasPrice: new(big.Int),
			Gas:      chain.GasPerTransfer,
			To:       &to,
			Value:    new(big.Int).Set(value),
		}
	} else {
		inner = &types.DynamicFeeTx{
			ChainID:   new(big.Int).Set(chainID),
			Nonce:     nonce,
			GasTipCap: new(big.Int),
			GasFeeCap: new(big.Int),
			Gas:       chain.GasPerTransfer,
			To:        &to,
			Value:     new(big.Int).Set(value),
		}
	}
	tx, err := chain.SignTx(types.NewTx(inner), chainID, key)
	if err != nil {
		return nil, fmt.Errorf("sign transfer: %w", err)
	}
	return tx, nil
}
