package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/big"
	"strings"
	"time"

	"github.com/tally-ledger/tally/rpc/schema"
	"github.com/tally-ledger/tally/txdecode"
	"github.com/tally-ledger/tally/wallet"
)

// The query commands print text for people, or with --json one JSON
// document for scripts (docs/operations.md, "The CLI's JSON output"). The
// documents' shapes are stable: fields are only ever added. In them, every
// amount is an amountJSON, every integer that can pass 2^53 a decimal
// string, hashes and addresses 0x hex (addresses EIP-55), times RFC 3339 in
// UTC with milliseconds, and a transaction's call and events are
// txdecode's.

// jsonFlag adds --json to a query command.
func jsonFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("json", false, "print one JSON document for scripts instead of text (docs/operations.md)")
}

// printJSON writes v as indented JSON and a newline.
func (c *cli) printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode JSON output: %w", err)
	}
	_, err = c.stdout.Write(append(b, '\n'))
	return err
}

// amountJSON is an amount in a JSON document: Value in base units (a
// decimal string, exact), Text as people read it ("12.50 HKD").
type amountJSON struct {
	Value string `json:"value"`
	Text  string `json:"text"`
}

func amountOf(v *big.Int, a txdecode.Asset) amountJSON {
	if v == nil {
		v = new(big.Int)
	}
	return amountJSON{Value: v.String(), Text: txdecode.FormatAmount(v, a)}
}

// timeText renders a block time in milliseconds, as every command shows it.
func timeText(ms uint64) string {
	return time.UnixMilli(int64(ms)).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// nodeAssets fetches the node's assets (tally_assets) for the decoder.
func nodeAssets(ctx context.Context, client *wallet.Client) ([]schema.Asset, txdecode.Assets, error) {
	list, err := client.Assets(ctx)
	if err != nil {
		return nil, nil, err
	}
	return list, txdecode.FromSchema(list), nil
}

// assetFlagValue resolves an --asset SYMBOL among the node's assets; the
// error names the flag and lists the known symbols.
func assetFlagValue(cmdName, symbol string, assets txdecode.Assets) (txdecode.Asset, error) {
	a, ok := assets.BySymbol(symbol)
	if !ok {
		return txdecode.Asset{}, usageErrorf("%s: --asset: unknown asset %q (this chain has %s)", cmdName, truncate(symbol), strings.Join(assets.Symbols(), ", "))
	}
	return a, nil
}

// labelWidth aligns the values of the text renderings.
const labelWidth = 11

// field writes one "label:   value" line.
func field(w io.Writer, label, value string) {
	fmt.Fprintf(w, "%-*s%s\n", labelWidth, label+":", value)
}

// writeCall writes a decoded call: the operation and its arguments.
func writeCall(w io.Writer, call txdecode.Call) {
	op := call.Operation
	switch {
	case op == "" && call.Contract == "none":
		op = "(contract creation: refused by Tally)"
	case op == "":
		op = "(calldata matches no operation of the " + call.Contract + " contract)"
	case call.Contract == "account":
		op = "transfer (native " + call.Asset.Symbol + ")"
	case call.Asset != nil:
		op += " (" + call.Asset.Symbol + ")"
	case call.Contract != "":
		op += " (" + call.Contract + ")"
	}
	field(w, "operation", op)
	writeArgs(w, "  ", labelWidth-2, call.Args)
	if len(call.Data) > 0 {
		field(w, "  data", call.Data.String())
	}
}

// writeArgs writes decoded values one per line, their texts aligned at
// width (or further, for a longer name).
func writeArgs(w io.Writer, indent string, width int, args []txdecode.Value) {
	for _, a := range args {
		width = max(width, len(a.Name)+2)
	}
	for _, a := range args {
		fmt.Fprintf(w, "%s%-*s%s\n", indent, width, a.Name+":", a.Text)
	}
}

// writeEvents writes a receipt's decoded events.
func writeEvents(w io.Writer, events []txdecode.Event) {
	if len(events) == 0 {
		return
	}
	fmt.Fprintln(w, "events:")
	width := 0 // one column for every event's values
	for _, e := range events {
		for _, a := range e.Args {
			width = max(width, len(a.Name)+2)
		}
	}
	for _, e := range events {
		if e.Name == "" {
			topics := make([]string, len(e.Topics))
			for i, t := range e.Topics {
				topics[i] = t.Hex()
			}
			fmt.Fprintf(w, "  log at %s: topics [%s], data %s\n", e.Address.Hex(), strings.Join(topics, ", "), e.Data.String())
			continue
		}
		from := e.Contract
		if e.Asset != nil {
			from = e.Asset.Symbol
		}
		fmt.Fprintf(w, "  %s (%s)\n", e.Name, from)
		writeArgs(w, "    ", width, e.Args)
	}
}
