package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tally-ledger/tally/merchant"
	"github.com/tally-ledger/tally/wallet"
)

const merchantHelp = `
Runs the merchant notifier (docs/merchants.md): it follows the chain from
any node, matches the payments to orders.payees and the refunds from them
to the registered orders by reference, payee and asset, and delivers a
signed webhook for each (order.paid, order.partially_paid,
order.overpaid, order.refunded, order.disputed, order.dispute_closed,
order.expired): HMAC-SHA256, retried with backoff until
a 2xx, a stable delivery id, at least once through crashes. Its state is
a Pebble database in the config's datadir; the orders, their
notifications and the cursor of each run of blocks are written together.

Register orders and read their status with 'tally merchant orders --help';
'tally merchant receiver --help' is a reference webhook receiver.`

func (c *cli) merchant(args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "orders":
			return c.merchantOrders(args[1:])
		case "receiver":
			return c.merchantReceiver(args[1:])
		}
	}
	return runService(c, args, "merchant", "notifier", merchantHelp, merchant.LoadConfig, func(ctx context.Context, cfg merchant.Config) error {
		return merchant.Run(ctx, cfg, merchant.Options{Logger: cfg.NewLogger(c.stderr)})
	})
}

const merchantOrdersHelp = `
The orders of a running merchant notifier, over its HTTP API (listen, from
--config; --url overrides), with a token of its api.tokens-file from
--token-file or $TALLY_MERCHANT_TOKEN.

  add [FILE]        register the order of a payment request: the JSON
                    'tally request --json' prints (FILE, or stdin)
  show --order ID   the order: status, paid, refunded, its payments and
                    refunds (ID: the order id or its 0x reference)
  delete --order ID forget the order (it prints it as it was): later
                    payments under its reference are not notified;
                    notifications already queued still are

Exit status: 0 done, 1 refused (the message says why), 2 a usage error.`

// merchantOrders is 'tally merchant orders add|show'.
func (c *cli) merchantOrders(args []string) error {
	if len(args) == 0 || (args[0] != "add" && args[0] != "show" && args[0] != "delete") {
		cmd := newCommand("merchant orders", "add|show|delete [flags]", merchantOrdersHelp)
		if _, err := c.parse(cmd, args); err != nil {
			return err
		}
		if len(args) == 0 {
			return usageErrorf("merchant orders: missing subcommand (add, show or delete)")
		}
		return usageErrorf("merchant orders: unknown subcommand %q (add, show or delete)", args[0])
	}
	sub, args := args[0], args[1:]
	cmd := newCommand("merchant orders "+sub, "[flags]", merchantOrdersHelp)
	cfgPath := cmd.fs.String("config", "", "the notifier's config `FILE` (its listen address)")
	url := cmd.fs.String("url", "", "the notifier's API `URL` (default http://<listen> of --config)")
	tokenFile := cmd.fs.String("token-file", "", "`FILE` holding an API token (default $TALLY_MERCHANT_TOKEN)")
	asJSON := cmd.fs.Bool("json", false, "print the notifier's JSON answer")
	var order *string
	if sub != "add" {
		order = cmd.fs.String("order", "", "the order `ID` (or its 0x reference)")
	}
	pos, err := c.parse(cmd, args)
	if err != nil {
		return err
	}
	var body []byte
	switch sub {
	case "add":
		if len(pos) > 1 {
			return usageErrorf("merchant orders add: unexpected argument %q", pos[1])
		}
		var rd io.Reader = c.stdin
		if len(pos) == 1 && pos[0] != "-" {
			f, err := os.Open(pos[0])
			if err != nil {
				return usageErrorf("merchant orders add: %v", err)
			}
			defer f.Close()
			rd = f
		}
		if body, err = io.ReadAll(io.LimitReader(rd, 1<<20)); err != nil {
			return fmt.Errorf("merchant orders add: read the request: %w", err)
		}
		var req wallet.PaymentRequest
		if err := json.Unmarshal(body, &req); err != nil {
			return usageErrorf("merchant orders add: the request is not a payment request's JSON (tally request --json): %v", err)
		}
	default:
		if err := wantArgs(cmd, pos); err != nil {
			return err
		}
		if *order == "" {
			return usageErrorf("merchant orders %s: --order is required", sub)
		}
		if _, err := wallet.ParseReference(*order); err != nil {
			return usageErrorf("merchant orders %s: --order: %v", sub, err)
		}
	}
	base := *url
	if base == "" {
		if *cfgPath == "" {
			return usageErrorf("merchant orders %s: --config or --url is required", sub)
		}
		cfg, err := merchant.LoadConfig(*cfgPath)
		if err != nil {
			return usageErrorf("%v", err)
		}
		base = "http://" + cfg.Listen
	}
	var token string
	if *tokenFile != "" {
		data, err := c.readSecret("merchant orders "+sub+": --token-file", *tokenFile)
		if err != nil {
			return err
		}
		token = strings.TrimSpace(string(data))
	} else if token = strings.TrimSpace(c.getenv("TALLY_MERCHANT_TOKEN")); token == "" {
		return usageErrorf("merchant orders %s: a token is required: --token-file FILE or $TALLY_MERCHANT_TOKEN", sub)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	oc := &opClient{base: strings.TrimSuffix(base, "/"), token: token, what: "merchant orders " + sub, service: "merchant notifier"}
	var out json.RawMessage
	switch sub {
	case "add":
		err = oc.do(ctx, http.MethodPost, merchant.PathOrders, json.RawMessage(body), &out)
	case "show":
		err = oc.do(ctx, http.MethodGet, merchant.PathOrder+neturl.PathEscape(*order), nil, &out)
	case "delete":
		err = oc.do(ctx, http.MethodDelete, merchant.PathOrder+neturl.PathEscape(*order), nil, &out)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		_, err := fmt.Fprintf(c.stdout, "%s\n", strings.TrimSpace(string(out)))
		return err
	}
	var o merchant.Order
	if err := json.Unmarshal(out, &o); err != nil {
		return fmt.Errorf("merchant orders %s: answer: %w", sub, err)
	}
	w := c.stdout
	if sub == "delete" {
		fmt.Fprintf(w, "deleted order %s\n", o.Order)
	}
	field(w, "order", o.Order)
	field(w, "status", o.Status)
	field(w, "amount", o.Amount+" "+o.Asset)
	field(w, "received", o.NetText)
	field(w, "payee", o.Payee.Hex())
	field(w, "expires", o.Expires.Format(time.RFC3339))
	for _, p := range o.Payments {
		fmt.Fprintf(w, "  paid     %s by %s in block %d tx %s\n", p.Text, p.Payer.Hex(), p.Block, p.Tx.Hex())
	}
	for _, p := range o.Refunds {
		fmt.Fprintf(w, "  refunded %s to %s in block %d tx %s\n", p.Text, p.Payer.Hex(), p.Block, p.Tx.Hex())
	}
	if o.ExpiredAt != nil {
		fmt.Fprintf(w, "  expired unpaid in block %d (%s)\n", o.ExpiredAt.Block, o.ExpiredAt.Time.Format(time.RFC3339))
	}
	return nil
}

const merchantReceiverHelp = `
A reference webhook receiver for the merchant notifier (docs/merchants.md,
"Handling a notification"), for tests and demos: it verifies each POST's
signature with --secret-file, handles each delivery id once (a line in
--out, synced) and answers a retry of a handled id 200 without handling
it again. It prints one line per request: the delivery id and what it
did. --fail scripts failures of the first requests, in order: 500 (refuse
before handling) or timeout (handle, then answer after --hold, too late
for the notifier, which sends the delivery again).`

// merchantReceiver is 'tally merchant receiver'.
func (c *cli) merchantReceiver(args []string) error {
	cmd := newCommand("merchant receiver", "--listen ADDR --secret-file F --out FILE [--fail 500,timeout,...] [--hold 3s]", merchantReceiverHelp)
	listen := cmd.fs.String("listen", "127.0.0.1:8800", "serve the webhook on `ADDR`")
	secretFile := cmd.fs.String("secret-file", "", "`FILE` holding the webhook's HMAC secret (the notifier's webhook.secret-file)")
	out := cmd.fs.String("out", "", "the handled deliveries, one JSON line each (`FILE`, appended)")
	fail := cmd.fs.String("fail", "", "outcomes of the first requests, comma-separated: 500 or timeout")
	hold := cmd.fs.Duration("hold", 3*time.Second, "how long a scripted timeout holds its answer")
	pos, err := c.parse(cmd, args)
	if err != nil {
		return err
	}
	if err := wantArgs(cmd, pos); err != nil {
		return err
	}
	if *secretFile == "" || *out == "" {
		return usageErrorf("merchant receiver: --secret-file and --out are required")
	}
	var script []string
	if *fail != "" {
		for _, f := range strings.Split(*fail, ",") {
			if f != "500" && f != "timeout" {
				return usageErrorf("merchant receiver: --fail: %q is not 500 or timeout", f)
			}
			script = append(script, f)
		}
	}
	secret, err := c.readSecret("merchant receiver: --secret-file", *secretFile)
	if err != nil {
		return err
	}
	r, err := merchant.OpenReceiver(*out, []byte(strings.TrimSpace(string(secret))))
	if err != nil {
		return fmt.Errorf("merchant receiver: --out: %w", err)
	}
	defer r.Close()
	r.Script, r.Hold, r.Log = script, *hold, c.stdout
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("merchant receiver: --listen: %w", err)
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx) //nolint:errcheck // stopping
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		return err
	}
	return nil
}
