package rpc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/rpc/schema"
	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/store"
	"github.com/tally-ledger/tally/txdecode"
)

// The read-only views of the ledger that people read (the explorer, the
// CLI): a transaction decoded with the system contracts' ABIs, the newest
// transactions, the transactions carrying a reference, the validators and
// the governance proposals. They read the applied state only and change
// nothing.

// Page bounds of the views: tally_getRecentTransactions and
// tally_findByReference return at most MaxHistoryLimit items, as
// tally_getAccountHistory; tally_getProposals at most MaxProposalLimit.
const (
	DefaultRecentLimit   = 20
	DefaultProposalLimit = 20
	MaxProposalLimit     = 100
)

// DecodeTransaction returns the transaction h decoded as people read it
// (schema.DecodedTx): its operation and arguments from the system
// contract's ABI, the asset and amount in the currency's units, payer,
// payee, reference (as text when printable), status, and its receipt's
// transfers and events. A transaction this node holds pending has no
// block, status, transfers or events yet; an unknown one is null.
func (api *LedgerAPI) DecodeTransaction(h common.Hash) (*schema.DecodedTx, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	db := api.b.State()
	rules, err := db.Rules()
	if err != nil {
		return nil, err
	}
	number, index, err := db.TxLocation(h)
	if errors.Is(err, store.ErrNotFound) {
		tx, from, ok := api.b.PendingTx(h)
		if !ok {
			return nil, nil
		}
		return DecodeTx(rules, tx, from, nil), nil
	}
	if err != nil {
		return nil, err
	}
	return api.decodeAt(rules, number, index)
}

// decodeAt decodes transaction index of applied block number.
func (api *LedgerAPI) decodeAt(rules *state.Rules, number uint64, index uint32) (*schema.DecodedTx, error) {
	db := api.b.State()
	b, err := db.BlockByNumber(number)
	if err != nil {
		return nil, err
	}
	if int(index) >= len(b.Txs) {
		return nil, fmt.Errorf("transaction %d of block %d: block has %d", index, number, len(b.Txs))
	}
	rs, err := db.Receipts(b)
	if err != nil {
		return nil, err
	}
	return api.decodeIn(rules, b, rs, int(index))
}

// decodeIn decodes transaction i of block b with its receipts rs.
func (api *LedgerAPI) decodeIn(rules *state.Rules, b *chain.Block, rs []*types.Receipt, i int) (*schema.DecodedTx, error) {
	tx := b.Txs[i]
	from, err := api.b.Senders().Sender(tx)
	if err != nil {
		return nil, fmt.Errorf("sender of %s: %w", tx.Hash(), err)
	}
	d := DecodeTx(rules, tx, from, rs[i])
	n, bh, idx := hexutil.Uint64(b.Number()), b.Hash(), hexutil.Uint(i)
	d.BlockNumber, d.BlockHash, d.TxIndex = &n, &bh, &idx
	d.TimestampMs, _ = chain.TimeMs(b.Header)
	return d, nil
}

// DecodeTx decodes tx, sent by from, with package txdecode and the assets
// of rules; r is its receipt (nil while pending). It never fails: calldata
// that no operation matches has no operation and keeps its raw data.
func DecodeTx(rules *state.Rules, tx *types.Transaction, from common.Address, r *types.Receipt) *schema.DecodedTx {
	assets := txdecode.FromGenesis(rules.Assets)
	call := txdecode.DecodeTx(tx, assets)
	d := &schema.DecodedTx{Hash: tx.Hash(), From: from, To: *tx.To(), Nonce: hexutil.Uint64(tx.Nonce()),
		Contract: call.Contract, Operation: call.Operation, Args: argsOf(call.Args), Data: call.Data,
		Transfers: []schema.DecodedTransfer{}, Events: []schema.DecodedEvent{}}
	if call.Asset != nil {
		d.Asset = call.Asset.Symbol
	}
	describe(d, call, from, assets)
	if r == nil {
		return d
	}
	s := hexutil.Uint64(r.Status)
	d.Status = &s
	for _, e := range txdecode.DecodeLogs(r.Logs, assets) {
		ev := schema.DecodedEvent{Address: common.Address(e.Address), Contract: e.Contract, Name: e.Name, Args: argsOf(e.Args), Topics: e.Topics, Data: e.Data}
		if e.Asset != nil {
			ev.Asset = e.Asset.Symbol
		}
		d.Events = append(d.Events, ev)
		if e.Name == "Transfer" && e.Asset != nil && e.Asset.Known {
			f, _ := e.Arg("from")
			t, _ := e.Arg("to")
			v, _ := e.Arg("value")
			n, _ := new(big.Int).SetString(fmt.Sprint(v.Value), 10)
			d.Transfers = append(d.Transfers, schema.DecodedTransfer{From: common.HexToAddress(fmt.Sprint(f.Value)),
				To: common.HexToAddress(fmt.Sprint(t.Value)), Amount: *amountOf(*e.Asset, n)})
		}
	}
	if call.Contract == "account" && r.Status == types.ReceiptStatusSuccessful && tx.Value().Sign() > 0 {
		d.Transfers = append(d.Transfers, schema.DecodedTransfer{From: from, To: *tx.To(), Amount: *d.Amount})
	}
	return d
}

// describe fills the call's amount, payer, payee and reference from its
// decoded arguments, by their names in the ABIs: "to" is the payee;
// "from" the payer (else the sender, who pays what it sends, except a
// bank's mint, which nobody pays); "amount" (or the sum of "amounts") the
// amount of the call's asset; a bytes32 argument (ref, bankRef,
// payoutRef, orderId) the reference.
func describe(d *schema.DecodedTx, call txdecode.Call, sender common.Address, assets txdecode.Assets) {
	payer := sender
	if call.Operation == "mint" {
		payer = common.Address{}
	}
	for _, a := range call.Args {
		switch {
		case a.Type == "address" && a.Name == "to":
			to := common.HexToAddress(fmt.Sprint(a.Value))
			d.Payee = &to
		case a.Type == "address" && a.Name == "from":
			payer = common.HexToAddress(fmt.Sprint(a.Value))
		case a.Type == "bytes32":
			d.Reference = referenceOf([32]byte(common.HexToHash(fmt.Sprint(a.Value))))
		case (a.Name == "amount" || a.Name == "amounts") && call.Asset != nil && call.Asset.Known:
			sum := new(big.Int)
			vals, ok := a.Value.([]any)
			if !ok {
				vals = []any{a.Value}
			}
			for _, v := range vals {
				if n, ok := new(big.Int).SetString(fmt.Sprint(v), 10); ok {
					sum.Add(sum, n)
				}
			}
			d.Amount = amountOf(*call.Asset, sum)
		}
	}
	if payer != (common.Address{}) && (d.Amount != nil || d.Payee != nil) {
		d.Payer = &payer
	}
}

func argsOf(vs []txdecode.Value) []schema.DecodedArg {
	out := make([]schema.DecodedArg, len(vs))
	for i, v := range vs {
		out[i] = schema.DecodedArg{Name: v.Name, Type: v.Type, Value: v.Value, Text: v.Text, Asset: v.Asset}
	}
	return out
}

// amountOf is v base units of asset a.
func amountOf(a txdecode.Asset, v *big.Int) *schema.Amount {
	if v == nil {
		v = new(big.Int)
	}
	return &schema.Amount{Asset: a.Symbol, Decimals: a.Decimals, Value: (*hexutil.Big)(new(big.Int).Set(v)),
		Units: txdecode.FormatUnits(v, a.Decimals, a.MinorUnits), Text: txdecode.FormatAmount(v, a)}
}

// referenceOf returns ref with its text when txdecode.Reference reads it
// as text (printable UTF-8 padded with zero bytes).
func referenceOf(ref [32]byte) *schema.Reference {
	out := &schema.Reference{Hex: common.Hash(ref)}
	if t := txdecode.Reference(ref); t != out.Hex.Hex() {
		out.Text = &t
	}
	return out
}

// ParseReference reads a reference as tally_findByReference takes it: 0x
// and 64 hex digits, or 1..32 bytes of text, right-padded with zero bytes
// (the CLI's rule for a bytes32 argument).
func ParseReference(s string) ([32]byte, error) {
	var ref [32]byte
	if strings.HasPrefix(s, "0x") && len(s) == 66 {
		b, err := hexutil.Decode(s)
		if err != nil {
			return ref, fmt.Errorf("reference %q: %w", s, err)
		}
		copy(ref[:], b)
		return ref, nil
	}
	if len(s) == 0 || len(s) > 32 {
		return ref, fmt.Errorf("a reference is 0x + 64 hex digits or 1..32 bytes of text, got %d bytes", len(s))
	}
	copy(ref[:], s)
	return ref, nil
}

// GetRecentTransactions returns the newest limit transactions (default
// DefaultRecentLimit, at most MaxHistoryLimit), newest first, decoded as
// tally_decodeTransaction does, searching back from the head through at
// most maxScan blocks (http.max-log-block-range): a quiet chain's older
// transactions are left out, and the answer says which blocks it searched.
// A heavy read.
func (api *LedgerAPI) GetRecentTransactions(ctx context.Context, limit *hexutil.Uint) (*schema.RecentTransactions, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	n, err := pageLimit(limit, DefaultRecentLimit, MaxHistoryLimit)
	if err != nil {
		return nil, err
	}
	done, err := api.heavy.enter(ctx, "tally_getRecentTransactions")
	if err != nil {
		return nil, err
	}
	defer done()
	db := api.b.State()
	rules, err := db.Rules()
	if err != nil {
		return nil, err
	}
	head, _ := db.Head()
	out := &schema.RecentTransactions{Items: []schema.DecodedTx{}, To: hexutil.Uint64(head.Number), From: hexutil.Uint64(head.Number)}
	for num, scanned := head.Number, uint64(0); scanned < api.maxScan(); num, scanned = num-1, scanned+1 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		out.From = hexutil.Uint64(num)
		b, err := db.BlockByNumber(num)
		if err != nil {
			return nil, err
		}
		if len(b.Txs) > 0 {
			rs, err := db.Receipts(b)
			if err != nil {
				return nil, err
			}
			for i := len(b.Txs) - 1; i >= 0 && len(out.Items) < n; i-- {
				d, err := api.decodeIn(rules, b, rs, i)
				if err != nil {
					return nil, err
				}
				out.Items = append(out.Items, *d)
			}
		}
		if len(out.Items) == n || num == 0 {
			break
		}
	}
	return out, nil
}

// maxScan is the most blocks one view reads (http.max-log-block-range).
func (api *LedgerAPI) maxScan() uint64 {
	if api.maxBlockRange == 0 {
		return DefaultLimits.MaxLogBlockRange
	}
	return api.maxBlockRange
}

// referenceEvents are the Asset events whose first indexed argument is a
// reference: the log index finds them by their topic 1.
var referenceEvents = []string{"PaymentReference", "Refund", "Minted", "MintReversed"}

// FindByReference returns the transactions whose logs carry the reference
// ref (0x + 64 hex digits, or up to 32 bytes of text): payments and
// refunds under an order reference, mints and reversed mints under a bank
// reference, withdrawals claimed under a bank order id. It reads the log
// index (as eth_getLogs does), from block fromBlock (0 without it) on,
// oldest first, at most limit matches (default DefaultHistoryLimit, at
// most MaxHistoryLimit); nextBlock continues the search. A heavy read.
func (api *LedgerAPI) FindByReference(ctx context.Context, ref string, fromBlock *hexutil.Uint64, limit *hexutil.Uint) (*schema.ReferencePage, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	r, err := ParseReference(ref)
	if err != nil {
		return nil, invalidParams("%v", err)
	}
	n, err := pageLimit(limit, DefaultHistoryLimit, MaxHistoryLimit)
	if err != nil {
		return nil, err
	}
	done, err := api.heavy.enter(ctx, "tally_findByReference")
	if err != nil {
		return nil, err
	}
	defer done()
	db := api.b.State()
	rules, err := db.Rules()
	if err != nil {
		return nil, err
	}
	head, _ := db.Head()
	page := &schema.ReferencePage{Reference: *referenceOf(r), Items: []schema.ReferenceMatch{}}
	from := uint64(0)
	if fromBlock != nil {
		from = uint64(*fromBlock)
	}
	if from > head.Number {
		return page, nil
	}
	ev := chain.AssetABI.Events
	var byRef []common.Hash
	for _, name := range referenceEvents {
		byRef = append(byRef, ev[name].ID)
	}
	topic := common.Hash(r)
	queries := []store.LogQuery{
		{FromBlock: from, ToBlock: head.Number, Topics: [][]common.Hash{byRef, {topic}}, MaxResults: n},
		{FromBlock: from, ToBlock: head.Number, Topics: [][]common.Hash{{ev["WithdrawalClaimed"].ID}, nil, nil, {topic}}, MaxResults: n},
	}
	// Each query stops after the block that brings it to n matches; the
	// page ends at the lower of the blocks they reached, so that the next
	// page misses none of either.
	through := head.Number
	var logs []*types.Log
	for _, q := range queries {
		found, last, err := db.FilterLogsPage(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("reference %s: %w", topic, err)
		}
		logs = append(logs, found...)
		through = min(through, last)
	}
	var kept []*types.Log
	for _, l := range logs {
		if l.BlockNumber <= through {
			kept = append(kept, l)
		}
	}
	sortLogs(kept)
	for _, l := range kept {
		page.Items = append(page.Items, referenceMatch(rules, l))
	}
	if through < head.Number {
		next := hexutil.Uint64(through + 1)
		page.NextBlock = &next
	}
	return page, nil
}

// sortLogs sorts logs in chain order.
func sortLogs(logs []*types.Log) {
	slices.SortFunc(logs, func(a, b *types.Log) int {
		if c := cmp.Compare(a.BlockNumber, b.BlockNumber); c != 0 {
			return c
		}
		return cmp.Compare(a.Index, b.Index)
	})
}

// referenceMatch describes a log that carries a reference.
func referenceMatch(rules *state.Rules, l *types.Log) schema.ReferenceMatch {
	m := schema.ReferenceMatch{TxHash: l.TxHash, BlockNumber: hexutil.Uint64(l.BlockNumber)}
	if ev, err := chain.AssetABI.EventByID(l.Topics[0]); err == nil {
		m.Event = ev.Name
	}
	id, ok := chain.AssetID(l.Address)
	if !ok || !rules.HasAsset(id) {
		return m
	}
	switch m.Event {
	case "WithdrawalClaimed":
		bank := common.BytesToAddress(l.Topics[2][:])
		m.From = &bank
	default:
		// (ref, from-ish, to, amount): the payer, merchant or bank; the payee.
		if len(l.Topics) == 4 {
			from, to := common.BytesToAddress(l.Topics[2][:]), common.BytesToAddress(l.Topics[3][:])
			m.From, m.To = &from, &to
		}
		if len(l.Data) >= 32 {
			m.Amount = amountOf(txdecode.FromGenesis(rules.Assets).Of(id), new(big.Int).SetBytes(l.Data[:32]))
		}
	}
	return m
}

// GetValidators returns the validator set in force at the head, the
// quorum a certificate needs, and the approved changes not in effect yet.
func (api *LedgerAPI) GetValidators() (*schema.Validators, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	db := api.b.State()
	head, _ := db.Head()
	infos, err := db.ValidatorInfos()
	if err != nil {
		return nil, err
	}
	pending, err := db.PendingValidatorChanges()
	if err != nil {
		return nil, err
	}
	out := &schema.Validators{Height: hexutil.Uint64(head.Number), Validators: []schema.Validator{},
		Quorum: chain.Quorum(len(db.Validators())), Pending: []schema.ValidatorChange{}}
	for _, v := range infos {
		out.Validators = append(out.Validators, validatorOf(v))
	}
	for _, c := range pending {
		out.Pending = append(out.Pending, schema.ValidatorChange{ProposalID: hexutil.Uint64(c.ProposalID), Add: c.Add,
			Validator: validatorOf(c.Validator), EffectiveHeight: hexutil.Uint64(c.EffectiveHeight)})
	}
	return out, nil
}

func validatorOf(v state.ValidatorInfo) schema.Validator {
	return schema.Validator{Address: v.Address, Name: v.Name, PublicKey: hexutil.Bytes(v.PublicKey)}
}

// GetProposals pages through the governance proposals, newest first:
// before is the previous page's nextCursor (null for the newest), limit
// 1..MaxProposalLimit (default DefaultProposalLimit). Each proposal's
// change is decoded with the governance ABI.
func (api *LedgerAPI) GetProposals(before *hexutil.Uint64, limit *hexutil.Uint) (*schema.ProposalPage, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	n, err := pageLimit(limit, DefaultProposalLimit, MaxProposalLimit)
	if err != nil {
		return nil, err
	}
	db := api.b.State()
	rules, err := db.Rules()
	if err != nil {
		return nil, err
	}
	page := &schema.ProposalPage{Members: append([]common.Address{}, rules.Governance.Members...),
		Threshold: rules.Governance.Threshold, Items: []schema.Proposal{}}
	last, err := lastProposalID(db)
	if err != nil {
		return nil, err
	}
	if before != nil {
		last = min(last, max(uint64(*before), 1)-1)
	}
	for id := last; id >= 1 && len(page.Items) < n; id-- {
		p, ok, err := db.Proposal(id)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("proposal %d missing below the last id %d", id, last)
		}
		page.Items = append(page.Items, proposalOf(rules, id, p))
	}
	if k := len(page.Items); k > 0 {
		if oldest := uint64(page.Items[k-1].ID); oldest > 1 {
			c := hexutil.Uint64(oldest)
			page.NextCursor = &c
		}
	}
	return page, nil
}

// lastProposalID finds the highest proposal id: ids are allocated 1, 2, …
// and never deleted, so the ids that exist are 1..last, found with
// O(log last) reads (doubling, then bisecting).
func lastProposalID(db *store.DB) (uint64, error) {
	exists := func(id uint64) (bool, error) {
		_, ok, err := db.Proposal(id)
		return ok, err
	}
	hi := uint64(1)
	for {
		ok, err := exists(hi)
		if err != nil {
			return 0, err
		}
		if !ok {
			break
		}
		hi *= 2
	}
	lo := hi / 2 // exists (or 0); hi does not
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		ok, err := exists(mid)
		if err != nil {
			return 0, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// proposalStatus names a proposal status.
var proposalStatus = map[uint8]string{state.ProposalPending: "pending", state.ProposalApproved: "approved",
	state.ProposalRejected: "rejected", state.ProposalExecuted: "executed", state.ProposalFailed: "failed"}

func proposalOf(rules *state.Rules, id uint64, p state.Proposal) schema.Proposal {
	out := schema.Proposal{ID: hexutil.Uint64(id), Operation: "unknown", Args: []schema.DecodedArg{}, Proposer: p.Proposer,
		Approvals: append([]common.Address{}, p.Approvals...), Rejections: append([]common.Address{}, p.Rejections...),
		Status: proposalStatus[p.Status], Height: hexutil.Uint64(p.Height), EffectiveHeight: hexutil.Uint64(p.EffectiveHeight)}
	if out.Status == "" {
		out.Status = fmt.Sprint(p.Status)
	}
	gov := chain.GovernanceAddress
	if c := txdecode.DecodeCall(&gov, new(big.Int), p.Change, txdecode.FromGenesis(rules.Assets)); c.Operation != "" {
		out.Operation, out.Args = c.Operation, argsOf(c.Args)
	}
	return out
}
