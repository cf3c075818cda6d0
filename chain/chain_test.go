package chain

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rlp"
	"github.com/holiman/uint256"

	"github.com/tally-ledger/tally/crypto"
)

var (
	testChainID = big.NewInt(1337)
	secpN, _    = new(big.Int).SetString("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", 16)
)

func testKey(t testing.TB) *crypto.PrivateKey {
	k, err := crypto.KeyFromMnemonic(crypto.TestMnemonic, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sign(t testing.TB, inner types.TxData, chainID *big.Int) *types.Transaction {
	t.Helper()
	tx, err := SignTx(types.NewTx(inner), chainID, testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return tx
}

func TestSenderAcceptsTypes(t *testing.T) {
	to := common.Address{1}
	key := testKey(t)
	for name, inner := range map[string]types.TxData{
		"legacy":  &types.LegacyTx{Nonce: 1, To: &to, Value: big.NewInt(1), Gas: 21000, GasPrice: new(big.Int)},
		"2930":    &types.AccessListTx{ChainID: testChainID, Nonce: 1, To: &to, Value: big.NewInt(1), Gas: 21000, GasPrice: new(big.Int)},
		"1559":    &types.DynamicFeeTx{ChainID: testChainID, Nonce: 1, To: &to, Value: big.NewInt(1), Gas: 21000},
		"1559fee": &types.DynamicFeeTx{ChainID: testChainID, Nonce: 1, To: &to, Value: big.NewInt(1), Gas: 21000, GasFeeCap: big.NewInt(5), GasTipCap: big.NewInt(1)},
	} {
		t.Run(name, func(t *testing.T) {
			tx := sign(t, inner, testChainID)
			raw, _ := tx.MarshalBinary()
			dec, err := DecodeTx(raw)
			if err != nil {
				t.Fatal(err)
			}
			from, err := Sender(NewSigner(testChainID), dec)
			if err != nil || from != key.Address() {
				t.Fatalf("sender %s, %v", from, err)
			}
		})
	}
}

func TestCheckTxRejects(t *testing.T) {
	to := common.Address{1}
	key := testKey(t)
	valid := sign(t, &types.DynamicFeeTx{ChainID: testChainID, To: &to, Value: big.NewInt(1), Gas: 21000}, testChainID)
	unprotected, _ := types.SignTx(types.NewTransaction(0, to, big.NewInt(1), 21000, new(big.Int), nil), types.HomesteadSigner{}, key.ECDSA())
	// High-S twin of a valid signature: s' = n - s, parity flipped.
	v, r, s := valid.RawSignatureValues()
	highS := types.NewTx(&types.DynamicFeeTx{ChainID: testChainID, To: &to, Value: big.NewInt(1), Gas: 21000,
		V: new(big.Int).Xor(v, big.NewInt(1)), R: r, S: new(big.Int).Sub(secpN, s)})
	blob := types.NewTx(&types.BlobTx{ChainID: uint256.NewInt(1337), To: to, Gas: 21000, V: uint256.NewInt(0), R: uint256.NewInt(1), S: uint256.NewInt(1)})
	setCode := types.NewTx(&types.SetCodeTx{ChainID: uint256.NewInt(1337), To: to, Gas: 21000, V: uint256.NewInt(0), R: uint256.NewInt(1), S: uint256.NewInt(1)})
	cases := map[string]struct {
		tx   *types.Transaction
		want error
	}{
		"unprotected legacy": {unprotected, ErrUnprotected},
		"wrong chain":        {sign(t, &types.DynamicFeeTx{ChainID: big.NewInt(1), To: &to, Gas: 21000}, big.NewInt(1)), ErrWrongChain},
		"wrong chain legacy": {sign(t, &types.LegacyTx{To: &to, Gas: 21000, GasPrice: new(big.Int)}, big.NewInt(5)), ErrWrongChain},
		"high S":             {highS, ErrHighS},
		"zero signature":     {types.NewTx(&types.DynamicFeeTx{ChainID: testChainID, To: &to, Gas: 21000, V: new(big.Int), R: new(big.Int), S: new(big.Int)}), ErrBadSignature},
		"blob":               {blob, ErrTxType},
		"set code":           {setCode, ErrTxType},
		"contract creation":  {sign(t, &types.DynamicFeeTx{ChainID: testChainID, Gas: 21000}, testChainID), ErrContractCreat},
		"r = n":              {types.NewTx(&types.DynamicFeeTx{ChainID: testChainID, To: &to, Gas: 21000, V: new(big.Int), R: secpN, S: big.NewInt(1)}), ErrBadSignature},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Sender(NewSigner(testChainID), c.tx)
			if !errors.Is(err, c.want) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
		})
	}
}

func TestDecodeTxRejects(t *testing.T) {
	for name, raw := range map[string][]byte{
		"empty":     {},
		"garbage":   {0x02, 0xff, 0x00},
		"bad type":  {0x7f, 0xc0},
		"too large": bytes.Repeat([]byte{1}, MaxTxSize+1),
	} {
		if _, err := DecodeTx(raw); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSealRoundTrip(t *testing.T) {
	key := testKey(t)
	h := NewHeader(common.Hash{1}, 7, 1_700_000_000_123, key.Address())
	if err := Seal(h, 1337, key); err != nil {
		t.Fatal(err)
	}
	if err := VerifySeal(h, 1337); err != nil {
		t.Fatal(err)
	}
	if ms, _ := TimeMs(h); ms != 1_700_000_000_123 || h.Time != 1_700_000_000 {
		t.Fatalf("time %d ms, %d s", ms, h.Time)
	}
	if err := VerifySeal(h, 1); !errors.Is(err, ErrNotProposer) {
		t.Fatalf("seal verified on another chain id: %v", err)
	}
	tampered := types.CopyHeader(h)
	tampered.Root = common.Hash{2}
	if err := VerifySeal(tampered, 1337); err == nil {
		t.Fatal("tampered header verified")
	}
	short := types.CopyHeader(h)
	short.Extra = short.Extra[:10]
	if err := VerifySeal(short, 1337); !errors.Is(err, ErrBadExtra) {
		t.Fatalf("short extra: %v", err)
	}
	other, _ := crypto.GenerateKey()
	if err := Seal(types.CopyHeader(h), 1337, other); err == nil {
		t.Fatal("sealed with a key that is not the coinbase")
	}
}

// TestHeaderHashIsEthereums checks the property ethclient relies on: the
// hash is keccak(rlp(header)) of the London header shape.
func TestHeaderHashIsEthereums(t *testing.T) {
	key := testKey(t)
	h := NewHeader(common.Hash{1}, 1, 1000, key.Address())
	Seal(h, 1337, key)
	enc, _ := rlp.EncodeToBytes(h)
	if crypto.Keccak256(enc) != h.Hash() {
		t.Fatal("hash is not keccak of the RLP header")
	}
	if h.BaseFee == nil || h.BaseFee.Sign() != 0 || h.WithdrawalsHash != nil {
		t.Fatal("header is not London-shaped with base fee 0")
	}
}

func TestBlockEncodeDecode(t *testing.T) {
	key := testKey(t)
	to := common.Address{3}
	txs := []*types.Transaction{
		sign(t, &types.LegacyTx{Nonce: 0, To: &to, Value: big.NewInt(1), Gas: 21000, GasPrice: new(big.Int)}, testChainID),
		sign(t, &types.DynamicFeeTx{ChainID: testChainID, Nonce: 1, To: &to, Value: big.NewInt(2), Gas: 21000}, testChainID),
	}
	h := NewHeader(common.Hash{1}, 1, 1000, key.Address())
	h.TxHash = TxRoot(txs)
	Seal(h, 1337, key)
	b := NewBlock(h, txs)
	enc, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	dec, err := DecodeBlock(enc)
	if err != nil {
		t.Fatal(err)
	}
	if dec.Hash() != b.Hash() || len(dec.Txs) != 2 || dec.Txs[1].Hash() != txs[1].Hash() {
		t.Fatal("round trip changed the block")
	}
	for name, data := range map[string][]byte{"empty": nil, "garbage": {0xc3, 1, 2, 3}, "truncated": enc[:len(enc)-3]} {
		if _, err := DecodeBlock(data); !errors.Is(err, ErrBlockMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestMerkleProofs(t *testing.T) {
	if MerkleRoot(nil) != types.EmptyRootHash {
		t.Fatal("empty root must be Ethereum's empty trie root")
	}
	for _, n := range []int{1, 2, 3, 4, 5, 7, 8, 9, 33} {
		leaves := make([][]byte, n)
		for i := range leaves {
			leaves[i] = []byte{byte(i), byte(n)}
		}
		root := MerkleRoot(leaves)
		for i := range leaves {
			path, err := MerkleProof(leaves, uint64(i))
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyMerkleProof(leaves[i], uint64(i), uint64(n), path, root); err != nil {
				t.Fatalf("n=%d i=%d: %v", n, i, err)
			}
			if err := VerifyMerkleProof([]byte("other"), uint64(i), uint64(n), path, root); !errors.Is(err, ErrProof) {
				t.Fatalf("n=%d i=%d: wrong leaf verified", n, i)
			}
		}
	}
	if _, err := MerkleProof([][]byte{{1}}, 1); err == nil {
		t.Fatal("proof out of range")
	}
}

func TestHistory(t *testing.T) {
	h := NewHistory()
	if h.Root() != (common.Hash{}) {
		t.Fatal("empty history root must be zero")
	}
	var leaves [][]byte
	for i := 0; i < 20; i++ {
		bh := crypto.Keccak256([]byte{byte(i)})
		before := h.Clone()
		h.Append(bh)
		leaves = append(leaves, bh[:])
		if h.Root() != MerkleRoot(leaves) {
			t.Fatalf("size %d: history root differs from the Merkle root of the block hashes", i+1)
		}
		if before.Size() != uint64(i) || (i > 0 && before.Root() != MerkleRoot(leaves[:i])) {
			t.Fatal("Append changed a clone")
		}
		enc, _ := h.MarshalBinary()
		var dec History
		if err := dec.UnmarshalBinary(enc); err != nil || dec.Root() != h.Root() {
			t.Fatalf("round trip: %v", err)
		}
	}
	var bad History
	if err := bad.UnmarshalBinary([]byte{0xc2, 0x05, 0xc0}); err == nil {
		t.Fatal("history of size 5 with no peaks accepted")
	}
}

func TestSenderCache(t *testing.T) {
	to := common.Address{4}
	c := NewSenderCache(NewSigner(testChainID), 16)
	var txs []*types.Transaction
	for i := 0; i < 40; i++ {
		txs = append(txs, sign(t, &types.DynamicFeeTx{ChainID: testChainID, Nonce: uint64(i), To: &to, Gas: 21000}, testChainID))
	}
	txs = append(txs, sign(t, &types.DynamicFeeTx{ChainID: big.NewInt(1), To: &to, Gas: 21000}, big.NewInt(1)))
	froms, errs := c.Senders(txs)
	for i := 0; i < 40; i++ {
		if froms[i] != testKey(t).Address() || errs[i] != nil {
			t.Fatalf("tx %d: %s %v", i, froms[i], errs[i])
		}
	}
	if !errors.Is(errs[40], ErrWrongChain) {
		t.Fatalf("wrong-chain tx: %v", errs[40])
	}
}

func FuzzDecodeTx(f *testing.F) {
	to := common.Address{1}
	tx := sign(f, &types.DynamicFeeTx{ChainID: testChainID, To: &to, Gas: 21000}, testChainID)
	raw, _ := tx.MarshalBinary()
	f.Add(raw)
	f.Add([]byte{0xc0})
	signer := NewSigner(testChainID)
	f.Fuzz(func(t *testing.T, data []byte) {
		tx, err := DecodeTx(data)
		if err != nil {
			return
		}
		Sender(signer, tx) // must not panic
	})
}

// canonicalBlock is a sealed block with a transaction of every accepted
// type and a certificate: the seed of the block decoding tests.
func canonicalBlock(t testing.TB) []byte {
	t.Helper()
	key := testKey(t)
	to := common.Address{1}
	txs := []*types.Transaction{
		sign(t, &types.LegacyTx{Nonce: 1, To: &to, Value: big.NewInt(1), Gas: 21000, GasPrice: new(big.Int)}, testChainID),
		sign(t, &types.AccessListTx{ChainID: testChainID, Nonce: 2, To: &to, Value: big.NewInt(0), Gas: 21000, GasPrice: new(big.Int),
			AccessList: types.AccessList{{Address: to, StorageKeys: []common.Hash{{2}}}}}, testChainID),
		sign(t, &types.DynamicFeeTx{ChainID: testChainID, Nonce: 3, To: &to, Value: big.NewInt(1 << 40), Gas: 60000, Data: []byte{0xa9, 0x05, 0x9c, 0xbb}}, testChainID),
	}
	h := NewHeader(common.Hash{7}, 9, 9000, key.Address())
	h.TxHash = TxRoot(txs)
	certs := []*Certificate{{Height: 8, Hash: common.Hash{8}, Next: common.Hash{9}, Sigs: [][]byte{bytes.Repeat([]byte{1}, 65)}}}
	if err := SetCertRoot(h, CertRoot(certs)); err != nil {
		t.Fatal(err)
	}
	if err := Seal(h, 1337, key); err != nil {
		t.Fatal(err)
	}
	b := NewBlock(h, txs)
	b.Certs = certs
	enc, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

// TestDecodeBlockCanonical: DecodeBlock accepts only the canonical
// encoding of a block, the bytes Encode gives for what it decoded. The
// state database stores a block's Raft entry as it came (store.ApplyBlock
// takes Block.Raw), so two encodings of one block would give two stored
// forms; each way RLP lets an encoder stray is refused here.
func TestDecodeBlockCanonical(t *testing.T) {
	enc := canonicalBlock(t)
	b, err := DecodeBlock(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Raw(), enc) {
		t.Fatal("Raw is not the decoded input")
	}
	// Each case rewrites the canonical encoding into another one RLP
	// readers could take for the same value.
	var dec blockRLP
	if err := rlp.DecodeBytes(enc, &dec); err != nil {
		t.Fatal(err)
	}
	list := func(items ...[]byte) []byte { // an RLP list in long form (≥ 56 bytes of content)
		var content []byte
		for _, it := range items {
			content = append(content, it...)
		}
		return wrapList(content)
	}
	hdr, _ := rlp.EncodeToBytes(dec.Header)
	txs, _ := rlp.EncodeToBytes(dec.Txs)
	certs, _ := rlp.EncodeToBytes(dec.Certs)
	if !bytes.Equal(list(hdr, txs, certs), enc) {
		t.Fatal("test's list encoding differs from rlp's")
	}
	for name, data := range map[string][]byte{
		"trailing byte":          append(append([]byte{}, enc...), 0x80),
		"extra list element":     list(hdr, txs, certs, []byte{0x80}),
		"long-form short string": list(rewriteField(hdr, 8, []byte{0x81, 9}), txs, certs),
		"integer with a zero":    list(rewriteField(hdr, 8, []byte{0x82, 0, 9}), txs, certs),
		"list size with a zero":  zeroPaddedListSize(enc),
		"short address":          list(rewriteField(hdr, 2, append([]byte{0x80 + 19}, dec.Header.Coinbase[:19]...)), txs, certs),
	} {
		t.Run(name, func(t *testing.T) {
			if bytes.Equal(data, enc) {
				t.Fatal("the case does not change the encoding")
			}
			b, err := DecodeBlock(data)
			if err == nil {
				re, _ := b.Encode()
				if !bytes.Equal(re, data) {
					t.Fatalf("a non-canonical encoding decodes (re-encodes to %d bytes, input %d)", len(re), len(data))
				}
			}
		})
	}
}

// wrapList wraps content in an RLP list header.
func wrapList(content []byte) []byte {
	var out []byte
	if len(content) < 56 {
		out = []byte{0xc0 + byte(len(content))}
	} else {
		size := new(big.Int).SetInt64(int64(len(content))).Bytes()
		out = append([]byte{0xf7 + byte(len(size))}, size...)
	}
	return append(out, content...)
}

// zeroPaddedListSize rewrites the outer list's length prefix with a
// leading zero byte (one more length byte, same value).
func zeroPaddedListSize(enc []byte) []byte {
	n := int(enc[0] - 0xf7)
	size := append([]byte{0}, enc[1:1+n]...)
	out := append([]byte{0xf7 + byte(len(size))}, size...)
	return append(out, enc[1+n:]...)
}

// rewriteField replaces item i of the encoded header with field: for the
// number (item 8, the one-byte integer 9 in canonicalBlock) another
// encoding of 9 that RLP forbids (0x81 0x09: a string for a byte below
// 0x80; 0x82 0x00 0x09: an integer with a leading zero); for the coinbase
// (item 2) an address one byte short, which a lax decoder pads.
func rewriteField(hdr []byte, i int, field []byte) []byte {
	var fields []rlp.RawValue
	if err := rlp.DecodeBytes(hdr, &fields); err != nil {
		panic(err)
	}
	if i == 8 && !bytes.Equal(fields[8], []byte{9}) {
		panic(fmt.Sprintf("number field %x", fields[8]))
	}
	fields[i] = field
	var content []byte
	for _, f := range fields {
		content = append(content, f...)
	}
	return wrapList(content)
}

// FuzzDecodeBlock: a block that decodes re-encodes to its input (the
// canonical form, what the state database stores), and nothing it decodes
// makes hashing, seal checking or time reading panic.
func FuzzDecodeBlock(f *testing.F) {
	key := testKey(f)
	h := NewHeader(common.Hash{}, 1, 1, key.Address())
	Seal(h, 1337, key)
	enc, _ := NewBlock(h, nil).Encode()
	f.Add(enc)
	f.Add(canonicalBlock(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBlock(data)
		if err != nil {
			return
		}
		re, err := b.Encode()
		if err != nil || !bytes.Equal(re, data) {
			t.Fatalf("decoded block re-encodes to %x (%v), input %x", re, err, data)
		}
		b.Hash()
		VerifySeal(b.Header, 1337)
		TimeMs(b.Header)
	})
}

func FuzzHistoryUnmarshal(f *testing.F) {
	h := NewHistory()
	h.Append(common.Hash{1})
	enc, _ := h.MarshalBinary()
	f.Add(enc)
	f.Fuzz(func(t *testing.T, data []byte) {
		var h History
		if h.UnmarshalBinary(data) == nil {
			h.Root()
			h.Append(common.Hash{})
		}
	})
}

func BenchmarkSenderRecover(b *testing.B) {
	to := common.Address{1}
	txs := make([]*types.Transaction, b.N)
	for i := range txs {
		txs[i] = sign(b, &types.DynamicFeeTx{ChainID: testChainID, Nonce: uint64(i), To: &to, Gas: 21000}, testChainID)
	}
	c := NewSenderCache(NewSigner(testChainID), b.N+1)
	b.ResetTimer()
	c.Senders(txs)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "recoveries/s")
}
