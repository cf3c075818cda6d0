package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/tally-ledger/tally/audit"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/node"
)

const auditHelp = `
Verifies a chain from genesis to its head (docs/audit.md): heights and
parent hashes link, block time goes forward, the history root, the proposer
was a validator of its height and sealed the header, the commit
certificates carry a quorum, the tx and receipts roots, every transaction
signature, replaying every block gives each header's state root and, at the
head, exactly the stored state; per asset, balances + escrow = minted −
burned; no bank reference minted twice; each withdrawal closed at most
once; every compliance action has a reason.

The chain comes from a node's JSON-RPC (--rpc) or from a data dir
(--datadir: a stopped node's data dir, or a copy made with 'tally admin
checkpoint --out DIR'), opened read-only. A running node holds its data
dir: audit a copy instead.

--from N (N > 0) starts from a trusted checkpoint: --checkpoint DIR, a data
dir copy whose head is N-1. --to M stops early (the final state is compared
only when the audit reaches the source's head).

Exit status: 0 every check holds, 1 a check failed, 2 the input cannot be
read (bad flags, unreadable genesis, RPC down, data dir missing or in use).`

// stateDirOf returns the state database of dir: a node's data dir holds
// it in its state/ subdirectory (node.StateDir), a copy made with 'tally
// admin checkpoint' is the database itself.
func stateDirOf(dir string) string {
	if fi, err := os.Stat(node.StateDir(dir)); err == nil && fi.IsDir() {
		return node.StateDir(dir)
	}
	return dir
}

// audit is 'tally audit'.
func (c *cli) audit(args []string) error {
	cmd := newCommand("audit", "--genesis FILE (--rpc URL | --datadir DIR) [--from N --checkpoint DIR] [--to M] [--json FILE]", auditHelp)
	genesisPath := cmd.fs.String("genesis", "", "the chain's genesis `FILE`")
	rpcURL := cmd.fs.String("rpc", "", "audit the node at this JSON-RPC `URL` (http, https, ws or wss)")
	dataDir := cmd.fs.String("datadir", "", "audit this data `DIR` (a copy: 'tally admin checkpoint')")
	from := cmd.fs.Uint64("from", 0, "first height `N` to check (above 0 needs --checkpoint)")
	to := cmd.fs.Uint64("to", 0, "last height `M` to check (default: the source's head)")
	checkpoint := cmd.fs.String("checkpoint", "", "a data dir copy `DIR` whose head is --from minus 1: the trusted starting state")
	jsonOut := cmd.fs.String("json", "", "write the machine-readable report to `FILE` (\"-\": stdout)")
	scratch := cmd.fs.String("tmp", "", "`DIR` for the replayed state while the audit runs (default: the system's temporary directory)")
	pos, err := c.parse(cmd, args)
	if err != nil {
		return err
	}
	if err := wantArgs(cmd, pos); err != nil {
		return err
	}
	switch {
	case *genesisPath == "":
		return usageErrorf("audit: --genesis is required")
	case (*rpcURL == "") == (*dataDir == ""):
		return usageErrorf("audit: give one of --rpc URL or --datadir DIR")
	case *from > 0 && *checkpoint == "":
		return usageErrorf("audit: --from %d needs --checkpoint DIR, a data dir copy whose head is %d", *from, *from-1)
	case *from == 0 && *checkpoint != "":
		return usageErrorf("audit: --checkpoint needs --from N > 0 (the height after the checkpoint's head)")
	case isSet(cmd.fs, "to") && *to < *from:
		return usageErrorf("audit: --to %d is below --from %d", *to, *from)
	}
	g, err := genesis.Load(*genesisPath)
	if err != nil {
		return usageErrorf("audit: --genesis: %v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var src audit.Source
	if *rpcURL != "" {
		urls, err := parseRPCURLs(*rpcURL)
		if err != nil {
			return err
		}
		if len(urls) != 1 {
			return usageErrorf("audit: --rpc: give one node's URL (the audit reads one node's copy of the chain)")
		}
		src, err = audit.DialRPC(ctx, urls[0])
		if err != nil {
			return usageErrorf("audit: %v", err)
		}
	} else {
		src, err = audit.OpenDataDir(stateDirOf(*dataDir))
	}
	if err != nil {
		return usageErrorf("audit: %v", err)
	}
	defer src.Close()

	cfg := audit.Config{Genesis: g, Source: src, From: *from, Checkpoint: *checkpoint, ScratchDir: *scratch}
	if *checkpoint != "" {
		cfg.Checkpoint = stateDirOf(*checkpoint)
	}
	if isSet(cmd.fs, "to") {
		cfg.To = to
	}
	bar := c.progressBar()
	if bar != nil {
		cfg.Progress = func(done, total uint64) {
			if done == 1 {
				bar.ChangeMax64(int64(total))
			}
			bar.Set64(int64(done))
		}
	}
	start := time.Now()
	rep, err := audit.Run(ctx, cfg)
	if bar != nil {
		bar.Finish()
		bar.Clear()
	}
	if err != nil {
		if ctx.Err() != nil {
			return usageErrorf("audit: interrupted")
		}
		if errors.Is(err, audit.ErrSource) {
			return usageErrorf("audit: %v", err)
		}
		return fmt.Errorf("audit: %w", err)
	}
	elapsed := time.Since(start)

	summary := c.stdout
	if *jsonOut == "-" {
		summary = c.stderr
		if err := rep.WriteJSON(c.stdout); err != nil {
			return fmt.Errorf("audit: write the report: %w", err)
		}
	} else if *jsonOut != "" {
		if err := writeReport(*jsonOut, rep); err != nil {
			return err
		}
	}
	rep.WriteSummary(summary)
	if secs := elapsed.Seconds(); secs > 0 && rep.Blocks > 0 {
		fmt.Fprintf(summary, "speed:        %.0f blocks/s, %.0f tx/s (%s)\n", float64(rep.Blocks)/secs, float64(rep.Txs)/secs, elapsed.Round(time.Millisecond))
	}
	if !rep.OK {
		return fmt.Errorf("audit failed: %d failed checks (first: %s at block %d)", len(rep.Failures)+rep.FailuresOmitted, rep.Failures[0].Check, rep.Failures[0].Height)
	}
	return nil
}

// writeReport writes the JSON report to path.
func writeReport(path string, rep *audit.Report) error {
	f, err := os.Create(path)
	if err != nil {
		return usageErrorf("audit: --json: %v", err)
	}
	if err := rep.WriteJSON(f); err != nil {
		f.Close()
		return fmt.Errorf("audit: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("audit: write %s: %w", path, err)
	}
	return nil
}

// progressBar returns a bar on stderr when it is a terminal, else nil
// (quiet in scripts and logs).
func (c *cli) progressBar() *progressbar.ProgressBar {
	f, ok := c.stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(io.Writer(f)),
		progressbar.OptionSetDescription("auditing"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("blocks"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}
