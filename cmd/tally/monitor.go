package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	neturl "net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/monitor"
)

const monitorHelp = `
Runs the risk monitor (docs/monitor.md): it follows the chain from any
node, judges every block with the detective rules (large amount, structuring,
rapid in-and-out, new payee, dormant account, many senders, failed burst),
keeps the alerts in a review queue served over an authenticated HTTP API,
notifies a webhook, and freezes the account of an escalated alert with the
compliance key. Its state is a Pebble database in the config's datadir;
the cursor and the alerts of each run of blocks are written together, so a
crash neither misses nor repeats a block.

The config file (TOML) is checked strictly: an unknown key or a bad value
is refused naming the key. SIGTERM or Ctrl-C stops it gracefully.

Review the queue with 'tally monitor alerts --help'.`

func (c *cli) monitor(args []string) error {
	if len(args) > 0 && args[0] == "alerts" {
		return c.monitorAlerts(args[1:])
	}
	return runService(c, args, "monitor", "monitor", monitorHelp, monitor.LoadConfig, func(ctx context.Context, cfg monitor.Config) error {
		return monitor.Run(ctx, cfg, monitor.Options{Logger: cfg.NewLogger(c.stderr)})
	})
}

const monitorAlertsHelp = `
The review queue of a running monitor (docs/monitor.md, The review queue),
over its authenticated HTTP API (listen, from --config; --url overrides).
The operator's token comes from --token-file or $TALLY_MONITOR_TOKEN: a
line of the monitor's operator.tokens-file names the operator the action
log records.

  list [--status S] [--rule R] [--account A] [--after ID] [--limit N]
                            alerts, oldest first (S: open, acknowledged,
                            dismissed, escalated, unresolved)
  show --id N               one alert: its rule, numbers and transactions
  ack --id N [--reason R]   acknowledge an open alert (someone is on it)
  dismiss --id N --reason R close it, nothing done
  escalate --id N --reason R
                            close it and freeze the account on chain with
                            the reason monitor:<id>:<rule>
  log [--verify]            the action log; --verify checks its hash chain

Exit status: 0 done, 1 refused (the message says why) or a broken log, 2 a
usage error.`

// monitorAlerts is 'tally monitor alerts list|show|ack|dismiss|escalate|log'.
func (c *cli) monitorAlerts(args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		cmd := newCommand("monitor alerts", "list|show|ack|dismiss|escalate|log [flags]", monitorAlertsHelp)
		if _, err := c.parse(cmd, args); err != nil {
			return err
		}
		return usageErrorf("monitor alerts: missing subcommand (list, show, ack, dismiss, escalate or log)")
	}
	sub, args := args[0], args[1:]
	action := map[string]string{"ack": monitor.ActionAcknowledge, "dismiss": monitor.ActionDismiss, "escalate": monitor.ActionEscalate}[sub]
	if action == "" && sub != "list" && sub != "show" && sub != "log" {
		return usageErrorf("monitor alerts: unknown subcommand %q (list, show, ack, dismiss, escalate or log)", sub)
	}
	cmd := newCommand("monitor alerts "+sub, "[flags]", monitorAlertsHelp)
	fs := cmd.fs
	cfgPath := fs.String("config", "", "the monitor's config `FILE` (its listen address)")
	url := fs.String("url", "", "the monitor's review API `URL` (default http://<listen> of --config)")
	tokenFile := fs.String("token-file", "", "`FILE` holding the operator's token (default $TALLY_MONITOR_TOKEN)")
	asJSON := fs.Bool("json", false, "print the monitor's JSON answer")
	var id *uint64
	var reason, status, rule, account *string
	var after *uint64
	var limit *int
	var verify *bool
	switch sub {
	case "list":
		status = fs.String("status", "", "only alerts in this `STATUS` (or unresolved)")
		rule = fs.String("rule", "", "only alerts of this `RULE`")
		account = fs.String("account", "", "only alerts of this account `ADDRESS`")
		after = fs.Uint64("after", 0, "only alerts with an id above `ID` (paging)")
		limit = fs.Int("limit", 100, "at most `N` alerts")
	case "log":
		verify = fs.Bool("verify", false, "check the hash chain: exit 1 when an entry was edited, deleted or moved")
	default:
		id = fs.Uint64("id", 0, "the alert `ID`")
		if action != "" {
			reason = fs.String("reason", "", "why (it goes into the action log; required to dismiss or escalate)")
		}
	}
	pos, err := c.parse(cmd, args)
	if err != nil {
		return err
	}
	if err := wantArgs(cmd, pos); err != nil {
		return err
	}
	switch {
	case id != nil && *id == 0:
		return usageErrorf("monitor alerts %s: --id is required (a positive alert id)", sub)
	case reason != nil && action != monitor.ActionAcknowledge && strings.TrimSpace(*reason) == "":
		return usageErrorf("monitor alerts %s: --reason is required: say why (it goes into the action log)", sub)
	case account != nil && *account != "" && !common.IsHexAddress(*account):
		return usageErrorf("monitor alerts %s: --account %q is not an address", sub, *account)
	case limit != nil && *limit < 1:
		return usageErrorf("monitor alerts %s: --limit must be at least 1", sub)
	}
	base := *url
	if base == "" {
		if *cfgPath == "" {
			return usageErrorf("monitor alerts %s: --config or --url is required", sub)
		}
		cfg, err := monitor.LoadConfig(*cfgPath)
		if err != nil {
			return usageErrorf("%v", err)
		}
		base = "http://" + cfg.Listen
	}
	var token string
	if *tokenFile != "" {
		data, err := c.readSecret("monitor alerts "+sub+": --token-file", *tokenFile)
		if err != nil {
			return err
		}
		token = strings.TrimSpace(string(data))
	} else if token = strings.TrimSpace(c.getenv("TALLY_MONITOR_TOKEN")); token == "" {
		return usageErrorf("monitor alerts %s: an operator token is required: --token-file FILE or $TALLY_MONITOR_TOKEN", sub)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	oc := &opClient{base: strings.TrimSuffix(base, "/"), token: token, what: "monitor alerts " + sub, service: "monitor"}
	var out json.RawMessage
	switch sub {
	case "list":
		q := neturl.Values{"limit": {strconv.Itoa(*limit)}}
		for k, v := range map[string]string{"status": *status, "rule": *rule, "account": *account} {
			if v != "" {
				q.Set(k, v)
			}
		}
		if *after > 0 {
			q.Set("after", strconv.FormatUint(*after, 10))
		}
		err = oc.do(ctx, http.MethodGet, monitor.PathAlerts+"?"+q.Encode(), nil, &out)
	case "show":
		err = oc.do(ctx, http.MethodGet, monitor.PathAlert+strconv.FormatUint(*id, 10), nil, &out)
	case "log":
		err = oc.do(ctx, http.MethodGet, monitor.PathActions, nil, &out)
	default:
		err = oc.do(ctx, http.MethodPost, monitor.PathAlert+strconv.FormatUint(*id, 10)+"/"+action, monitor.ReviewRequest{Reason: *reason}, &out)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		if _, err := fmt.Fprintf(c.stdout, "%s\n", strings.TrimSpace(string(out))); err != nil || sub != "log" || !*verify {
			return err
		}
	}
	return c.printAlerts(sub, out, verify != nil && *verify, *asJSON)
}

// printAlerts prints a review API answer as text (the log with --verify
// checked: exit 1 on a broken chain).
func (c *cli) printAlerts(sub string, raw json.RawMessage, verify, quiet bool) error {
	w := c.stdout
	switch sub {
	case "log":
		var lg monitor.ActionLog
		if err := json.Unmarshal(raw, &lg); err != nil {
			return fmt.Errorf("monitor alerts log: answer: %w", err)
		}
		if !quiet {
			for _, e := range lg.Entries {
				fmt.Fprintf(w, "%d %s %s %s alert %s", e.Seq, e.At.UTC().Format(time.RFC3339), e.Operator, e.Action, e.Target)
				if e.Detail != "" {
					fmt.Fprintf(w, " (%s)", e.Detail)
				}
				fmt.Fprintf(w, " reason=%q result=%q hash=%s\n", e.Reason, e.Result, e.Hash.Hex())
			}
			fmt.Fprintf(w, "head: entry %d hash %s\n", lg.Head.Seq, lg.Head.Hash.Hex())
		}
		if verify {
			if err := monitor.VerifyActions(lg.Entries, lg.Head); err != nil {
				return fmt.Errorf("monitor alerts log: %w", err)
			}
			fmt.Fprintf(c.stderr, "action log verified: %d entries, chain intact\n", len(lg.Entries))
		}
		return nil
	case "list":
		var as []*monitor.Alert
		if err := json.Unmarshal(raw, &as); err != nil {
			return fmt.Errorf("monitor alerts list: answer: %w", err)
		}
		for _, a := range as {
			fmt.Fprintf(w, "%d %-12s %-6s %-13s %s block %d: %s\n", a.ID, a.Status, a.Severity, a.Rule, a.Account.Hex(), a.Height, a.Detail)
		}
		if len(as) == 0 {
			fmt.Fprintln(w, "no alerts")
		}
		return nil
	}
	var a monitor.Alert
	if err := json.Unmarshal(raw, &a); err != nil {
		return fmt.Errorf("monitor alerts %s: answer: %w", sub, err)
	}
	fmt.Fprintf(w, "alert %d: %s, severity %s, %s\n", a.ID, a.Rule, a.Severity, a.Status)
	fmt.Fprintf(w, "account %s, block %d at %s, fired %d time(s)\n", a.Account.Hex(), a.Height, a.At.UTC().Format(time.RFC3339), a.Firings)
	fmt.Fprintf(w, "%s\n", a.Detail)
	for _, h := range a.Txs {
		fmt.Fprintf(w, "  tx %s\n", h.Hex())
	}
	if a.By != "" {
		fmt.Fprintf(w, "reviewed by %s: %q\n", a.By, a.Reason)
	}
	if f := a.Freeze; f != nil {
		fmt.Fprintf(w, "freeze %s: %q", f.State, f.Reason)
		if f.Tx != (common.Hash{}) {
			fmt.Fprintf(w, " tx %s", f.Tx.Hex())
		}
		if f.Error != "" {
			fmt.Fprintf(w, " (%s)", f.Error)
		}
		fmt.Fprintln(w)
	}
	return nil
}
