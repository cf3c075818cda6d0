package main

import (
	"encoding/json"

	"github.com/ethereum/go-ethereum/accounts"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"

	"github.com/tally-ledger/tally/bridge"
	"github.com/tally-ledger/tally/crypto"
)

// bridgeLink is 'tally bridge link': the wallet's side of linking a bank
// account (docs/bridge.md, "Linking accounts").
func (c *cli) bridgeLink(args []string) error {
	cmd := newCommand("bridge link", "--from WALLET --bank BANK (--account ID | --reference RF… | --virtual-account ID)", `
Signs with the wallet's key (from the keystore) the text a bank's bridge
checks before it links a bank account, a creditor reference or a virtual
account to the wallet (EIP-191 personal_sign, as a wallet app does), and
prints the JSON body of the bridge's POST /v1/links, which the bank sends
with its HMAC once it has authenticated the customer (docs/bridge.md,
"Integrating a bank, step by step", 5). Needs no node.`)
	from := cmd.fs.String("from", "", "the wallet's `ADDRESS` (its key in the keystore)")
	bank := cmd.fs.String("bank", "", "the issuing bank's `ADDRESS` (the bridge's key)")
	account := cmd.fs.String("account", "", "the bank account `ID` to link")
	reference := cmd.fs.String("reference", "", "an ISO 11649 creditor `REFERENCE` to route to the wallet instead")
	virtual := cmd.fs.String("virtual-account", "", "a virtual account `ID` to route to the wallet instead")
	name := cmd.fs.String("name", "", "the account holder's `NAME` for payout orders (optional; not signed)")
	ksDir := c.keystoreFlag(cmd.fs)
	pwFile := passwordFileFlag(cmd.fs)
	pos, err := c.parse(cmd, args)
	if err != nil {
		return err
	}
	if err := wantArgs(cmd, pos); err != nil {
		return err
	}
	wallet, err := parseAddress("bridge link: --from", *from)
	if err != nil {
		return err
	}
	bankAddr, err := parseAddress("bridge link: --bank", *bank)
	if err != nil {
		return err
	}
	kind, id, given := "", "", 0
	for _, o := range []struct{ kind, v string }{{bridge.RouteAccount, *account}, {bridge.RouteCreditorReference, *reference}, {bridge.RouteVirtualAccount, *virtual}} {
		if o.v != "" {
			kind, id = o.kind, o.v
			given++
		}
	}
	if given != 1 {
		return usageErrorf("bridge link: give exactly one of --account, --reference and --virtual-account")
	}
	key, err := c.unlock("bridge link", *ksDir, *pwFile, wallet)
	if err != nil {
		return err
	}
	sig, err := personalSign(key, bridge.RouteMessage(kind, bankAddr, id, wallet))
	if err != nil {
		return err
	}
	req := bridge.LinkRequest{Wallet: crypto.ChecksumAddress(wallet), Signature: hexutil.Encode(sig), Name: *name}
	switch kind {
	case bridge.RouteCreditorReference:
		req.Reference = id
	case bridge.RouteVirtualAccount:
		req.VirtualAccount = id
	default:
		req.Account = id
	}
	out, err := json.Marshal(req)
	if err != nil {
		return err
	}
	_, err = c.stdout.Write(append(out, '\n'))
	return err
}

// personalSign signs msg as a wallet's personal_sign does (EIP-191 version
// 0x45, v as 27 or 28).
func personalSign(key *crypto.PrivateKey, msg string) ([]byte, error) {
	sig, err := key.Sign(common.BytesToHash(accounts.TextHash([]byte(msg))))
	if err != nil {
		return nil, err
	}
	sig[64] += 27
	return sig, nil
}
