package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/holiman/uint256"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
)

// JSON-RPC error codes.
const (
	codeParse          = -32700
	codeInvalidRequest = -32600
	codeMethodNotFound = -32601
	codeInvalidParams  = -32602
	codeRefused        = -32000
	codeReverted       = 3
)

type rpcError struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

type rpcResponse struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
}

// postRaw posts body as JSON to url and returns the HTTP status and body.
func postRaw(ctx context.Context, url string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return resp.StatusCode, data, err
}

func call(method string, params ...any) []byte {
	b, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
	if err != nil {
		panic(err)
	}
	return b
}

// rawParams builds a request whose params are given verbatim.
func rawParams(method, params string) []byte {
	return []byte(`{"jsonrpc":"2.0","id":1,"method":"` + method + `","params":` + params + `}`)
}

func sendRaw(tx *types.Transaction) []byte {
	raw, err := tx.MarshalBinary()
	if err != nil {
		panic(err)
	}
	return call("eth_sendRawTransaction", hexutil.Encode(raw))
}

var secp256k1N = ethcrypto.S256().Params().N

func TestBadInputNeverChangesState(t *testing.T) {
	skipShort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	n := startNode(t, filepath.Join(t.TempDir(), "data"))
	ec := n.client()
	n.waitLeader(readyTimeout)
	chainID := big.NewInt(devChainID)
	london := types.LatestSignerForChainID(chainID)
	key0 := devKey(t, 0)
	from0 := ethcrypto.PubkeyToAddress(key0.PublicKey)
	sink := common.HexToAddress("0x00000000000000000000000000000000000e2e01")

	// One applied transfer, so there is a nonce to be too low and a
	// transaction to resend.
	applied := signTx(t, newTransfer(1, chainID, 0, sink, big.NewInt(1)), chainID, key0)
	if err := ec.SendTransaction(ctx, applied); err != nil {
		t.Fatalf("first transfer: %v", err)
	}
	if r, err := waitReceipt(ctx, ec, applied.Hash(), 30*time.Second); err != nil || r.Status != types.ReceiptStatusSuccessful {
		t.Fatalf("first transfer: receipt %+v, %v", r, err)
	}

	// The state every case must leave alone.
	broke, err := ethcrypto.GenerateKey() // a fresh key, funded with nothing
	if err != nil {
		t.Fatal(err)
	}
	brokeAddr := ethcrypto.PubkeyToAddress(broke.PublicKey)
	watched := []common.Address{sink, brokeAddr}
	for i := range uint32(genesis.DevAccounts) {
		watched = append(watched, ethcrypto.PubkeyToAddress(devKey(t, i).PublicKey))
	}
	before := make(map[common.Address]accountState)
	pendingBefore := make(map[common.Address]uint64)
	for _, a := range watched {
		bal, err := ec.BalanceAt(ctx, a, nil)
		if err != nil {
			t.Fatal(err)
		}
		nonce, err := ec.NonceAt(ctx, a, nil)
		if err != nil {
			t.Fatal(err)
		}
		before[a] = accountState{balance: bal, nonce: nonce}
		if pendingBefore[a], err = ec.PendingNonceAt(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	headBefore := headNumber(ctx, t, ec)
	rootBefore := rawBlock(ctx, t, ec, headBefore).StateRoot

	// Transactions that admission must refuse.
	to := sink
	wrongChain := signTx(t, newTransfer(1, big.NewInt(1), 1, to, big.NewInt(1)), big.NewInt(1), key0)
	wrongChainLegacy := signTx(t, newTransfer(0, big.NewInt(1), 1, to, big.NewInt(1)), big.NewInt(1), key0)
	unprotected, err := types.SignTx(newTransfer(0, nil, 1, to, big.NewInt(1)), types.HomesteadSigner{}, key0)
	if err != nil {
		t.Fatal(err)
	}
	// High S: the same signature with s' = n - s and the recovery bit
	// flipped still recovers the sender (malleability); low-S is required.
	valid1559 := signTx(t, newTransfer(1, chainID, 1, to, big.NewInt(2)), chainID, key0)
	v, r, s := valid1559.RawSignatureValues()
	highS1559 := types.NewTx(&types.DynamicFeeTx{ChainID: chainID, Nonce: 1, GasTipCap: new(big.Int), GasFeeCap: new(big.Int), Gas: 21000, To: &to, Value: big.NewInt(2),
		V: new(big.Int).Xor(v, big.NewInt(1)), R: r, S: new(big.Int).Sub(secp256k1N, s)})
	validLegacy := signTx(t, newTransfer(0, chainID, 1, to, big.NewInt(3)), chainID, key0)
	v, r, s = validLegacy.RawSignatureValues()
	v35 := new(big.Int).Add(new(big.Int).Mul(chainID, big.NewInt(2)), big.NewInt(35)) // legacy v = 2*id + 35 + parity
	flipped := new(big.Int).Sub(big.NewInt(1), new(big.Int).Sub(v, v35))
	highSLegacy := types.NewTx(&types.LegacyTx{Nonce: 1, GasPrice: new(big.Int), Gas: 21000, To: &to, Value: big.NewInt(3),
		V: new(big.Int).Add(v35, flipped), R: r, S: new(big.Int).Sub(secp256k1N, s)})
	// go-ethereum's signers refuse high S themselves, so check with raw
	// recovery that each malleated signature still names key0.
	for _, tx := range []*types.Transaction{highS1559, highSLegacy} {
		hv, hr, hs := tx.RawSignatureValues()
		parity := hv.Uint64()
		if tx.Type() == types.LegacyTxType {
			parity = flipped.Uint64()
		}
		sig := append(append(common.LeftPadBytes(hr.Bytes(), 32), common.LeftPadBytes(hs.Bytes(), 32)...), byte(parity))
		if pub, err := ethcrypto.SigToPub(london.Hash(tx).Bytes(), sig); err != nil || ethcrypto.PubkeyToAddress(*pub) != from0 {
			t.Fatalf("test bug: the high-S signature (type %d) should still recover %s: %v", tx.Type(), from0, err)
		}
	}
	withSig := func(v, r, s *big.Int) *types.Transaction {
		return types.NewTx(&types.DynamicFeeTx{ChainID: chainID, Nonce: 1, GasTipCap: new(big.Int), GasFeeCap: new(big.Int), Gas: 21000, To: &to, Value: big.NewInt(4),
			V: v, R: r, S: s})
	}
	// r=1, s=1 is a valid ECDSA signature of some unknown public key (x=1 is
	// on the curve): it recovers a random, unfunded address, exactly as in
	// go-ethereum, so admission refuses it for funds.
	badSig := withSig(big.NewInt(0), big.NewInt(1), big.NewInt(1))
	// Signatures that recover nothing.
	zeroR := withSig(big.NewInt(0), new(big.Int), big.NewInt(1))
	rIsN := withSig(big.NewInt(0), new(big.Int).Set(secp256k1N), big.NewInt(1))
	badParity := withSig(big.NewInt(2), r, s)
	var offCurve *types.Transaction
	for x := int64(2); offCurve == nil; x++ {
		cand := withSig(big.NewInt(0), big.NewInt(x), big.NewInt(1))
		sig := append(append(common.LeftPadBytes(big.NewInt(x).Bytes(), 32), common.LeftPadBytes([]byte{1}, 32)...), 0)
		if _, err := ethcrypto.Ecrecover(london.Hash(cand).Bytes(), sig); err != nil {
			offCurve = cand
			t.Logf("r=%d is not the x of a curve point: recovery fails", x)
		}
	}
	// Issue 20's halting transfer: an EIP-2930 transfer padded with a
	// ~125 KB access list (go-ethereum's pool would take up to 128 KiB),
	// and one just over Tally's access-list limit of 64 addresses.
	withAccessList := func(entries, keys int) *types.Transaction {
		al := make(types.AccessList, entries)
		for i := 0; i < keys; i++ {
			al[i%entries].StorageKeys = append(al[i%entries].StorageKeys, common.Hash{byte(i), byte(i >> 8)})
		}
		return signTx(t, types.NewTx(&types.AccessListTx{ChainID: chainID, Nonce: 1, GasPrice: new(big.Int), Gas: 21000, To: &to, Value: big.NewInt(6), AccessList: al}), chainID, key0)
	}
	paddedTransfer := withAccessList(200, 3600)
	if n := paddedTransfer.Size(); n < 120_000 || n > 128<<10 {
		t.Fatalf("test bug: padded transfer of %d bytes", n)
	}
	wideAccessList := withAccessList(65, 65)
	nonceTooLow := signTx(t, newTransfer(1, chainID, 0, to, big.NewInt(5)), chainID, key0)
	unfunded := signTx(t, newTransfer(1, chainID, 0, to, big.NewInt(1)), chainID, broke)
	blob, err := types.SignTx(types.NewTx(&types.BlobTx{
		ChainID: uint256.NewInt(devChainID), Nonce: 1, GasTipCap: new(uint256.Int), GasFeeCap: new(uint256.Int), Gas: 21000,
		To: to, Value: uint256.NewInt(1), BlobFeeCap: new(uint256.Int),
		BlobHashes: []common.Hash{common.HexToHash("0x01" + strings.Repeat("00", 31))},
	}), london, key0)
	if err != nil {
		t.Fatal(err)
	}
	setCode, err := types.SignTx(types.NewTx(&types.SetCodeTx{
		ChainID: uint256.NewInt(devChainID), Nonce: 1, GasTipCap: new(uint256.Int), GasFeeCap: new(uint256.Int), Gas: 21000,
		To: to, Value: uint256.NewInt(1),
		AuthList: []types.SetCodeAuthorization{{ChainID: *uint256.NewInt(devChainID), Address: to, Nonce: 2}},
	}), london, key0)
	if err != nil {
		t.Fatal(err)
	}
	create := signTx(t, types.NewTx(&types.DynamicFeeTx{ChainID: chainID, Nonce: 1, GasTipCap: new(big.Int), GasFeeCap: new(big.Int), Gas: 53000, Value: big.NewInt(1), Data: []byte{0x60, 0x00}}), chainID, key0)
	withData := signTx(t, types.NewTx(&types.DynamicFeeTx{ChainID: chainID, Nonce: 1, GasTipCap: new(big.Int), GasFeeCap: new(big.Int), Gas: 30000, To: &to, Value: big.NewInt(1), Data: []byte{1, 2, 3, 4}}), chainID, key0)

	overBalance := signTx(t, newTransfer(1, chainID, 0, to, new(big.Int).Add(genesis.DevBalance, big.NewInt(1))), chainID, devKey(t, 1))
	hkd := chain.AssetAddress(1)
	sysCall := func(to common.Address, gas uint64, value int64, data []byte) *types.Transaction {
		return signTx(t, types.NewTx(&types.DynamicFeeTx{ChainID: chainID, Nonce: 1, GasTipCap: new(big.Int), GasFeeCap: new(big.Int), Gas: gas, To: &to, Value: big.NewInt(value), Data: data}), chainID, key0)
	}
	hkdTransfer, err := chain.AssetABI.Pack("transfer", sink, big.NewInt(1))
	if err != nil {
		t.Fatal(err)
	}
	unknownOp := sysCall(hkd, chain.GasPerSystemCall, 0, []byte{0xde, 0xad, 0xbe, 0xef})
	truncatedOp := sysCall(hkd, chain.GasPerSystemCall, 0, hkdTransfer[:36])
	valueToSystem := sysCall(hkd, chain.GasPerSystemCall, 1, hkdTransfer)
	lowGasCall := sysCall(hkd, chain.GasPerSystemCall-1, 0, hkdTransfer)
	noSuchAsset := sysCall(chain.AssetAddress(77), chain.GasPerSystemCall, 0, hkdTransfer)

	refusedTxs := []*types.Transaction{wrongChain, wrongChainLegacy, unprotected, highS1559, highSLegacy, badSig, zeroR, rIsN, badParity, offCurve, nonceTooLow, unfunded, overBalance,
		blob, setCode, create, withData, unknownOp, truncatedOp, valueToSystem, lowGasCall, noSuchAsset}

	oversized := append(append([]byte(`{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":["`), bytes.Repeat([]byte("a"), 6<<20)...), []byte(`"]}`)...)
	var batch bytes.Buffer
	batch.WriteByte('[')
	for i := range 2001 {
		if i > 0 {
			batch.WriteByte(',')
		}
		fmt.Fprintf(&batch, `{"jsonrpc":"2.0","id":%d,"method":"eth_blockNumber","params":[]}`, i+1)
	}
	batch.WriteByte(']')

	addr0 := `"` + from0.Hex() + `"`
	cases := []struct {
		name     string
		body     []byte
		code     int
		msg      string // substring of the error message
		batch    bool   // the answer is a batch holding one error item
		httpCode int    // expected HTTP status, 0 for 200
	}{
		{name: "malformed JSON", body: []byte(`{"jsonrpc":"2.0","id":1,"method":`), code: codeParse, msg: "parse error"},
		{name: "malformed JSON in a batch", body: []byte(`[{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber"},`), code: codeParse, msg: "parse error"},
		{name: "number body", body: []byte(`42`), code: codeInvalidRequest, msg: "invalid request"},
		{name: "string body", body: []byte(`"eth_blockNumber"`), code: codeInvalidRequest, msg: "invalid request"},
		{name: "null body", body: []byte(`null`), code: codeInvalidRequest, msg: "invalid request"},
		{name: "empty batch", body: []byte(`[]`), code: codeInvalidRequest, msg: "empty batch"},
		{name: "unknown method", body: call("eth_mine"), code: codeMethodNotFound, msg: "the method eth_mine does not exist"},
		{name: "unknown namespace", body: call("debug_setHead", "0x0"), code: codeMethodNotFound, msg: "the method debug_setHead does not exist"},
		{name: "getBalance address not a string", body: rawParams("eth_getBalance", `[1,"latest"]`), code: codeInvalidParams, msg: "invalid argument 0"},
		{name: "getBalance short address", body: rawParams("eth_getBalance", `["0x1234","latest"]`), code: codeInvalidParams, msg: "invalid argument 0"},
		{name: "getBalance block not a tag", body: rawParams("eth_getBalance", `[`+addr0+`,true]`), code: codeInvalidParams, msg: "invalid argument 1"},
		{name: "getBalance params an object", body: rawParams("eth_getBalance", `{"address":`+addr0+`}`), code: codeInvalidParams, msg: "non-array args"},
		{name: "getBalance no params", body: rawParams("eth_getBalance", `[]`), code: codeInvalidParams, msg: "missing value for required argument 0"},
		{name: "getTransactionReason short hash", body: rawParams("tally_getTransactionReason", `["0x1234"]`), code: codeInvalidParams, msg: "invalid argument 0: hex string has length 4, want 64 for common.Hash"},
		{name: "getTransactionReason not hex", body: rawParams("tally_getTransactionReason", `["ORDER-1234"]`), code: codeInvalidParams, msg: "invalid argument 0"},
		{name: "getTransactionReason no params", body: rawParams("tally_getTransactionReason", `[]`), code: codeInvalidParams, msg: "missing value for required argument 0"},
		{name: "getBalance too many params", body: rawParams("eth_getBalance", `[`+addr0+`,"latest",3]`), code: codeInvalidParams, msg: "too many arguments"},
		{name: "getBlockByNumber over 64 bits", body: rawParams("eth_getBlockByNumber", `["0x10000000000000000",false]`), code: codeInvalidParams, msg: "hex number > 64 bits"},
		{name: "sendRawTransaction malformed hex", body: rawParams("eth_sendRawTransaction", `["0xzz"]`), code: codeInvalidParams, msg: "invalid hex string"},
		{name: "sendRawTransaction odd hex", body: rawParams("eth_sendRawTransaction", `["0xf86"]`), code: codeInvalidParams, msg: "odd length"},
		{name: "sendRawTransaction empty", body: rawParams("eth_sendRawTransaction", `["0x"]`), code: codeInvalidParams, msg: "invalid raw transaction"},
		{name: "sendRawTransaction malformed RLP", body: rawParams("eth_sendRawTransaction", `["0xf8"]`), code: codeInvalidParams, msg: "invalid raw transaction: malformed transaction"},
		{name: "sendRawTransaction RLP garbage", body: rawParams("eth_sendRawTransaction", `["0xc3010203"]`), code: codeInvalidParams, msg: "invalid raw transaction: malformed transaction"},
		{name: "sendRawTransaction wrong chain id (1559)", body: sendRaw(wrongChain), code: codeRefused, msg: "invalid chain id for signer"},
		{name: "sendRawTransaction wrong chain id (legacy)", body: sendRaw(wrongChainLegacy), code: codeRefused, msg: "invalid chain id for signer"},
		{name: "sendRawTransaction unprotected legacy", body: sendRaw(unprotected), code: codeRefused, msg: "unprotected legacy transaction"},
		{name: "sendRawTransaction high S (1559)", body: sendRaw(highS1559), code: codeRefused, msg: "not low-S"},
		{name: "sendRawTransaction high S (legacy)", body: sendRaw(highSLegacy), code: codeRefused, msg: "not low-S"},
		{name: "sendRawTransaction signature r=1 s=1 (recovers an unknown tier-0 address)", body: sendRaw(badSig), code: codeRefused, msg: "not KYC-verified"},
		{name: "sendRawTransaction signature r=0", body: sendRaw(zeroR), code: codeRefused, msg: "invalid sender: invalid transaction signature"},
		{name: "sendRawTransaction signature r=n", body: sendRaw(rIsN), code: codeRefused, msg: "invalid sender: invalid transaction signature"},
		{name: "sendRawTransaction signature r off the curve", body: sendRaw(offCurve), code: codeRefused, msg: "invalid sender: invalid transaction signature"},
		{name: "sendRawTransaction signature yParity 2", body: sendRaw(badParity), code: codeRefused, msg: "invalid sender: invalid transaction signature"},
		{name: "sendRawTransaction transfer with a ~125 KB access list", body: sendRaw(paddedTransfer), code: codeRefused, msg: "oversized data: transaction size"},
		{name: "sendRawTransaction access list of 65 addresses", body: sendRaw(wideAccessList), code: codeRefused, msg: "access list too large: 65 addresses, limit 64"},
		{name: "sendRawTransaction nonce too low", body: sendRaw(nonceTooLow), code: codeRefused, msg: "nonce too low"},
		{name: "sendRawTransaction applied tx again", body: sendRaw(applied), code: codeRefused, msg: "already known"},
		{name: "sendRawTransaction from a tier-0 account", body: sendRaw(unfunded), code: codeRefused, msg: "sender is not KYC-verified: tier 0 may only receive"},
		{name: "sendRawTransaction value above balance", body: sendRaw(overBalance), code: codeRefused, msg: "insufficient funds"},
		{name: "sendRawTransaction unknown system operation", body: sendRaw(unknownOp), code: codeRefused, msg: "invalid system call: unknown operation selector 0xdeadbeef"},
		{name: "sendRawTransaction truncated system call", body: sendRaw(truncatedOp), code: codeRefused, msg: "invalid system call: malformed calldata for transfer(address,uint256)"},
		{name: "sendRawTransaction value to a system address", body: sendRaw(valueToSystem), code: codeRefused, msg: "system operations take no value"},
		{name: "sendRawTransaction system call gas too low", body: sendRaw(lowGasCall), code: codeRefused, msg: "intrinsic gas too low"},
		{name: "sendRawTransaction call to a missing asset", body: sendRaw(noSuchAsset), code: codeRefused, msg: "no system contract at"},
		{name: "eth_call reverts with the reason", body: call("eth_call", map[string]any{"from": brokeAddr, "to": hkd, "data": hexutil.Encode(hkdTransfer)}, "latest"), code: codeReverted, msg: "execution reverted: account " + brokeAddr.Hex() + " is not KYC-verified"},
		{name: "eth_estimateGas reverts with the reason", body: call("eth_estimateGas", map[string]any{"from": from0, "to": hkd, "data": hexutil.Encode(hkdTransfer[:4])}), code: codeReverted, msg: "execution reverted: malformed calldata"},
		{name: "sendRawTransaction blob tx (type 3)", body: sendRaw(blob), code: codeRefused, msg: "transaction type not supported"},
		{name: "sendRawTransaction set-code tx (type 4)", body: sendRaw(setCode), code: codeRefused, msg: "transaction type not supported"},
		{name: "sendRawTransaction contract creation", body: sendRaw(create), code: codeRefused, msg: "contract creation is not supported"},
		{name: "sendRawTransaction calldata to a plain account", body: sendRaw(withData), code: codeRefused, msg: "calldata is only accepted by system addresses"},
		{name: "oversized body (6 MB)", body: oversized, code: codeInvalidRequest, msg: "request body too large", httpCode: http.StatusRequestEntityTooLarge},
		{name: "batch of 2001 items", body: batch.Bytes(), code: codeInvalidRequest, msg: "batch too large", batch: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body, err := postRaw(ctx, n.url, tc.body)
			if err != nil {
				t.Fatalf("POST: %v", err)
			}
			shown := string(body)
			if len(shown) > 300 {
				shown = shown[:300] + "..."
			}
			t.Logf("HTTP %d: %s", status, strings.TrimSpace(shown))
			wantStatus := tc.httpCode
			if wantStatus == 0 {
				wantStatus = http.StatusOK
			}
			if status != wantStatus {
				t.Errorf("HTTP status %d, want %d", status, wantStatus)
			}
			var resp rpcResponse
			if tc.batch {
				var items []rpcResponse
				if err := json.Unmarshal(body, &items); err != nil {
					t.Fatalf("answer is not a JSON-RPC batch: %v", err)
				}
				if len(items) != 1 {
					t.Fatalf("batch answer has %d items, want 1 error item", len(items))
				}
				resp = items[0]
			} else if err := json.Unmarshal(body, &resp); err != nil {
				t.Fatalf("answer is not a JSON-RPC response object: %v", err)
			}
			if resp.JSONRPC != "2.0" {
				t.Errorf("jsonrpc %q, want \"2.0\"", resp.JSONRPC)
			}
			if resp.Error == nil {
				t.Fatalf("no error object (result %s)", resp.Result)
			}
			if resp.Result != nil {
				t.Errorf("both error and result (%s)", resp.Result)
			}
			if resp.Error.Code != tc.code {
				t.Errorf("error code %d, want %d (message %q)", resp.Error.Code, tc.code, resp.Error.Message)
			}
			if !strings.Contains(resp.Error.Message, tc.msg) {
				t.Errorf("error message %q does not contain %q", resp.Error.Message, tc.msg)
			}
		})
	}

	// The node is up, nothing was admitted, and the state did not move. Wait
	// for a block built after the last case (a heartbeat arrives within a
	// second), so that anything admitted by mistake would be in it.
	headAfter := headNumber(ctx, t, ec)
	for wait := time.Now(); ; {
		if h := headNumber(ctx, t, ec); h > headAfter {
			headAfter = h
			break
		}
		if time.Since(wait) > 15*time.Second {
			t.Fatalf("no block after the bad input within 15 s (head %d)", headAfter)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for h := headBefore; h <= headAfter; h++ {
		b := rawBlock(ctx, t, ec, h)
		if h > headBefore && len(b.TxHashes) != 0 {
			t.Errorf("block %d (after the bad input) holds %d transactions: %v", h, len(b.TxHashes), b.TxHashes)
		}
		if b.StateRoot != rootBefore {
			t.Errorf("block %d: state root %s, was %s before the bad input", h, b.StateRoot, rootBefore)
		}
	}
	if n.exited() {
		t.Fatalf("the node exited during the bad input: %v", n.waitErr)
	}
	t.Logf("head %d before the bad input, %d after (heartbeat blocks only)", headBefore, headAfter)
	checkAccounts(ctx, t, ec, before, "after the bad input")
	for a, want := range pendingBefore {
		if got, err := ec.PendingNonceAt(ctx, a); err != nil || got != want {
			t.Errorf("pending nonce of %s: %d (%v), was %d: something was admitted", a, got, err, want)
		}
	}
	for _, tx := range refusedTxs {
		if got, _, err := ec.TransactionByHash(ctx, tx.Hash()); err == nil {
			t.Errorf("refused tx %s (type %d) is known to the node: %v", tx.Hash(), tx.Type(), got.Hash())
		}
	}
}
