package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tally-ledger/tally/bridge"
	"github.com/tally-ledger/tally/bridge/iso20022"
)

const bridgeHelp = `
Runs the bank bridge (docs/bridge.md): one issuing bank's link between its
core banking system and the chain. It accepts the core's deposit
notifications (camt.054 or JSON) and account links over HTTP, mints each
deposit exactly once, follows withdrawals on chain, sends payout orders
(pain.001) to the core and settles or refunds each withdrawal by the
core's outcome. Its state is a Pebble database in the config's datadir.

The config file (TOML) is checked strictly: an unknown key or a bad value
is refused naming the key. docs/bridge.md documents every key. The bank's
key is a keystore v3 file; its password comes from key.password-file or
the environment variable key.password-env names.

SIGTERM or Ctrl-C stops it gracefully: the intake server stops accepting,
the workers finish their current step, the store is closed. Whatever was
in flight resumes from the records at the next start.`

func (c *cli) bridge(args []string) error {
	if len(args) > 0 && args[0] == "reconcile" {
		return c.bridgeReconcile(args[1:])
	}
	if len(args) > 0 && args[0] == "link" {
		return c.bridgeLink(args[1:])
	}
	if len(args) > 0 && bridgeOpsCommands[args[0]] {
		return c.bridgeOps(args[0], args[1:])
	}
	return runService(c, args, "bridge", "bridge", bridgeHelp, bridge.LoadConfig, func(ctx context.Context, cfg bridge.Config) error {
		return bridge.Run(ctx, cfg, bridge.Options{Logger: cfg.NewLogger(c.stderr)})
	})
}

const reconcileHelp = `
Compares the bank's camt.053.001.08 statement of the omnibus account with
the chain, for the bridge's bank and asset (docs/bridge.md,
Reconciliation): every booked credit entry with a Minted log of its
bankRef by this bank and back, every booked debit entry with a
WithdrawalSettled by this bank of the payout its EndToEndId names and
back, every returned payout (a credit with RtrInf) with its
WithdrawalReturned and back, every reversed deposit (a debit with RvslInd)
with its MintReversed and back (a reversal not taken back on chain is a
reversal-unhandled break naming the deposit), amounts, and the
statement's net movement with the chain's minted - burned by this bank
over the same blocks, less what the breaks explain. It reads the logs with eth_getLogs from
the config's nodes (failing over) and needs no password: the bank's
address is the keystore file's address field.

--from-block and --to-block should span the statement's period (default:
follower.start-block to the head).

Exit status: 0 no break, 1 breaks (each listed with its kind and
references) or a failure, 2 a statement that cannot be read (malformed,
another message or version) or a usage error.`

// bridgeReconcile is 'tally bridge reconcile'.
func (c *cli) bridgeReconcile(args []string) error {
	cmd := newCommand("bridge reconcile", "--config FILE --statement FILE [--json]", reconcileHelp)
	cfgPath := configFlag(cmd, "bridge", "bridge.toml")
	stmtPath := cmd.fs.String("statement", "", "the camt.053.001.08 statement `FILE` (\"-\" reads stdin)")
	asJSON := cmd.fs.Bool("json", false, "print the report as JSON")
	fromBlock := cmd.fs.Int64("from-block", -1, "the first `BLOCK` read (default follower.start-block)")
	toBlock := cmd.fs.Int64("to-block", -1, "the last `BLOCK` read (default the head)")
	pos, err := c.parse(cmd, args)
	if err != nil {
		return err
	}
	if err := wantArgs(cmd, pos); err != nil {
		return err
	}
	if *cfgPath == "" || *stmtPath == "" {
		return usageErrorf("bridge reconcile: --config and --statement are required")
	}
	cfg, err := bridge.LoadConfig(*cfgPath)
	if err != nil {
		return usageErrorf("%v", err)
	}
	var data []byte
	if *stmtPath == "-" {
		data, err = io.ReadAll(io.LimitReader(c.stdin, iso20022.MaxMessageSize+1))
	} else {
		data, err = os.ReadFile(*stmtPath)
	}
	if err != nil {
		return usageErrorf("bridge reconcile: statement: %v", err)
	}
	var opts bridge.ReconcileOptions
	if *fromBlock >= 0 {
		v := uint64(*fromBlock)
		opts.FromBlock = &v
	}
	if *toBlock >= 0 {
		v := uint64(*toBlock)
		opts.ToBlock = &v
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := bridge.Reconcile(ctx, cfg, data, opts)
	if bridge.IsStatementError(err) {
		return usageErrorf("bridge reconcile: %s: %v", *stmtPath, err)
	}
	if err != nil {
		return fmt.Errorf("bridge reconcile: %w", err)
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if r.Breaks == nil {
			r.Breaks = []bridge.Break{}
		}
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else if err := r.WriteText(c.stdout); err != nil {
		return err
	}
	if !r.Clean() {
		return fmt.Errorf("bridge reconcile: %d breaks between statement %s and the chain", len(r.Breaks), r.StatementID)
	}
	return nil
}

const bridgeOpsHelp = `
The operator tools of a running bridge (docs/bridge.md, Operator tools),
over its authenticated HTTP endpoints (operator.listen, else listen, from
the config; --url overrides). The operator's token comes from --token-file
or $TALLY_BRIDGE_TOKEN: a line of the bridge's operator.tokens-file names
the operator the log records.

  deposits [--status S] [--limit N]          list deposits (held: what waits for an operator)
  release --bank-ref REF --wallet ADDR       mint a held deposit to a wallet
  return --bank-ref REF                      send a held deposit back to its payer
  payouts [--status S] [--older-than D]      list payouts by state and age
  requeue --id N                             send a payout's order again (same ids)
  outcome --id N --outcome settled|rejected  record what the bank's back office confirmed
  cancel --id N                              refund a withdrawal no order was sent for
  log [--verify]                             print the operator log; --verify checks its chain

Every action needs --reason, which goes into the operator log with the
operator's name. Exit status: 0 done, 1 refused (the message names the
field) or a broken log, 2 a usage error.`

// bridgeOpsCommands are the operator subcommands of 'tally bridge'.
var bridgeOpsCommands = map[string]bool{"deposits": true, "release": true, "return": true, "payouts": true,
	"requeue": true, "outcome": true, "cancel": true, "log": true}

// bridgeOps is 'tally bridge deposits|release|return|payouts|requeue|outcome|cancel|log'.
func (c *cli) bridgeOps(sub string, args []string) error {
	cmd := newCommand("bridge "+sub, "--config FILE [flags]", bridgeOpsHelp)
	fs := cmd.fs
	cfgPath := configFlag(cmd, "bridge", "bridge.toml")
	url := fs.String("url", "", "the bridge's operator `URL` (default from operator.listen, else listen)")
	tokenFile := fs.String("token-file", "", "`FILE` holding the operator's token (default $TALLY_BRIDGE_TOKEN)")
	asJSON := fs.Bool("json", false, "print the bridge's JSON answer")
	reason := fs.String("reason", "", "why (required for every action; it goes into the operator log)")
	var status, olderThan, bankRef, walletAddr, outcome *string
	var limit *int
	var id *uint64
	var verify *bool
	switch sub {
	case "deposits", "payouts":
		status = fs.String("status", "", "only records in this `STATUS`")
		limit = fs.Int("limit", 100, "at most `N` records")
		if sub == "payouts" {
			olderThan = fs.String("older-than", "", "only payouts at least this `AGE` old (e.g. 30m)")
		}
	case "release", "return":
		bankRef = fs.String("bank-ref", "", "the deposit's `BANKREF` (0x…, as the lists show)")
		if sub == "release" {
			walletAddr = fs.String("wallet", "", "the wallet `ADDRESS` to mint to")
		}
	case "requeue", "outcome", "cancel":
		id = fs.Uint64("id", 0, "the withdrawal `ID`")
		if sub == "outcome" {
			outcome = fs.String("outcome", "", "settled or rejected")
		}
	case "log":
		verify = fs.Bool("verify", false, "check the hash chain: exit 1 when an entry was edited, deleted or moved")
	}
	cfg, err := parseConfig(c, cmd, args, cfgPath, bridge.LoadConfig)
	if err != nil {
		return err
	}
	switch {
	case id != nil && !isSet(fs, "id"):
		return usageErrorf("bridge %s: --id is required", sub)
	case bankRef != nil && *bankRef == "":
		return usageErrorf("bridge %s: --bank-ref is required", sub)
	case walletAddr != nil && *walletAddr == "":
		return usageErrorf("bridge %s: --wallet is required", sub)
	case outcome != nil && *outcome == "":
		return usageErrorf("bridge %s: --outcome is required (settled or rejected)", sub)
	case status == nil && verify == nil && *reason == "":
		return usageErrorf("bridge %s: --reason is required: say why (it goes into the operator log)", sub)
	case (status != nil || verify != nil) && isSet(fs, "reason"):
		return usageErrorf("bridge %s: --reason is for actions; %s changes nothing", sub, sub)
	}
	var token string
	if *tokenFile != "" {
		data, err := c.readSecret("bridge "+sub+": --token-file", *tokenFile)
		if err != nil {
			return err
		}
		token = strings.TrimSpace(string(data))
	} else if token = strings.TrimSpace(c.getenv("TALLY_BRIDGE_TOKEN")); token == "" {
		return usageErrorf("bridge %s: an operator token is required: --token-file FILE or $TALLY_BRIDGE_TOKEN", sub)
	}
	base := *url
	if base == "" {
		base = operatorURL(&cfg)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	oc := &opClient{base: strings.TrimSuffix(base, "/"), token: token, what: "bridge " + sub, service: "bridge"}
	var out json.RawMessage
	switch sub {
	case "deposits", "payouts":
		q := neturl.Values{"limit": {strconv.Itoa(*limit)}}
		if *status != "" {
			q.Set("status", *status)
		}
		path := bridge.PathOpDeposits
		if sub == "payouts" {
			path = bridge.PathOpPayouts
			if *olderThan != "" {
				q.Set("older-than", *olderThan)
			}
		}
		err = oc.do(ctx, http.MethodGet, path+"?"+q.Encode(), nil, &out)
	case "release":
		err = oc.do(ctx, http.MethodPost, bridge.PathOpRelease, map[string]any{"bankRef": *bankRef, "wallet": *walletAddr, "reason": *reason}, &out)
	case "return":
		err = oc.do(ctx, http.MethodPost, bridge.PathOpReturn, map[string]any{"bankRef": *bankRef, "reason": *reason}, &out)
	case "requeue":
		err = oc.do(ctx, http.MethodPost, bridge.PathOpRequeue, map[string]any{"id": *id, "reason": *reason}, &out)
	case "outcome":
		err = oc.do(ctx, http.MethodPost, bridge.PathOpOutcome, map[string]any{"id": *id, "outcome": *outcome, "reason": *reason}, &out)
	case "cancel":
		err = oc.do(ctx, http.MethodPost, bridge.PathOpCancel, map[string]any{"id": *id, "reason": *reason}, &out)
	case "log":
		err = oc.do(ctx, http.MethodGet, bridge.PathOpLog, nil, &out)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		_, err := fmt.Fprintf(c.stdout, "%s\n", strings.TrimSpace(string(out)))
		if err != nil || sub != "log" || !*verify {
			return err
		}
	}
	return c.printOps(sub, out, verify != nil && *verify, *asJSON)
}

// operatorURL is where the config's bridge serves its operator endpoints.
func operatorURL(cfg *bridge.Config) string {
	addr := cfg.Operator.Listen
	if addr == "" {
		addr = cfg.Listen
	}
	scheme := "http"
	if cfg.TLS.CertFile != "" {
		scheme = "https"
	}
	return scheme + "://" + addr
}

// printOps prints an operator answer as text (the log with --verify
// checked, exit 1 on a broken chain).
func (c *cli) printOps(sub string, raw json.RawMessage, verify, quiet bool) error {
	w := c.stdout
	switch sub {
	case "deposits", "release", "return":
		var ds []*bridge.Deposit
		if sub != "deposits" {
			var d bridge.Deposit
			if err := json.Unmarshal(raw, &d); err != nil {
				return fmt.Errorf("bridge %s: answer: %w", sub, err)
			}
			ds = append(ds, &d)
		} else if err := json.Unmarshal(raw, &ds); err != nil {
			return fmt.Errorf("bridge %s: answer: %w", sub, err)
		}
		for _, d := range ds {
			fmt.Fprintf(w, "%s %-10s %s %s %s from %s received %s", d.BankRef.Hex(), d.Status, d.Ref, d.Amount, d.Currency, d.Account,
				d.ReceivedAt.UTC().Format(time.RFC3339))
			if d.Reason != "" {
				fmt.Fprintf(w, " (%s)", d.Reason)
			}
			fmt.Fprintln(w)
		}
		if sub == "deposits" && len(ds) == 0 {
			fmt.Fprintln(w, "no deposits")
		}
	case "payouts":
		var ps []bridge.PayoutView
		if err := json.Unmarshal(raw, &ps); err != nil {
			return fmt.Errorf("bridge %s: answer: %w", sub, err)
		}
		for _, p := range ps {
			fmt.Fprintf(w, "%d %-9s %s %s to %s age %s orders %d%s\n", p.ID, p.Status, p.EndToEndID, p.Amount, orNone(p.Account),
				time.Duration(p.AgeSeconds)*time.Second, p.Orders, outcomeText(p.Payout))
		}
		if len(ps) == 0 {
			fmt.Fprintln(w, "no payouts")
		}
	case "requeue", "outcome", "cancel":
		var p bridge.Payout
		if err := json.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("bridge %s: answer: %w", sub, err)
		}
		fmt.Fprintf(w, "%d %s %s%s\n", p.ID, p.Status, p.EndToEndID, outcomeText(&p))
	case "log":
		var lv bridge.OpLogView
		if err := json.Unmarshal(raw, &lv); err != nil {
			return fmt.Errorf("bridge log: answer: %w", err)
		}
		if !quiet {
			for _, e := range lv.Entries {
				fmt.Fprintf(w, "%d %s %s %s %s", e.Seq, e.At.UTC().Format(time.RFC3339), e.Operator, e.Action, e.Target)
				if e.Detail != "" {
					fmt.Fprintf(w, " (%s)", e.Detail)
				}
				fmt.Fprintf(w, " reason=%q result=%q hash=%s\n", e.Reason, e.Result, e.Hash.Hex())
			}
			fmt.Fprintf(w, "head: entry %d hash %s\n", lv.Head.Seq, lv.Head.Hash.Hex())
		}
		if verify {
			if err := bridge.VerifyOpLog(lv.Entries, lv.Head); err != nil {
				return fmt.Errorf("bridge log: %w", err)
			}
			fmt.Fprintf(c.stderr, "operator log verified: %d entries, chain intact\n", len(lv.Entries))
		}
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(no account)"
	}
	return s
}

func outcomeText(p *bridge.Payout) string {
	s := ""
	if p.Outcome != "" {
		s += " outcome " + p.Outcome
	}
	if p.Closed != "" {
		s += " closed " + p.Closed
	}
	if p.Reason != "" {
		s += fmt.Sprintf(" (%s)", p.Reason)
	}
	return s
}

// opClient calls a bridge's operator endpoints.
type opClient struct {
	base, token, what string
	// service names what serves base, in "is the <service> running?".
	service string
}

// maxOpAnswer bounds an operator answer the CLI reads.
const maxOpAnswer = 64 << 20

func (o *opClient) do(ctx context.Context, method, path string, body any, out *json.RawMessage) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, o.base+path, rd)
	if err != nil {
		return usageErrorf("%s: %v", o.what, err)
	}
	req.Header.Set("Authorization", "Bearer "+o.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s: is the %s running? %w", o.what, o.service, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxOpAnswer))
	if err != nil {
		return fmt.Errorf("%s: read answer: %w", o.what, err)
	}
	if resp.StatusCode != http.StatusOK {
		var oe bridge.OperatorError
		if json.Unmarshal(data, &oe) == nil && oe.Msg != "" {
			return fmt.Errorf("%s: %w", o.what, &oe)
		}
		return fmt.Errorf("%s: %s: %s", o.what, resp.Status, strings.TrimSpace(string(data)))
	}
	*out = data
	return nil
}
