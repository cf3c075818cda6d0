package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/rpc/schema"
	"github.com/tally-ledger/tally/txdecode"
	"github.com/tally-ledger/tally/wallet"
)

func (c *cli) balance(args []string) error {
	cmd := newCommand("balance", "ADDR", `
Prints the account's balance of the native asset, in its units and in
base units (1 CNY = 10^18 base units). 'tally account' shows every asset.`)
	addr, q, err := queryOneAssets(c, cmd, args, "ADDR", parseAddress)
	if err != nil {
		return err
	}
	defer q.done()
	bal, err := q.client.Balance(q.ctx, addr)
	if err != nil {
		return err
	}
	native := q.assets.Of(txdecode.NativeAssetID)
	if q.asJSON {
		return c.printJSON(struct {
			Address txdecode.Address `json:"address"`
			Asset   string           `json:"asset"`
			Balance amountJSON       `json:"balance"`
		}{txdecode.Address(addr), native.Symbol, amountOf(bal, native)})
	}
	fmt.Fprintf(c.stdout, "%s (%s base units)\n", txdecode.FormatAmount(bal, native), bal)
	return nil
}

// txJSON is 'tally tx --json'.
type txJSON struct {
	Hash common.Hash `json:"hash"`
	// Status is "success", "failed" (status 0: included, changed nothing
	// but the nonce) or "pending" (admitted, not yet in a block).
	Status string `json:"status"`
	// Reason is why a failed transaction failed, when the node keeps it.
	Reason      string            `json:"reason,omitempty"`
	BlockNumber *uint64           `json:"blockNumber"`
	BlockHash   *common.Hash      `json:"blockHash"`
	Index       *uint             `json:"transactionIndex"`
	From        txdecode.Address  `json:"from"`
	To          *txdecode.Address `json:"to"`
	Nonce       uint64            `json:"nonce"`
	Type        uint8             `json:"type"`
	Call        txdecode.Call     `json:"call"`
	Events      []txdecode.Event  `json:"events"`
}

func (c *cli) tx(args []string) error {
	cmd := newCommand("tx", "HASH", `
Prints a transaction and its receipt as people read them: status (1
success, 0 failed at execution, with the reason when the node keeps it, or
pending while admitted but not yet in a block), block, sender, the
operation with its arguments (amounts in the asset's units, references as
text when printable) and the events it emitted. A receipt is final.`)
	hash, q, err := queryOne(c, cmd, args, "HASH", parseHash)
	if err != nil {
		return err
	}
	defer q.done()
	ctx, client := q.ctx, q.client
	tx, pending, err := client.TransactionByHash(ctx, hash)
	if errors.Is(err, wallet.ErrNotFound) {
		return fmt.Errorf("tx %s: not found", hash)
	}
	if err != nil {
		return err
	}
	chainID, err := client.ChainID(ctx)
	if err != nil {
		return err
	}
	from, err := chain.Sender(chain.NewSigner(chainID), tx)
	if err != nil {
		return fmt.Errorf("tx %s: sender: %w", hash, err)
	}
	_, assets, err := nodeAssets(ctx, client)
	if err != nil {
		return err
	}
	doc := txJSON{Hash: tx.Hash(), Status: "pending", From: txdecode.Address(from), To: (*txdecode.Address)(tx.To()), Nonce: tx.Nonce(), Type: tx.Type(),
		Call: txdecode.DecodeTx(tx, assets), Events: []txdecode.Event{}}
	var status uint64 // the receipt's, once there is one
	if !pending {
		r, err := client.Receipt(ctx, hash)
		switch {
		case errors.Is(err, wallet.ErrNotFound):
			// A receipt exists with the block, so this is a node in
			// flux (a failover between two calls): say pending.
		case err != nil:
			return err
		default:
			n, h, i := r.BlockNumber.Uint64(), r.BlockHash, r.TransactionIndex
			doc.BlockNumber, doc.BlockHash, doc.Index = &n, &h, &i
			doc.Events = txdecode.DecodeLogs(r.Logs, assets)
			status, doc.Status = r.Status, statusWord(r.Status)
			if r.Status != types.ReceiptStatusSuccessful {
				if doc.Reason, err = txReason(ctx, client, hash); err != nil {
					return err
				}
			}
		}
	}
	if q.asJSON {
		return c.printJSON(doc)
	}
	w := c.stdout
	field(w, "hash", doc.Hash.Hex())
	if doc.Status == "pending" {
		field(w, "status", "pending")
	} else {
		field(w, "status", statusText(status))
		if doc.Reason != "" {
			field(w, "reason", txdecode.Text(doc.Reason))
		}
	}
	if doc.BlockNumber != nil {
		field(w, "block", strconv.FormatUint(*doc.BlockNumber, 10))
		field(w, "index", strconv.FormatUint(uint64(*doc.Index), 10))
	}
	field(w, "from", from.Hex())
	field(w, "to", toText(tx.To(), doc.Call))
	field(w, "nonce", strconv.FormatUint(tx.Nonce(), 10))
	field(w, "type", txTypeText(tx.Type()))
	writeCall(w, doc.Call)
	writeEvents(w, doc.Events)
	return nil
}

// toText names a transaction's recipient: an account, or the system
// contract (an asset's facade by its symbol).
func toText(to *common.Address, call txdecode.Call) string {
	switch {
	case to == nil:
		return "(none)"
	case call.Contract == "asset" && call.Asset != nil:
		return to.Hex() + " (" + call.Asset.Symbol + " facade)"
	case call.Contract != "account":
		return to.Hex() + " (" + call.Contract + ")"
	}
	return to.Hex()
}

// methodReason is the node's method serving the failure reason of a
// status-0 transaction.
const methodReason = "tally_getTransactionReason"

// codeMethodNotFound is JSON-RPC's code for a method the server lacks.
const codeMethodNotFound = -32601

// txReason asks the node why a status-0 transaction failed: "" when the
// node does not keep reasons (a node before tally_getTransactionReason).
func txReason(ctx context.Context, client *wallet.Client, hash common.Hash) (string, error) {
	reasons, err := txReasons(ctx, client, []common.Hash{hash})
	if err != nil {
		return "", err
	}
	return reasons[0], nil
}

// txReasons asks the reasons of status-0 transactions in one batch (see
// txReason).
func txReasons(ctx context.Context, client *wallet.Client, hashes []common.Hash) ([]string, error) {
	raws := make([]json.RawMessage, len(hashes))
	elems := make([]gethrpc.BatchElem, len(hashes))
	for i, h := range hashes {
		elems[i] = gethrpc.BatchElem{Method: methodReason, Args: []any{h}, Result: &raws[i]}
	}
	if len(elems) > 0 {
		if err := client.BatchCall(ctx, elems); err != nil {
			return nil, fmt.Errorf("failure reasons: %w", err)
		}
	}
	out := make([]string, len(hashes))
	for i, el := range elems {
		var re gethrpc.Error
		if errors.As(el.Error, &re) && re.ErrorCode() == codeMethodNotFound {
			continue
		}
		if el.Error != nil {
			return nil, fmt.Errorf("reason of tx %s: %w", hashes[i], el.Error)
		}
		r, err := parseReason(raws[i])
		if err != nil {
			return nil, fmt.Errorf("reason of tx %s: %w", hashes[i], err)
		}
		out[i] = r
	}
	return out, nil
}

// parseReason reads tally_getTransactionReason's answer: the reason as a
// string, null when the node has none, or an object with a "reason".
func parseReason(raw json.RawMessage) (string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var obj struct {
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return "", fmt.Errorf("unexpected answer %.100s", raw)
	}
	return obj.Reason, nil
}

// txTypeText names a transaction type.
func txTypeText(t uint8) string {
	switch t {
	case types.LegacyTxType:
		return "0 (legacy, EIP-155)"
	case types.AccessListTxType:
		return "1 (EIP-2930)"
	case types.DynamicFeeTxType:
		return "2 (EIP-1559)"
	}
	return strconv.Itoa(int(t))
}

// blockJSON is 'tally block --json'.
type blockJSON struct {
	Number       uint64           `json:"number"`
	Hash         common.Hash      `json:"hash"`
	Parent       common.Hash      `json:"parent"`
	Time         string           `json:"time"`
	TimeMs       uint64           `json:"timeMs"`
	Proposer     txdecode.Address `json:"proposer"`
	StateRoot    common.Hash      `json:"stateRoot"`
	Transactions []common.Hash    `json:"transactions"`
}

func (c *cli) block(args []string) error {
	cmd := newCommand("block", "N|latest", `
Prints a block's header: number, hash, parent, time, transaction count and
proposer (the validator that built it, the header's miner field).`)
	arg, q, err := queryOne(c, cmd, args, "N|latest", parseBlockNumber)
	if err != nil {
		return err
	}
	defer q.done()
	ctx, client := q.ctx, q.client
	b, err := client.BlockByNumber(ctx, arg.number)
	if errors.Is(err, wallet.ErrNotFound) {
		return fmt.Errorf("block %s: not found", arg.text)
	}
	if err != nil {
		return err
	}
	h := b.Header()
	ms := h.Time * 1000
	if t, err := chain.TimeMs(h); err == nil {
		ms = t
	}
	doc := blockJSON{Number: b.NumberU64(), Hash: b.Hash(), Parent: h.ParentHash, Time: timeText(ms), TimeMs: ms,
		Proposer: txdecode.Address(h.Coinbase), StateRoot: h.Root, Transactions: make([]common.Hash, len(b.Transactions()))}
	for i, tx := range b.Transactions() {
		doc.Transactions[i] = tx.Hash()
	}
	if q.asJSON {
		return c.printJSON(doc)
	}
	fmt.Fprintf(c.stdout, "number:   %d\nhash:     %s\nparent:   %s\ntime:     %s\ntxs:      %d\nproposer: %s\n",
		doc.Number, doc.Hash, doc.Parent, doc.Time, len(doc.Transactions), doc.Proposer.Hex())
	for _, tx := range doc.Transactions {
		fmt.Fprintf(c.stdout, "tx:       %s\n", tx)
	}
	return nil
}

// accountJSON is 'tally account --json'.
type accountJSON struct {
	Address  txdecode.Address   `json:"address"`
	Nonce    uint64             `json:"nonce"`
	Tier     uint8              `json:"tier"`
	TierName string             `json:"tierName"`
	Frozen   bool               `json:"frozen"`
	Assets   []accountAssetJSON `json:"assets"`
	// The risk rules' view (docs/operations.md "Risk control"), each
	// left out when empty: an active suspension, the watch list entry,
	// the velocity counters of the account's tier.
	Suspension *accountSuspensionJSON `json:"suspension,omitempty"`
	WatchList  *accountWatchJSON      `json:"watchList,omitempty"`
	Velocity   []accountVelocityJSON  `json:"velocity,omitempty"`
}

// accountSuspensionJSON is an active automatic suspension.
type accountSuspensionJSON struct {
	Rule   string `json:"rule"`
	Reason string `json:"reason"`
	Since  string `json:"since"`
	Until  string `json:"until"`
	Block  uint64 `json:"block"`
}

// accountWatchJSON is a watch list entry.
type accountWatchJSON struct {
	Reason string `json:"reason"`
	Block  uint64 `json:"block"`
}

// accountVelocityJSON is one velocity rule's window: what the account
// sent in it against the caps (null: not capped).
type accountVelocityJSON struct {
	Rule         string      `json:"rule"`
	Asset        string      `json:"asset"`
	Window       string      `json:"window"`
	Transfers    uint64      `json:"transfers"`
	MaxTransfers *uint64     `json:"maxTransfers"`
	Amount       amountJSON  `json:"amount"`
	MaxAmount    *amountJSON `json:"maxAmount"`
}

// accountAssetJSON is one asset of an account: RemainingDaily is what it
// may still send today, null when its tier has no daily limit.
type accountAssetJSON struct {
	Asset          string      `json:"asset"`
	Balance        amountJSON  `json:"balance"`
	RemainingDaily *amountJSON `json:"remainingDaily"`
}

func (c *cli) account(args []string) error {
	cmd := newCommand("account", "ADDR", `
Prints an account's balance of every asset, its KYC tier, whether it is
frozen, and what it may still send today (UTC day of the last block's time);
then what the risk rules hold about it: an active suspension, its watch list
entry, and the counters of its tier's velocity rules.`)
	addr, q, err := queryOneAssets(c, cmd, args, "ADDR", parseAddress)
	if err != nil {
		return err
	}
	defer q.done()
	acc, err := q.client.Account(q.ctx, addr)
	if err != nil {
		return err
	}
	doc := accountJSON{Address: txdecode.Address(acc.Address), Nonce: uint64(acc.Nonce), Tier: acc.Tier, TierName: acc.TierName, Frozen: acc.Frozen, Assets: []accountAssetJSON{}}
	for _, s := range q.list {
		a := q.assets.Of(s.ID)
		row := accountAssetJSON{Asset: a.Symbol, Balance: amountOf((*big.Int)(acc.Balances[a.Symbol]), a)}
		if v := acc.RemainingDaily[a.Symbol]; v != nil {
			left := amountOf((*big.Int)(v), a)
			row.RemainingDaily = &left
		}
		doc.Assets = append(doc.Assets, row)
	}
	accountRisk(&doc, acc, q.assets)
	if q.asJSON {
		return c.printJSON(doc)
	}
	fmt.Fprintf(c.stdout, "address: %s\ntier:    %d (%s)\nfrozen:  %t\nnonce:   %d\n", doc.Address.Hex(), doc.Tier, doc.TierName, doc.Frozen, doc.Nonce)
	for _, row := range doc.Assets {
		left := "unlimited"
		if row.RemainingDaily != nil {
			left = row.RemainingDaily.Text
		}
		fmt.Fprintf(c.stdout, "%-7s  balance %s, may send %s more today\n", row.Asset, row.Balance.Text, left)
	}
	if s := doc.Suspension; s != nil {
		fmt.Fprintf(c.stdout, "suspended until %s (since block %d): %s\n", s.Until, s.Block, s.Reason)
	}
	if w := doc.WatchList; w != nil {
		fmt.Fprintf(c.stdout, "on the watch list (since block %d): %s\n", w.Block, w.Reason)
	}
	for _, v := range doc.Velocity {
		var parts []string
		if v.MaxTransfers != nil {
			parts = append(parts, fmt.Sprintf("%d of %d transfers", v.Transfers, *v.MaxTransfers))
		}
		if v.MaxAmount != nil {
			parts = append(parts, fmt.Sprintf("%s of %s", v.Amount.Text, v.MaxAmount.Text))
		}
		fmt.Fprintf(c.stdout, "velocity %s (%s, %s): %s\n", v.Rule, v.Asset, v.Window, strings.Join(parts, ", "))
	}
	return nil
}

// supplyJSON is 'tally supply --json'.
type supplyJSON struct {
	Symbol      string           `json:"symbol"`
	Address     txdecode.Address `json:"address"`
	Decimals    uint8            `json:"decimals"`
	MinorUnits  uint8            `json:"minorUnits"`
	Minted      amountJSON       `json:"minted"`
	Burned      amountJSON       `json:"burned"`
	Escrow      amountJSON       `json:"escrow"`
	Circulating amountJSON       `json:"circulating"`
	TotalSupply amountJSON       `json:"totalSupply"`
}

func (c *cli) supply(args []string) error {
	cmd := newCommand("supply", "SYMBOL", `
Prints an asset's issuance: minted (genesis allocations and bank mints),
burned (settled withdrawals), escrow (pending withdrawals) and circulating
(held in balances). minted - burned = circulating + escrow always holds.`)
	arg, q, err := queryOneAssets(c, cmd, args, "SYMBOL", verbatim)
	if err != nil {
		return err
	}
	defer q.done()
	a, ok := q.assets.BySymbol(arg)
	if !ok {
		return usageErrorf("supply: SYMBOL: unknown asset %q (this chain has %s)", truncate(arg), strings.Join(q.assets.Symbols(), ", "))
	}
	s, err := q.client.Supply(q.ctx, arg)
	if err != nil {
		return err
	}
	doc := supplyJSON{Symbol: a.Symbol, Address: txdecode.Address(s.Address), Decimals: a.Decimals, MinorUnits: a.MinorUnits,
		Minted: amountOf(s.Minted.ToInt(), a), Burned: amountOf(s.Burned.ToInt(), a), Escrow: amountOf(s.Escrow.ToInt(), a),
		Circulating: amountOf(s.Circulating.ToInt(), a), TotalSupply: amountOf(s.TotalSupply.ToInt(), a)}
	if q.asJSON {
		return c.printJSON(doc)
	}
	for _, row := range []struct {
		name string
		v    amountJSON
	}{{"minted", doc.Minted}, {"burned", doc.Burned}, {"escrow", doc.Escrow}, {"circulating", doc.Circulating}, {"totalSupply", doc.TotalSupply}} {
		fmt.Fprintf(c.stdout, "%-12s %s\n", row.name+":", row.v.Text)
	}
	fmt.Fprintf(c.stdout, "%-12s %s\n", "address:", doc.Address.Hex())
	return nil
}

// assetJSON is one asset of 'tally assets --json' (tally_assets, with
// EIP-55 addresses).
type assetJSON struct {
	ID         uint32             `json:"id"`
	Symbol     string             `json:"symbol"`
	Name       string             `json:"name"`
	Decimals   uint8              `json:"decimals"`
	MinorUnits uint8              `json:"minorUnits"`
	Address    txdecode.Address   `json:"address"`
	Native     bool               `json:"native"`
	Banks      []txdecode.Address `json:"banks"`
}

func (c *cli) assets(args []string) error {
	cmd := newCommand("assets", "", `
Lists the chain's assets: id, symbol, decimals, minor units (the decimal
places amounts are shown with, and the smallest amount a bank pays out),
the ERC-20 facade address, name and issuing banks.`)
	flags := addQueryFlags(cmd.fs)
	pos, err := c.parse(cmd, args)
	if err != nil {
		return err
	}
	if err := wantArgs(cmd, pos); err != nil {
		return err
	}
	q, err := flags.connect()
	if err != nil {
		return err
	}
	defer q.done()
	ctx, client := q.ctx, q.client
	list, _, err := nodeAssets(ctx, client)
	if err != nil {
		return err
	}
	if q.asJSON {
		doc := struct {
			Assets []assetJSON `json:"assets"`
		}{make([]assetJSON, len(list))}
		for i, a := range list {
			banks := make([]txdecode.Address, len(a.Banks))
			for j, b := range a.Banks {
				banks[j] = txdecode.Address(b)
			}
			doc.Assets[i] = assetJSON{ID: a.ID, Symbol: a.Symbol, Name: a.Name, Decimals: a.Decimals, MinorUnits: a.MinorUnits,
				Address: txdecode.Address(a.Address), Native: a.Native, Banks: banks}
		}
		return c.printJSON(doc)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSYMBOL\tDECIMALS\tMINOR\tFACADE\tNAME\tBANKS")
	for _, a := range list {
		name := a.Name
		if a.Native {
			name += " (native)"
		}
		banks := make([]string, len(a.Banks))
		for i, b := range a.Banks {
			banks[i] = b.Hex()
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%s\t%s\t%s\n", a.ID, a.Symbol, a.Decimals, a.MinorUnits, a.Address.Hex(), name, strings.Join(banks, ", "))
	}
	return tw.Flush()
}

// queryFlags are a read command's flags: --rpc, --timeout and --json.
type queryFlags struct {
	rpcURL  *string
	timeout *time.Duration
	asJSON  *bool
}

func addQueryFlags(fs *flag.FlagSet) queryFlags {
	q := queryFlags{asJSON: jsonFlag(fs)}
	q.rpcURL, q.timeout = rpcFlags(fs)
	return q
}

// nodeQuery is a read command's connection to the node, and its --json.
type nodeQuery struct {
	ctx    context.Context
	client *wallet.Client
	asJSON bool
	done   func() // closes the client and releases the timeout
}

// connect dials the node within --timeout (connect).
func (f queryFlags) connect() (*nodeQuery, error) {
	ctx, client, done, err := connect(*f.rpcURL, *f.timeout)
	if err != nil {
		return nil, err
	}
	return &nodeQuery{ctx: ctx, client: client, asJSON: *f.asJSON, done: done}, nil
}

// queryOne is the prelude of a read command that takes one argument, named
// name in its usage: it adds the query flags, parses the command line and
// the argument (parseOneArg), and dials the node. The caller defers
// q.done().
func queryOne[T any](c *cli, cmd *command, args []string, name string, parse func(what, s string) (T, error)) (v T, q *nodeQuery, err error) {
	flags := addQueryFlags(cmd.fs)
	if v, err = parseOneArg(c, cmd, args, name, parse); err != nil {
		return v, nil, err
	}
	q, err = flags.connect()
	return v, q, err
}

// assetQuery is a read command's connection to the node and the node's
// assets, in which it shows amounts.
type assetQuery struct {
	*nodeQuery
	list   []schema.Asset // in the node's order
	assets txdecode.Assets
}

// queryOneAssets is queryOne for a command that shows amounts: it also
// reads the node's assets. The caller defers q.done().
func queryOneAssets[T any](c *cli, cmd *command, args []string, name string, parse func(what, s string) (T, error)) (T, *assetQuery, error) {
	v, q, err := queryOne(c, cmd, args, name, parse)
	if err != nil {
		return v, nil, err
	}
	list, assets, err := nodeAssets(q.ctx, q.client)
	if err != nil {
		q.done()
		return v, nil, err
	}
	return v, &assetQuery{nodeQuery: q, list: list, assets: assets}, nil
}

// parseOneArg parses a command that takes exactly one argument, named name
// in its usage, and reads the argument with parse, whose errors name it
// "<command>: <name>" ("balance: ADDR").
func parseOneArg[T any](c *cli, cmd *command, args []string, name string, parse func(what, s string) (T, error)) (T, error) {
	arg, err := c.oneArg(cmd, args, name)
	if err != nil {
		var zero T
		return zero, err
	}
	return parse(cmd.name+": "+name, arg)
}

// verbatim is the parse of an argument taken as it is.
func verbatim(_, s string) (string, error) { return s, nil }

// blockArg is a block number argument: number (nil: "latest") and the
// text given.
type blockArg struct {
	number *big.Int
	text   string
}

// parseBlockNumber reads tally block's argument, a block number or
// "latest"; its error names the number N.
func parseBlockNumber(_, s string) (blockArg, error) {
	if s == "latest" {
		return blockArg{text: s}, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return blockArg{}, usageErrorf("block: N: %q is not a block number (a decimal number or \"latest\")", truncate(s))
	}
	return blockArg{number: new(big.Int).SetUint64(n), text: s}, nil
}

// oneArg parses a command that takes exactly one argument, named name in
// its usage, and returns it.
func (c *cli) oneArg(cmd *command, args []string, name string) (string, error) {
	pos, err := c.parse(cmd, args)
	if err != nil {
		return "", err
	}
	if err := wantArgs(cmd, pos, name); err != nil {
		return "", err
	}
	return pos[0], nil
}

// accountRisk fills in doc's risk status from tally_getAccount's.
func accountRisk(doc *accountJSON, acc *schema.Account, assets txdecode.Assets) {
	if s := acc.Suspension; s != nil {
		doc.Suspension = &accountSuspensionJSON{Rule: s.Rule, Reason: s.Reason, Since: timeText(uint64(s.SinceMs)), Until: timeText(uint64(s.UntilMs)), Block: uint64(s.Height)}
	}
	if w := acc.WatchList; w != nil {
		doc.WatchList = &accountWatchJSON{Reason: w.Reason, Block: uint64(w.Height)}
	}
	for _, v := range acc.Velocity {
		a, _ := assets.BySymbol(v.Asset) // the node's own asset
		row := accountVelocityJSON{Rule: v.Rule, Asset: v.Asset, Window: v.Window, Transfers: uint64(v.Transfers), Amount: amountOf((*big.Int)(v.Amount), a)}
		if v.MaxTransfers != nil {
			n := uint64(*v.MaxTransfers)
			row.MaxTransfers = &n
		}
		if v.MaxAmount != nil {
			m := amountOf((*big.Int)(v.MaxAmount), a)
			row.MaxAmount = &m
		}
		doc.Velocity = append(doc.Velocity, row)
	}
}
