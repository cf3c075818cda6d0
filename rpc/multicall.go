package rpc

import (
	"errors"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/store"
)

// Multicall3 (mds1/multicall) at chain.MulticallAddress, for eth_call and
// eth_estimateGas: viem's multicall, wagmi's batched reads and the
// multicall helpers of ethers send their reads there. There is no EVM
// (DESIGN.md decision 2), so the node answers Multicall3's functions
// itself, with its ABI (abi/Multicall3.json) and its observable behaviour:
// each inner call is an eth_call with msg.sender = the Multicall3 address
// on the same pinned state, a failure the caller did not allow reverts the
// whole call with Error("Multicall3: call failed"), and block.number,
// blockhash, timestamp, gas limit, coinbase, difficulty and base fee are
// those of the block the state is read at, as go-ethereum's eth_call
// sees them. It is read-only: it holds no balance, so a call carrying
// value (aggregate3Value's included) is refused with a revert saying so,
// and admission refuses any transaction to it (mempool.ErrMulticallReadOnly).

// DefaultMaxMulticallCalls bounds the inner calls of one eth_call to
// Multicall3, nested ones included (http.max-multicall-calls).
const DefaultMaxMulticallCalls = 1024

// multicallMaxDepth bounds Multicall3 calling itself (an aggregate whose
// inner call is an aggregate): the EVM's own bound is gas.
const multicallMaxDepth = 8

// maxMulticallReply bounds the ABI-encoded reply of one call to Multicall3
// (nested ones included): in hex it stays under the 1 MiB that any call
// but a heavy read answers within (node config, http.max-response-bytes).
const maxMulticallReply = 256 << 10

// multicallFailed is the revert reason of a failure not allowed.
const multicallFailed = "Multicall3: call failed"

// mcCall, mcCall3, mcCall3Value and mcResult are Multicall3's structs
// (Call, Call3, Call3Value, Result); go-ethereum's abi converts the
// decoded tuples into them by field name.
type mcCall struct {
	Target   common.Address
	CallData []byte
}

type mcCall3 struct {
	Target       common.Address
	AllowFailure bool
	CallData     []byte
}

type mcCall3Value struct {
	Target       common.Address
	AllowFailure bool
	Value        *big.Int
	CallData     []byte
}

type mcResult struct {
	Success    bool
	ReturnData []byte
}

// revertDataError is a call that reverted with raw revert data, worded as
// go-ethereum's eth_call words it: code 3, "execution reverted" and the
// reason when the data is an Error(string), the data in hex.
type revertDataError struct{ data []byte }

func (e *revertDataError) Error() string {
	if reason, err := abi.UnpackRevert(e.data); err == nil {
		return "execution reverted: " + reason
	}
	return "execution reverted"
}

// ErrorCode implements go-ethereum's rpc.Error.
func (e *revertDataError) ErrorCode() int { return CodeReverted }

// ErrorData implements go-ethereum's rpc.DataError.
func (e *revertDataError) ErrorData() any { return hexutil.Encode(e.data) }

// multicall runs one eth_call to Multicall3 on st.
type multicall struct {
	db    *store.DB
	st    *store.PastState
	block *chain.Block // block st.Number: the block context of the call
	chain *big.Int
	// limit bounds the inner calls (nested ones included); left is how
	// many may still run.
	limit, left int
	// gas sums what the inner calls would use.
	gas       uint64
	onRefused func(bound string)
}

// callMulticall answers an eth_call or eth_estimateGas to Multicall3 on
// st: the ABI-encoded output and the gas (chain.GasPerTransfer plus each
// inner call's), or the revert.
func (api *EthAPI) callMulticall(st *store.PastState, value *big.Int, data []byte) ([]byte, uint64, error) {
	if value != nil && value.Sign() != 0 {
		return nil, 0, &RevertError{Reason: fmt.Sprintf("Multicall3 is read-only on Tally: a call to it carries no value (got %s)", value)}
	}
	b, err := api.b.State().BlockByNumber(st.Number)
	if err != nil {
		return nil, 0, err
	}
	limit := api.maxMulticall
	if limit <= 0 {
		limit = DefaultMaxMulticallCalls
	}
	m := &multicall{db: api.b.State(), st: st, block: b, chain: api.chainID, limit: limit, left: limit, gas: chain.GasPerTransfer, onRefused: api.onRefused}
	out, err := m.run(data, 0)
	if err != nil {
		return nil, 0, err
	}
	return out, m.gas, nil
}

// run executes one call to Multicall3 (depth > 0 when Multicall3 calls
// itself). An error is a *revertDataError, a *RevertError, a limit, or a
// failure to read the state.
func (m *multicall) run(data []byte, depth int) ([]byte, error) {
	// A selector Multicall3 lacks, or arguments its ABI decoder refuses,
	// revert with no data (it has no fallback function).
	if len(data) < 4 {
		return nil, &revertDataError{data: []byte{}}
	}
	meth, err := chain.Multicall3ABI.MethodById(data[:4])
	if err != nil {
		return nil, &revertDataError{data: []byte{}}
	}
	args, err := meth.Inputs.Unpack(data[4:])
	if err != nil {
		return nil, &revertDataError{data: []byte{}}
	}
	out, err := m.dispatch(meth.Name, args, depth)
	if err != nil {
		return nil, err
	}
	enc, err := meth.Outputs.Pack(out...)
	if err != nil {
		return nil, fmt.Errorf("multicall3 %s: pack output: %w", meth.Name, err)
	}
	if len(enc) > maxMulticallReply {
		return nil, &Error{Code: CodeLimitExceeded, Msg: fmt.Sprintf("Multicall3: the reply would be %d bytes, over %d; split the batch", len(enc), maxMulticallReply)}
	}
	return enc, nil
}

func (m *multicall) dispatch(name string, args []any, depth int) ([]any, error) {
	h := m.block.Header
	switch name {
	case "aggregate":
		calls := abi.ConvertType(args[0], new([]mcCall)).(*[]mcCall)
		out := make([][]byte, len(*calls))
		for i, c := range *calls {
			r, err := m.inner(c.Target, c.CallData, depth)
			if err != nil {
				return nil, err
			}
			if !r.Success {
				return nil, &RevertError{Reason: multicallFailed}
			}
			out[i] = r.ReturnData
		}
		return []any{m.number(), out}, nil
	case "tryAggregate":
		res, err := m.tryAggregate(args[0].(bool), args[1], depth)
		return []any{res}, err
	case "tryBlockAndAggregate", "blockAndAggregate":
		require, calls := true, args[0]
		if name == "tryBlockAndAggregate" {
			require, calls = args[0].(bool), args[1]
		}
		res, err := m.tryAggregate(require, calls, depth)
		if err != nil {
			return nil, err
		}
		// blockhash(block.number) is zero: the EVM knows no hash of the
		// block it runs in.
		return []any{m.number(), [32]byte{}, res}, nil
	case "aggregate3":
		calls := abi.ConvertType(args[0], new([]mcCall3)).(*[]mcCall3)
		res := make([]mcResult, len(*calls))
		for i, c := range *calls {
			r, err := m.inner(c.Target, c.CallData, depth)
			if err != nil {
				return nil, err
			}
			if !r.Success && !c.AllowFailure {
				return nil, &RevertError{Reason: multicallFailed}
			}
			res[i] = r
		}
		return []any{res}, nil
	case "aggregate3Value":
		calls := abi.ConvertType(args[0], new([]mcCall3Value)).(*[]mcCall3Value)
		for i, c := range *calls {
			if c.Value.Sign() != 0 {
				return nil, &RevertError{Reason: fmt.Sprintf("Multicall3 is read-only on Tally: call %d carries value %s; every value must be 0", i, c.Value)}
			}
		}
		res := make([]mcResult, len(*calls))
		for i, c := range *calls {
			r, err := m.inner(c.Target, c.CallData, depth)
			if err != nil {
				return nil, err
			}
			if !r.Success && !c.AllowFailure {
				// Multicall3 reverts here with 0x84 bytes: Error("Multicall3:
				// call failed") and the 32 zero bytes after it in memory.
				return nil, &revertDataError{data: append(chain.EncodeRevert(multicallFailed), make([]byte, 32)...)}
			}
			res[i] = r
		}
		return []any{res}, nil
	case "getBlockHash":
		n := args[0].(*big.Int)
		if !n.IsUint64() {
			return []any{[32]byte{}}, nil
		}
		bh, err := m.blockHash(n.Uint64())
		return []any{bh}, err
	case "getBlockNumber":
		return []any{m.number()}, nil
	case "getCurrentBlockCoinbase":
		return []any{h.Coinbase}, nil
	case "getCurrentBlockDifficulty":
		return []any{bigOrZero(h.Difficulty)}, nil
	case "getCurrentBlockGasLimit":
		return []any{new(big.Int).SetUint64(h.GasLimit)}, nil
	case "getCurrentBlockTimestamp":
		return []any{new(big.Int).SetUint64(h.Time)}, nil
	case "getEthBalance":
		bal, err := m.st.Balance(state.NativeAsset, args[0].(common.Address))
		return []any{bal}, err
	case "getLastBlockHash":
		if m.st.Number == 0 {
			return []any{[32]byte{}}, nil // blockhash(block.number - 1) wraps to a block that never was
		}
		bh, err := m.blockHash(m.st.Number - 1)
		return []any{bh}, err
	case "getBasefee":
		return []any{bigOrZero(h.BaseFee)}, nil
	case "getChainId":
		return []any{new(big.Int).Set(m.chain)}, nil
	}
	return nil, fmt.Errorf("multicall3 %s: not served", name) // every method of the ABI is a case above (TestMulticallServesEveryMethod)
}

// tryAggregate is Multicall3's tryAggregate over the decoded Call[].
func (m *multicall) tryAggregate(requireSuccess bool, arg any, depth int) ([]mcResult, error) {
	calls := abi.ConvertType(arg, new([]mcCall)).(*[]mcCall)
	res := make([]mcResult, len(*calls))
	for i, c := range *calls {
		r, err := m.inner(c.Target, c.CallData, depth)
		if err != nil {
			return nil, err
		}
		if requireSuccess && !r.Success {
			return nil, &RevertError{Reason: multicallFailed}
		}
		res[i] = r
	}
	return res, nil
}

// inner runs one inner call as the EVM would: a system contract runs it
// as eth_call from the Multicall3 address on the same state; Multicall3
// calls itself; any other address has no code, and a call to it succeeds
// with no return data (viem and ethers then report that the contract
// returned no data, as on any chain).
func (m *multicall) inner(target common.Address, data []byte, depth int) (mcResult, error) {
	if m.left <= 0 {
		countRefusal(m.onRefused, "http.max-multicall-calls")
		return mcResult{}, &Error{Code: CodeLimitExceeded, Msg: fmt.Sprintf("Multicall3: more than %d inner calls in one eth_call (http.max-multicall-calls); split the batch", m.limit)}
	}
	m.left--
	if target == chain.MulticallAddress {
		if depth+1 >= multicallMaxDepth {
			return mcResult{ReturnData: []byte{}}, nil // out of depth: the call fails without data, as the EVM's would
		}
		out, err := m.run(data, depth+1)
		var rd *revertDataError
		var rv *RevertError
		switch {
		case errors.As(err, &rd):
			return mcResult{ReturnData: rd.data}, nil
		case errors.As(err, &rv):
			return mcResult{ReturnData: chain.EncodeRevert(rv.Reason)}, nil
		case err != nil:
			return mcResult{}, err
		}
		return mcResult{Success: true, ReturnData: out}, nil
	}
	code, err := codeAt(m.st, target)
	if err != nil {
		return mcResult{}, err
	}
	if len(code) == 0 {
		return mcResult{Success: true, ReturnData: []byte{}}, nil
	}
	out, gas, err := state.Call(m.st, m.st.Context(), chain.MulticallAddress, target, new(big.Int), data)
	m.gas += gas
	if r, ok := state.IsRevert(err); ok {
		return mcResult{ReturnData: chain.EncodeRevert(r.Reason)}, nil
	}
	if err != nil {
		return mcResult{}, err
	}
	if out == nil {
		out = []byte{}
	}
	return mcResult{Success: true, ReturnData: out}, nil
}

// number is block.number in the call: the block the state is read at.
func (m *multicall) number() *big.Int { return new(big.Int).SetUint64(m.st.Number) }

// blockHash is the EVM's BLOCKHASH in a call at block st.Number: the hash
// of one of the 256 blocks before it, zero for any other (the current
// block's own included).
func (m *multicall) blockHash(n uint64) ([32]byte, error) {
	cur := m.st.Number
	if n >= cur || cur-n > 256 {
		return [32]byte{}, nil
	}
	b, err := m.db.BlockByNumber(n)
	if err != nil {
		return [32]byte{}, fmt.Errorf("multicall3 blockhash(%d): %w", n, err)
	}
	return b.Hash(), nil
}

func bigOrZero(v *big.Int) *big.Int {
	if v == nil {
		return new(big.Int)
	}
	return new(big.Int).Set(v)
}

// codeAt is what eth_getCode answers at a on r's state: chain.SystemCode
// at a system contract that exists there (an asset facade of an asset
// that exists, compliance, governance, exchange) and at Multicall3, so
// client libraries treat them as contracts; nothing elsewhere.
func codeAt(r interface{ Rules() (*state.Rules, error) }, a common.Address) ([]byte, error) {
	if a == chain.MulticallAddress {
		return chain.SystemCode, nil
	}
	if !chain.IsSystemAddress(a) {
		return []byte{}, nil
	}
	if id, ok := chain.AssetID(a); ok {
		rules, err := r.Rules()
		if err != nil {
			return nil, err
		}
		if !rules.HasAsset(id) {
			return []byte{}, nil
		}
	}
	return chain.SystemCode, nil
}
