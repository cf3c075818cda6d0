package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

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
	cmd := newCommand("bridge", "--config FILE", bridgeHelp)
	cfgPath := cmd.fs.String("config", "", "the bridge's config `FILE` (bridge.toml)")
	pos, err := c.parse(cmd, args)
	if err != nil {
		return err
	}
	if err := wantArgs(cmd, pos); err != nil {
		return err
	}
	if *cfgPath == "" {
		return usageErrorf("bridge: --config is required")
	}
	cfg, err := bridge.LoadConfig(*cfgPath)
	if err != nil {
		return usageErrorf("%v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return bridge.Run(ctx, cfg, bridge.Options{Logger: cfg.NewLogger(c.stderr)})
}

const reconcileHelp = `
Compares the bank's camt.053.001.08 statement of the omnibus account with
the chain, for the bridge's bank and asset (docs/bridge.md,
Reconciliation): every booked credit entry with a Minted log of its
bankRef by this bank and back, every booked debit entry with a
WithdrawalSettled by this bank of the payout its EndToEndId names and
back, amounts, and the statement's net movement (closing - opening booked
balance, else the sum of its entries) with the chain's minted - burned by
this bank over the same blocks. It reads the logs with eth_getLogs from
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
	cfgPath := cmd.fs.String("config", "", "the bridge's config `FILE` (bridge.toml)")
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
