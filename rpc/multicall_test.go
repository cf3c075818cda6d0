package rpc_test

import (
	"encoding/hex"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/internal/chaintest"
	"github.com/tally-ledger/tally/rpc"
	"github.com/tally-ledger/tally/rpc/rpctest"
)

// Multicall3's structs as go-ethereum's abi packs and unpacks them.
type call struct {
	Target   common.Address
	CallData []byte
}

type call3 struct {
	Target       common.Address
	AllowFailure bool
	CallData     []byte
}

type call3Value struct {
	Target       common.Address
	AllowFailure bool
	Value        *big.Int
	CallData     []byte
}

type result struct {
	Success    bool
	ReturnData []byte
}

var (
	mcPayee  = common.HexToAddress("0x00000000000000000000000000000000000bee05")
	cnyAddr  = chain.AssetAddress(0) // the native asset's facade (CNY, 18 decimals)
	hkdAddr  = chain.AssetAddress(1) // HKD, 2 decimals
	noSuchFA = chain.AssetAddress(9) // a facade of an asset that does not exist
)

// viemAggregate3 is the calldata viem's multicall (and ethers'
// Contract.aggregate3) sends for [CNY.balanceOf(payee), HKD.decimals(),
// CNY.transfer(payee, 1) with allowFailure]: ABI-encoded by hand, not by
// the encoder the node decodes with.
const viemAggregate3 = "82ad56cb" +
	"0000000000000000000000000000000000000000000000000000000000000020" +
	"0000000000000000000000000000000000000000000000000000000000000003" +
	"0000000000000000000000000000000000000000000000000000000000000060" +
	"0000000000000000000000000000000000000000000000000000000000000120" +
	"00000000000000000000000000000000000000000000000000000000000001c0" +
	"0000000000000000000000000000000000000000000000000000000000001000" +
	"0000000000000000000000000000000000000000000000000000000000000000" +
	"0000000000000000000000000000000000000000000000000000000000000060" +
	"0000000000000000000000000000000000000000000000000000000000000024" +
	"70a0823100000000000000000000000000000000000000000000000000000000000bee05" +
	"00000000000000000000000000000000000000000000000000000000" +
	"0000000000000000000000000000000000000000000000000000000000001001" +
	"0000000000000000000000000000000000000000000000000000000000000000" +
	"0000000000000000000000000000000000000000000000000000000000000060" +
	"0000000000000000000000000000000000000000000000000000000000000004" +
	"313ce56700000000000000000000000000000000000000000000000000000000" +
	"0000000000000000000000000000000000000000000000000000000000001000" +
	"0000000000000000000000000000000000000000000000000000000000000001" +
	"0000000000000000000000000000000000000000000000000000000000000060" +
	"0000000000000000000000000000000000000000000000000000000000000044" +
	"a9059cbb00000000000000000000000000000000000000000000000000000000000bee05" +
	"0000000000000000000000000000000000000000000000000000000000000001" +
	"00000000000000000000000000000000000000000000000000000000"

// mcChain serves a chain of 3 blocks (block 2 pays the payee 5 wei) with
// a Multicall3 bound of maxCalls inner calls.
func mcChain(t *testing.T, maxCalls int) (*chaintest.Chain, *gethrpc.Client) {
	t.Helper()
	c := chaintest.New(t)
	c.Apply()
	c.Apply(c.Tx(0, mcPayee, big.NewInt(5), nil))
	c.Apply()
	limits := rpc.DefaultLimits
	limits.MaxMulticallCalls = maxCalls
	raw, err := gethrpc.Dial(rpctest.Serve(t, rpctest.NewBackend(c.DB, c.Senders), limits).URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(raw.Close)
	return c, raw
}

func pack(t *testing.T, method string, args ...any) []byte {
	t.Helper()
	data, err := chain.Multicall3ABI.Pack(method, args...)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func assetCall(t *testing.T, method string, args ...any) []byte {
	t.Helper()
	data, err := chain.AssetABI.Pack(method, args...)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// mcCall eth_calls Multicall3 with data at block and unpacks the output.
func mcCall(t *testing.T, raw *gethrpc.Client, data []byte, block string) ([]any, error) {
	t.Helper()
	var out hexutil.Bytes
	if err := raw.Call(&out, "eth_call", map[string]any{"to": chain.MulticallAddress, "data": hexutil.Bytes(data)}, block); err != nil {
		return nil, err
	}
	m, err := chain.Multicall3ABI.MethodById(data[:4])
	if err != nil {
		t.Fatal(err)
	}
	vals, err := m.Outputs.Unpack(out)
	if err != nil {
		t.Fatalf("%s output %x: %v", m.Name, []byte(out), err)
	}
	return vals, nil
}

func results(t *testing.T, v any) []result {
	t.Helper()
	var rs []result
	b, _ := v.([]struct {
		Success    bool   `json:"success"`
		ReturnData []byte `json:"returnData"`
	})
	for _, r := range b {
		rs = append(rs, result{r.Success, r.ReturnData})
	}
	if rs == nil && v != nil {
		t.Fatalf("results of type %T", v)
	}
	return rs
}

// wantRevert checks err is go-ethereum's revert: code 3, the message, and
// the revert data.
func wantRevert(t *testing.T, what string, err error, msg string, data []byte) {
	t.Helper()
	var rerr gethrpc.Error
	var derr gethrpc.DataError
	if !errors.As(err, &rerr) || rerr.ErrorCode() != rpc.CodeReverted || err.Error() != msg || !errors.As(err, &derr) {
		t.Fatalf("%s: %v, want code 3 %q", what, err, msg)
	}
	if got, _ := derr.ErrorData().(string); got != hexutil.Encode(data) {
		t.Fatalf("%s: revert data %s, want %x", what, got, data)
	}
}

func TestMulticallSelectors(t *testing.T) {
	// The selectors of mds1/multicall's Multicall3, as deployed.
	want := map[string]string{
		"aggregate": "252dba42", "aggregate3": "82ad56cb", "aggregate3Value": "174dea71", "blockAndAggregate": "c3077fa9",
		"getBasefee": "3e64a696", "getBlockHash": "ee82ac5e", "getBlockNumber": "42cbb15c", "getChainId": "3408e470",
		"getCurrentBlockCoinbase": "a8b0574e", "getCurrentBlockDifficulty": "72425d9d", "getCurrentBlockGasLimit": "86d516e8",
		"getCurrentBlockTimestamp": "0f28c97d", "getEthBalance": "4d2301cc", "getLastBlockHash": "27e86d6e",
		"tryAggregate": "bce38bd7", "tryBlockAndAggregate": "399542e9",
	}
	if len(chain.Multicall3ABI.Methods) != len(want) {
		t.Fatalf("%d methods, want %d", len(chain.Multicall3ABI.Methods), len(want))
	}
	for name, sel := range want {
		if m, ok := chain.Multicall3ABI.Methods[name]; !ok || hex.EncodeToString(m.ID) != sel {
			t.Errorf("%s: selector %x, want %s", name, m.ID, sel)
		}
	}
}

// TestMulticallAggregate3 runs viem's aggregate3 of balanceOf, decimals
// and a failing transfer, with the failure allowed and not.
func TestMulticallAggregate3(t *testing.T) {
	_, raw := mcChain(t, 0)
	data, _ := hex.DecodeString(viemAggregate3)
	// An inner call is eth_call from the Multicall3 address: the failing
	// transfer's return data is what that eth_call reverts with.
	var direct gethrpc.DataError
	err := raw.Call(new(hexutil.Bytes), "eth_call", map[string]any{"from": chain.MulticallAddress, "to": cnyAddr, "data": hexutil.Bytes(assetCall(t, "transfer", mcPayee, big.NewInt(1)))}, "latest")
	if !errors.As(err, &direct) {
		t.Fatalf("the transfer from Multicall3 does not revert: %v", err)
	}
	vals, err := mcCall(t, raw, data, "latest")
	if err != nil {
		t.Fatal(err)
	}
	rs := results(t, vals[0])
	if len(rs) != 3 || !rs[0].Success || new(big.Int).SetBytes(rs[0].ReturnData).Int64() != 5 ||
		!rs[1].Success || new(big.Int).SetBytes(rs[1].ReturnData).Int64() != 2 || rs[2].Success {
		t.Fatalf("results %+v", rs)
	}
	if hexutil.Encode(rs[2].ReturnData) != direct.ErrorData() {
		t.Fatalf("failed call's return data %x, want eth_call's revert data %v", rs[2].ReturnData, direct.ErrorData())
	}
	if _, err := unpackRevert(rs[2].ReturnData); err != nil {
		t.Fatalf("failed call's return data %x is not Error(string): %v", rs[2].ReturnData, err)
	}
	// At block 1 the payee had nothing yet: the calls run at the block asked for.
	vals, err = mcCall(t, raw, data, "0x1")
	if err != nil {
		t.Fatal(err)
	}
	if rs := results(t, vals[0]); len(rs[0].ReturnData) != 32 || new(big.Int).SetBytes(rs[0].ReturnData).Sign() != 0 {
		t.Fatalf("balanceOf at block 1 = %x, want 0", rs[0].ReturnData)
	}
	// The same calls with the failure not allowed: Multicall3 reverts.
	_, err = mcCall(t, raw, fixAllowFailure(t, data), "latest")
	wantRevert(t, "aggregate3 with a failure not allowed", err, "execution reverted: Multicall3: call failed", chain.EncodeRevert("Multicall3: call failed"))
}

// fixAllowFailure re-encodes viem's calls with every failure disallowed.
func fixAllowFailure(t *testing.T, data []byte) []byte {
	t.Helper()
	m := chain.Multicall3ABI.Methods["aggregate3"]
	args, err := m.Inputs.Unpack(data[4:])
	if err != nil {
		t.Fatal(err)
	}
	var calls []call3
	for _, c := range args[0].([]struct {
		Target       common.Address `json:"target"`
		AllowFailure bool           `json:"allowFailure"`
		CallData     []byte         `json:"callData"`
	}) {
		calls = append(calls, call3{c.Target, false, c.CallData})
	}
	return pack(t, "aggregate3", calls)
}

func unpackRevert(data []byte) (string, error) {
	if len(data) < 4 || hex.EncodeToString(data[:4]) != "08c379a0" {
		return "", errors.New("not Error(string)")
	}
	vals, err := chain.AssetABI.Methods["name"].Outputs.Unpack(data[4:])
	if err != nil {
		return "", err
	}
	return vals[0].(string), nil
}

// TestMulticallFunctions pins each function's answer and failure mode.
func TestMulticallFunctions(t *testing.T) {
	c, raw := mcChain(t, 0)
	head, _ := c.DB.Head()
	b3, _ := c.DB.BlockByNumber(3)
	b2, _ := c.DB.BlockByNumber(2)
	balanceOf := assetCall(t, "balanceOf", mcPayee)
	decimals := assetCall(t, "decimals")
	failing := assetCall(t, "transfer", mcPayee, big.NewInt(1))
	ok := []call{{cnyAddr, balanceOf}, {hkdAddr, decimals}}
	withFailure := append(append([]call{}, ok...), call{cnyAddr, failing})
	callFailed := chain.EncodeRevert("Multicall3: call failed")
	big5 := common.LeftPadBytes([]byte{5}, 32)

	// aggregate: block number and return data; any failure reverts.
	vals, err := mcCall(t, raw, pack(t, "aggregate", ok), "latest")
	if err != nil || vals[0].(*big.Int).Uint64() != head.Number || !bytesEq(vals[1].([][]byte)[0], big5) {
		t.Fatalf("aggregate = %v, %v", vals, err)
	}
	_, err = mcCall(t, raw, pack(t, "aggregate", withFailure), "latest")
	wantRevert(t, "aggregate with a failure", err, "execution reverted: Multicall3: call failed", callFailed)

	// tryAggregate: failures reported, or a revert when success is required.
	vals, err = mcCall(t, raw, pack(t, "tryAggregate", false, withFailure), "latest")
	if err != nil || len(results(t, vals[0])) != 3 || results(t, vals[0])[2].Success {
		t.Fatalf("tryAggregate(false) = %v, %v", vals, err)
	}
	_, err = mcCall(t, raw, pack(t, "tryAggregate", true, withFailure), "latest")
	wantRevert(t, "tryAggregate(true) with a failure", err, "execution reverted: Multicall3: call failed", callFailed)

	// tryBlockAndAggregate and blockAndAggregate: blockhash(block.number) is 0.
	vals, err = mcCall(t, raw, pack(t, "tryBlockAndAggregate", false, withFailure), "latest")
	if err != nil || vals[0].(*big.Int).Uint64() != head.Number || vals[1].([32]byte) != ([32]byte{}) || len(results(t, vals[2])) != 3 {
		t.Fatalf("tryBlockAndAggregate = %v, %v", vals, err)
	}
	vals, err = mcCall(t, raw, pack(t, "blockAndAggregate", ok), "0x2")
	if err != nil || vals[0].(*big.Int).Uint64() != 2 || !results(t, vals[2])[0].Success {
		t.Fatalf("blockAndAggregate at 2 = %v, %v", vals, err)
	}
	_, err = mcCall(t, raw, pack(t, "blockAndAggregate", withFailure), "latest")
	wantRevert(t, "blockAndAggregate with a failure", err, "execution reverted: Multicall3: call failed", callFailed)

	// aggregate3Value: values must be 0; its revert carries 0x84 bytes.
	v0 := []call3Value{{cnyAddr, false, new(big.Int), balanceOf}, {cnyAddr, true, new(big.Int), failing}}
	vals, err = mcCall(t, raw, pack(t, "aggregate3Value", v0), "latest")
	if err != nil || len(results(t, vals[0])) != 2 || results(t, vals[0])[1].Success {
		t.Fatalf("aggregate3Value = %v, %v", vals, err)
	}
	v0[1].AllowFailure = false
	_, err = mcCall(t, raw, pack(t, "aggregate3Value", v0), "latest")
	wantRevert(t, "aggregate3Value with a failure", err, "execution reverted: Multicall3: call failed", append(callFailed, make([]byte, 32)...))
	v0[1] = call3Value{cnyAddr, true, big.NewInt(1), balanceOf}
	_, err = mcCall(t, raw, pack(t, "aggregate3Value", v0), "latest")
	if err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("aggregate3Value with a value: %v, want a refusal", err)
	}

	// The block's own values.
	for _, c := range []struct {
		method string
		args   []any
		block  string
		want   any
	}{
		{"getBlockNumber", nil, "latest", new(big.Int).SetUint64(head.Number)},
		{"getBlockNumber", nil, "0x1", big.NewInt(1)},
		{"getEthBalance", []any{mcPayee}, "latest", big.NewInt(5)},
		{"getEthBalance", []any{mcPayee}, "0x1", new(big.Int)},
		{"getBlockHash", []any{big.NewInt(2)}, "latest", [32]byte(b2.Hash())},
		{"getBlockHash", []any{big.NewInt(3)}, "latest", [32]byte{}}, // the current block
		{"getBlockHash", []any{big.NewInt(99)}, "latest", [32]byte{}},
		{"getLastBlockHash", nil, "latest", [32]byte(b2.Hash())},
		{"getLastBlockHash", nil, "earliest", [32]byte{}},
		{"getCurrentBlockTimestamp", nil, "latest", new(big.Int).SetUint64(b3.Header.Time)},
		{"getCurrentBlockGasLimit", nil, "latest", new(big.Int).SetUint64(b3.Header.GasLimit)},
		{"getCurrentBlockCoinbase", nil, "latest", b3.Header.Coinbase},
		{"getCurrentBlockDifficulty", nil, "latest", new(big.Int)},
		{"getBasefee", nil, "latest", new(big.Int)},
		{"getChainId", nil, "latest", c.ChainID},
	} {
		vals, err := mcCall(t, raw, pack(t, c.method, c.args...), c.block)
		if err != nil || !valueEq(vals[0], c.want) {
			t.Errorf("%s%v at %s = %v, %v; want %v", c.method, c.args, c.block, vals, err, c.want)
		}
	}

	// Multicall3 calling itself (viem reads balances so), an address with
	// no code (success, no data, as the EVM), an asset that does not exist.
	self := []call3{
		{chain.MulticallAddress, false, pack(t, "getEthBalance", mcPayee)},
		{common.Address{0x42}, false, balanceOf},
		{noSuchFA, false, decimals},
	}
	vals, err = mcCall(t, raw, pack(t, "aggregate3", self), "latest")
	rs := results(t, vals[0])
	if err != nil || !bytesEq(rs[0].ReturnData, big5) || !rs[1].Success || len(rs[1].ReturnData) != 0 || !rs[2].Success || len(rs[2].ReturnData) != 0 {
		t.Fatalf("aggregate3 of self, no code, no asset = %+v, %v", rs, err)
	}
	// A nested failure not allowed fails the inner Multicall3 only.
	nested := []call3{{chain.MulticallAddress, true, pack(t, "aggregate", withFailure)}}
	vals, err = mcCall(t, raw, pack(t, "aggregate3", nested), "latest")
	if rs := results(t, vals[0]); err != nil || rs[0].Success || !bytesEq(rs[0].ReturnData, callFailed) {
		t.Fatalf("nested failure = %+v, %v", rs, err)
	}
}

// TestMulticallRefusals: what Multicall3 itself would refuse, in
// go-ethereum's words.
func TestMulticallRefusals(t *testing.T) {
	_, raw := mcChain(t, 3)
	balanceOf := assetCall(t, "balanceOf", mcPayee)
	for _, c := range []struct {
		name string
		call map[string]any
		msg  string
		code int
		data string
	}{
		{"unknown selector", map[string]any{"data": "0x12345678"}, "execution reverted", rpc.CodeReverted, "0x"},
		{"no selector", map[string]any{"data": "0x"}, "execution reverted", rpc.CodeReverted, "0x"},
		{"undecodable arguments", map[string]any{"data": hexutil.Bytes(pack(t, "aggregate3", []call3{{cnyAddr, false, balanceOf}})[:40])}, "execution reverted", rpc.CodeReverted, "0x"},
		{"value", map[string]any{"data": hexutil.Bytes(pack(t, "getBlockNumber")), "value": "0x1"}, "execution reverted: Multicall3 is read-only on Tally: a call to it carries no value (got 1)", rpc.CodeReverted, ""},
		{"over http.max-multicall-calls", map[string]any{"data": hexutil.Bytes(pack(t, "aggregate3", []call3{
			{cnyAddr, false, balanceOf}, {cnyAddr, false, balanceOf}, {chain.MulticallAddress, false, pack(t, "aggregate3", []call3{{cnyAddr, false, balanceOf}})}}))},
			"Multicall3: more than 3 inner calls in one eth_call (http.max-multicall-calls); split the batch", -32005, ""},
	} {
		c.call["to"] = chain.MulticallAddress
		var out hexutil.Bytes
		err := raw.Call(&out, "eth_call", c.call, "latest")
		var rerr gethrpc.Error
		if !errors.As(err, &rerr) || rerr.ErrorCode() != c.code || err.Error() != c.msg {
			t.Errorf("%s: %x, %v; want %d %q", c.name, []byte(out), err, c.code, c.msg)
			continue
		}
		var derr gethrpc.DataError
		if c.data != "" && (!errors.As(err, &derr) || derr.ErrorData() != c.data) {
			t.Errorf("%s: data %v, want %s", c.name, derr, c.data)
		}
	}
	// Three inner calls are within the bound.
	if _, err := mcCall(t, raw, pack(t, "aggregate3", []call3{{cnyAddr, false, balanceOf}, {cnyAddr, false, balanceOf}, {cnyAddr, false, balanceOf}}), "latest"); err != nil {
		t.Fatal(err)
	}
}

// TestMulticallCodeAndEstimate: eth_getCode is non-empty at Multicall3 at
// any block; eth_estimateGas is 21000 plus each inner call's gas.
func TestMulticallCodeAndEstimate(t *testing.T) {
	_, raw := mcChain(t, 0)
	for _, block := range []string{"latest", "0x1"} {
		var code hexutil.Bytes
		if err := raw.Call(&code, "eth_getCode", chain.MulticallAddress, block); err != nil || len(code) == 0 {
			t.Errorf("eth_getCode(Multicall3, %s) = %x, %v", block, []byte(code), err)
		}
	}
	data := pack(t, "aggregate3", []call3{{cnyAddr, false, assetCall(t, "balanceOf", mcPayee)}, {hkdAddr, false, assetCall(t, "decimals")}, {chain.MulticallAddress, false, pack(t, "getBlockNumber")}})
	var gas hexutil.Uint64
	if err := raw.Call(&gas, "eth_estimateGas", map[string]any{"to": chain.MulticallAddress, "data": hexutil.Bytes(data)}); err != nil || uint64(gas) != chain.GasPerTransfer+2*chain.GasPerSystemCall {
		t.Fatalf("eth_estimateGas = %d, %v; want %d", gas, err, chain.GasPerTransfer+2*chain.GasPerSystemCall)
	}
	var out any
	err := raw.Call(&out, "eth_estimateGas", map[string]any{"to": chain.MulticallAddress, "data": hexutil.Bytes(pack(t, "aggregate", []call{{cnyAddr, assetCall(t, "transfer", mcPayee, big.NewInt(1))}}))})
	wantRevert(t, "eth_estimateGas of a failing aggregate", err, "execution reverted: Multicall3: call failed", chain.EncodeRevert("Multicall3: call failed"))
}

// TestMulticallServesEveryMethod calls every function of the ABI.
func TestMulticallServesEveryMethod(t *testing.T) {
	_, raw := mcChain(t, 0)
	for name, m := range chain.Multicall3ABI.Methods {
		var args []any
		for _, in := range m.Inputs {
			switch in.Type.String() {
			case "bool":
				args = append(args, false)
			case "uint256":
				args = append(args, big.NewInt(1))
			case "address":
				args = append(args, mcPayee)
			case "(address,bytes)[]":
				args = append(args, []call{})
			case "(address,bool,bytes)[]":
				args = append(args, []call3{})
			case "(address,bool,uint256,bytes)[]":
				args = append(args, []call3Value{})
			default:
				t.Fatalf("%s: input type %s", name, in.Type)
			}
		}
		if _, err := mcCall(t, raw, pack(t, name, args...), "latest"); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func bytesEq(a, b []byte) bool { return string(a) == string(b) }

func valueEq(got, want any) bool {
	switch w := want.(type) {
	case *big.Int:
		g, ok := got.(*big.Int)
		return ok && g.Cmp(w) == 0
	case [32]byte:
		g, ok := got.([32]byte)
		return ok && g == w
	case common.Address:
		g, ok := got.(common.Address)
		return ok && g == w
	}
	return false
}

// TestMulticallReplyBound: a reply over 256 KiB is refused (-32005), so an
// eth_call answers within the 1 MiB every call but a heavy read keeps to.
func TestMulticallReplyBound(t *testing.T) {
	_, raw := mcChain(t, 5000)
	name := assetCall(t, "name")
	calls := make([]call3, 2000) // each result ~160 bytes encoded
	for i := range calls {
		calls[i] = call3{cnyAddr, false, name}
	}
	var out hexutil.Bytes
	err := raw.Call(&out, "eth_call", map[string]any{"to": chain.MulticallAddress, "data": hexutil.Bytes(pack(t, "aggregate3", calls))}, "latest")
	var rerr gethrpc.Error
	if !errors.As(err, &rerr) || rerr.ErrorCode() != -32005 || !strings.Contains(err.Error(), "split the batch") {
		t.Fatalf("2000 names: %d bytes, %v; want -32005", len(out), err)
	}
	if _, err := mcCall(t, raw, pack(t, "aggregate3", calls[:1000]), "latest"); err != nil {
		t.Fatalf("1000 names: %v", err)
	}
}
