package main

import (
	"context"
	"flag"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/rpc/schema"
	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/txdecode"
	"github.com/tally-ledger/tally/wallet"
)

// The payment-trust commands (docs/payments.md): 'tally dispute …' and
// 'tally confirmations …'. Their operations are plain calls of the
// Disputes and Confirmations contracts, run first on the node's state
// (eth_call) so a refusal is printed before anything is signed, as 'tally
// op' does; their listings read tally_getDisputes, tally_getHeldPayments
// and tally_getConfirmation.

const disputeUsage = `usage: tally dispute COMMAND [flags]

Disputes on payments made under an order reference (docs/payments.md):

  open      the payer opens a dispute (--tx HASH, or --asset, --merchant, --ref)
  contest   the merchant contests an open dispute with a reason
  uphold    an issuing bank decides for the payer: the amount moves back
  dismiss   an issuing bank decides for the merchant
  list      disputes, newest first, by --account, --payer, --merchant, --status
  show      one dispute

Run 'tally dispute COMMAND --help' for a command's flags.
`

const confirmationsUsage = `usage: tally confirmations COMMAND [flags]

A second confirmation of large payments (docs/payments.md):

  set             set your confirmation key and per-asset thresholds (--key, --threshold SYM=AMOUNT)
  remove          remove your confirmation key (waits the delay unless the key approves)
  confirm         the confirmation key confirms a held payment
  reject          the confirmation key rejects a held payment
  cancel          the sender cancels its held payment
  approve-change  the confirmation key puts an account's waiting change in force now
  cancel-change   the account or its key drops a waiting change
  show            an account's confirmation key, thresholds and waiting change
  list            held payments, newest first, by --account and --status

Run 'tally confirmations COMMAND --help' for a command's flags.
`

func (c *cli) dispute(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(c.stderr, disputeUsage)
		if len(args) == 0 {
			return usageErrorf("dispute: a command is required")
		}
		return errHelp
	}
	switch args[0] {
	case "open":
		return c.disputeOpen(args[1:])
	case "contest", "dismiss":
		return c.disputeAnswer(args[0], args[1:])
	case "uphold":
		return c.disputeUphold(args[1:])
	case "list":
		return c.disputeList(args[1:])
	case "show":
		return c.disputeShow(args[1:])
	}
	return usageErrorf("dispute: unknown command %q (run 'tally dispute --help')", args[0])
}

func (c *cli) confirmations(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(c.stderr, confirmationsUsage)
		if len(args) == 0 {
			return usageErrorf("confirmations: a command is required")
		}
		return errHelp
	}
	switch args[0] {
	case "set", "remove":
		return c.confirmSet(args[0], args[1:])
	case "confirm", "reject", "cancel":
		return c.confirmOutcome(args[0], args[1:])
	case "approve-change", "cancel-change":
		return c.confirmChange(args[0], args[1:])
	case "show":
		return c.confirmShow(args[1:])
	case "list":
		return c.confirmList(args[1:])
	}
	return usageErrorf("confirmations: unknown command %q (run 'tally confirmations --help')", args[0])
}

// opFlags are the flags of a command that signs one operation.
type opFlags struct {
	from, ksDir, pwFile, rpcURL *string
	wait                        *bool
	timeout                     *time.Duration
}

func (c *cli) addOpFlags(fs *flag.FlagSet, who string) *opFlags {
	f := &opFlags{from: fs.String("from", "", "`ADDR` signing the operation ("+who+"; an account in the keystore)"),
		wait: fs.Bool("wait", true, "wait for the receipt")}
	f.ksDir = c.keystoreFlag(fs)
	f.pwFile = passwordFileFlag(fs)
	f.rpcURL, f.timeout = rpcFlags(fs)
	return f
}

// runOp checks --from, builds the operation on the node's assets, runs it
// on the node's state (a refusal is printed and nothing is signed), then
// signs, sends and awaits it, and prints its events.
func (c *cli) runOp(name string, f *opFlags, build func(ctx context.Context, client *wallet.Client, assets txdecode.Assets) (wallet.Op, error)) error {
	from, err := parseAddress(name+": --from", *f.from)
	if err != nil {
		return err
	}
	ctx, client, done, err := connect(*f.rpcURL, *f.timeout)
	if err != nil {
		return err
	}
	defer done()
	_, assets, err := nodeAssets(ctx, client)
	if err != nil {
		return err
	}
	op, err := build(ctx, client, assets)
	if err != nil {
		return err
	}
	if _, err := client.Simulate(ctx, from, op); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	key, err := c.unlock(name, *f.ksDir, *f.pwFile, from)
	if err != nil {
		return err
	}
	tx, err := client.Send(ctx, key, op)
	if err != nil {
		return err
	}
	r, err := c.await(ctx, client, tx, *f.wait, *f.rpcURL)
	if err != nil || r == nil {
		return err
	}
	writeEvents(c.stdout, txdecode.DecodeLogs(r.Logs, assets))
	if r.Status != types.ReceiptStatusSuccessful {
		return fmt.Errorf("%s: the operation failed at execution (status 0)", name)
	}
	return nil
}

// parseID reads a dispute or held payment id.
func parseID(what, s string) (*big.Int, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v == 0 {
		return nil, usageErrorf("%s: %q is not an id (a positive integer)", what, truncate(s))
	}
	return new(big.Int).SetUint64(v), nil
}

// disputeReasonCode reads a reason code by name or number.
func disputeReasonCode(s string) (uint8, error) {
	for code, name := range state.DisputeReasonNames {
		if s == name || s == strconv.Itoa(int(code)) {
			return code, nil
		}
	}
	return 0, usageErrorf("dispute open: --reason %q is not one of not-received, duplicate, wrong-amount, refund-not-received, fraud", truncate(s))
}

func (c *cli) disputeOpen(args []string) error {
	cmd := newCommand("dispute open", "--from PAYER --reason REASON (--tx HASH | --asset SYMBOL --merchant ADDR --ref REF --amount AMOUNT)", `
Opens a dispute on a payment you made under an order reference, within the
asset's dispute window. --tx names the payment's transaction: its asset,
merchant, reference and amount are read from it (--amount disputes less).
REASON is not-received, duplicate, wrong-amount, refund-not-received or
fraud.`)
	f := c.addOpFlags(cmd.fs, "the payer")
	txFlag := cmd.fs.String("tx", "", "the payment's transaction `HASH`")
	symbol := cmd.fs.String("asset", "", "the payment's asset `SYMBOL`")
	merchant := cmd.fs.String("merchant", "", "the merchant `ADDR` paid")
	refFlag := cmd.fs.String("ref", "", "the order `REF` (text of 1..32 bytes, or 0x + 64 hex digits)")
	amountFlag := cmd.fs.String("amount", "", "the disputed `AMOUNT` in the asset's units (with --tx: the payment's)")
	reasonFlag := cmd.fs.String("reason", "", "the `REASON` code")
	if _, err := c.parse(cmd, args); err != nil {
		return err
	}
	reason, err := disputeReasonCode(*reasonFlag)
	if err != nil {
		return err
	}
	if (*txFlag == "") == (*symbol == "" && *merchant == "" && *refFlag == "") {
		return usageErrorf("dispute open: give --tx HASH, or --asset, --merchant and --ref")
	}
	return c.runOp("dispute open", f, func(ctx context.Context, client *wallet.Client, assets txdecode.Assets) (wallet.Op, error) {
		var asset txdecode.Asset
		var to common.Address
		var ref [32]byte
		var txHash common.Hash
		var amount *big.Int
		if *txFlag != "" {
			h, err := parseHash("dispute open: --tx", *txFlag)
			if err != nil {
				return wallet.Op{}, err
			}
			var d *schema.DecodedTx
			if err := client.Call(ctx, &d, "tally_decodeTransaction", h); err != nil {
				return wallet.Op{}, err
			}
			switch {
			case d == nil:
				return wallet.Op{}, fmt.Errorf("dispute open: --tx: no transaction %s", h.Hex())
			case d.Operation != "transferWithReference" && d.Operation != "confirmPayment" || d.Payee == nil || d.Reference == nil || d.Amount == nil:
				return wallet.Op{}, usageErrorf("dispute open: --tx: %s is a %s, not a payment under an order reference (transferWithReference)", h.Hex(), d.Operation)
			}
			a, ok := assets.BySymbol(d.Asset)
			if !ok {
				return wallet.Op{}, fmt.Errorf("dispute open: --tx: unknown asset %q", d.Asset)
			}
			asset, to, ref, txHash, amount = a, *d.Payee, [32]byte(d.Reference.Hex), h, d.Amount.Value.ToInt()
		} else {
			a, err := assetFlagValue("dispute open", *symbol, assets)
			if err != nil {
				return wallet.Op{}, err
			}
			asset = a
			if to, err = parseAddress("dispute open: --merchant", *merchant); err != nil {
				return wallet.Op{}, err
			}
			if ref, err = parseRef(*refFlag); err != nil {
				return wallet.Op{}, usageErrorf("dispute open: --ref: %v", err)
			}
			if *amountFlag == "" {
				return wallet.Op{}, usageErrorf("dispute open: --amount is required without --tx")
			}
		}
		if *amountFlag != "" {
			v, err := wallet.ParseAmount(*amountFlag, asset.Decimals)
			if err != nil {
				return wallet.Op{}, usageErrorf("dispute open: --amount: %v", err)
			}
			amount = v
		}
		return wallet.DisputesOp("openDispute", chain.AssetAddress(asset.ID), to, ref, amount, reason, [32]byte(txHash))
	})
}

func (c *cli) disputeAnswer(verb string, args []string) error {
	who, method := "the merchant", "contestDispute"
	if verb == "dismiss" {
		who, method = "an issuing bank of the asset", "dismissDispute"
	}
	cmd := newCommand("dispute "+verb, "--from ADDR ID REASON", fmt.Sprintf(`
%s of dispute ID with a reason (docs/payments.md).`, map[string]string{"contest": "The merchant contests", "dismiss": "An issuing bank dismisses"}[verb]))
	f := c.addOpFlags(cmd.fs, who)
	pos, err := c.parse(cmd, args)
	if err != nil {
		return err
	}
	if err := wantArgs(cmd, pos, "ID", "REASON"); err != nil {
		return err
	}
	id, err := parseID("dispute "+verb+": ID", pos[0])
	if err != nil {
		return err
	}
	return c.runOp("dispute "+verb, f, func(context.Context, *wallet.Client, txdecode.Assets) (wallet.Op, error) {
		return wallet.DisputesOp(method, id, pos[1])
	})
}

func (c *cli) disputeUphold(args []string) error {
	cmd := newCommand("dispute uphold", "--from BANK ID AMOUNT REASON", `
An issuing bank of the dispute's asset decides dispute ID for the payer:
AMOUNT (in the asset's units, at most the disputed amount not refunded)
moves from the merchant to the payer as a forced transfer naming the
dispute.`)
	f := c.addOpFlags(cmd.fs, "an issuing bank of the asset")
	pos, err := c.parse(cmd, args)
	if err != nil {
		return err
	}
	if err := wantArgs(cmd, pos, "ID", "AMOUNT", "REASON"); err != nil {
		return err
	}
	id, err := parseID("dispute uphold: ID", pos[0])
	if err != nil {
		return err
	}
	return c.runOp("dispute uphold", f, func(ctx context.Context, client *wallet.Client, assets txdecode.Assets) (wallet.Op, error) {
		d, err := fetchDispute(ctx, client, id.Uint64())
		if err != nil {
			return wallet.Op{}, err
		}
		a, _ := assets.BySymbol(d.Amount.Asset)
		amount, err := wallet.ParseAmount(pos[1], a.Decimals)
		if err != nil {
			return wallet.Op{}, usageErrorf("dispute uphold: AMOUNT: %v", err)
		}
		return wallet.DisputesOp("upholdDispute", id, amount, pos[2])
	})
}

// fetchDispute reads dispute id (tally_getDisputes one below id+1).
func fetchDispute(ctx context.Context, client *wallet.Client, id uint64) (*schema.Dispute, error) {
	var page schema.DisputePage
	before, one := hexutil.Uint64(id+1), hexutil.Uint(1)
	if err := client.Call(ctx, &page, "tally_getDisputes", map[string]any{"before": before, "limit": one}); err != nil {
		return nil, err
	}
	if len(page.Items) == 0 || uint64(page.Items[0].ID) != id {
		return nil, fmt.Errorf("no dispute %d", id)
	}
	return &page.Items[0], nil
}

// disputeJSON is a dispute in 'tally dispute list/show --json'.
type disputeJSON struct {
	ID        string            `json:"id"`
	Status    string            `json:"status"`
	Reason    string            `json:"reason"`
	Payer     txdecode.Address  `json:"payer"`
	Merchant  txdecode.Address  `json:"merchant"`
	Reference string            `json:"reference"`
	Amount    amountJSON        `json:"amount"`
	Refunded  amountJSON        `json:"refunded"`
	TxHash    *common.Hash      `json:"txHash"`
	Opened    string            `json:"opened"`
	AnswerBy  string            `json:"answerBy"`
	Closed    *string           `json:"closed"`
	Answer    string            `json:"answer"`
	Bank      *txdecode.Address `json:"bank"`
	Decision  string            `json:"decision"`
}

func disputeDoc(d schema.Dispute) disputeJSON {
	out := disputeJSON{ID: strconv.FormatUint(uint64(d.ID), 10), Status: d.Status, Reason: d.Reason, Payer: txdecode.Address(d.Payer),
		Merchant: txdecode.Address(d.Merchant), Reference: referenceText(d.Reference), Amount: schemaAmount(d.Amount), Refunded: schemaAmount(d.Refunded),
		TxHash: d.TxHash, Opened: timeText(uint64(d.OpenedMs)), AnswerBy: timeText(uint64(d.AnswerByMs)), Answer: d.Answer, Decision: d.Decision}
	if d.ClosedMs != nil {
		s := timeText(uint64(*d.ClosedMs))
		out.Closed = &s
	}
	if d.Bank != nil {
		b := txdecode.Address(*d.Bank)
		out.Bank = &b
	}
	return out
}

func schemaAmount(a *schema.Amount) amountJSON {
	if a == nil {
		return amountJSON{Value: "0"}
	}
	return amountJSON{Value: a.Value.ToInt().String(), Text: a.Text}
}

func referenceText(r *schema.Reference) string {
	switch {
	case r == nil:
		return ""
	case r.Text != nil:
		return *r.Text
	}
	return r.Hex.Hex()
}

// pageFlags are the listing flags shared by the two lists.
type pageFlags struct {
	status, before *string
	limit          *uint
	queryFlags
}

func addPageFlags(fs *flag.FlagSet, statuses string) *pageFlags {
	return &pageFlags{status: fs.String("status", "", "only this `STATUS` ("+statuses+")"),
		before:     fs.String("before", "", "continue below this `ID` (the previous page's next)"),
		limit:      fs.Uint("limit", 50, "at most `N` items (1..500)"),
		queryFlags: addQueryFlags(fs)}
}

// filter builds the RPC filter of p with the given addresses.
func (p *pageFlags) filter(name string, addrs map[string]*string) (map[string]any, error) {
	f := map[string]any{"limit": hexutil.Uint(*p.limit)}
	if *p.status != "" {
		f["status"] = *p.status
	}
	if *p.before != "" {
		v, err := strconv.ParseUint(*p.before, 10, 64)
		if err != nil {
			return nil, usageErrorf("%s: --before %q is not an id", name, truncate(*p.before))
		}
		f["before"] = hexutil.Uint64(v)
	}
	for field, s := range addrs {
		if *s == "" {
			continue
		}
		a, err := parseAddress(name+": --"+field, *s)
		if err != nil {
			return nil, err
		}
		f[field] = a
	}
	return f, nil
}

func (c *cli) disputeList(args []string) error {
	cmd := newCommand("dispute list", "[--account ADDR] [--payer ADDR] [--merchant ADDR] [--status STATUS]", `
Lists disputes newest first (tally_getDisputes): --account matches the payer
or the merchant. A page ends with the id to pass as --before for the next.`)
	account := cmd.fs.String("account", "", "disputes whose payer or merchant is `ADDR`")
	payer := cmd.fs.String("payer", "", "disputes opened by `ADDR`")
	merchant := cmd.fs.String("merchant", "", "disputes of the merchant `ADDR`")
	p := addPageFlags(cmd.fs, "open, contested, refunded, upheld, dismissed")
	return listPage(c, cmd, args, p, map[string]*string{"account": account, "payer": payer, "merchant": merchant}, "tally_getDisputes",
		func(page *schema.DisputePage) ([]schema.Dispute, *hexutil.Uint64) { return page.Items, page.NextCursor }, disputeDoc,
		fmt.Sprintf("%-5s %-10s %-19s %-14s %-24s %s", "id", "status", "reason", "amount", "reference", "payer → merchant"),
		func(d disputeJSON) string {
			return fmt.Sprintf("%-5s %-10s %-19s %-14s %-24s %s → %s", d.ID, d.Status, d.Reason, d.Amount.Text, d.Reference, d.Payer.Hex(), d.Merchant.Hex())
		})
}

// listPage is the body of a list command on its page flags p: it parses
// the command line, builds the filter from p and the address flags addrs,
// calls method for one page (a P, whose items and cursor page gives), and
// prints it as JSON ({"items", "next"}, each item as doc renders it) or as
// a table (header, then row of each item), ending with the --before of the
// next page.
func listPage[P, I, J any](c *cli, cmd *command, args []string, p *pageFlags, addrs map[string]*string, method string,
	page func(*P) ([]I, *hexutil.Uint64), doc func(I) J, header string, row func(J) string) error {
	if err := c.parseNoArgs(cmd, args); err != nil {
		return err
	}
	f, err := p.filter(cmd.name, addrs)
	if err != nil {
		return err
	}
	q, err := p.connect()
	if err != nil {
		return err
	}
	defer q.done()
	var got P
	if err := q.client.Call(q.ctx, &got, method, f); err != nil {
		return fmt.Errorf("%s: %w", cmd.name, err)
	}
	items, next := page(&got)
	out := struct {
		Items []J     `json:"items"`
		Next  *string `json:"next"`
	}{Items: []J{}, Next: cursorText(next)}
	for _, it := range items {
		out.Items = append(out.Items, doc(it))
	}
	if q.asJSON {
		return c.printJSON(out)
	}
	fmt.Fprintln(c.stdout, header)
	for _, j := range out.Items {
		fmt.Fprintln(c.stdout, row(j))
	}
	if out.Next != nil {
		fmt.Fprintf(c.stdout, "next: --before %s\n", *out.Next)
	}
	return nil
}

func cursorText(c *hexutil.Uint64) *string {
	if c == nil {
		return nil
	}
	s := strconv.FormatUint(uint64(*c), 10)
	return &s
}

func (c *cli) disputeShow(args []string) error {
	cmd := newCommand("dispute show", "ID", `
Prints one dispute: its payment, reason, status, the merchant's answer and
the bank's decision.`)
	id, q, err := queryOne(c, cmd, args, "ID", parseID)
	if err != nil {
		return err
	}
	defer q.done()
	ctx, client := q.ctx, q.client
	d, err := fetchDispute(ctx, client, id.Uint64())
	if err != nil {
		return fmt.Errorf("dispute show: %w", err)
	}
	doc := disputeDoc(*d)
	if q.asJSON {
		return c.printJSON(doc)
	}
	rows := [][2]string{{"dispute", doc.ID}, {"status", doc.Status}, {"reason", doc.Reason}, {"payer", doc.Payer.Hex()}, {"merchant", doc.Merchant.Hex()},
		{"reference", doc.Reference}, {"amount", doc.Amount.Text}, {"refunded", doc.Refunded.Text}, {"opened", doc.Opened}, {"answer by", doc.AnswerBy}}
	if doc.TxHash != nil {
		rows = append(rows, [2]string{"payment", doc.TxHash.Hex()})
	}
	if doc.Answer != "" {
		rows = append(rows, [2]string{"answer", doc.Answer})
	}
	if doc.Bank != nil {
		rows = append(rows, [2]string{"bank", doc.Bank.Hex()}, [2]string{"decision", doc.Decision})
	}
	if doc.Closed != nil {
		rows = append(rows, [2]string{"closed", *doc.Closed})
	}
	for _, r := range rows {
		field(c.stdout, r[0], r[1])
	}
	return nil
}

// thresholdFlags collects repeated --threshold SYMBOL=AMOUNT.
type thresholdFlags []string

func (t *thresholdFlags) String() string     { return strings.Join(*t, ",") }
func (t *thresholdFlags) Set(s string) error { *t = append(*t, s); return nil }

func (c *cli) confirmSet(verb string, args []string) error {
	synopsis, help := "--from ACCOUNT --key KEY --threshold SYMBOL=AMOUNT...", `
Sets your confirmation key and per-asset thresholds: a transfer, payment or
withdrawal of more than an asset's threshold waits for the key's
confirmation. With no key in force, or a change that is only stricter, it
takes effect at once; any other change waits the delay unless the current
key approves it (tally confirmations approve-change).`
	if verb == "remove" {
		synopsis, help = "--from ACCOUNT", `
Removes your confirmation key: it waits the delay unless the current key
approves it (tally confirmations approve-change).`
	}
	cmd := newCommand("confirmations "+verb, synopsis, help)
	f := c.addOpFlags(cmd.fs, "the account")
	var keyFlag *string
	var thresholds thresholdFlags
	if verb == "set" {
		keyFlag = cmd.fs.String("key", "", "the confirmation key's `ADDR`")
		cmd.fs.Var(&thresholds, "threshold", "`SYMBOL=AMOUNT`: hold more than AMOUNT of SYMBOL (repeat for each asset)")
	}
	if err := c.parseNoArgs(cmd, args); err != nil {
		return err
	}
	var key common.Address
	if verb == "set" {
		var err error
		if key, err = parseAddress("confirmations set: --key", *keyFlag); err != nil {
			return err
		}
	}
	return c.runOp("confirmations "+verb, f, func(_ context.Context, _ *wallet.Client, assets txdecode.Assets) (wallet.Op, error) {
		addrs, amounts := []common.Address{}, []*big.Int{}
		for _, t := range thresholds {
			sym, amt, ok := strings.Cut(t, "=")
			if !ok {
				return wallet.Op{}, usageErrorf("confirmations set: --threshold %q is not SYMBOL=AMOUNT", truncate(t))
			}
			a, err := assetFlagValue("confirmations set", sym, assets)
			if err != nil {
				return wallet.Op{}, err
			}
			v, err := wallet.ParseAmount(amt, a.Decimals)
			if err != nil {
				return wallet.Op{}, usageErrorf("confirmations set: --threshold %s: %v", sym, err)
			}
			addrs, amounts = append(addrs, chain.AssetAddress(a.ID)), append(amounts, v)
		}
		return wallet.ConfirmationsOp("setConfirmation", key, addrs, amounts)
	})
}

func (c *cli) confirmOutcome(verb string, args []string) error {
	who, method := "the sender's confirmation key", map[string]string{"confirm": "confirmPayment", "reject": "rejectPayment", "cancel": "cancelPayment"}[verb]
	if verb == "cancel" {
		who = "the sender"
	}
	cmd := newCommand("confirmations "+verb, "--from ADDR ID", fmt.Sprintf(`
%s held payment ID (signed by %s). A confirmed payment runs under the
rules in force now; a rejected or cancelled one returns to its sender.`, strings.ToUpper(verb[:1])+verb[1:]+"s", who))
	f := c.addOpFlags(cmd.fs, who)
	id, err := parseOneArg(c, cmd, args, "ID", parseID)
	if err != nil {
		return err
	}
	return c.runOp("confirmations "+verb, f, func(context.Context, *wallet.Client, txdecode.Assets) (wallet.Op, error) {
		return wallet.ConfirmationsOp(method, id)
	})
}

func (c *cli) confirmChange(verb string, args []string) error {
	method := map[string]string{"approve-change": "approveConfirmationChange", "cancel-change": "cancelConfirmationChange"}[verb]
	cmd := newCommand("confirmations "+verb, "--from ADDR ACCOUNT", `
approve-change (signed by ACCOUNT's confirmation key) puts its waiting change
of confirmation settings in force now; cancel-change (signed by ACCOUNT or
its key) drops it.`)
	f := c.addOpFlags(cmd.fs, "the confirmation key, or the account to cancel")
	account, err := parseOneArg(c, cmd, args, "ACCOUNT", parseAddress)
	if err != nil {
		return err
	}
	return c.runOp("confirmations "+verb, f, func(context.Context, *wallet.Client, txdecode.Assets) (wallet.Op, error) {
		return wallet.ConfirmationsOp(method, account)
	})
}

// confirmationJSON is 'tally confirmations show --json'.
type confirmationJSON struct {
	Account    txdecode.Address   `json:"account"`
	Key        *txdecode.Address  `json:"key"`
	Thresholds []amountJSON       `json:"thresholds"`
	Change     *confirmChangeJSON `json:"change"`
}

type confirmChangeJSON struct {
	Key        *txdecode.Address `json:"key"`
	Thresholds []amountJSON      `json:"thresholds"`
	Effective  string            `json:"effective"`
}

func (c *cli) confirmShow(args []string) error {
	cmd := newCommand("confirmations show", "ACCOUNT", `
Prints an account's confirmation key and thresholds in force, and a change
waiting for its time (tally_getConfirmation).`)
	account, q, err := queryOne(c, cmd, args, "ACCOUNT", parseAddress)
	if err != nil {
		return err
	}
	defer q.done()
	ctx, client := q.ctx, q.client
	var s schema.ConfirmationSettings
	if err := client.Call(ctx, &s, "tally_getConfirmation", account); err != nil {
		return fmt.Errorf("confirmations show: %w", err)
	}
	keyOf := func(k *common.Address) *txdecode.Address {
		if k == nil {
			return nil
		}
		a := txdecode.Address(*k)
		return &a
	}
	amounts := func(as []*schema.Amount) []amountJSON {
		out := []amountJSON{}
		for _, a := range as {
			out = append(out, schemaAmount(a))
		}
		return out
	}
	doc := confirmationJSON{Account: txdecode.Address(account), Key: keyOf(s.Key), Thresholds: amounts(s.Thresholds)}
	if s.Change != nil {
		doc.Change = &confirmChangeJSON{Key: keyOf(s.Change.Key), Thresholds: amounts(s.Change.Thresholds), Effective: timeText(uint64(s.Change.EffectiveMs))}
	}
	if q.asJSON {
		return c.printJSON(doc)
	}
	keyText := func(k *txdecode.Address) string {
		if k == nil {
			return "none"
		}
		return k.Hex()
	}
	texts := func(as []amountJSON) string {
		var ts []string
		for _, a := range as {
			ts = append(ts, "over "+a.Text)
		}
		if len(ts) == 0 {
			return "none"
		}
		return strings.Join(ts, ", ")
	}
	field(c.stdout, "account", doc.Account.Hex())
	field(c.stdout, "key", keyText(doc.Key))
	field(c.stdout, "holds", texts(doc.Thresholds))
	if ch := doc.Change; ch != nil {
		field(c.stdout, "change", fmt.Sprintf("key %s, holds %s, from %s", keyText(ch.Key), texts(ch.Thresholds), ch.Effective))
	}
	return nil
}

// heldJSON is a held payment in 'tally confirmations list --json'.
type heldJSON struct {
	ID        string            `json:"id"`
	Status    string            `json:"status"`
	Kind      string            `json:"kind"`
	From      txdecode.Address  `json:"from"`
	To        *txdecode.Address `json:"to"`
	Amount    amountJSON        `json:"amount"`
	Reference string            `json:"reference"`
	Created   string            `json:"created"`
	Expires   string            `json:"expires"`
	Closed    *string           `json:"closed"`
}

func (c *cli) confirmList(args []string) error {
	cmd := newCommand("confirmations list", "[--account ADDR] [--status STATUS]", `
Lists payments held for a second confirmation newest first
(tally_getHeldPayments): --account matches the sender or the recipient.`)
	account := cmd.fs.String("account", "", "held payments from or to `ADDR`")
	p := addPageFlags(cmd.fs, "pending, confirmed, rejected, cancelled, expired")
	return listPage(c, cmd, args, p, map[string]*string{"account": account}, "tally_getHeldPayments",
		func(page *schema.HeldPaymentPage) ([]schema.HeldPayment, *hexutil.Uint64) {
			return page.Items, page.NextCursor
		}, heldDoc,
		fmt.Sprintf("%-5s %-10s %-16s %-16s %s", "id", "status", "kind", "amount", "from → to"),
		func(h heldJSON) string {
			to := "(withdrawal)"
			if h.To != nil {
				to = h.To.Hex()
			}
			return fmt.Sprintf("%-5s %-10s %-16s %-16s %s → %s", h.ID, h.Status, h.Kind, h.Amount.Text, h.From.Hex(), to)
		})
}

// heldDoc renders a held payment for 'tally confirmations list'.
func heldDoc(h schema.HeldPayment) heldJSON {
	j := heldJSON{ID: strconv.FormatUint(uint64(h.ID), 10), Status: h.Status, Kind: h.Kind, From: txdecode.Address(h.From), Amount: schemaAmount(h.Amount),
		Reference: referenceText(h.Reference), Created: timeText(uint64(h.CreatedMs)), Expires: timeText(uint64(h.ExpiresMs))}
	if h.To != nil {
		to := txdecode.Address(*h.To)
		j.To = &to
	}
	if h.ClosedMs != nil {
		s := timeText(uint64(*h.ClosedMs))
		j.Closed = &s
	}
	return j
}

// parseNoArgs parses flags and refuses positional arguments.
func (c *cli) parseNoArgs(cmd *command, args []string) error {
	pos, err := c.parse(cmd, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErrorf("%s: unexpected argument %q", cmd.name, truncate(pos[0]))
	}
	return nil
}
