package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"

	"github.com/tally-ledger/tally/bridge"
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
		return errors.New("bridge reconcile: not available yet (docs/bridge.md, Reconciliation, describes it)")
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
