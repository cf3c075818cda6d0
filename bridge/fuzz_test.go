package bridge

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/pelletier/go-toml/v2"

	"github.com/tally-ledger/tally/crypto"
)

// docTOML returns the ```toml blocks of a page under docs/: the configs
// the documentation shows, which are the seeds of the config fuzzers.
func docTOML(t testing.TB, page string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "docs", page))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, m := range regexp.MustCompile("(?s)```toml\n(.*?)```").FindAllSubmatch(b, -1) {
		out = append(out, m[1])
	}
	if len(out) == 0 {
		t.Fatalf("docs/%s has no toml block", page)
	}
	return out
}

// FuzzParseConfig: a bridge.toml is either refused with an error naming
// the key, or accepted as a config that writes back to TOML and reads
// again as the same config (so what the operator wrote is what runs).
func FuzzParseConfig(f *testing.F) {
	for _, b := range docTOML(f, "bridge.md") {
		f.Add(b)
	}
	f.Add([]byte(minimalConfig))
	f.Add([]byte(configText(map[string]string{"bankcore.format": `"json"`, "bankcore.debtor-account": ""})))
	f.Add([]byte(configText(map[string]string{"tls.cert-file": `"c.pem"`, "tls.key-file": `"k.pem"`, "tls.client-ca-file": `"ca.pem"`})))
	f.Add([]byte(configText(map[string]string{"limits.max-body-bytes": "1023"})))
	f.Add([]byte(configText(map[string]string{"auth.max-skew": `"-1s"`})))
	f.Add([]byte(configText(map[string]string{"nodes.endpoints": `["ftp://x"]`})))
	f.Add([]byte("asset = \"HKD\"\n[key]\nkeystore-fil = 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := DefaultConfig()
		if err := ParseConfig(data, "/etc/tally", &cfg); err != nil {
			if msg := err.Error(); !strings.HasPrefix(msg, "key ") && !strings.HasPrefix(msg, "unknown key ") {
				t.Fatalf("error does not name the key: %v", err)
			}
			return
		}
		out, err := toml.Marshal(cfg)
		if err != nil {
			t.Fatalf("accepted config does not encode: %v", err)
		}
		again := DefaultConfig()
		if err := ParseConfig(out, "/etc/tally", &again); err != nil {
			t.Fatalf("accepted config, written back, is refused: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(cfg, again) {
			t.Fatalf("config changed through TOML:\n%+v\n%+v\n%s", cfg, again, out)
		}
	})
}

// intakeVerdicts are every verdict an intake answer may carry.
var intakeVerdicts = map[string]bool{VerdictAccepted: true, VerdictDuplicate: true, VerdictHeld: true, VerdictConflict: true,
	VerdictIgnored: true, VerdictSettling: true, VerdictRefunding: true, VerdictReturning: true, VerdictNoted: true,
	VerdictUnknown: true, VerdictReversed: true}

// FuzzIntake posts arbitrary bodies, correctly signed, to the deposit
// notification and payment status endpoints of a bridge with a real store
// (no node: nothing is minted), in both formats (JSON, and ISO 20022 XML
// by the first byte). Every answer is 200, 400 or 422 with a JSON body:
// 400 carries an error, 200 and 422 a known verdict per entry; and sending
// the same body again (what a bank core does when it misses an answer)
// gets the same status, each entry's verdict the same or "duplicate", an
// accepted deposit "duplicate": a resend never changes anything.
func FuzzIntake(f *testing.F) {
	for _, p := range []struct {
		path uint8
		file string
	}{{0, "camt054_deposit_payout.xml"}, {1, "pain002_rejected.xml"}, {1, "pain002_settled.xml"}, {1, "camt054_deposit_payout.xml"}} {
		b, err := os.ReadFile(filepath.Join("iso20022", "testdata", p.file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(p.path, b)
	}
	for _, s := range []string{
		`{"msgId": "NTF-20260101-0001",
 "entries": [{"ref": "BK-778812", "account": "HK-001-234567", "amount": "100.25",
              "currency": "HKD", "credit": true, "endToEndId": "E2E-1"}]}`,
		`{"msgId":"N2","entries":[{"ref":"R1","account":"HK-LINKED-1","amount":"1.50","currency":"HKD","credit":true},{"ref":"R1","account":"HK-LINKED-1","amount":"1.5","currency":"HKD","credit":true},{"ref":"R2","account":"HK-LINKED-1","amount":"0.001","currency":"HKD","credit":true}]}`,
		`{"msgId":"N3","entries":[{"ref":"R3","account":"HK-LINKED-1","amount":"-5","currency":"HKD","credit":true},{"ref":"R4","account":"HK-LINKED-1","amount":"5","currency":"USD","credit":true,"booked":false}]}`,
		`{"msgId":"N4","entries":[{"ref":"D1","account":"HK-PAY-1","amount":"10.00","currency":"HKD","credit":false,"endToEndId":"TALLY-1337-HKD-W1","bookingDate":"2026-01-01"}]}`,
		`{"msgId":"N5","entries":[{"ref":"R5","account":"` + strings.Repeat("é", 40) + `","amount":"1","currency":"HKD","credit":true}]}`,
		`{"msgId":"N6","entries":[{"ref":"R6","account":"x` + strings.Repeat("é", 40) + `","amount":"1` + strings.Repeat("é", 40) + `","currency":"HKD","credit":true}]}`,
	} {
		f.Add(uint8(0), []byte(s))
	}
	for _, s := range []string{
		`{"msgId": "PSR-0001",
 "statuses": [{"endToEndId": "TALLY-1337-HKD-W42", "status": "RJCT", "reason": "AC04 account closed"}]}`,
		`{"msgId":"PSR-2","statuses":[{"endToEndId":"TALLY-1337-HKD-W2","status":"PDNG"},{"endToEndId":"TALLY-1337-HKD-W2","status":"ACSC"},{"endToEndId":"TALLY-1337-HKD-W2","status":"RJCT","reason":"AM04"}]}`,
		`{"msgId":"PSR-3","statuses":[{"endToEndId":"TALLY-1337-HKD-W3","status":"RJCT","reason":"` + strings.Repeat("é", 200) + `"}]}`,
	} {
		f.Add(uint8(1), []byte(s))
	}
	bank := common.HexToAddress("0x9586A4833970847aef259aD5BFB7aa8901DDf746")
	holder, err := crypto.HexToPrivateKey("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
	if err != nil {
		f.Fatal(err)
	}
	for _, l := range []struct{ field, id string }{{"account", "HK-001-234567"}, {"reference", "RF18539007547034"}, {"virtualAccount", "VA-778812"}, {"account", "GB82WEST12345698765432"}} {
		sig, err := holder.Sign(common.BytesToHash(accounts.TextHash([]byte(signedLinkText(l.field, bank, l.id, holder.Address())))))
		if err != nil {
			f.Fatal(err)
		}
		sig[64] += 27
		body, _ := json.Marshal(map[string]string{l.field: l.id, "wallet": holder.Address().Hex(), "signature": hexutil.Encode(sig), "name": "Chan Tai Man"})
		f.Add(uint8(2), body)
		// A wallet given in lower case is answered EIP-55 checksummed.
		body, _ = json.Marshal(map[string]string{l.field: l.id, "wallet": strings.ToLower(holder.Address().Hex()), "signature": hexutil.Encode(sig)})
		f.Add(uint8(2), body)
	}
	cfg := DefaultConfig()
	cfg.Asset = "HKD"
	cfg.BankCore.DebtorAccount = "SIM-OMNIBUS-0001"
	s, err := OpenStore(f.TempDir(), 100, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	now := time.Unix(1_800_000_000, 0)
	secret := []byte("fuzz-secret-0123456789abcdef0123")
	b := &Bridge{cfg: cfg, log: slog.New(slog.DiscardHandler), now: func() time.Time { return now }, store: s, intakeSecret: secret,
		bank:       bank,
		info:       ChainInfo{ChainID: 1337, AssetID: 1, Symbol: "HKD", Decimals: 2},
		kickOutbox: make(chan struct{}, 1), kickPayout: make(chan struct{}, 1), kickCloser: make(chan struct{}, 1)}
	b.metrics = newMetrics(s, b.now)
	if err := s.PutLink(&Link{Account: "HK-LINKED-1", Wallet: common.Address{1}, LinkedAt: now}); err != nil {
		f.Fatal(err)
	}
	for id := uint64(1); id <= 3; id++ {
		p := &Payout{ID: id, Holder: common.Address{7}, Amount: big.NewInt(1000), Account: "HK-PAY-1",
			EndToEndID: PayoutEndToEndID(1337, "HKD", id), Status: PayoutOrdered, CreatedAt: now, UpdatedAt: now}
		if _, err := s.AddPayouts([]*Payout{p}, id); err != nil {
			f.Fatal(err)
		}
	}
	h := b.handler()
	post := func(t *testing.T, path string, body []byte) (int, Response) {
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set(SignatureHeader, Sign(secret, body, now))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var resp Response
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
			t.Fatalf("POST %s %q: %d, body not JSON: %v\n%s", path, body, rec.Code, err, rec.Body)
		}
		return rec.Code, resp
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		path := []string{PathNotifications, PathPaymentStatus, PathLinks}[which%3]
		if path == PathLinks {
			checkLink(t, h, secret, now, bank, body)
			return
		}
		code, first := post(t, path, body)
		switch code {
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if first.Error == "" {
				t.Fatalf("POST %s %q: %d without an error", path, body, code)
			}
			return
		case http.StatusOK, http.StatusUnprocessableEntity:
		default:
			t.Fatalf("POST %s %q: status %d: %+v", path, body, code, first)
		}
		if len(first.Entries) == 0 || (code == http.StatusUnprocessableEntity) != (first.Error != "") {
			t.Fatalf("POST %s %q: %d %+v", path, body, code, first)
		}
		for _, v := range first.Entries {
			if !intakeVerdicts[v.Verdict] {
				t.Fatalf("POST %s %q: verdict %q", path, body, v.Verdict)
			}
		}
		code2, again := post(t, path, body)
		if code2 != code || len(again.Entries) != len(first.Entries) {
			t.Fatalf("POST %s %q: first %d %+v, resent %d %+v", path, body, code, first, code2, again)
		}
		for i, v := range again.Entries {
			was := first.Entries[i].Verdict
			if (v.Verdict != was && v.Verdict != VerdictDuplicate) || (was == VerdictAccepted && v.Verdict != VerdictDuplicate) {
				t.Fatalf("POST %s %q: entry %d was %q, resent %q (%s)", path, body, i, was, v.Verdict, v.Reason)
			}
		}
	})
}

// signedLinkText is the text a wallet signs to link an account, a
// creditor reference or a virtual account, as docs/bridge.md gives it.
func signedLinkText(field string, bank common.Address, id string, wallet common.Address) string {
	head, line := "Tally account link", "account"
	switch field {
	case "reference":
		head, line = "Tally creditor reference", "reference"
	case "virtualAccount":
		head = "Tally virtual account"
	}
	return head + "\nbank: " + bank.Hex() + "\n" + line + ": " + id + "\nwallet: " + wallet.Hex()
}

// checkLink posts a link request: it is refused (400 with an error), or
// linked (200), and then the request names exactly one of account,
// reference and virtualAccount, and its signature, recovered over the
// documented text, is the wallet's; the answer names that wallet (EIP-55
// checksummed, however the request spelt it) and id.
func checkLink(t *testing.T, h http.Handler, secret []byte, now time.Time, bank common.Address, body []byte) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, PathLinks, bytes.NewReader(body))
	req.Header.Set(SignatureHeader, Sign(secret, body, now))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var ans struct {
		Error   string `json:"error"`
		Account string `json:"account"`
		Wallet  string `json:"wallet"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &ans); err != nil {
		t.Fatalf("POST %s %q: %d, body not JSON: %v", PathLinks, body, rec.Code, err)
	}
	switch rec.Code {
	case http.StatusBadRequest:
		if ans.Error == "" {
			t.Fatalf("POST %s %q: 400 without an error", PathLinks, body)
		}
		return
	case http.StatusOK:
	default:
		t.Fatalf("POST %s %q: status %d %s", PathLinks, body, rec.Code, rec.Body)
	}
	var lr map[string]string
	if err := json.Unmarshal(body, &lr); err != nil {
		t.Fatalf("linked from a body that is not a JSON object of strings: %q", body)
	}
	var field, id string
	for _, k := range []string{"account", "reference", "virtualAccount"} {
		if lr[k] != "" {
			if field != "" {
				t.Fatalf("linked a request naming both %s and %s: %q", field, k, body)
			}
			field, id = k, lr[k]
		}
	}
	sig, err := hexutil.Decode(lr["signature"])
	if err != nil || len(sig) != 65 || field == "" {
		t.Fatalf("linked without a 65-byte signature or an id: %q", body)
	}
	if sig[64] >= 27 {
		sig[64] -= 27
	}
	wallet := common.HexToAddress(lr["wallet"])
	pub, err := ethcrypto.SigToPub(accounts.TextHash([]byte(signedLinkText(field, bank, id, wallet))), sig)
	if err != nil || ethcrypto.PubkeyToAddress(*pub) != wallet {
		t.Fatalf("linked %s %q to %s, whose signature over the documented text it is not (%v): %q", field, id, wallet, err, body)
	}
	if ans.Wallet != wallet.Hex() || ans.Account != id {
		t.Fatalf("linked %s %q to %s, answered %s %q (the wallet EIP-55 checksummed, as the signed text has it)", field, id, wallet.Hex(), ans.Wallet, ans.Account)
	}
}
