package wallet

import (
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
)

func TestSignTransfer(t *testing.T) {
	chainID := big.NewInt(1337)
	key := testKey(t, 0)
	to := testKey(t, 5).Address()
	value := bigInt("2500000000000000000")
	tests := []struct {
		name     string
		legacy   bool
		nonce    uint64
		wantType uint8
	}{
		{"eip1559", false, 0, types.DynamicFeeTxType},
		{"legacy", true, 7, types.LegacyTxType},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tx, err := SignTransfer(key, chainID, tc.nonce, to, value, tc.legacy)
			if err != nil {
				t.Fatal(err)
			}
			if tx.Type() != tc.wantType {
				t.Fatalf("type %d, want %d", tx.Type(), tc.wantType)
			}
			if err := chain.CheckTx(tx, chainID); err != nil {
				t.Fatalf("CheckTx: %v", err)
			}
			// Through the wire encoding, as the node sees it.
			raw, err := tx.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			dec, err := chain.DecodeTx(raw)
			if err != nil {
				t.Fatal(err)
			}
			from, err := chain.Sender(chain.NewSigner(chainID), dec)
			if err != nil {
				t.Fatalf("Sender: %v", err)
			}
			if from != key.Address() {
				t.Fatalf("sender %s, want %s", from, key.Address())
			}
			if *dec.To() != to || dec.Value().Cmp(value) != 0 || dec.Nonce() != tc.nonce {
				t.Fatalf("to %s value %v nonce %d; want %s %v %d", dec.To(), dec.Value(), dec.Nonce(), to, value, tc.nonce)
			}
			if dec.Gas() != chain.GasPerTransfer || dec.GasPrice().Sign() != 0 || dec.GasFeeCap().Sign() != 0 || dec.GasTipCap().Sign() != 0 {
				t.Fatalf("gas %d price %v caps %v/%v; want 21000 and zero fees", dec.Gas(), dec.GasPrice(), dec.GasFeeCap(), dec.GasTipCap())
			}
			if dec.ChainId().Cmp(chainID) != 0 {
				t.Fatalf("chain id %v", dec.ChainId())
			}
			// Another chain must not accept it.
			if err := chain.CheckTx(dec, big.NewInt(1)); err == nil {
				t.Fatal("CheckTx accepted the tx for chain 1")
			}
		})
	}
}

func TestSignTransferRejects(t *testing.T) {
	key := testKey(t, 0)
	to := key.Address()
	tests := []struct {
		name    string
		key     *crypto.PrivateKey
		chainID *big.Int
		value   *big.Int
	}{
		{"nil key", nil, big.NewInt(1337), big.NewInt(1)},
		{"nil chain id", key, nil, big.NewInt(1)},
		{"zero chain id", key, big.NewInt(0), big.NewInt(1)},
		{"nil value", key, big.NewInt(1337), nil},
		{"negative value", key, big.NewInt(1337), big.NewInt(-1)},
	}
	for _, tc := range tests {
		if _, err := SignTransfer(tc.key, tc.chainID, 0, to, tc.value, false); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}
