package rpc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/rpc/schema"
	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/store"
)

// History page bounds of tally_getAccountHistory.
const (
	DefaultHistoryLimit = 50
	MaxHistoryLimit     = 500
)

// LedgerAPI serves the tally_* methods about the ledger: accounts, supply,
// assets and account history. (The node adds tally_nodeInfo.)
type LedgerAPI struct {
	b Backend
	// halted refuses the wallet-facing reads (assets, accounts, supply,
	// history) of a halted node, whose state cannot be trusted; what an
	// operator or an auditor needs, and what verifies itself
	// (certificates, proofs, raw blocks), keeps answering.
	halted func() error
	// heavy bounds the reads of raw blocks, history and proofs (nil:
	// unbounded, for an API used without a Server).
	heavy *heavyGate
	// maxBlockRange bounds the blocks one view reads
	// (http.max-log-block-range; 0: the default).
	maxBlockRange uint64
}

// NewLedgerAPI returns the ledger part of the tally_* namespace.
func NewLedgerAPI(b Backend) *LedgerAPI { return &LedgerAPI{b: b, halted: haltCheck(b)} }

// Assets lists the assets in force with their ERC-20 facade addresses.
func (api *LedgerAPI) Assets() ([]schema.Asset, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	rules, err := api.b.State().Rules()
	if err != nil {
		return nil, err
	}
	out := make([]schema.Asset, len(rules.Assets))
	for i, a := range rules.Assets {
		out[i] = schema.Asset{ID: uint32(i), Symbol: a.Symbol, Name: a.Name, Decimals: a.Decimals, MinorUnits: a.Minor(),
			Address: chain.AssetAddress(uint32(i)), Banks: append([]common.Address{}, a.Banks...), Native: i == 0}
	}
	return out, nil
}

// GetAccount returns an account's balances, KYC tier, freeze flag,
// remaining daily allowance and what the risk rules hold about it.
func (api *LedgerAPI) GetAccount(a common.Address) (*schema.Account, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	db := api.b.State()
	rules, err := db.Rules()
	if err != nil {
		return nil, err
	}
	acc, err := db.Account(a)
	if err != nil {
		return nil, err
	}
	nonce, err := db.Nonce(a)
	if err != nil {
		return nil, err
	}
	info := &schema.Account{Address: a, Nonce: hexutil.Uint64(nonce), Tier: acc.Tier, Frozen: acc.Frozen,
		Balances: map[string]*hexutil.Big{}, RemainingDaily: map[string]*hexutil.Big{}}
	if int(acc.Tier) < len(rules.Tiers) {
		info.TierName = rules.Tiers[acc.Tier].Name
	}
	for i, asset := range rules.Assets {
		bal, err := db.Balance(uint32(i), a)
		if err != nil {
			return nil, err
		}
		info.Balances[asset.Symbol] = (*hexutil.Big)(bal)
		left, err := db.RemainingDaily(uint32(i), a)
		if err != nil {
			return nil, err
		}
		info.RemainingDaily[asset.Symbol] = (*hexutil.Big)(left)
	}
	risk, err := db.RiskStatus(a)
	if err != nil {
		return nil, err
	}
	riskJSON(info, risk)
	return info, nil
}

// GetSupply returns an asset's minted, burned, escrow and circulating amounts.
func (api *LedgerAPI) GetSupply(symbol string) (*schema.Supply, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	db := api.b.State()
	rules, err := db.Rules()
	if err != nil {
		return nil, err
	}
	id, ok := rules.AssetID(symbol)
	if !ok {
		return nil, invalidParams("unknown asset %q", symbol)
	}
	s, err := db.Supply(id)
	if err != nil {
		return nil, err
	}
	out := &schema.Supply{
		Symbol: symbol, Address: chain.AssetAddress(id), Decimals: rules.Assets[id].Decimals,
		Minted: (*hexutil.Big)(s.Minted), Burned: (*hexutil.Big)(s.Burned), Escrow: (*hexutil.Big)(s.Escrow),
		Circulating: (*hexutil.Big)(s.Circulating()), TotalSupply: (*hexutil.Big)(new(big.Int).Sub(s.Minted, s.Burned)),
		Banks: []schema.BankIssuance{},
	}
	asset := rules.Assets[id]
	for _, bank := range asset.Banks {
		is, err := db.Issuance(id, bank)
		if err != nil {
			return nil, err
		}
		out.Banks = append(out.Banks, schema.BankIssuance{Bank: bank, Minted: (*hexutil.Big)(is.Minted), Burned: (*hexutil.Big)(is.Burned),
			Outstanding: (*hexutil.Big)(is.Outstanding()), Cap: (*hexutil.Big)(asset.CapOf(bank))})
	}
	return out, nil
}

// GetAccountHistory pages through an account's transactions newest first:
// everything it sent, and every transfer it received. cursor is the
// previous page's nextCursor (null for the newest page).
//
// A page reads one stored block per item, so it is a heavy read (heavyGate).
func (api *LedgerAPI) GetAccountHistory(ctx context.Context, a common.Address, cursor *hexutil.Bytes, limit *hexutil.Uint) (*schema.HistoryPage, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	done, err := api.heavy.enter(ctx, "tally_getAccountHistory")
	if err != nil {
		return nil, err
	}
	defer done()
	n, err := pageLimit(limit, DefaultHistoryLimit, MaxHistoryLimit)
	if err != nil {
		return nil, err
	}
	var before *store.HistoryEntry
	if cursor != nil {
		if len(*cursor) != 12 {
			return nil, invalidParams("invalid cursor: use nextCursor of the previous page")
		}
		before = &store.HistoryEntry{Number: binary.BigEndian.Uint64((*cursor)[:8]), Index: binary.BigEndian.Uint32((*cursor)[8:])}
	}
	db := api.b.State()
	rules, err := db.Rules()
	if err != nil {
		return nil, err
	}
	entries, err := db.AccountHistory(a, before, n+1)
	if err != nil {
		return nil, err
	}
	page := &schema.HistoryPage{Items: []schema.HistoryItem{}}
	if len(entries) > n {
		entries = entries[:n]
		last := entries[n-1]
		c := hexutil.Bytes(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64(nil, last.Number), last.Index))
		page.NextCursor = &c
	}
	for _, e := range entries {
		item, err := api.historyItem(rules, e)
		if err != nil {
			return nil, err
		}
		page.Items = append(page.Items, *item)
	}
	return page, nil
}

func (api *LedgerAPI) historyItem(rules *state.Rules, e store.HistoryEntry) (*schema.HistoryItem, error) {
	db := api.b.State()
	b, err := db.BlockByNumber(e.Number)
	if err != nil {
		return nil, fmt.Errorf("history block %d: %w", e.Number, err)
	}
	if int(e.Index) >= len(b.Txs) {
		return nil, fmt.Errorf("history entry %d/%d: block has %d txs", e.Number, e.Index, len(b.Txs))
	}
	rs, err := db.Receipts(b)
	if err != nil {
		return nil, err
	}
	tx, r := b.Txs[e.Index], rs[e.Index]
	from, err := api.b.Senders().Sender(tx)
	if err != nil {
		return nil, err
	}
	timeMs, _ := chain.TimeMs(b.Header)
	item := &schema.HistoryItem{
		BlockNumber: hexutil.Uint64(e.Number), TxIndex: hexutil.Uint(e.Index), TxHash: tx.Hash(), TimestampMs: timeMs,
		From: from, To: *tx.To(), Status: hexutil.Uint64(r.Status), Transfers: []schema.Transfer{},
	}
	switch e.Flags {
	case store.HistorySent:
		item.Direction = "sent"
	case store.HistoryReceived:
		item.Direction = "received"
	default:
		item.Direction = "self"
	}
	item.Operation = operationName(tx)
	if !chain.IsSystemAddress(*tx.To()) {
		if r.Status == types.ReceiptStatusSuccessful {
			item.Transfers = append(item.Transfers, schema.Transfer{Asset: rules.Assets[state.NativeAsset].Symbol, From: from, To: *tx.To(), Amount: (*hexutil.Big)(tx.Value())})
		}
		return item, nil
	}
	decodeLogs(rules, r.Logs, item)
	return item, nil
}

// operationName names what a transaction does.
func operationName(tx *types.Transaction) string {
	to := *tx.To()
	if !chain.IsSystemAddress(to) {
		return "transfer"
	}
	if len(tx.Data()) < 4 {
		return "unknown"
	}
	a, _ := chain.ContractABI(to)
	m, err := a.MethodById(tx.Data()[:4])
	if err != nil {
		return "unknown"
	}
	return m.Name
}

// decodeLogs fills item's transfers and reference from a system call's logs.
func decodeLogs(rules *state.Rules, logs []*types.Log, item *schema.HistoryItem) {
	ev := chain.AssetABI.Events
	for _, l := range logs {
		id, ok := chain.AssetID(l.Address)
		if !ok || !rules.HasAsset(id) || len(l.Topics) == 0 {
			continue
		}
		switch l.Topics[0] {
		case ev["Transfer"].ID:
			if len(l.Topics) == 3 {
				item.Transfers = append(item.Transfers, schema.Transfer{
					Asset: rules.Assets[id].Symbol, From: common.BytesToAddress(l.Topics[1][:]), To: common.BytesToAddress(l.Topics[2][:]),
					Amount: (*hexutil.Big)(new(big.Int).SetBytes(l.Data)),
				})
			}
		case ev["PaymentReference"].ID, ev["Refund"].ID, ev["Minted"].ID, ev["MintReversed"].ID:
			ref := l.Topics[1]
			item.Reference = &ref
		case ev["WithdrawalRequested"].ID:
			item.WithdrawalID = (*hexutil.Big)(l.Topics[1].Big())
			if vals, err := ev["WithdrawalRequested"].Inputs.NonIndexed().Unpack(l.Data); err == nil && len(vals) == 2 {
				ref := common.Hash(vals[1].([32]byte))
				item.Reference = &ref
			}
		case ev["WithdrawalSettled"].ID, ev["WithdrawalRefunded"].ID, ev["WithdrawalClaimed"].ID, ev["WithdrawalReturned"].ID:
			item.WithdrawalID = (*hexutil.Big)(l.Topics[1].Big())
		}
	}
}

// GetCertificate returns the commit certificate of block height, with the
// block carrying it; null while the block exists but no applied block
// carries its certificate yet, and an error for a height above the head.
func (api *LedgerAPI) GetCertificate(height hexutil.Uint64) (*schema.Certificate, error) {
	db := api.b.State()
	n := uint64(height)
	if head, _ := db.Head(); n > head.Number {
		return nil, &Error{Code: CodeServerError, Msg: fmt.Sprintf("block %d not found: head is %d", n, head.Number)}
	}
	c, err := db.Certificate(n)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	signers, err := c.Signers(db.ChainID())
	if err != nil {
		return nil, fmt.Errorf("certificate of block %d: %w", n, err)
	}
	vals, err := db.ValidatorsAt(n)
	if err != nil {
		return nil, fmt.Errorf("certificate of block %d: %w", n, err)
	}
	out := &schema.Certificate{Height: height, Hash: c.Hash, Next: c.Next, Signers: make([]string, len(signers)),
		Signatures: make([]hexutil.Bytes, len(c.Sigs)), Validators: len(vals), Quorum: chain.Quorum(len(vals)), Block: hexutil.Uint64(c.Block)}
	for i, s := range c.Sigs {
		out.Signatures[i] = hexutil.Bytes(s)
		out.Signers[i] = signers[i].Hex()
	}
	return out, nil
}

// pageLimit is a paged method's limit parameter: def when absent, else
// 1..max (-32602 outside).
func pageLimit(limit *hexutil.Uint, def, max int) (int, error) {
	n := def
	if limit != nil {
		n = int(*limit)
	}
	if n < 1 || n > max {
		return 0, invalidParams("limit must be 1..%d", max)
	}
	return n, nil
}

// riskJSON fills in an account's risk status (state.RiskStatus).
func riskJSON(info *schema.Account, risk state.RiskStatus) {
	if s := risk.Suspension; s != nil {
		info.Suspension = &schema.Suspension{Rule: s.Rule, Reason: s.Reason, SinceMs: hexutil.Uint64(s.SinceMs), UntilMs: hexutil.Uint64(s.UntilMs), Height: hexutil.Uint64(s.Height)}
	}
	if w := risk.Watch; w != nil {
		info.WatchList = &schema.WatchEntry{Reason: w.Reason, Height: hexutil.Uint64(w.Height)}
	}
	info.Velocity = make([]schema.VelocityCounter, 0, len(risk.Counters))
	for _, c := range risk.Counters {
		vc := schema.VelocityCounter{Rule: c.Rule.Name, Asset: c.Rule.Asset, Window: c.Rule.Window,
			Transfers: hexutil.Uint64(c.Transfers), Amount: (*hexutil.Big)(c.Amount), MaxAmount: (*hexutil.Big)(c.Rule.MaxAmount.Big())}
		if c.Rule.MaxTransfers != 0 {
			vc.MaxTransfers = (*hexutil.Uint64)(&c.Rule.MaxTransfers)
		}
		info.Velocity = append(info.Velocity, vc)
	}
}
