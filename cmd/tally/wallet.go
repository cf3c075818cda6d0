package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/wallet"
)

const walletUsage = `Usage: tally wallet <command> [flags]

Commands:
  new        create a mnemonic and store its first account in the keystore
  import     import an account from a mnemonic or a private key file
  address    print the address at m/44'/60'/0'/0/N of a mnemonic
  list       list the keystore's accounts

Run 'tally wallet <command> --help' for a command's flags.
`

// maxHDIndex is the first hardened index: m/44'/60'/0'/0/N takes N below it.
const maxHDIndex = crypto.HardenedKeyStart

func (c *cli) wallet(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, walletUsage)
		return usageErrorf("wallet: no command given")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(c.stderr, walletUsage)
		return errHelp
	case "new":
		return c.walletNew(args[1:])
	case "import":
		return c.walletImport(args[1:])
	case "address":
		return c.walletAddress(args[1:])
	case "list":
		return c.walletList(args[1:])
	}
	return usageErrorf("wallet: unknown command %q (run 'tally wallet --help')", args[0])
}

func (c *cli) walletNew(args []string) error {
	cmd := newCommand("wallet new", "[--words 12|24]", `
Creates a BIP39 mnemonic, derives its first account (m/44'/60'/0'/0/0, the
one MetaMask shows first), stores that key encrypted in the keystore and
prints the mnemonic once. The mnemonic is the only backup: write it down.`)
	words := cmd.fs.Int("words", 12, "mnemonic length: `N` words, 12 or 24")
	ksDir := c.keystoreFlag(cmd.fs)
	pwFile := passwordFileFlag(cmd.fs)
	pos, err := c.parse(cmd, args)
	if err != nil {
		return err
	}
	if err := wantArgs(cmd, pos); err != nil {
		return err
	}
	var bits int
	switch *words {
	case 12:
		bits = 128
	case 24:
		bits = 256
	default:
		return usageErrorf("wallet new: --words must be 12 or 24, got %d", *words)
	}
	ks, err := openKeystore(*ksDir)
	if err != nil {
		return err
	}
	mnemonic, err := crypto.NewMnemonic(bits)
	if err != nil {
		return err
	}
	key, err := crypto.KeyFromMnemonic(mnemonic, "", 0)
	if err != nil {
		return err
	}
	pw, err := c.password(*pwFile, true)
	if err != nil {
		return err
	}
	addr, err := ks.Import(key, pw)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, `Your new mnemonic (%d words). Write it down and keep it offline: it is
the only backup of this account, and it is shown only this once.

    %s

Address:  %s
Keystore: %s
`, *words, mnemonic, crypto.ChecksumAddress(addr), ks.Dir())
	return nil
}

func (c *cli) walletImport(args []string) error {
	cmd := newCommand("wallet import", "(--mnemonic-file FILE [--index N] | --private-key-file FILE)", `
Imports an account into the keystore, encrypted with a password, and prints
its address. The secret is read from a file, or from stdin with "-", never
from a flag value (which would leak through ps and shell history):
  --mnemonic-file: a BIP39 mnemonic; imports the key at m/44'/60'/0'/0/N
  --private-key-file: a private key as 64 hex digits (0x optional)`)
	mnemonicFile := cmd.fs.String("mnemonic-file", "", "read a BIP39 mnemonic from `FILE` (\"-\" for stdin)")
	index := cmd.fs.Uint("index", 0, "account index `N` in m/44'/60'/0'/0/N (with --mnemonic-file)")
	keyFile := cmd.fs.String("private-key-file", "", "read a hex private key from `FILE` (\"-\" for stdin)")
	ksDir := c.keystoreFlag(cmd.fs)
	pwFile := passwordFileFlag(cmd.fs)
	pos, err := c.parse(cmd, args)
	if err != nil {
		return err
	}
	if err := wantArgs(cmd, pos); err != nil {
		return err
	}
	switch {
	case *mnemonicFile == "" && *keyFile == "":
		return usageErrorf("wallet import: --mnemonic-file or --private-key-file is required")
	case *mnemonicFile != "" && *keyFile != "":
		return usageErrorf("wallet import: give --mnemonic-file or --private-key-file, not both")
	case *keyFile != "" && isSet(cmd.fs, "index"):
		return usageErrorf("wallet import: --index applies only to --mnemonic-file")
	}
	if *index >= maxHDIndex {
		return usageErrorf("wallet import: --index must be below %d, got %d", maxHDIndex, *index)
	}
	if *pwFile == "-" && (*mnemonicFile == "-" || *keyFile == "-") {
		return usageErrorf("wallet import: only one of the secret and --password-file can be read from stdin")
	}
	var key *crypto.PrivateKey
	if *mnemonicFile != "" {
		data, err := c.readSecret("--mnemonic-file", *mnemonicFile)
		if err != nil {
			return err
		}
		if key, err = keyFromMnemonic(string(data), uint32(*index)); err != nil {
			return err
		}
	} else {
		data, err := c.readSecret("--private-key-file", *keyFile)
		if err != nil {
			return err
		}
		if key, err = crypto.HexToPrivateKey(strings.TrimSpace(string(data))); err != nil {
			return usageErrorf("--private-key-file: %v", err)
		}
	}
	ks, err := openKeystore(*ksDir)
	if err != nil {
		return err
	}
	// Refuse a duplicate before asking for a password that would not be used.
	if accts, err := ks.Accounts(); err == nil {
		for _, a := range accts {
			if a == key.Address() {
				return fmt.Errorf("wallet import: %s: %w", crypto.ChecksumAddress(a), wallet.ErrDuplicateAccount)
			}
		}
	}
	pw, err := c.password(*pwFile, true)
	if err != nil {
		return err
	}
	addr, err := ks.Import(key, pw)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, crypto.ChecksumAddress(addr))
	return nil
}

// keyFromMnemonic derives account index of a mnemonic read from
// --mnemonic-file; errors never echo the words.
func keyFromMnemonic(mnemonic string, index uint32) (*crypto.PrivateKey, error) {
	mnemonic = strings.TrimSpace(mnemonic)
	if mnemonic == "" {
		return nil, usageErrorf("--mnemonic-file: the file is empty")
	}
	key, err := crypto.KeyFromMnemonic(mnemonic, "", index)
	if errors.Is(err, crypto.ErrInvalidMnemonic) {
		return nil, usageErrorf("--mnemonic-file: not a valid BIP39 mnemonic (%d words; check for a misspelt word)", len(strings.Fields(mnemonic)))
	}
	if err != nil {
		return nil, fmt.Errorf("--mnemonic-file: %w", err)
	}
	return key, nil
}

func (c *cli) walletAddress(args []string) error {
	cmd := newCommand("wallet address", "[--mnemonic-file FILE] [--index N]", `
With --mnemonic-file, prints the address of account N (m/44'/60'/0'/0/N) of
the mnemonic without storing anything. Without it, lists the keystore's
accounts.`)
	mnemonicFile := cmd.fs.String("mnemonic-file", "", "read a BIP39 mnemonic from `FILE` (\"-\" for stdin)")
	index := cmd.fs.Uint("index", 0, "account index `N` in m/44'/60'/0'/0/N")
	ksDir := c.keystoreFlag(cmd.fs)
	pos, err := c.parse(cmd, args)
	if err != nil {
		return err
	}
	if err := wantArgs(cmd, pos); err != nil {
		return err
	}
	if *mnemonicFile == "" {
		if isSet(cmd.fs, "index") {
			return usageErrorf("wallet address: --index needs --mnemonic-file (keystore accounts are not indexed)")
		}
		return c.listAccounts(*ksDir)
	}
	if *index >= maxHDIndex {
		return usageErrorf("wallet address: --index must be below %d, got %d", maxHDIndex, *index)
	}
	data, err := c.readSecret("--mnemonic-file", *mnemonicFile)
	if err != nil {
		return err
	}
	key, err := keyFromMnemonic(string(data), uint32(*index))
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, crypto.ChecksumAddress(key.Address()))
	return nil
}

func (c *cli) walletList(args []string) error {
	cmd := newCommand("wallet list", "", `
Lists the addresses of the keystore's accounts, one a line, sorted.`)
	ksDir := c.keystoreFlag(cmd.fs)
	pos, err := c.parse(cmd, args)
	if err != nil {
		return err
	}
	if err := wantArgs(cmd, pos); err != nil {
		return err
	}
	return c.listAccounts(*ksDir)
}

func (c *cli) listAccounts(dir string) error {
	ks, err := openKeystore(dir)
	if err != nil {
		return err
	}
	accts, err := ks.Accounts()
	if err != nil {
		return err
	}
	if len(accts) == 0 {
		fmt.Fprintf(c.stderr, "no accounts in %s\n", ks.Dir())
	}
	for _, a := range accts {
		fmt.Fprintln(c.stdout, crypto.ChecksumAddress(a))
	}
	return nil
}
