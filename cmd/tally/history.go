package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/rpc/schema"
	"github.com/tally-ledger/tally/txdecode"
	"github.com/tally-ledger/tally/wallet"
)

// defaultHistoryLimit is how many entries 'tally history' shows per page.
const defaultHistoryLimit = 20

// historyScanPage is how many entries 'tally history --asset' reads per
// call while it skips the entries of other assets (the node's maximum
// page, tally_getAccountHistory's limit).
const historyScanPage = 500

// codeInvalidParams is JSON-RPC's code for a parameter the node refuses.
const codeInvalidParams = -32602

// historyJSON is 'tally history --json'.
type historyJSON struct {
	Address txdecode.Address `json:"address"`
	// Asset is the --asset filter ("" for every asset).
	Asset string            `json:"asset,omitempty"`
	Items []historyItemJSON `json:"items"`
	// NextCursor continues with older entries (--cursor); null on the last page.
	NextCursor *hexutil.Bytes `json:"nextCursor"`
}

// historyItemJSON is one transaction of an account's history.
type historyItemJSON struct {
	BlockNumber uint64      `json:"blockNumber"`
	Index       uint        `json:"transactionIndex"`
	TxHash      common.Hash `json:"transactionHash"`
	Time        string      `json:"time"`
	TimestampMs uint64      `json:"timestampMs"`
	// Status is "success" or "failed".
	Status string           `json:"status"`
	From   txdecode.Address `json:"from"`
	To     txdecode.Address `json:"to"`
	// Operation is "transfer" for a native transfer, else the system
	// operation's name.
	Operation string `json:"operation"`
	// Direction is "sent", "received" or "self", from the account's side.
	Direction string                `json:"direction"`
	Transfers []historyTransferJSON `json:"transfers"`
	// Reference is the payment, bank or payout reference the operation
	// carried: value 0x hex, text as txdecode.Reference shows it.
	Reference    *referenceJSON `json:"reference,omitempty"`
	WithdrawalID string         `json:"withdrawalId,omitempty"`
	// Reason is why a failed transaction failed, when the node keeps it.
	Reason string `json:"reason,omitempty"`
}

type historyTransferJSON struct {
	Asset  string           `json:"asset"`
	From   txdecode.Address `json:"from"`
	To     txdecode.Address `json:"to"`
	Amount amountJSON       `json:"amount"`
}

type referenceJSON struct {
	Value common.Hash `json:"value"`
	Text  string      `json:"text"`
}

func (c *cli) history(args []string) error {
	cmd := newCommand("history", "ADDR [--asset SYMBOL] [--limit N] [--cursor C]", `
Pages through an account's transactions, newest first
(tally_getAccountHistory): everything it sent and every transfer it
received, with the operation, the amounts in the asset's units, the
counterparty and the reference as text. The last line gives the command
for the next (older) page, with its --cursor; "end of history" when there
is none. --asset keeps the transactions that moved that asset or called
its facade.`)
	flags := addQueryFlags(cmd.fs)
	symbol := cmd.fs.String("asset", "", "only transactions of the asset `SYMBOL`")
	limit := cmd.fs.Int("limit", defaultHistoryLimit, "show at most `N` transactions (1..500)")
	cursorArg := cmd.fs.String("cursor", "", "continue after a previous page: its next `CURSOR`")
	addr, err := parseOneArg(c, cmd, args, "ADDR", parseAddress)
	if err != nil {
		return err
	}
	if *limit < 1 || *limit > historyScanPage {
		return usageErrorf("history: --limit: %d is not in 1..%d", *limit, historyScanPage)
	}
	var cursor *hexutil.Bytes
	if isSet(cmd.fs, "cursor") {
		b, err := hexutil.Decode(*cursorArg)
		if err != nil || len(b) == 0 {
			return usageErrorf("history: --cursor: %q is not a cursor (0x and hex digits, as a previous page printed it)", truncate(*cursorArg))
		}
		cursor = (*hexutil.Bytes)(&b)
	}
	q, err := flags.connect()
	if err != nil {
		return err
	}
	defer q.done()
	ctx, client := q.ctx, q.client
	_, assets, err := nodeAssets(ctx, client)
	if err != nil {
		return err
	}
	var keep func(schema.HistoryItem) bool // nil: every entry
	if *symbol != "" {
		a, err := assetFlagValue("history", *symbol, assets)
		if err != nil {
			return err
		}
		keep = func(it schema.HistoryItem) bool { return involves(it, a) }
	}
	items, next, err := historyPage(ctx, client, addr, cursor, *limit, keep)
	var re gethrpc.Error
	if errors.As(err, &re) && re.ErrorCode() == codeInvalidParams && cursor != nil && strings.Contains(re.Error(), "cursor") {
		return usageErrorf("history: --cursor: the node refuses %s: %v", truncate(*cursorArg), err)
	}
	if err != nil {
		return fmt.Errorf("history of %s: %w", addr.Hex(), err)
	}
	doc := historyJSON{Address: txdecode.Address(addr), Asset: *symbol, Items: make([]historyItemJSON, len(items)), NextCursor: next}
	var failed []common.Hash
	for i, it := range items {
		doc.Items[i] = historyItem(it, assets)
		if doc.Items[i].Status == "failed" {
			failed = append(failed, it.TxHash)
		}
	}
	reasons, err := txReasons(ctx, client, failed)
	if err != nil {
		return err
	}
	for i, k := 0, 0; i < len(doc.Items) && k < len(failed); i++ {
		if doc.Items[i].Status == "failed" {
			doc.Items[i].Reason = reasons[k]
			k++
		}
	}
	if q.asJSON {
		return c.printJSON(doc)
	}
	writeHistory(c.stdout, doc, *limit)
	return nil
}

// historyPage reads up to limit entries older than cursor that keep
// accepts (nil: every entry), and the cursor after the last one (nil at the end). Entries
// keep refuses are skipped: it reads on, a page of historyScanPage at a
// time, and when it has enough it asks again from the last page's cursor
// for exactly the entries up to the last one kept, so the cursor it
// returns is the node's own (opaque) cursor.
func historyPage(ctx context.Context, client *wallet.Client, addr common.Address, cursor *hexutil.Bytes, limit int, keep func(schema.HistoryItem) bool) ([]schema.HistoryItem, *hexutil.Bytes, error) {
	var out []schema.HistoryItem
	for {
		want := limit - len(out)
		read := historyScanPage
		if keep == nil {
			read = want // a page reads only what it shows
		}
		page, err := client.AccountHistory(ctx, addr, cursor, uint(read))
		if err != nil {
			return nil, nil, err
		}
		last := -1 // index in page.Items of the last entry taken
		for i, it := range page.Items {
			if len(out) == limit {
				break
			}
			if keep == nil || keep(it) {
				out = append(out, it)
				last = i
			}
		}
		switch {
		case len(out) < limit && page.NextCursor != nil:
			cursor = page.NextCursor // read on
			continue
		case len(out) < limit || last == len(page.Items)-1:
			// The end of the history, or the page ended on the last entry
			// taken: the page's own cursor continues after it.
			if len(out) < limit {
				return out, nil, nil
			}
			return out, page.NextCursor, nil
		}
		// Enough, before the page's end: ask for the page up to the last
		// entry taken, whose cursor continues right after it.
		again, err := client.AccountHistory(ctx, addr, cursor, uint(last+1))
		if err != nil {
			return nil, nil, err
		}
		if len(again.Items) != last+1 || again.Items[last].TxHash != page.Items[last].TxHash {
			return nil, nil, fmt.Errorf("the node's history changed between two reads of one page")
		}
		return out, again.NextCursor, nil
	}
}

// involves reports whether a history entry concerns asset a: it moved a,
// or called a's facade (a failed operation moves nothing), or it is a
// native transfer (to an account) and a is the native asset.
func involves(it schema.HistoryItem, a txdecode.Asset) bool {
	for _, t := range it.Transfers {
		if t.Asset == a.Symbol {
			return true
		}
	}
	if id, ok := chain.AssetID(it.To); ok {
		return id == a.ID
	}
	return a.ID == txdecode.NativeAssetID && !chain.IsSystemAddress(it.To)
}

func historyItem(it schema.HistoryItem, assets txdecode.Assets) historyItemJSON {
	out := historyItemJSON{BlockNumber: uint64(it.BlockNumber), Index: uint(it.TxIndex), TxHash: it.TxHash,
		Time: timeText(it.TimestampMs), TimestampMs: it.TimestampMs, Status: statusWord(uint64(it.Status)), From: txdecode.Address(it.From), To: txdecode.Address(it.To),
		Operation: it.Operation, Direction: it.Direction, Transfers: make([]historyTransferJSON, len(it.Transfers))}
	for i, t := range it.Transfers {
		a, ok := assets.BySymbol(t.Asset)
		if !ok {
			a = txdecode.Asset{Symbol: t.Asset} // shown in base units
		}
		out.Transfers[i] = historyTransferJSON{Asset: t.Asset, From: txdecode.Address(t.From), To: txdecode.Address(t.To), Amount: amountOf((*big.Int)(t.Amount), a)}
	}
	if it.Reference != nil {
		out.Reference = &referenceJSON{Value: *it.Reference, Text: txdecode.Reference(*it.Reference)}
	}
	if it.WithdrawalID != nil {
		out.WithdrawalID = it.WithdrawalID.ToInt().String()
	}
	return out
}

// writeHistory writes a page for people: per transaction a line with its
// block, time, status and operation, then its movements seen from the
// account, and the command for the next page.
func writeHistory(w io.Writer, doc historyJSON, limit int) {
	what := "history of " + doc.Address.Hex()
	if doc.Asset != "" {
		what += " in " + doc.Asset
	}
	fmt.Fprintf(w, "%s, newest first\n", what)
	if len(doc.Items) == 0 {
		fmt.Fprintln(w, "(no transactions)")
	}
	for _, it := range doc.Items {
		op := it.Operation
		if it.Reference != nil {
			op += ", ref " + it.Reference.Text
		}
		if it.WithdrawalID != "" {
			op += ", withdrawal " + it.WithdrawalID
		}
		fmt.Fprintf(w, "\nblock %d.%d  %s  %s  %s\n", it.BlockNumber, it.Index, it.Time, it.Status, op)
		fmt.Fprintf(w, "  tx %s\n", it.TxHash.Hex())
		if len(it.Transfers) == 0 {
			peer := "to " + it.To.Hex()
			if it.Direction == "received" {
				peer = "from " + it.From.Hex()
			}
			fmt.Fprintf(w, "  %s, nothing moved (%s)\n", it.Direction, peer)
			if it.Reason != "" {
				fmt.Fprintf(w, "  reason: %s\n", txdecode.Text(it.Reason))
			}
		}
		for _, t := range it.Transfers {
			switch {
			case t.From == doc.Address && t.To == doc.Address:
				fmt.Fprintf(w, "  self     %s\n", t.Amount.Text)
			case t.From == doc.Address && t.To == (txdecode.Address{}):
				fmt.Fprintf(w, "  burned   -%s\n", t.Amount.Text)
			case t.From == doc.Address:
				fmt.Fprintf(w, "  sent     -%s to %s\n", t.Amount.Text, t.To.Hex())
			case t.To == doc.Address && t.From == (txdecode.Address{}):
				fmt.Fprintf(w, "  received +%s, minted by %s\n", t.Amount.Text, it.From.Hex())
			case t.To == doc.Address:
				fmt.Fprintf(w, "  received +%s from %s\n", t.Amount.Text, t.From.Hex())
			default:
				fmt.Fprintf(w, "  moved    %s from %s to %s\n", t.Amount.Text, t.From.Hex(), t.To.Hex())
			}
		}
	}
	if doc.NextCursor == nil {
		fmt.Fprintln(w, "\nend of history")
		return
	}
	next := "tally history " + doc.Address.Hex()
	if doc.Asset != "" {
		next += " --asset " + doc.Asset
	}
	if limit != defaultHistoryLimit {
		next += " --limit " + strconv.Itoa(limit)
	}
	fmt.Fprintf(w, "\nnext page: %s --cursor %s\n", next, doc.NextCursor.String())
}
