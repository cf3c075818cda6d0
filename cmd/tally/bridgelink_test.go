package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/accounts"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"

	"github.com/tally-ledger/tally/bridge"
	"github.com/tally-ledger/tally/crypto"
)

// TestBridgeLink: tally bridge link prints the POST /v1/links body with a
// personal_sign signature (v 27/28) that recovers the wallet over the
// bridge's own text (bridge.RouteMessage), as the bridge checks it; the
// signature is deterministic (RFC 6979), so the output is golden.
func TestBridgeLink(t *testing.T) {
	setup(t)
	mn := writeFile(t, "mnemonic", crypto.TestMnemonic)
	if r := tally(t, "", "wallet", "import", "--mnemonic-file", mn); r.code != exitOK {
		t.Fatalf("import: %+v", r)
	}
	const bank = "0x9586A4833970847aef259aD5BFB7aa8901DDf746"
	for _, c := range []struct {
		flag, id, kind string
	}{
		{"--account", "HK-001-234567", bridge.RouteAccount},
		{"--reference", "RF18539007547034", bridge.RouteCreditorReference},
		{"--virtual-account", "VA-77", bridge.RouteVirtualAccount},
	} {
		r := tally(t, "", "bridge", "link", "--from", addr0, "--bank", bank, c.flag, c.id)
		if r.code != exitOK || r.stderr != "" {
			t.Fatalf("%s: %+v", c.flag, r)
		}
		var req bridge.LinkRequest
		if err := json.Unmarshal([]byte(r.stdout), &req); err != nil {
			t.Fatalf("%s: %v: %q", c.flag, err, r.stdout)
		}
		if got := req.Account + req.Reference + req.VirtualAccount; got != c.id || req.Wallet != addr0 {
			t.Fatalf("%s: body %+v", c.flag, req)
		}
		sig, err := hexutil.Decode(req.Signature)
		if err != nil || len(sig) != 65 || (sig[64] != 27 && sig[64] != 28) {
			t.Fatalf("%s: signature %q", c.flag, req.Signature)
		}
		sig[64] -= 27
		msg := bridge.RouteMessage(c.kind, common.HexToAddress(bank), c.id, common.HexToAddress(addr0))
		pub, err := ethcrypto.SigToPub(accounts.TextHash([]byte(msg)), sig)
		if err != nil || ethcrypto.PubkeyToAddress(*pub) != common.HexToAddress(addr0) {
			t.Fatalf("%s: the signature does not recover the wallet over %q: %v", c.flag, msg, err)
		}
		if c.kind == bridge.RouteAccount {
			const want = `{"account":"HK-001-234567","wallet":"0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266","signature":"0x1a4c2104adde37083b7126cb4fbeafd51d9e1fa756a1b2c23aaccf17ec6a909e73e7666d5b913497e34d4d0cb53a53b8b6afff885839133f50222c81c30dc5211c"}` + "\n"
			if r.stdout != want {
				t.Fatalf("output %q, want %q", r.stdout, want)
			}
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--from", addr0, "--bank", bank}, "exactly one of --account, --reference and --virtual-account"},
		{[]string{"--from", addr0, "--bank", bank, "--account", "A", "--virtual-account", "B"}, "exactly one"},
		{[]string{"--bank", bank, "--account", "A"}, "--from is required"},
		{[]string{"--from", addr0, "--account", "A"}, "--bank is required"},
		{[]string{"--from", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "--bank", bank, "--account", "A"}, "wallet import"},
	} {
		r := tally(t, "", append([]string{"bridge", "link"}, c.args...)...)
		if r.code == exitOK || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: %+v, want an error naming %q", c.args, r, c.want)
		}
	}
}
