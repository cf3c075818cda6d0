package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/tally-ledger/tally/internal/version"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// usage is the top-level help.
const usage = `Usage: tally <command> [flags] [arguments]

Wallet (keys stay on this machine, encrypted in the keystore):
  wallet new [--words 12|24]          create a mnemonic and store its first account
  wallet import --mnemonic-file F     import account --index N of a mnemonic
  wallet import --private-key-file F  import a hex private key ("-" reads stdin)
  wallet address [--mnemonic-file F --index N]
                                      print the address at m/44'/60'/0'/0/N
                                      (without a mnemonic: the keystore's accounts)
  wallet list                         list the keystore's accounts

Node (JSON-RPC, --rpc URL or URL,URL,... of a cluster's nodes to fail over between,
default http://127.0.0.1:8545):
  send --from ADDR --to ADDR --value AMOUNT [--legacy] [--wait=false]
                                      sign and send a transfer of CNY
  balance ADDR                        print an account's balance
  op [--from ADDR] (--asset SYM | --compliance) METHOD [ARG...]
                                      call a system operation (mint, transferWithReference,
                                      requestWithdrawal, setKycTier, ...) or a view
  account ADDR                        balances per asset, KYC tier, frozen, daily allowance left
  supply SYMBOL                       an asset's minted, burned, escrow and circulating
  assets                              the chain's assets: symbol, decimals, facade, banks
  tx HASH                             a transaction and its receipt, decoded: operation,
                                      amounts in the asset's units, reference, events
  history ADDR [--asset SYM] [--limit N] [--cursor C]
                                      an account's transactions, newest first, page by page
  proof tx HASH [--out FILE]          write the proof that a transaction is in the chain
  block N|latest                      print a block's header
  bench [--txs N --batch N]           load-test the node with signed transfers

Payments people trust (docs/payments.md):
  confirmations set|remove|confirm|reject|cancel|approve-change|cancel-change|show|list
                                      a second confirmation of large payments (key, thresholds)
  dispute open|contest|uphold|dismiss|list|show
                                      disputes on payments under an order reference

Cluster:
  testnet --nodes N --dir DIR         write an N-node local cluster (configs, keys, genesis)
  admin checkpoint --out DIR          online backup of a node's state (admin API, --token-file)
  admin raft-status                   a node's view of Raft
  admin add-observer MULTIADDR        add a non-voting observer (call the leader)
  admin remove-observer PEER_ID       remove an observer

Bank bridge (docs/bridge.md):
  bridge --config bridge.toml         run an issuing bank's bridge: deposits in, payouts out
  bridge reconcile --config bridge.toml --statement camt053.xml [--json]
                                      compare the bank's statement with the chain; list breaks
  bridge link --from WALLET --bank BANK --account ID
                                      sign a wallet's account link; print POST /v1/links's body
  bridge deposits|release|return|payouts|requeue|outcome|cancel|log --config bridge.toml
                                      operator tools of a running bridge (--reason, operator log)
  bankcore-sim --config sim.toml      a bank core simulator for tests and demos (camt/pain)

Risk monitor (docs/monitor.md):
  monitor --config monitor.toml       follow the chain, raise alerts by the detective rules
  monitor alerts list|show|ack|dismiss|escalate|log --config monitor.toml
                                      review the queue (--reason, action log; escalate freezes)

Merchant checkout (docs/merchants.md):
  request --asset SYM --to PAYEE --amount AMOUNT --order ID [--expires 15m] [--qr FILE.png] [--json]
                                      an order's payment request: EIP-681 URI, QR code, expiry
  merchant --config merchant.toml     follow the chain, match payments to orders, send signed webhooks
  merchant orders add|show --config merchant.toml
                                      register an order (a request's JSON), show its status by reference

Auditors (only the genesis file is trusted; docs/audit.md, docs/proofs.md):
  audit --genesis F (--rpc URL | --datadir DIR) [--json F] [--from N --checkpoint DIR] [--to M]
                                      verify the chain from genesis: exit 0 holds, 1 a check failed,
                                      2 unreadable input
  verify-proof FILE --genesis F       check a transaction proof offline (no node): exit 0 valid,
                                      1 invalid, 2 unreadable

Every query command (balance, account, supply, assets, tx, history, block,
verify-proof, op on a view) takes --json: one JSON document for scripts
(docs/operations.md).

Run 'tally <command> --help' for a command's flags; 'tally --version' for
this build's version and commit.

Environment:
  TALLY_KEYSTORE   keystore directory (default $HOME/.tally/keystore)
  TALLY_PASSWORD   keystore password, instead of a prompt or --password-file

Exit status: 0 success, 1 failure, 2 usage error.
`

// run is the whole command, minus the process: tests call it in-process.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{
		stdin:   stdin,
		stdout:  stdout,
		stderr:  stderr,
		getenv:  os.Getenv,
		openTTY: openTTY,
	}
	return c.main(args)
}

// main dispatches to a command and turns its error into an exit status.
func (c *cli) main(args []string) int {
	err := c.dispatch(args)
	if err == nil || errors.Is(err, errHelp) {
		return exitOK
	}
	fmt.Fprintf(c.stderr, "tally: %s\n", oneLine(err.Error()))
	var u *usageError
	if errors.As(err, &u) {
		return exitUsage
	}
	return exitFailure
}

func (c *cli) dispatch(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, usage)
		return usageErrorf("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(c.stderr, usage)
		return errHelp
	case "--version", "-version", "version":
		fmt.Fprintf(c.stdout, "tally %s\n", version.Get())
		return nil
	case "wallet":
		return c.wallet(rest)
	case "send":
		return c.send(rest)
	case "op":
		return c.op(rest)
	case "account":
		return c.account(rest)
	case "supply":
		return c.supply(rest)
	case "assets":
		return c.assets(rest)
	case "history":
		return c.history(rest)
	case "balance":
		return c.balance(rest)
	case "tx":
		return c.tx(rest)
	case "proof":
		return c.proof(rest)
	case "verify-proof":
		return c.verifyProof(rest)
	case "block":
		return c.block(rest)
	case "bench":
		return c.bench(rest)
	case "testnet":
		return c.testnet(rest)
	case "admin":
		return c.admin(rest)
	case "bridge":
		return c.bridge(rest)
	case "bankcore-sim":
		return c.bankcoreSim(rest)
	case "monitor":
		return c.monitor(rest)
	case "request":
		return c.request(rest)
	case "merchant":
		return c.merchant(rest)
	case "audit":
		return c.audit(rest)
	case "dispute":
		return c.dispute(rest)
	case "confirmations":
		return c.confirmations(rest)
	}
	return usageErrorf("unknown command %q (run 'tally --help')", cmd)
}

// oneLine keeps an error message on one line, whatever a library put in it.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
