package bridge

import (
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"

	"github.com/tally-ledger/tally/crypto"
)

// A link request's wallet may be spelt EIP-55 checksummed, in lower case or
// in upper case, as wallets and banks' systems write addresses; a
// mixed-case spelling must carry the right checksum (a mistyped address
// is refused, not linked to a wallet nobody holds).
func TestVerifyLinkWalletSpelling(t *testing.T) {
	bank := common.HexToAddress("0x9586A4833970847aef259aD5BFB7aa8901DDf746")
	holder, err := crypto.HexToPrivateKey("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
	if err != nil {
		t.Fatal(err)
	}
	b := &Bridge{bank: bank, now: time.Now}
	sig, err := holder.Sign(common.BytesToHash(accounts.TextHash([]byte(LinkMessage(bank, "HK-001-234567", holder.Address())))))
	if err != nil {
		t.Fatal(err)
	}
	sig[64] += 27
	hex := holder.Address().Hex() // 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266
	badChecksum := strings.Replace(hex, "f39F", "F39f", 1)
	for _, c := range []struct {
		name, wallet, wantErr string
	}{
		{"checksummed", hex, ""},
		{"lower case", strings.ToLower(hex), ""},
		{"upper case", "0x" + strings.ToUpper(hex[2:]), ""},
		{"mixed case, wrong checksum", badChecksum, "wallet: parse address " + badChecksum + ": bad EIP-55 checksum"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, l, err := b.verifyLink(&LinkRequest{Account: "HK-001-234567", Wallet: c.wallet, Signature: hexutil.Encode(sig)})
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("wallet %s: %v, want %q", c.wallet, err, c.wantErr)
				}
				return
			}
			if err != nil || l.Wallet != holder.Address() {
				t.Fatalf("wallet %s: %v %+v", c.wallet, err, l)
			}
		})
	}
}
