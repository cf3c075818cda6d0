package rpc

import (
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/mempool"
)

func TestSubmitErrorCodes(t *testing.T) {
	cases := []struct {
		err  error
		code int
		msg  string
	}{
		{fmt.Errorf("%w: x", chain.ErrTxMalformed), CodeInvalidParams, "invalid raw transaction"},
		{fmt.Errorf("%w: big", chain.ErrTxTooLarge), CodeInvalidParams, "invalid raw transaction"},
		{fmt.Errorf("%w: next nonce 3, tx nonce 1", mempool.ErrNonceTooLow), CodeServerError, "nonce too low: next nonce 3"},
		{fmt.Errorf("%w: balance 0", mempool.ErrInsufficientFunds), CodeServerError, "insufficient funds"},
		{fmt.Errorf("%w: 0xab", mempool.ErrKnown), CodeServerError, "already known"},
		{fmt.Errorf("%w: 0xab", mempool.ErrAlreadyApplied), CodeServerError, "already known"},
		{fmt.Errorf("%w: have 1", chain.ErrWrongChain), CodeServerError, "invalid chain id for signer"},
		{chain.ErrHighS, CodeServerError, "invalid sender"},
		{chain.ErrUnprotected, CodeServerError, "unprotected"},
	}
	for _, c := range cases {
		var rerr *Error
		if !errors.As(ClientError(c.err), &rerr) || rerr.Code != c.code || !strings.Contains(rerr.Msg, c.msg) {
			t.Errorf("%v → %+v, want code %d containing %q", c.err, rerr, c.code, c.msg)
		}
		if strings.Count(rerr.Msg, c.msg) > 1 {
			t.Errorf("%q repeats itself", rerr.Msg)
		}
	}
}

func TestTxJSONParity(t *testing.T) {
	key, _ := crypto.GenerateKey()
	to := common.Address{1}
	id := big.NewInt(1337)
	for i := 0; i < 8; i++ { // both parities occur
		for _, inner := range []types.TxData{
			&types.LegacyTx{Nonce: uint64(i), To: &to, Gas: 21000, GasPrice: new(big.Int)},
			&types.DynamicFeeTx{ChainID: id, Nonce: uint64(i), To: &to, Gas: 21000, GasTipCap: big.NewInt(2), GasFeeCap: big.NewInt(5)},
		} {
			tx, err := chain.SignTx(types.NewTx(inner), id, key)
			if err != nil {
				t.Fatal(err)
			}
			j := newTxJSON(tx, key.Address(), nil, 0)
			v, _, _ := tx.RawSignatureValues()
			want := v.Uint64()
			if tx.Type() == types.LegacyTxType {
				want -= 1337*2 + 35
			}
			if uint64(*j.YParity) != want || want > 1 {
				t.Fatalf("type %d: yParity %d, want %d", tx.Type(), *j.YParity, want)
			}
			if j.BlockHash != nil || j.AccessList == nil || j.ChainID == nil {
				t.Fatal("pending tx JSON fields")
			}
			if tx.Type() == types.DynamicFeeTxType && j.GasPrice.ToInt().Int64() != 2 {
				t.Fatalf("effective gas price %v, want the tip (base fee 0)", j.GasPrice)
			}
		}
	}
}
