package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/tally-ledger/tally/internal/version"
	"github.com/tally-ledger/tally/node"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tallyd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		dev      = fs.Bool("dev", false, "run a single-node chain on the embedded dev genesis (data in a temp dir unless --datadir)")
		datadir  = fs.String("datadir", "", "data directory (node key, state, raft log)")
		gen      = fs.String("genesis", "", "genesis file (default with --dev: the embedded dev genesis)")
		config   = fs.String("config", "", "TOML config file (docs/config.md)")
		httpAddr = fs.String("http.addr", "", "JSON-RPC listen address (default 127.0.0.1)")
		httpPort = fs.Int("http.port", -1, "JSON-RPC listen port (default 8545)")
		logLevel = fs.String("log.level", "", "log level: debug, info, warn, error")
		clear    = fs.Bool("clear-halt", false, "remove the halt record of a stopped, halted node (docs/cluster.md) and exit")
		fresh    = fs.Bool("raft-fresh", false, "start as a fresh Raft member (no bootstrap; the leader sends the log) although raft/ is empty: after a lost raft/ or a lost data directory with only nodekey restored, which a start otherwise refuses (docs/cluster.md)")
		showVer  = fs.Bool("version", false, "print the version and commit of this build and exit")
	)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: tallyd [flags]\n\nRuns a Tally node.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if *showVer {
		fmt.Fprintf(stdout, "tallyd %s\n", version.Get())
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tallyd: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg := node.DefaultConfig()
	if *config != "" {
		var err error
		// Validated below, once the flags are applied over the file.
		if cfg, err = node.ReadConfig(*config); err != nil {
			fmt.Fprintf(stderr, "tallyd: %v\n", err)
			return 2
		}
	}
	if *dev {
		cfg.Dev = true
	}
	if *datadir != "" {
		cfg.DataDir = *datadir
	}
	if *gen != "" {
		cfg.Genesis = *gen
	}
	if *httpAddr != "" {
		cfg.HTTP.Addr = *httpAddr
	}
	if *httpPort >= 0 {
		cfg.HTTP.Port = *httpPort
	}
	if *logLevel != "" {
		cfg.Log.Level = *logLevel
	}
	cfg.RaftFresh = *fresh
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "tallyd: %v\n", err)
		return 2
	}
	logger := newLogger(cfg.Log, stderr)
	if *clear {
		return clearHalt(cfg.DataDir, logger, stderr)
	}
	// A dev chain without --datadir lives in a temporary dir removed when
	// tallyd exits; a data dir this run creates is removed again if the
	// node fails to start, so a failed start leaves nothing behind.
	var temp, created string
	if cfg.DataDir == "" {
		if !cfg.Dev {
			fmt.Fprintln(stderr, "tallyd: --datadir (or datadir in the config) is required unless --dev")
			return 2
		}
		dir, err := os.MkdirTemp("", "tally-dev-")
		if err != nil {
			fmt.Fprintf(stderr, "tallyd: %v\n", err)
			return 1
		}
		cfg.DataDir, temp = dir, dir
		logger.Info("dev data dir (temporary, removed on exit; --datadir DIR keeps it)", "datadir", dir)
	} else {
		created = firstMissing(cfg.DataDir)
	}
	removeDir := func(dir string) {
		if dir == "" {
			return
		}
		if err := os.RemoveAll(dir); err != nil {
			logger.Error("remove data dir", "datadir", dir, "err", err)
		}
	}

	n, err := node.New(cfg, logger)
	if err != nil {
		logger.Error("start failed", "err", err)
		removeDir(temp)
		removeDir(created)
		return 1
	}
	logger.Info("node started", n.StartupAttrs()...)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	s := <-sig
	logger.Info("shutting down", "signal", s.String())
	code := 0
	if err := n.Close(); err != nil {
		logger.Error("shutdown", "err", err)
		code = 1
	}
	if temp != "" {
		removeDir(temp)
		logger.Info("dev data dir removed", "datadir", temp)
	}
	logger.Info("stopped")
	return code
}

// firstMissing returns the outermost directory of path (path itself or
// one of its parents) that does not exist yet, so that what a failed start
// created can be removed; "" when path exists.
func firstMissing(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return ""
	}
	missing := ""
	for dir := abs; ; dir = filepath.Dir(dir) {
		if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
			return missing
		}
		missing = dir
		if filepath.Dir(dir) == dir {
			return missing
		}
	}
}

// clearHalt removes the halt record of the node in dataDir, logging what
// it said.
func clearHalt(dataDir string, logger *slog.Logger, stderr io.Writer) int {
	if dataDir == "" {
		fmt.Fprintln(stderr, "tallyd: --clear-halt needs --datadir (or datadir in the config)")
		return 2
	}
	rec, err := node.ClearHalt(dataDir)
	if err != nil {
		logger.Error("clear halt failed", "err", err)
		return 1
	}
	if rec == nil {
		logger.Info("no halt record: the node had not halted", "datadir", dataDir)
		return 0
	}
	logger.Warn("halt record cleared: the node will apply again from where it stopped", "datadir", dataDir,
		"halted_at", time.UnixMilli(int64(rec.TimeMs)).UTC().Format(time.RFC3339), "height", rec.Height,
		"raft_index", rec.RaftIndex, "entry", rec.Entry, "reason", rec.Reason)
	return 0
}

func newLogger(c node.LogConfig, w io.Writer) *slog.Logger {
	level, _ := node.ParseLevel(c.Level)
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
