package chain

import (
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rlp"
)

func accessList(entries, keys int) types.AccessList {
	al := make(types.AccessList, entries)
	for i := 0; i < keys; i++ {
		al[i%entries].StorageKeys = append(al[i%entries].StorageKeys, common.Hash{byte(i), byte(i >> 8)})
	}
	return al
}

// TestTxLimits: the largest transaction the other limits allow (a system
// call with MaxCalldata of calldata and a full access list) fits
// MaxTxSize; one address or one key more is refused, and so is a
// transaction over MaxTxSize, with go-ethereum's "oversized data".
func TestTxLimits(t *testing.T) {
	to := GovernanceAddress
	tx := func(al types.AccessList, data []byte) *types.Transaction {
		return types.NewTx(&types.AccessListTx{ChainID: testChainID, Nonce: ^uint64(0), GasPrice: new(big.Int).Lsh(big.NewInt(1), 255), Gas: ^uint64(0),
			To: &to, Value: new(big.Int).Lsh(big.NewInt(1), 255), Data: data, AccessList: al,
			V: big.NewInt(1), R: new(big.Int).Lsh(big.NewInt(1), 255), S: new(big.Int).Lsh(big.NewInt(1), 255)})
	}
	cases := []struct {
		name string
		tx   *types.Transaction
		want error
	}{
		{"largest admissible", tx(accessList(MaxAccessListEntries, MaxAccessListKeys), make([]byte, MaxCalldata)), nil},
		{"one address more", tx(accessList(MaxAccessListEntries+1, 1), nil), ErrAccessListTooLarge},
		{"one key more", tx(accessList(2, MaxAccessListKeys+1), nil), ErrAccessListTooLarge},
		{"over MaxTxSize", tx(nil, make([]byte, MaxTxSize)), ErrTxTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := CheckTxLimits(c.tx)
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("%d bytes: %v, want %v", c.tx.Size(), err, c.want)
			}
			if err := CheckTx(c.tx, testChainID); c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("CheckTx does not apply the limits: %v", err)
			}
		})
	}
	raw := make([]byte, MaxTxSize+1)
	if _, err := DecodeTx(raw); !errors.Is(err, ErrTxTooLarge) || !strings.HasPrefix(err.Error(), "oversized data: transaction size 32769, limit 32768") {
		t.Fatalf("DecodeTx of %d bytes: %v", len(raw), err)
	}
}

// TestBlockBudget: TxEncodedSize is a transaction's exact room in an
// encoded block, MaxHeaderSize bounds every header, and a block whose
// transactions fill TxBudget encodes within the limit.
func TestBlockBudget(t *testing.T) {
	key := testKey(t)
	to := common.Address{1}
	var txs []*types.Transaction
	sum := 0
	for i, inner := range []types.TxData{
		&types.LegacyTx{Nonce: 1, To: &to, Value: big.NewInt(1), Gas: 21000, GasPrice: new(big.Int)},
		&types.AccessListTx{ChainID: testChainID, Nonce: 2, To: &to, Gas: 21000, GasPrice: new(big.Int), AccessList: accessList(3, 7)},
		&types.DynamicFeeTx{ChainID: testChainID, Nonce: 3, To: &to, Gas: 21000, GasTipCap: new(big.Int), GasFeeCap: new(big.Int), Data: make([]byte, 60)},
	} {
		tx, err := SignTx(types.NewTx(inner), testChainID, key)
		if err != nil {
			t.Fatal(err)
		}
		one, _ := rlp.EncodeToBytes([]*types.Transaction{tx})
		content, _, err := rlp.SplitList(one)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := TxEncodedSize(tx), len(content); got != want {
			t.Errorf("tx %d (type %d): TxEncodedSize %d, encoded %d", i, tx.Type(), got, want)
		}
		txs, sum = append(txs, tx), sum+TxEncodedSize(tx)
	}
	certs := []*Certificate{{Height: 1, Sigs: [][]byte{make([]byte, 65), make([]byte, 65)}}}
	h := NewHeader(common.Hash{1}, 1<<40, 1<<50, key.Address())
	h.GasUsed = 1 << 39
	h.Extra = make([]byte, ExtraLen)
	b := NewBlock(h, txs)
	b.Certs = certs
	hdr, _ := rlp.EncodeToBytes(h)
	if len(hdr) > MaxHeaderSize {
		t.Fatalf("header of %d bytes over MaxHeaderSize %d", len(hdr), MaxHeaderSize)
	}
	limit := sum + 2*3 + MaxHeaderSize + 400
	budget := TxBudget(limit, certs)
	if budget < sum {
		t.Fatalf("budget %d for a %d-byte block limit, transactions take %d", budget, limit, sum)
	}
	if b.Size() > limit {
		t.Fatalf("block of %d bytes over its limit %d though its transactions (%d) fit the budget %d", b.Size(), limit, sum, budget)
	}
	if TxBudget(MaxBlockSize, nil) >= MaxBlockSize || TxBudget(100, certs) != 0 {
		t.Fatal("budget does not leave room for the header and certificates")
	}
	// Admission's bound makes every admitted transaction fit a block, even
	// one carrying the most certificates of the most signatures.
	full := make([]*Certificate, MaxCertsPerBlock)
	for i := range full {
		full[i] = &Certificate{Height: 1 << 62, Sigs: make([][]byte, MaxValidators)}
		for j := range full[i].Sigs {
			full[i].Sigs[j] = make([]byte, 65)
		}
	}
	if b := TxBudget(MaxBlockSize, full); b < 100*int(rlp.ListSize(MaxTxSize)) {
		t.Fatalf("a block with %d full certificates holds %d bytes of transactions: not 100 of MaxTxSize", MaxCertsPerBlock, b)
	}
}

// TestBlockLimits: DecodeBlock and CheckBlockLimits refuse a block over
// MaxBlockSize and certificates over their bounds.
func TestBlockLimits(t *testing.T) {
	key := testKey(t)
	h := NewHeader(common.Hash{1}, 1, 1000, key.Address())
	to := common.Address{1}
	big := types.NewTx(&types.LegacyTx{To: &to, Gas: 21000, GasPrice: new(big.Int), Value: new(big.Int), Data: make([]byte, MaxBlockSize), V: new(big.Int), R: new(big.Int), S: new(big.Int)})
	b := NewBlock(h, []*types.Transaction{big})
	if err := CheckBlockLimits(b); !errors.Is(err, ErrBlockTooLarge) {
		t.Fatalf("block of %d bytes: %v", b.Size(), err)
	}
	enc, _ := b.Encode()
	if _, err := DecodeBlock(enc); !errors.Is(err, ErrBlockMalformed) || !errors.Is(err, ErrBlockTooLarge) {
		t.Fatalf("DecodeBlock of %d bytes: %v", len(enc), err)
	}
	for name, certs := range map[string][]*Certificate{
		"too many certificates": make([]*Certificate, MaxCertsPerBlock+1),
		"too many signatures":   {{Height: 1, Sigs: make([][]byte, MaxValidators+1)}},
	} {
		for i := range certs {
			if certs[i] == nil {
				certs[i] = &Certificate{}
			}
		}
		b := NewBlock(NewHeader(common.Hash{1}, 1, 1000, key.Address()), nil)
		b.Certs = certs
		if err := CheckBlockLimits(b); !errors.Is(err, ErrTooManyCerts) {
			t.Errorf("%s: %v", name, err)
		}
		enc, _ := b.Encode()
		if _, err := DecodeBlock(enc); !errors.Is(err, ErrTooManyCerts) {
			t.Errorf("%s: DecodeBlock: %v", name, err)
		}
	}
}
