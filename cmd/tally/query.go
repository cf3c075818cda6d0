package main

import (
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"time"

	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/wallet"
)

func (c *cli) balance(args []string) error {
	cmd := newCommand("balance", "ADDR", `
Prints the account's balance of the native asset in CNY, and in base units
(1 CNY = 10^18 base units).`)
	rpcURL, timeout := rpcFlags(cmd.fs)
	arg, err := c.oneArg(cmd, args, "ADDR")
	if err != nil {
		return err
	}
	addr, err := parseAddress("balance: ADDR", arg)
	if err != nil {
		return err
	}
	ctx, client, done, err := connect(*rpcURL, *timeout)
	if err != nil {
		return err
	}
	defer done()
	bal, err := client.Balance(ctx, addr)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, formatValue(bal))
	return nil
}

func (c *cli) tx(args []string) error {
	cmd := newCommand("tx", "HASH", `
Prints a transaction and its receipt: status (1 success, 0 failed at
execution, or pending while admitted but not yet in a block), block, from,
to, value. A receipt is final.`)
	rpcURL, timeout := rpcFlags(cmd.fs)
	arg, err := c.oneArg(cmd, args, "HASH")
	if err != nil {
		return err
	}
	hash, err := parseHash("tx: HASH", arg)
	if err != nil {
		return err
	}
	ctx, client, done, err := connect(*rpcURL, *timeout)
	if err != nil {
		return err
	}
	defer done()
	tx, pending, err := client.TransactionByHash(ctx, hash)
	if errors.Is(err, wallet.ErrNotFound) {
		return fmt.Errorf("tx %s: not found", hash)
	}
	if err != nil {
		return err
	}
	chainID, err := client.ChainID(ctx)
	if err != nil {
		return err
	}
	from, err := chain.Sender(chain.NewSigner(chainID), tx)
	if err != nil {
		return fmt.Errorf("tx %s: sender: %w", hash, err)
	}
	w := c.stdout
	fmt.Fprintf(w, "hash:   %s\n", tx.Hash())
	if pending {
		fmt.Fprintf(w, "status: pending\n")
	} else {
		r, err := client.Receipt(ctx, hash)
		if errors.Is(err, wallet.ErrNotFound) {
			// Applied between the two calls is impossible (a receipt
			// exists with the block), so this is a node in flux: say so.
			fmt.Fprintf(w, "status: pending\n")
		} else if err != nil {
			return err
		} else {
			fmt.Fprintf(w, "status: %s\nblock:  %v\nindex:  %d\n", statusText(r.Status), r.BlockNumber, r.TransactionIndex)
		}
	}
	to := "(none)"
	if tx.To() != nil {
		to = tx.To().Hex()
	}
	fmt.Fprintf(w, "from:   %s\nto:     %s\nvalue:  %s\nnonce:  %d\ntype:   %s\n",
		from.Hex(), to, formatValue(tx.Value()), tx.Nonce(), txTypeText(tx.Type()))
	if len(tx.Data()) > 0 {
		fmt.Fprintf(w, "data:   %d bytes\n", len(tx.Data()))
	}
	return nil
}

// txTypeText names a transaction type.
func txTypeText(t uint8) string {
	switch t {
	case types.LegacyTxType:
		return "0 (legacy, EIP-155)"
	case types.AccessListTxType:
		return "1 (EIP-2930)"
	case types.DynamicFeeTxType:
		return "2 (EIP-1559)"
	}
	return strconv.Itoa(int(t))
}

func (c *cli) block(args []string) error {
	cmd := newCommand("block", "N|latest", `
Prints a block's header: number, hash, parent, time, transaction count and
proposer (the validator that built it, the header's miner field).`)
	rpcURL, timeout := rpcFlags(cmd.fs)
	arg, err := c.oneArg(cmd, args, "N|latest")
	if err != nil {
		return err
	}
	var number *big.Int // nil: latest
	if arg != "latest" {
		n, err := strconv.ParseUint(arg, 10, 64)
		if err != nil {
			return usageErrorf("block: N: %q is not a block number (a decimal number or \"latest\")", truncate(arg))
		}
		number = new(big.Int).SetUint64(n)
	}
	ctx, client, done, err := connect(*rpcURL, *timeout)
	if err != nil {
		return err
	}
	defer done()
	b, err := client.BlockByNumber(ctx, number)
	if errors.Is(err, wallet.ErrNotFound) {
		return fmt.Errorf("block %s: not found", arg)
	}
	if err != nil {
		return err
	}
	h := b.Header()
	when := time.Unix(int64(h.Time), 0).UTC().Format(time.RFC3339)
	if ms, err := chain.TimeMs(h); err == nil {
		when = time.UnixMilli(int64(ms)).UTC().Format("2006-01-02T15:04:05.000Z07:00")
	}
	fmt.Fprintf(c.stdout, "number:   %d\nhash:     %s\nparent:   %s\ntime:     %s\ntxs:      %d\nproposer: %s\n",
		b.NumberU64(), b.Hash(), h.ParentHash, when, len(b.Transactions()), h.Coinbase.Hex())
	return nil
}

func (c *cli) account(args []string) error {
	cmd := newCommand("account", "ADDR", `
Prints an account's balance of every asset, its KYC tier, whether it is
frozen, and what it may still send today (UTC day of the last block's time).`)
	rpcURL, timeout := rpcFlags(cmd.fs)
	arg, err := c.oneArg(cmd, args, "ADDR")
	if err != nil {
		return err
	}
	addr, err := parseAddress("account: ADDR", arg)
	if err != nil {
		return err
	}
	ctx, client, done, err := connect(*rpcURL, *timeout)
	if err != nil {
		return err
	}
	defer done()
	assets, err := client.Assets(ctx)
	if err != nil {
		return err
	}
	acc, err := client.Account(ctx, addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "address: %s\ntier:    %d (%s)\nfrozen:  %t\nnonce:   %d\n", acc.Address.Hex(), acc.Tier, acc.TierName, acc.Frozen, uint64(acc.Nonce))
	for _, a := range assets {
		bal := (*big.Int)(acc.Balances[a.Symbol])
		left := "unlimited"
		if v := acc.RemainingDaily[a.Symbol]; v != nil {
			left = wallet.FormatAmount((*big.Int)(v), a.Decimals)
		}
		fmt.Fprintf(c.stdout, "%-7s  balance %s, may send %s more today\n", a.Symbol, wallet.FormatAmount(bal, a.Decimals), left)
	}
	return nil
}

func (c *cli) supply(args []string) error {
	cmd := newCommand("supply", "SYMBOL", `
Prints an asset's issuance: minted (genesis allocations and bank mints),
burned (settled withdrawals), escrow (pending withdrawals) and circulating
(held in balances). minted - burned = circulating + escrow always holds.`)
	rpcURL, timeout := rpcFlags(cmd.fs)
	arg, err := c.oneArg(cmd, args, "SYMBOL")
	if err != nil {
		return err
	}
	ctx, client, done, err := connect(*rpcURL, *timeout)
	if err != nil {
		return err
	}
	defer done()
	s, err := client.Supply(ctx, arg)
	if err != nil {
		return err
	}
	for _, row := range []struct {
		name string
		v    *big.Int
	}{{"minted", s.Minted.ToInt()}, {"burned", s.Burned.ToInt()}, {"escrow", s.Escrow.ToInt()}, {"circulating", s.Circulating.ToInt()}, {"totalSupply", s.TotalSupply.ToInt()}} {
		fmt.Fprintf(c.stdout, "%-12s %s %s\n", row.name+":", wallet.FormatAmount(row.v, s.Decimals), s.Symbol)
	}
	fmt.Fprintf(c.stdout, "%-12s %s\n", "address:", s.Address.Hex())
	return nil
}

// oneArg parses a command that takes exactly one argument, named name in
// its usage, and returns it.
func (c *cli) oneArg(cmd *command, args []string, name string) (string, error) {
	pos, err := c.parse(cmd, args)
	if err != nil {
		return "", err
	}
	if err := wantArgs(cmd, pos, name); err != nil {
		return "", err
	}
	return pos[0], nil
}
