package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/tally-ledger/tally/bankcore"
)

const bankcoreHelp = `
Runs a bank core simulator, for tests and demos only (package bankcore,
docs/bridge.md "Bank core simulator"). It keeps a ledger of an omnibus
account and customer accounts, sends camt.054.001.08 credit notifications
for scripted deposits (script-file, or POST /sim/deposits) to the bridge,
accepts the bridge's pain.001.001.09 payout orders on payout-path, answers
each with a pain.002.001.10 after status-delay (ACSC, or RJCT by the reject
rule; ACTC and ACCP before that, DU01 for a re-sent MsgId), and writes
camt.053.001.08 statements (GET /sim/statement, and --statement-out on
exit). POST /sim/faults makes it reject, duplicate, reorder, lose
acknowledgements or reports, delay reports or go down; POST /sim/returns
and /sim/reversals return a payout or reverse a booking. --random-seed
(or [random] seed) mixes these at the [random] probabilities,
repeatably. Every POST to and from the bridge carries the X-Tally-Signature
HMAC with the shared secret.

The config file (TOML) is checked strictly: an unknown key or a bad value
is refused naming the key. SIGTERM or Ctrl-C stops it.`

// bankcoreSim is 'tally bankcore-sim'.
func (c *cli) bankcoreSim(args []string) error {
	cmd := newCommand("bankcore-sim", "--config FILE [--statement-out FILE] [--random-seed N]", bankcoreHelp)
	cfgPath := configFlag(cmd, "simulator", "sim.toml")
	stmtOut := cmd.fs.String("statement-out", "", "write a camt.053 statement of the omnibus account to `FILE` on exit (overrides statement-file)")
	listen := cmd.fs.String("listen", "", "listen on `HOST:PORT` (overrides listen)")
	bridgeURL := cmd.fs.String("bridge-url", "", "the bridge's base `URL` (overrides bridge-url)")
	seed := cmd.fs.Uint64("random-seed", 0, "run the random bank mode with seed `N` (overrides random.seed; 0 keeps the config's)")
	cfg, err := parseConfig(c, cmd, args, cfgPath, bankcore.LoadConfig)
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	if *bridgeURL != "" {
		cfg.BridgeURL = *bridgeURL
	}
	if *seed != 0 {
		cfg.Random.Seed = *seed
	}
	if *stmtOut != "" {
		// Relative to the working directory, not the config's: it came
		// from the command line.
		abs, err := filepath.Abs(*stmtOut)
		if err != nil {
			return usageErrorf("bankcore-sim: --statement-out: %v", err)
		}
		cfg.StatementFile = abs
	}
	if err := cfg.Validate(); err != nil {
		return usageErrorf("bankcore-sim: %v", err)
	}
	sim, err := bankcore.New(cfg, bankcore.Options{Logger: slog.New(slog.NewTextHandler(c.stderr, nil))})
	if err != nil {
		return usageErrorf("bankcore-sim: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := sim.Start(ctx); err != nil {
		sim.Close()
		return fmt.Errorf("bankcore-sim: %w", err)
	}
	fmt.Fprintf(c.stderr, "bankcore-sim listening on %s, bridge at %s\n", sim.URL(), cfg.BridgeURL)
	<-ctx.Done()
	if err := sim.Close(); err != nil {
		return fmt.Errorf("bankcore-sim: stop: %w", err)
	}
	return nil
}
