package main

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/txdecode"
	"github.com/tally-ledger/tally/wallet"
)

func (c *cli) send(args []string) error {
	cmd := newCommand("send", "--from ADDR --to ADDR --value AMOUNT [--legacy] [--wait=false] [--force]", `
First runs the transfer on the node's latest state (eth_call from --from):
if it would fail (a limit of the sender's or the recipient's KYC tier, a
frozen account, an insufficient balance), the node's reason is printed and
nothing is signed; --force sends it anyway (it fails with status 0 unless
the state changes before it is included). The transfer is signed locally
with --from's key, unlocked from the keystore, and sent to the node.
Prints the transaction hash, then waits for the receipt (final: Tally has
no forks) and prints its status, the reason of a failure and its block, as
'tally tx' prints them. With --wait=false it prints the hash and the
'tally tx' command that shows the status and the reason once the
transaction is in a block.

AMOUNT is in CNY with up to 18 decimals (1.5, 0.000001), or in base units
with the suffix "wei" (1500000000000000000wei). There are no fees.`)
	from := cmd.fs.String("from", "", "sender `ADDR` (an account in the keystore)")
	to := cmd.fs.String("to", "", "recipient `ADDR`")
	value := cmd.fs.String("value", "", "`AMOUNT` in CNY (e.g. 1.5), or base units with suffix wei")
	legacy := cmd.fs.Bool("legacy", false, "send an EIP-155 legacy (type 0) transaction instead of EIP-1559")
	wait := cmd.fs.Bool("wait", true, "wait for the receipt")
	force := cmd.fs.Bool("force", false, "send even if the dry run says the transfer would fail now")
	ksDir := c.keystoreFlag(cmd.fs)
	pwFile := passwordFileFlag(cmd.fs)
	rpcURL, timeout := rpcFlags(cmd.fs)
	pos, err := c.parse(cmd, args)
	if err != nil {
		return err
	}
	if err := wantArgs(cmd, pos); err != nil {
		return err
	}
	// Check every argument before asking for a password.
	fromAddr, err := parseAddress("send: --from", *from)
	if err != nil {
		return err
	}
	toAddr, err := parseAddress("send: --to", *to)
	if err != nil {
		return err
	}
	if *value == "" {
		return usageErrorf("send: --value is required")
	}
	amount, err := parseValue(*value)
	if err != nil {
		return usageErrorf("send: --value: %v", err)
	}
	ctx, client, done, err := connect(*rpcURL, *timeout)
	if err != nil {
		return err
	}
	defer done()
	key, err := c.unlock("send", *ksDir, *pwFile, fromAddr)
	if err != nil {
		return err
	}
	// The key is unlocked first, so that a wrong password or an unknown
	// sender fails before any network call; a transfer that would fail is
	// then refused before anything is signed.
	if err := client.SimulateTransfer(ctx, fromAddr, toAddr, amount); err != nil {
		var rev *wallet.RevertError
		if !errors.As(err, &rev) {
			return fmt.Errorf("send: dry run: %w", err)
		}
		if !*force {
			return fmt.Errorf("send: the transfer would fail: %s; nothing was signed (--force sends it anyway)", rev.Reason)
		}
		fmt.Fprintf(c.stderr, "tally: send: the transfer would fail now: %s; sending it anyway (--force)\n", rev.Reason)
	}

	chainID, err := client.ChainID(ctx)
	if err != nil {
		return err
	}
	nonce, err := client.PendingNonce(ctx, fromAddr)
	if err != nil {
		return err
	}
	tx, err := wallet.SignTransfer(key, chainID, nonce, toAddr, amount, *legacy)
	if err != nil {
		return err
	}
	if err := client.SendSigned(ctx, tx); err != nil {
		return err
	}
	r, err := c.await(ctx, client, tx, *wait, *rpcURL)
	if err != nil || r == nil {
		return err
	}
	if r.Status != types.ReceiptStatusSuccessful {
		return errors.New("send: the transaction failed at execution (status 0)")
	}
	return nil
}

// await prints the hash of a sent transaction and, with wait, waits for its
// receipt and prints its status, the reason the node kept of a failure
// and its block, labelled as 'tally tx' labels them; without wait it
// prints the 'tally tx' command that shows them once the transaction is
// in a block, and returns nil.
func (c *cli) await(ctx context.Context, client *wallet.Client, tx *types.Transaction, wait bool, rpcURL string) (*types.Receipt, error) {
	field(c.stdout, "hash", tx.Hash().Hex())
	if !wait {
		check := "tally tx " + tx.Hash().Hex()
		if rpcURL != defaultRPC {
			check += " --rpc " + rpcURL
		}
		field(c.stdout, "check", check)
		return nil, nil
	}
	r, err := client.WaitReceipt(ctx, tx.Hash())
	if err != nil {
		return nil, err
	}
	field(c.stdout, "status", statusText(r.Status))
	if r.Status == types.ReceiptStatusFailed {
		// The receipt is final whatever the reason's lookup gives.
		reason, ok, err := client.TransactionReason(ctx, tx.Hash())
		switch {
		case err != nil:
			fmt.Fprintf(c.stderr, "tally: the reason of the failure is not available: %v\n", oneLine(err.Error()))
		case ok:
			field(c.stdout, "reason", txdecode.Text(reason))
		}
	}
	field(c.stdout, "block", r.BlockNumber.String())
	return r, nil
}

// unlock asks for the password and unlocks from's key from the keystore.
func (c *cli) unlock(cmdName, ksDir, pwFile string, from common.Address) (*crypto.PrivateKey, error) {
	ks, err := openKeystore(ksDir)
	if err != nil {
		return nil, err
	}
	accts, err := ks.Accounts()
	if err != nil {
		return nil, err
	}
	if !slices.Contains(accts, from) {
		return nil, fmt.Errorf("%s: --from %s: %w %s (import it with 'tally wallet import')", cmdName, crypto.ChecksumAddress(from), wallet.ErrUnknownAccount, ks.Dir())
	}
	pw, err := c.password(pwFile, false)
	if err != nil {
		return nil, err
	}
	return ks.Unlock(from, pw)
}

// parseValue parses --value: CNY with up to 18 decimals, or base units with
// the suffix "wei".
func parseValue(s string) (*big.Int, error) {
	if digits, ok := strings.CutSuffix(s, "wei"); ok {
		return wallet.ParseAmount(digits, 0)
	}
	return wallet.ParseAmount(s, wallet.NativeDecimals)
}

// statusWord names a receipt status, the one rule every command reads a
// status by: "success" (1), or "failed" (0: included, changed nothing but
// the nonce). A node writes no other value; one would read as failed.
func statusWord(status uint64) string {
	if status == types.ReceiptStatusSuccessful {
		return "success"
	}
	return "failed"
}

// statusText explains a receipt status for people: "1 (success)".
func statusText(status uint64) string {
	return fmt.Sprintf("%d (%s)", status, statusWord(status))
}
