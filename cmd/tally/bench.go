package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/tally-ledger/tally/bench"
	"github.com/tally-ledger/tally/crypto"
)

func (c *cli) bench(args []string) error {
	cmd := newCommand("bench", "", `
Load-tests a node: pre-signs transfers of 1 base unit from funded accounts
(by default dev accounts 0..N-1 of the test mnemonic, which the dev genesis
funds), submits them in JSON-RPC batches of eth_sendRawTransaction, times
each from submission to its applied block (learnt from an
eth_subscribe("newHeads") subscription on the first node's port, or by
polling without one), and checks every receipt for status 1. Before and after the load it measures R, the machine's raw
ceiling (decode + sender recovery on all cores, no cache), and reports
throughput as a ratio to it: the machine's speed changes from day to day,
the ratio does not. Prints a table, then the same report as one JSON line
(--json: the JSON line alone). --rate paces the submission to measure
latency at a given traffic. With --rpc listing several nodes
(comma-separated), the workers spread over them and fail over to the
others when one fails; give one follower's URL to load through it
(docs/benchmarks.md).`)
	rpcURL, timeout := rpcFlags(cmd.fs)
	txs := cmd.fs.Int("txs", 20000, "transfers to send in total")
	batch := cmd.fs.Int("batch", 500, "transactions per JSON-RPC batch")
	workers := cmd.fs.Int("workers", 4, "concurrent submitters")
	accounts := cmd.fs.Int("accounts", 20, "sending accounts (HD indexes 0..N-1)")
	legacy := cmd.fs.Bool("legacy", false, "sign EIP-155 legacy transactions instead of EIP-1559")
	asJSON := cmd.fs.Bool("json", false, "print the report as one JSON line only")
	pace := cmd.fs.String("rate", "0", "pace the submission at `N` transactions per second, or at a fraction of R measured before the load with an R suffix (0.4R); 0: as fast as the node answers")
	ceilingTxs := cmd.fs.Int("ceiling-txs", bench.DefaultCeilingTxs, "transactions decoded and recovered to measure R before and after the load (0: do not measure)")
	fresh := cmd.fs.Bool("fresh-recipients", false, "send every transfer to a new account (the state grows by one account per transfer) instead of one recipient per sender")
	mnemonicFile := cmd.fs.String("mnemonic-file", "", "`FILE` with the senders' mnemonic (default: the public test mnemonic)")
	pos, err := c.parse(cmd, args)
	if err != nil {
		return err
	}
	if err := wantArgs(cmd, pos); err != nil {
		return err
	}
	switch {
	case *txs < 1:
		return usageErrorf("bench: --txs must be at least 1")
	case *batch < 1:
		return usageErrorf("bench: --batch must be at least 1")
	case *workers < 1:
		return usageErrorf("bench: --workers must be at least 1")
	case *accounts < 1 || *accounts > 10000:
		return usageErrorf("bench: --accounts must be 1..10000")
	case *ceilingTxs < 0:
		return usageErrorf("bench: --ceiling-txs must be 0 or more")
	}
	rate, ofCeiling, err := parseRate(*pace)
	if err != nil {
		return err
	}
	if ofCeiling > 0 && *ceilingTxs == 0 {
		return usageErrorf("bench: --rate %s is relative to R: it needs --ceiling-txs above 0", *pace)
	}
	if *ceilingTxs == 0 {
		*ceilingTxs = -1 // bench.Config: negative is "not measured"
	}
	mnemonic := crypto.TestMnemonic
	if *mnemonicFile != "" {
		b, err := c.readSecret("bench: --mnemonic-file", *mnemonicFile)
		if err != nil {
			return err
		}
		mnemonic = strings.Join(strings.Fields(string(b)), " ")
		if err := crypto.ValidateMnemonic(mnemonic); err != nil {
			return usageErrorf("bench: --mnemonic-file: %v", err)
		}
	}
	keys := make([]*crypto.PrivateKey, *accounts)
	for i := range keys {
		if keys[i], err = crypto.KeyFromMnemonic(mnemonic, "", uint32(i)); err != nil {
			return err
		}
	}
	urls, err := parseRPCURLs(*rpcURL)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout+time.Minute)
	defer cancel()
	rep, err := bench.Run(ctx, bench.Config{RPC: urls, Keys: keys, Txs: *txs, Batch: *batch, Workers: *workers, Legacy: *legacy, Timeout: *timeout, Rate: rate, RateOfCeiling: ofCeiling, CeilingTxs: *ceilingTxs, FreshRecipients: *fresh})
	if err != nil {
		return err
	}
	line, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	if !*asJSON {
		fmt.Fprintln(c.stdout, rep)
	}
	fmt.Fprintln(c.stdout, string(line))
	if rep.Rejected > 0 || rep.Failed > 0 {
		return fmt.Errorf("bench: %d rejected (first: %s), %d with status 0", rep.Rejected, rep.FirstError, rep.Failed)
	}
	return nil
}

// parseRate reads --rate: transactions per second ("4000"), or a fraction
// of R ("0.4R").
func parseRate(s string) (perSecond, ofCeiling float64, err error) {
	num, relative := strings.CutSuffix(strings.TrimSpace(s), "R")
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, 0, usageErrorf("bench: --rate %q: want transactions per second (4000) or a fraction of R (0.4R), 0 or more", s)
	}
	if relative {
		return 0, v, nil
	}
	return v, 0, nil
}
