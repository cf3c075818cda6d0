package node

import (
	"context"
	"errors"
	"math/big"
	"regexp"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
)

// Client libraries classify a node's errors by their words. These are the
// patterns ethers v6 (JsonRpcApiProvider.getRpcError) and viem
// (errors/node.ts, each error's nodeMessage; viem reads them only from
// codes -32000 and -32003) match; Go's regexp reads them as JavaScript does.
var (
	ethersInsufficientFunds = regexp.MustCompile(`(?i)insufficient funds|base fee exceeds gas limit`)
	ethersNonceExpired      = regexp.MustCompile(`(?i)nonce.*too low`)
	ethersReplacement       = regexp.MustCompile(`(?i)replacement transaction.*underpriced`)
	viemInsufficientFunds   = regexp.MustCompile(`insufficient funds|exceeds transaction sender account balance`)
	viemNonceTooLow         = regexp.MustCompile(`nonce too low|transaction already imported|already known`)
	viemNonceTooHigh        = regexp.MustCompile(`nonce too high`)
	viemIntrinsicGasTooLow  = regexp.MustCompile(`intrinsic gas too low`)
	viemTipAboveFeeCap      = regexp.MustCompile(`max priority fee per gas higher than max fee per gas|tip higher than fee cap`)
	viemExecutionReverted   = regexp.MustCompile(`execution reverted|gas required exceeds allowance`)
)

// TestGethErrorTexts sends what makes go-ethereum refuse a transaction, an
// estimate or a call to a real node through go-ethereum's RPC client, and
// pins each answer to the text and code go-ethereum v1.17 gives for the
// same cause (the format string and its file are named), and to the
// pattern a client library recognises it by.
func TestGethErrorTexts(t *testing.T) {
	n := startDevNode(t, t.TempDir())
	ec, rc := dial(t, n)
	ctx := context.Background()
	id := big.NewInt(genesis.DevChainID)
	rich, _ := genesis.DevKey(1)
	spender, _ := genesis.DevKey(2)
	to := common.HexToAddress("0x00000000000000000000000000000000000c0ffe")
	sign := func(k *crypto.PrivateKey, nonce uint64, value *big.Int, gas uint64) hexutil.Bytes {
		tx, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, Nonce: nonce, To: &to, Value: value, Gas: gas}), id, k)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := tx.MarshalBinary()
		return raw
	}
	tipAboveCap := func() hexutil.Bytes {
		tx, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, To: &to, Value: big.NewInt(1), Gas: 21000, GasTipCap: big.NewInt(2), GasFeeCap: big.NewInt(1)}), id, rich)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := tx.MarshalBinary()
		return raw
	}
	balance, err := ec.BalanceAt(ctx, rich.Address(), nil)
	if err != nil {
		t.Fatal(err)
	}
	over := new(big.Int).Add(balance, big.NewInt(5))
	// spender's nonce 0 is applied, so nonce 0 is too low from now on.
	first := sign(spender, 0, big.NewInt(1), 21000)
	var h common.Hash
	if err := rc.Call(&h, "eth_sendRawTransaction", first); err != nil {
		t.Fatal(err)
	}
	waitReceipt(t, ec, h)
	// nonce 2 waits for nonce 1 (within mempool.gap-grace): a second
	// transaction with nonce 2 would replace it.
	gapped := sign(spender, 2, big.NewInt(1), 21000)
	if err := rc.Call(&h, "eth_sendRawTransaction", gapped); err != nil {
		t.Fatal(err)
	}
	gappedHash := h

	tier0, _ := crypto.GenerateKey() // no KYC: may only receive
	transfer, err := chain.AssetABI.Pack("transfer", to, big.NewInt(1))
	if err != nil {
		t.Fatal(err)
	}
	cnyFacade := chain.AssetAddress(0)
	balanceOf, _ := chain.AssetABI.Pack("balanceOf", rich.Address())
	callArgs := func(from *common.Address, to common.Address, value *big.Int, gas uint64, data []byte) map[string]any {
		m := map[string]any{"to": to}
		if from != nil {
			m["from"] = *from
		}
		if value != nil {
			m["value"] = (*hexutil.Big)(value)
		}
		if gas != 0 {
			m["gas"] = hexutil.Uint64(gas)
		}
		if data != nil {
			m["data"] = hexutil.Bytes(data)
		}
		return m
	}
	richAddr, tier0Addr := rich.Address(), tier0.Address()

	cases := []struct {
		name   string
		method string
		params []any
		// geth is go-ethereum's text for the same cause, as a regexp of
		// its format string with Tally's values (source named).
		geth    string
		code    int
		clients []*regexp.Regexp
	}{
		{"send: value above balance", "eth_sendRawTransaction", []any{sign(rich, 0, over, 21000)},
			// core/txpool/validation.go: "%w: balance %v, tx cost %v, overshot %v", core.ErrInsufficientFunds
			`^insufficient funds for gas \* price \+ value: balance ` + balance.String() + `, tx cost ` + over.String() + `, overshot 5$`,
			-32000, []*regexp.Regexp{ethersInsufficientFunds, viemInsufficientFunds}},
		{"send: nonce too low", "eth_sendRawTransaction", []any{sign(spender, 0, big.NewInt(2), 21000)},
			// core/txpool/validation.go: "%w: next nonce %v, tx nonce %v", core.ErrNonceTooLow
			`^nonce too low: next nonce 1, tx nonce 0$`, -32000, []*regexp.Regexp{ethersNonceExpired, viemNonceTooLow}},
		{"send: nonce too high", "eth_sendRawTransaction", []any{sign(rich, 1<<20, big.NewInt(1), 21000)},
			// core/error.go ErrNonceTooHigh "nonce too high" (the pool's "%w: tx nonce %v, gapped nonce %v")
			`^nonce too high: tx nonce 1048576, next nonce 0: at most 4095 ahead \(mempool\.max-per-account\)$`, -32000,
			[]*regexp.Regexp{viemNonceTooHigh}},
		{"send: same nonce as a pending transaction", "eth_sendRawTransaction", []any{sign(spender, 2, big.NewInt(3), 21000)},
			// core/txpool/errors.go ErrReplaceUnderpriced "replacement transaction underpriced"
			`^replacement transaction underpriced: nonce 2 is taken by pending transaction ` + gappedHash.Hex() + `, which is never replaced \(no fees to outbid it\)$`,
			-32000, []*regexp.Regexp{ethersReplacement}},
		{"send: the same transaction again", "eth_sendRawTransaction", []any{gapped},
			// core/txpool/errors.go ErrAlreadyKnown "already known"
			`^already known$`, -32000, []*regexp.Regexp{viemNonceTooLow}},
		{"send: gas below a transfer's", "eth_sendRawTransaction", []any{sign(rich, 0, big.NewInt(1), 20000)},
			// core/txpool/validation.go: "%w: gas %v, minimum needed %v", core.ErrIntrinsicGas
			`^intrinsic gas too low: gas 20000, minimum needed 21000$`, -32000, []*regexp.Regexp{viemIntrinsicGasTooLow}},
		{"send: gas above the block gas limit", "eth_sendRawTransaction", []any{sign(rich, 0, big.NewInt(1), 1<<40+1)},
			// core/txpool/errors.go ErrGasLimit "exceeds block gas limit"
			`^exceeds block gas limit: gas 1099511627777, block gas limit 1099511627776$`, -32000, nil},
		{"send: priority fee above the fee cap", "eth_sendRawTransaction", []any{tipAboveCap()},
			// core/txpool/validation.go returns core.ErrTipAboveFeeCap as it is
			`^max priority fee per gas higher than max fee per gas$`, -32000, []*regexp.Regexp{viemTipAboveFeeCap}},
		{"estimate: value above balance", "eth_estimateGas", []any{callArgs(&richAddr, to, over, 0, nil)},
			// core/state_transition.go: "%w: address %v have %v want %v", ErrInsufficientFunds
			`^insufficient funds for gas \* price \+ value: address ` + richAddr.Hex() + ` have ` + balance.String() + ` want ` + over.String() + `$`,
			-32000, []*regexp.Regexp{ethersInsufficientFunds, viemInsufficientFunds}},
		{"estimate without from: value above the zero address's balance", "eth_estimateGas", []any{callArgs(nil, to, big.NewInt(1), 0, nil)},
			`^insufficient funds for gas \* price \+ value: address 0x0000000000000000000000000000000000000000 have 0 want 1$`,
			-32000, []*regexp.Regexp{ethersInsufficientFunds, viemInsufficientFunds}},
		{"call: value above balance", "eth_call", []any{callArgs(&richAddr, to, over, 0, nil), "latest"},
			// internal/ethapi/api.go applyMessageWithEVM: "err: %w (supplied gas %d)", with the default --rpc.gascap
			`^err: insufficient funds for gas \* price \+ value: address ` + richAddr.Hex() + ` have ` + balance.String() + ` want ` + over.String() + ` \(supplied gas 50000000\)$`,
			-32000, []*regexp.Regexp{viemInsufficientFunds}},
		{"call: gas below a transfer's", "eth_call", []any{callArgs(&richAddr, to, big.NewInt(1), 20000, nil), "latest"},
			// core/state_transition.go: "%w: have %d, want %d", ErrIntrinsicGas, wrapped as above
			`^err: intrinsic gas too low: have 20000, want 21000 \(supplied gas 20000\)$`, -32000, []*regexp.Regexp{viemIntrinsicGasTooLow}},
		{"estimate: gas below a system operation's", "eth_estimateGas", []any{callArgs(&richAddr, cnyFacade, nil, 30000, transfer)},
			// eth/gasestimator/gasestimator.go: "gas required exceeds allowance (%d)"
			`^gas required exceeds allowance \(30000\)$`, -32000, []*regexp.Regexp{viemExecutionReverted}},
		{"estimate from a sender admission refuses (tier 0)", "eth_estimateGas", []any{callArgs(&tier0Addr, to, big.NewInt(0), 0, nil)},
			// no go-ethereum counterpart: admission refuses whatever it sends, so its estimate fails with admission's words
			`^sender is not KYC-verified: tier 0 may only receive: ` + tier0Addr.Hex() + `$`, -32000, nil},
		{"estimate of a view from a sender admission refuses", "eth_estimateGas", []any{callArgs(&tier0Addr, cnyFacade, nil, 0, balanceOf)},
			// an operation's failure: a revert with the reason, which ethers and viem show
			`^execution reverted: sender is not KYC-verified: tier 0 may only receive: ` + tier0Addr.Hex() + `$`, 3, []*regexp.Regexp{viemExecutionReverted}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var res any
			err := rc.Call(&res, c.method, c.params...)
			var re gethrpc.Error
			if !errors.As(err, &re) {
				t.Fatalf("%s answered %v, %v; want error %d %q", c.method, res, err, c.code, c.geth)
			}
			if re.ErrorCode() != c.code || !regexp.MustCompile(c.geth).MatchString(re.Error()) {
				t.Fatalf("%s: %d %q, want %d matching %s", c.method, re.ErrorCode(), re.Error(), c.code, c.geth)
			}
			for _, p := range c.clients {
				if !p.MatchString(re.Error()) {
					t.Errorf("client pattern %s does not match %q", p, re.Error())
				}
			}
		})
	}
}

// TestCallsFromAnyone: a dApp estimates and simulates before a wallet is
// connected, with no from, and go-ethereum answers 21000 and 0x; eth_call
// of a view answers whoever asks, a tier-0 account included.
func TestCallsFromAnyone(t *testing.T) {
	n := startDevNode(t, t.TempDir())
	_, rc := dial(t, n)
	to := common.HexToAddress("0x00000000000000000000000000000000000c0ffe")
	var gas hexutil.Uint64
	if err := rc.Call(&gas, "eth_estimateGas", map[string]any{"to": to}); err != nil || gas != 21000 {
		t.Fatalf("estimate without from: %d, %v; want 21000", gas, err)
	}
	if err := rc.Call(&gas, "eth_estimateGas", map[string]any{"to": to, "from": common.Address{}, "value": "0x0"}); err != nil || gas != 21000 {
		t.Fatalf("estimate from the zero address: %d, %v; want 21000", gas, err)
	}
	var out hexutil.Bytes
	if err := rc.Call(&out, "eth_call", map[string]any{"to": to}, "latest"); err != nil || len(out) != 0 {
		t.Fatalf("call without from: %x, %v; want 0x", out, err)
	}
	rich, _ := genesis.DevKey(0)
	balanceOf, _ := chain.AssetABI.Pack("balanceOf", rich.Address())
	tier0, _ := crypto.GenerateKey()
	for _, from := range []*common.Address{nil, ptr(tier0.Address())} {
		args := map[string]any{"to": chain.AssetAddress(0), "data": hexutil.Bytes(balanceOf)}
		if from != nil {
			args["from"] = *from
		}
		if err := rc.Call(&out, "eth_call", args, "latest"); err != nil || new(big.Int).SetBytes(out).Sign() <= 0 {
			t.Fatalf("balanceOf from %v: %x, %v", from, out, err)
		}
	}
	// Without a sender the estimate is the operation's gas (a tier-0
	// sender's is refused as its send would be: TestGethErrorTexts).
	if err := rc.Call(&gas, "eth_estimateGas", map[string]any{"to": chain.AssetAddress(0), "data": hexutil.Bytes(balanceOf)}); err != nil || gas != chain.GasPerSystemCall {
		t.Fatalf("estimate balanceOf without from: %d, %v", gas, err)
	}
	// An ERC-20 transfer without from: no sender rules, but the zero
	// address has nothing to send, as with go-ethereum's ERC-20s.
	transfer, _ := chain.AssetABI.Pack("transfer", to, big.NewInt(1))
	err := rc.Call(&out, "eth_call", map[string]any{"to": chain.AssetAddress(0), "data": hexutil.Bytes(transfer)}, "latest")
	var re gethrpc.Error
	if !errors.As(err, &re) || re.ErrorCode() != 3 || !regexp.MustCompile(`^execution reverted: insufficient balance: 0x0{40} has 0.00 CNY, needs 0.000000000000000001 CNY$`).MatchString(re.Error()) {
		t.Fatalf("transfer without from: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

// A real node reports the transactions its pool admits to a
// pending-transaction filter and to a newPendingTransactions subscription
// (what go-ethereum's gethclient.SubscribePendingTransactions asks for).
func TestPendingTransactionsOnANode(t *testing.T) {
	n := startDevNode(t, t.TempDir())
	ec, rc := dial(t, n)
	ctx := context.Background()
	ws, err := gethrpc.Dial("ws://" + n.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	hashes := make(chan common.Hash, 16)
	sub, err := ws.EthSubscribe(ctx, hashes, "newPendingTransactions")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	var filter string
	if err := rc.Call(&filter, "eth_newPendingTransactionFilter"); err != nil {
		t.Fatal(err)
	}
	id := big.NewInt(genesis.DevChainID)
	key, _ := genesis.DevKey(5)
	to := common.HexToAddress("0x00000000000000000000000000000000000c0ffe")
	nonce, err := ec.PendingNonceAt(ctx, key.Address())
	if err != nil {
		t.Fatal(err)
	}
	var sent []common.Hash
	for i := range uint64(2) {
		tx, _ := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, Nonce: nonce + i, To: &to, Value: big.NewInt(1), Gas: 21000}), id, key)
		if err := ec.SendTransaction(ctx, tx); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, tx.Hash())
	}
	for i, want := range sent {
		select {
		case h := <-hashes:
			if h != want {
				t.Fatalf("notification %d: %s, want %s", i, h, want)
			}
		case err := <-sub.Err():
			t.Fatal(err)
		case <-time.After(10 * time.Second):
			t.Fatalf("no notification for %s", want)
		}
	}
	var polled []common.Hash
	if err := rc.Call(&polled, "eth_getFilterChanges", filter); err != nil {
		t.Fatal(err)
	}
	if len(polled) != 2 || polled[0] != sent[0] || polled[1] != sent[1] {
		t.Fatalf("filter: %v, want %v", polled, sent)
	}
}

// go-ethereum's ethclient reads a real node's blocks through the methods
// wallets and indexers use to walk a block: its receipts at once, its
// transactions by position, and an account's storage.
func TestBlockWalkOnANode(t *testing.T) {
	n := startDevNode(t, t.TempDir())
	ec, rc := dial(t, n)
	ctx := context.Background()
	id := big.NewInt(genesis.DevChainID)
	key, _ := genesis.DevKey(6)
	to := common.HexToAddress("0x00000000000000000000000000000000000c0ffe")
	nonce, err := ec.PendingNonceAt(ctx, key.Address())
	if err != nil {
		t.Fatal(err)
	}
	tx, _ := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, Nonce: nonce, To: &to, Value: big.NewInt(1), Gas: 21000}), id, key)
	if err := ec.SendTransaction(ctx, tx); err != nil {
		t.Fatal(err)
	}
	r := waitReceipt(t, ec, tx.Hash())
	rs, err := ec.BlockReceipts(ctx, gethrpc.BlockNumberOrHashWithNumber(gethrpc.BlockNumber(r.BlockNumber.Int64())))
	if err != nil || len(rs) == 0 || rs[r.TransactionIndex].TxHash != tx.Hash() || rs[r.TransactionIndex].Status != 1 {
		t.Fatalf("block receipts: %+v, %v", rs, err)
	}
	got, err := ec.TransactionInBlock(ctx, r.BlockHash, r.TransactionIndex)
	if err != nil || got.Hash() != tx.Hash() {
		t.Fatalf("transaction in block: %v", err)
	}
	var byNumber map[string]any
	if err := rc.Call(&byNumber, "eth_getTransactionByBlockNumberAndIndex", hexutil.EncodeBig(r.BlockNumber), hexutil.Uint(r.TransactionIndex)); err != nil || byNumber["hash"] != tx.Hash().Hex() {
		t.Fatalf("by number and index: %v, %v", byNumber, err)
	}
	if count, err := ec.TransactionCount(ctx, r.BlockHash); err != nil || count != uint(len(rs)) {
		t.Fatalf("transaction count: %d, %v", count, err)
	}
	slot, err := ec.StorageAt(ctx, chain.AssetAddress(0), common.Hash{}, r.BlockNumber)
	if err != nil || len(slot) != 32 || new(big.Int).SetBytes(slot).Sign() != 0 {
		t.Fatalf("storage: %x, %v", slot, err)
	}
}
