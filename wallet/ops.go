package wallet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/rpc/schema"
)

// Op is one system operation: the contract it calls and its calldata.
// Build it with AssetOp or ComplianceOp, which check the arguments against
// the published ABI before anything is signed.
type Op struct {
	To   common.Address
	Data []byte
	// Method is the operation's name, for messages.
	Method string
}

// AssetOp builds operation method of asset id's ERC-20 facade
// (abi/Asset.json), e.g. AssetOp(1, "transferWithReference", to, amount, ref).
func AssetOp(id uint32, method string, args ...any) (Op, error) {
	return op(chain.AssetAddress(id), &chain.AssetABI, method, args...)
}

// ComplianceOp builds a compliance operation (abi/Compliance.json).
func ComplianceOp(method string, args ...any) (Op, error) {
	return op(chain.ComplianceAddress, &chain.ComplianceABI, method, args...)
}

// GovernanceOp builds a governance operation (abi/Governance.json): a
// proposal or a vote.
func GovernanceOp(method string, args ...any) (Op, error) {
	return op(chain.GovernanceAddress, &chain.GovernanceABI, method, args...)
}

// ExchangeOp builds an exchange operation (abi/Exchange.json).
func ExchangeOp(method string, args ...any) (Op, error) {
	return op(chain.ExchangeAddress, &chain.ExchangeABI, method, args...)
}

// ConfirmationsOp builds an operation of the confirmations contract
// (abi/Confirmations.json, docs/payments.md).
func ConfirmationsOp(method string, args ...any) (Op, error) {
	return op(chain.ConfirmationsAddress, &chain.ConfirmationsABI, method, args...)
}

// DisputesOp builds an operation of the disputes contract
// (abi/Disputes.json, docs/payments.md).
func DisputesOp(method string, args ...any) (Op, error) {
	return op(chain.DisputesAddress, &chain.DisputesABI, method, args...)
}

func op(to common.Address, a *abi.ABI, method string, args ...any) (Op, error) {
	data, err := a.Pack(method, args...)
	if err != nil {
		return Op{}, fmt.Errorf("encode %s: %w", method, err)
	}
	return Op{To: to, Data: data, Method: method}, nil
}

// SignOp signs op as an EIP-1559 transaction with no fees and the gas a
// system operation uses, with no network access.
func SignOp(key *crypto.PrivateKey, chainID *big.Int, nonce uint64, op Op) (*types.Transaction, error) {
	if key == nil {
		return nil, errors.New("sign operation: nil key")
	}
	if chainID == nil || chainID.Sign() <= 0 {
		return nil, fmt.Errorf("sign operation: chain id must be positive, got %v", chainID)
	}
	to := op.To
	tx, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{
		ChainID: new(big.Int).Set(chainID), Nonce: nonce, GasTipCap: new(big.Int), GasFeeCap: new(big.Int),
		Gas: chain.GasPerSystemCall, To: &to, Value: new(big.Int), Data: op.Data,
	}), chainID, key)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", op.Method, err)
	}
	return tx, nil
}

// Send signs op with the node's chain id and the account's pending nonce
// and submits it; the node refuses at admission what can never succeed. It
// returns once admitted: use WaitReceipt (status 0 means the operation
// failed at execution; Simulate tells why).
func (c *Client) Send(ctx context.Context, key *crypto.PrivateKey, op Op) (*types.Transaction, error) {
	chainID, err := c.ChainID(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op.Method, err)
	}
	nonce, err := c.PendingNonce(ctx, key.Address())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op.Method, err)
	}
	tx, err := SignOp(key, chainID, nonce, op)
	if err != nil {
		return nil, err
	}
	if err := c.SendSigned(ctx, tx); err != nil {
		return nil, fmt.Errorf("%s: %w", op.Method, err)
	}
	return tx, nil
}

// RevertError is an operation the node says would fail, with its reason.
type RevertError struct {
	Method string
	Reason string
}

func (e *RevertError) Error() string { return fmt.Sprintf("%s reverted: %s", e.Method, e.Reason) }

// Simulate runs op from `from` on the node's latest state (eth_call) and
// returns its ABI-encoded result, or a *RevertError with the reason it
// would fail with.
func (c *Client) Simulate(ctx context.Context, from common.Address, op Op) ([]byte, error) {
	var out hexutil.Bytes
	args := map[string]any{"from": from, "to": op.To, "data": hexutil.Bytes(op.Data)}
	err := c.Call(ctx, &out, "eth_call", args, "latest")
	if reason, ok := revertReason(err); ok {
		return nil, &RevertError{Method: op.Method, Reason: reason}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op.Method, err)
	}
	return out, nil
}

// revertReason is the reason of a reverted eth_call: the ABI-encoded
// Error(string) in the error's data.
func revertReason(err error) (string, bool) {
	var de rpc.DataError
	if !errors.As(err, &de) {
		return "", false
	}
	s, ok := de.ErrorData().(string)
	if !ok {
		return "", false
	}
	data, derr := hexutil.Decode(s)
	if derr != nil {
		return "", false
	}
	reason, uerr := abi.UnpackRevert(data)
	return reason, uerr == nil
}

// codeServerError is the JSON-RPC code a node answers a failing plain
// transfer's eth_call with (go-ethereum's -32000, with the reason as the
// message: "insufficient funds for gas * price + value: …", a limit, a
// freeze); "node halted" shares the code but is no verdict on the transfer.
const codeServerError = -32000

// SimulateTransfer runs a transfer of value from → to on the node's latest
// state (eth_call with from, so every rule a sent transaction meets
// applies) and returns nil if it would succeed, a *RevertError (Method
// "transfer") with the node's reason if it would fail, or another error if
// the node could not say.
func (c *Client) SimulateTransfer(ctx context.Context, from, to common.Address, value *big.Int) error {
	var out hexutil.Bytes
	args := map[string]any{"from": from, "to": to, "value": (*hexutil.Big)(value)}
	err := c.Call(ctx, &out, "eth_call", args, "latest")
	if reason, ok := revertReason(err); ok { // to a system address, which takes no value
		return &RevertError{Method: "transfer", Reason: reason}
	}
	var re rpc.Error
	if errors.As(err, &re) && re.ErrorCode() == codeServerError && !strings.HasPrefix(re.Error(), "node halted") {
		return &RevertError{Method: "transfer", Reason: re.Error()}
	}
	if err != nil {
		return fmt.Errorf("transfer: %w", err)
	}
	return nil
}

// View calls a view of a system contract and unpacks its outputs.
func (c *Client) View(ctx context.Context, op Op) ([]any, error) {
	out, err := c.Simulate(ctx, common.Address{}, op)
	if err != nil {
		return nil, err
	}
	a, ok := chain.ContractABI(op.To)
	if !ok {
		return nil, fmt.Errorf("%s: no system contract at %s", op.Method, op.To)
	}
	vals, err := a.Unpack(op.Method, out)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", op.Method, err)
	}
	return vals, nil
}

// Asset is an asset as tally_assets describes it.
type Asset = schema.Asset

// Assets lists the chain's assets (tally_assets).
func (c *Client) Assets(ctx context.Context) ([]Asset, error) {
	var out []Asset
	if err := c.Call(ctx, &out, "tally_assets"); err != nil {
		return nil, fmt.Errorf("tally_assets: %w", err)
	}
	return out, nil
}

// AssetBySymbol finds an asset by symbol.
func (c *Client) AssetBySymbol(ctx context.Context, symbol string) (Asset, error) {
	assets, err := c.Assets(ctx)
	if err != nil {
		return Asset{}, err
	}
	for _, a := range assets {
		if a.Symbol == symbol {
			return a, nil
		}
	}
	return Asset{}, fmt.Errorf("unknown asset %q", symbol)
}

// Account is what tally_getAccount returns.
type Account = schema.Account

// Account returns an account's balances, tier, freeze flag and remaining
// daily allowance (tally_getAccount).
func (c *Client) Account(ctx context.Context, a common.Address) (*Account, error) {
	var out Account
	if err := c.Call(ctx, &out, "tally_getAccount", a); err != nil {
		return nil, fmt.Errorf("tally_getAccount: %w", err)
	}
	return &out, nil
}

// Supply is what tally_getSupply returns.
type Supply = schema.Supply

// Supply returns an asset's issuance (tally_getSupply).
func (c *Client) Supply(ctx context.Context, symbol string) (*Supply, error) {
	var out Supply
	if err := c.Call(ctx, &out, "tally_getSupply", symbol); err != nil {
		return nil, fmt.Errorf("tally_getSupply: %w", err)
	}
	return &out, nil
}

// HistoryPage is what tally_getAccountHistory returns.
type HistoryPage = schema.HistoryPage

// AccountHistory returns a page of a's history, newest first; cursor is the
// previous page's NextCursor (nil for the newest page).
func (c *Client) AccountHistory(ctx context.Context, a common.Address, cursor *hexutil.Bytes, limit uint) (*HistoryPage, error) {
	var out HistoryPage
	if err := c.Call(ctx, &out, "tally_getAccountHistory", a, cursor, hexutil.Uint(limit)); err != nil {
		return nil, fmt.Errorf("tally_getAccountHistory: %w", err)
	}
	return &out, nil
}

// TransactionReason returns why an applied transaction failed at
// execution, as the node kept it with the receipt
// (tally_getTransactionReason); ok is false for a transaction that
// succeeded, is pending or unknown, or failed in a block older than what
// the node keeps the reason or the state of.
func (c *Client) TransactionReason(ctx context.Context, h common.Hash) (reason string, ok bool, err error) {
	var out *string
	if err := c.Call(ctx, &out, "tally_getTransactionReason", h); err != nil {
		return "", false, fmt.Errorf("tally_getTransactionReason: %w", err)
	}
	if out == nil {
		return "", false, nil
	}
	return *out, true, nil
}

// Certificate is what tally_getCertificate returns.
type Certificate = schema.Certificate

// Certificate returns the commit certificate of block height, or nil while
// no applied block carries one yet (tally_getCertificate).
func (c *Client) Certificate(ctx context.Context, height uint64) (*Certificate, error) {
	var out *Certificate
	if err := c.Call(ctx, &out, "tally_getCertificate", hexutil.Uint64(height)); err != nil {
		return nil, fmt.Errorf("tally_getCertificate: %w", err)
	}
	return out, nil
}

// Proof returns the proof of an applied transaction, checkable offline
// (tally_getProof, docs/proofs.md). Right after inclusion the node answers
// that the block is not certified yet: retry shortly.
func (c *Client) Proof(ctx context.Context, txHash common.Hash) (*chain.TxProof, error) {
	var raw json.RawMessage
	if err := c.Call(ctx, &raw, "tally_getProof", txHash); err != nil {
		return nil, fmt.Errorf("tally_getProof: %w", err)
	}
	p, err := chain.DecodeTxProof(raw)
	if err != nil {
		return nil, fmt.Errorf("tally_getProof: %w", err)
	}
	return p, nil
}
