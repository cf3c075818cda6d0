package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/tally-ledger/tally/wallet"
)

// defaultRequestTTL is how long a payment request is valid without
// --expires: long enough to open a wallet and pay, short enough that a
// price shown is a price still meant.
const defaultRequestTTL = 15 * time.Minute

func (c *cli) request(args []string) error {
	cmd := newCommand("request", "--asset SYM --to PAYEE --amount AMOUNT --order ID [--expires 15m|TIME] [--qr FILE.png] [--json]", `
Makes the payment request of an order (docs/merchants.md): the EIP-681
URI of the asset's transferWithReference, which any wallet that reads
EIP-681 opens as "pay AMOUNT to PAYEE under reference ID", the QR code of
that URI (--qr writes it as a PNG), and when the request expires. Nothing
is signed or sent: the node is asked only for the chain id and the asset.

ID is the order's reference on chain: text of 1 to 32 bytes (ORDER-1234,
stored left-aligned and zero-padded) or 0x and 64 hex digits. AMOUNT is in
the asset's units (12.34). --expires is a duration from now (15m, 2h) or
an RFC 3339 time; EIP-681 has no expiry, so it is printed beside the URI
and given to the merchant notifier with the order, not put in the URI.

--json prints the request as one JSON document: the body the merchant
notifier's POST /v1/orders takes.`)
	symbol := cmd.fs.String("asset", "", "the asset's `SYMBOL` (tally assets lists them)")
	to := cmd.fs.String("to", "", "the merchant's account `PAYEE` that receives the payment")
	amount := cmd.fs.String("amount", "", "`AMOUNT` in the asset's units (12.34)")
	order := cmd.fs.String("order", "", "the order's reference `ID` (text of at most 32 bytes, or 0x + 64 hex digits)")
	expires := cmd.fs.String("expires", defaultRequestTTL.String(), "a `DURATION` from now or an RFC 3339 time")
	qrFile := cmd.fs.String("qr", "", "write the URI's QR code to `FILE` (PNG)")
	asJSON := jsonFlag(cmd.fs)
	rpcURL, timeout := rpcFlags(cmd.fs)
	pos, err := c.parse(cmd, args)
	if err != nil {
		return err
	}
	if err := wantArgs(cmd, pos); err != nil {
		return err
	}
	if *symbol == "" {
		return usageErrorf("request: --asset is required")
	}
	payee, err := parseAddress("request: --to", *to)
	if err != nil {
		return err
	}
	if *amount == "" {
		return usageErrorf("request: --amount is required")
	}
	if *order == "" {
		return usageErrorf("request: --order is required")
	}
	if _, err := wallet.ParseReference(*order); err != nil {
		return usageErrorf("request: --order: %v", err)
	}
	at, err := expiryTime(*expires, time.Now())
	if err != nil {
		return usageErrorf("request: --expires: %v", err)
	}
	ctx, client, done, err := connect(*rpcURL, *timeout)
	if err != nil {
		return err
	}
	defer done()
	list, known, err := nodeAssets(ctx, client)
	if err != nil {
		return err
	}
	a, err := assetFlagValue("request", *symbol, known)
	if err != nil {
		return err
	}
	value, err := wallet.ParseAmount(*amount, a.Decimals)
	if err != nil {
		return usageErrorf("request: --amount: %v", err)
	}
	chainID, err := client.ChainID(ctx)
	if err != nil {
		return err
	}
	if !chainID.IsUint64() {
		return fmt.Errorf("request: the node's chain id %s does not fit a payment request", chainID)
	}
	var asset wallet.Asset
	for _, x := range list {
		if x.Symbol == a.Symbol {
			asset = x
		}
	}
	req, err := wallet.NewPaymentRequest(chainID.Uint64(), asset, payee, value, *order, at)
	if err != nil {
		return usageErrorf("request: %v", err)
	}
	if *qrFile != "" {
		png, err := req.QRCode()
		if err != nil {
			return err
		}
		if err := os.WriteFile(*qrFile, png, 0o644); err != nil {
			return fmt.Errorf("request: --qr: %w", err)
		}
	}
	if *asJSON {
		return c.printJSON(req)
	}
	w := c.stdout
	field(w, "uri", req.URI)
	field(w, "payee", req.Payee.Hex())
	field(w, "amount", req.Amount+" "+req.Asset)
	field(w, "order", req.Order)
	field(w, "reference", req.Reference.Hex())
	field(w, "expires", req.Expires.Format(time.RFC3339))
	if *qrFile != "" {
		field(w, "qr", *qrFile)
	}
	return nil
}

// expiryTime reads --expires: a positive duration from now, or an RFC
// 3339 time after now.
func expiryTime(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("%q: a duration must be positive", s)
		}
		return now.Add(d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a duration (15m) nor an RFC 3339 time (%s)", truncate(s), strings.Replace(time.RFC3339, "Z07:00", "Z", 1))
	}
	if !t.After(now) {
		return time.Time{}, fmt.Errorf("%s is not in the future", t.UTC().Format(time.RFC3339))
	}
	return t, nil
}
