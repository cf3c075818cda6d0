package main

import (
	"context"
	"encoding/json"
	"fmt"
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
each from submission to its applied block, and checks every receipt for
status 1. Prints throughput and latency percentiles (docs/benchmarks.md).
With --rpc listing several nodes (comma-separated), the workers spread
over them and fail over to the others when one fails.`)
	rpcURL, timeout := rpcFlags(cmd.fs)
	txs := cmd.fs.Int("txs", 20000, "transfers to send in total")
	batch := cmd.fs.Int("batch", 500, "transactions per JSON-RPC batch")
	workers := cmd.fs.Int("workers", 4, "concurrent submitters")
	accounts := cmd.fs.Int("accounts", 20, "sending accounts (HD indexes 0..N-1)")
	legacy := cmd.fs.Bool("legacy", false, "sign EIP-155 legacy transactions instead of EIP-1559")
	asJSON := cmd.fs.Bool("json", false, "print the report as JSON")
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
	rep, err := bench.Run(ctx, bench.Config{RPC: urls, Keys: keys, Txs: *txs, Batch: *batch, Workers: *workers, Legacy: *legacy, Timeout: *timeout})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(c.stdout, rep)
	}
	if rep.Rejected > 0 || rep.Failed > 0 {
		return fmt.Errorf("bench: %d rejected (first: %s), %d with status 0", rep.Rejected, rep.FirstError, rep.Failed)
	}
	return nil
}
