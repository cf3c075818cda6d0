package bridge

import (
	"errors"
	"math/big"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"
)

func TestVerifySignature(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	body := []byte(`{"msgId":"M1"}`)
	now := time.Unix(1_800_000_000, 0)
	skew := 5 * time.Minute
	good := Sign(secret, body, now.Add(-time.Minute))
	if err := Verify(secret, body, good, now, skew); err != nil {
		t.Fatalf("good signature refused: %v", err)
	}
	// A rotating core sends two MACs; one matching is enough.
	other := Sign([]byte("another secret, not this one...."), body, now)
	_, otherMAC, _ := strings.Cut(other, ",")
	if err := Verify(secret, body, good+","+otherMAC, now, skew); err != nil {
		t.Fatalf("two v1 values, one good, refused: %v", err)
	}
	for _, c := range []struct {
		name, header string
		body         []byte
		kind         string
	}{
		{"missing", "", body, RefusedBadSignature},
		{"wrong secret", Sign([]byte("wrong secret wrong secret wrong!!"), body, now), body, RefusedBadSignature},
		{"body changed", good, []byte(`{"msgId":"M2"}`), RefusedBadSignature},
		{"stale", Sign(secret, body, now.Add(-6*time.Minute)), body, RefusedStaleTimestamp},
		{"future", Sign(secret, body, now.Add(6*time.Minute)), body, RefusedStaleTimestamp},
		{"no t", "v1=" + strings.Repeat("00", 32), body, RefusedBadSignature},
		{"short mac", "t=1,v1=abcd", body, RefusedBadSignature},
		{"garbage", "hello", body, RefusedBadSignature},
	} {
		err := Verify(secret, c.body, c.header, now, skew)
		var ae *AuthError
		if !errors.As(err, &ae) || ae.Kind != c.kind {
			t.Errorf("%s: error %v, want kind %s", c.name, err, c.kind)
		}
	}
}

func TestIdentifiers(t *testing.T) {
	bank := common.HexToAddress("0x9586A4833970847aef259aD5BFB7aa8901DDf746")
	a, b := BankRef(bank, "HKD", "REF-1"), BankRef(bank, "HKD", "REF-1")
	if a != b {
		t.Fatal("BankRef is not deterministic")
	}
	if BankRef(bank, "HKD", "REF-2") == a || BankRef(bank, "CNY", "REF-1") == a || BankRef(common.Address{1}, "HKD", "REF-1") == a {
		t.Fatal("BankRef does not separate references, assets or banks")
	}
	id := PayoutEndToEndID(1337, "HKD", 42)
	if id != "TALLY-1337-HKD-W42" {
		t.Fatalf("PayoutEndToEndID = %s", id)
	}
	if got, ok := parsePayoutEndToEndID(1337, "HKD", id); !ok || got != 42 {
		t.Fatalf("parse %s = %d, %v", id, got, ok)
	}
	ids := PayoutIDs(common.Address{1}, 1337, "HKD", 42)
	if ids.MsgID != "TALLY-1337-HKD-M42" || ids.PmtInfID != "TALLY-1337-HKD-P42" || ids.InstrID != "TALLY-1337-HKD-I42" || ids.EndToEndID != id {
		t.Fatalf("PayoutIDs = %+v", ids)
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(ids.UETR) {
		t.Fatalf("UETR %s is not a UUIDv4", ids.UETR)
	}
	if again := PayoutIDs(common.Address{1}, 1337, "HKD", 42); again != ids {
		t.Fatal("PayoutIDs is not stable")
	}
	if PayoutIDs(common.Address{2}, 1337, "HKD", 42).UETR == ids.UETR || PayoutIDs(common.Address{1}, 1337, "HKD", 43).UETR == ids.UETR {
		t.Fatal("two payouts share a UETR")
	}
	for _, ref := range []string{ids.MsgID, ids.PmtInfID, ids.InstrID, ids.EndToEndID} {
		if got, _, ok := parsePayoutRef(1337, "HKD", ref); !ok || got != 42 {
			t.Errorf("parsePayoutRef(%s) = %d, %v", ref, got, ok)
		}
	}
	if _, ok := parsePayoutEndToEndID(1337, "HKD", ids.MsgID); ok {
		t.Error("a MsgId parsed as an EndToEndId")
	}
	for _, bad := range []string{"TALLY-1337-HKD-W", "TALLY-1337-CNY-W42", "TALLY-1-HKD-W42", "TALLY-1337-HKD-W042", "TALLY-1337-HKD-W4x", "TALLY-1337-HKD-X42", "TALLY-1337-HKD-W+42", "x"} {
		if _, ok := parsePayoutEndToEndID(1337, "HKD", bad); ok {
			t.Errorf("parsePayoutEndToEndID accepted %q", bad)
		}
	}
	long := strings.Repeat("é", 200)
	if r := refundReason(&Payout{EndToEndID: "TALLY-1-HKD-W1", Reason: long}); len(r) > maxReasonLen || !strings.HasPrefix(r, "payout TALLY-1-HKD-W1 rejected") {
		t.Errorf("refund reason of %d bytes: %q", len(r), r)
	}
}

func TestStorePersistsAndCounts(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	ref1, ref2 := common.Hash{1}, common.Hash{2}
	d1 := &Deposit{BankRef: ref1, Ref: "R1", Account: "A", Amount: "1.00", Units: big.NewInt(100), Currency: "HKD", Status: DepositAccepted}
	d2 := &Deposit{BankRef: ref2, Ref: "R2", Account: "A", Amount: "x", Currency: "HKD", Status: DepositHeld, Reason: "bad"}
	dup := &Deposit{BankRef: ref1, Ref: "R1", Account: "A", Amount: "1.0", Units: big.NewInt(100), Currency: "HKD", Status: DepositAccepted}
	res, err := s.AddDeposits([]*Deposit{d1, d2, dup})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Duplicate || res[1].Duplicate || !res[2].Duplicate || !res[2].Deposit.sameEntry(dup) {
		t.Fatalf("results %+v", res)
	}
	if d1.Seq != 1 || d2.Seq != 2 {
		t.Fatalf("sequence numbers %d, %d", d1.Seq, d2.Seq)
	}
	q, _ := s.QueuedDeposits(DepositAccepted, 10)
	if len(q) != 1 || q[0].BankRef != ref1 {
		t.Fatalf("queued accepted %v", q)
	}
	d1.Status = DepositSubmitted
	d1.Tx = &SignedTx{Hash: common.Hash{9}, Nonce: 7}
	if err := s.UpdateDeposit(d1); err != nil {
		t.Fatal(err)
	}
	if q, _ := s.QueuedDeposits(DepositAccepted, 10); len(q) != 0 {
		t.Fatalf("accepted queue still holds %d after submit", len(q))
	}
	// Payouts and the cursor move together.
	p := &Payout{ID: 5, Holder: common.Address{5}, Amount: big.NewInt(1234), Account: "A", EndToEndID: "TALLY-1-HKD-W5", Status: PayoutNew}
	if n, err := s.AddPayouts([]*Payout{p, p}, 11); err != nil || n != 1 {
		t.Fatalf("AddPayouts = %d, %v", n, err)
	}
	if n, err := s.AddPayouts([]*Payout{p}, 12); err != nil || n != 0 {
		t.Fatalf("AddPayouts of a recorded id = %d, %v", n, err)
	}
	for i := 0; i < 5; i++ {
		if err := s.AddRefusals(&Refusal{Kind: RefusedMalformed, Message: "m"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutLink(&Link{Account: "A", Wallet: common.Address{7}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutLink(&Link{Account: "A", Wallet: common.Address{8}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = OpenStore(dir, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Deposit(ref1)
	if err != nil || got.Status != DepositSubmitted || got.Tx == nil || got.Tx.Nonce != 7 || got.Units.Int64() != 100 {
		t.Fatalf("deposit after reopen: %+v, %v", got, err)
	}
	if q, _ := s.QueuedDeposits(DepositSubmitted, 10); len(q) != 1 {
		t.Fatalf("submitted queue after reopen: %d", len(q))
	}
	c := s.Counts()
	if c.Deposits[DepositSubmitted] != 1 || c.Deposits[DepositHeld] != 1 || c.Deposits[DepositAccepted] != 0 ||
		c.Payouts[PayoutNew] != 1 || c.Links != 1 || c.Refusals != 5 {
		t.Fatalf("counts after reopen %+v", c)
	}
	if next, set, err := s.Cursor(); err != nil || !set || next != 12 {
		t.Fatalf("cursor %d %v %v", next, set, err)
	}
	rs, _ := s.Refusals(100)
	if len(rs) != 3 || rs[0].Seq != 5 || rs[2].Seq != 3 {
		t.Fatalf("refusals kept %d (newest %v), want the last 3", len(rs), rs)
	}
	if l, _ := s.LinksOf(common.Address{7}); len(l) != 0 {
		t.Fatalf("relinked account still listed under the old wallet: %v", l)
	}
	if l, _ := s.LinksOf(common.Address{8}); len(l) != 1 || l[0] != "A" {
		t.Fatalf("links of the new wallet: %v", l)
	}
	if _, err := s.ModifyPayout(5, func(p *Payout) (bool, error) { p.Status = PayoutClosed; return true, nil }); err != nil {
		t.Fatal(err)
	}
	if q, _ := s.QueuedPayouts(PayoutNew, 10); len(q) != 0 {
		t.Fatalf("closed payout still queued")
	}
	if c := s.Counts(); c.Payouts[PayoutNew] != 0 || c.Payouts[PayoutClosed] != 1 {
		t.Fatalf("payout counts %+v", c.Payouts)
	}
}

func TestParseJSONForms(t *testing.T) {
	n, err := parseJSONNotification([]byte(`{"msgId":"M","entries":[{"ref":"R","account":"A","amount":"1.5","currency":"HKD","credit":true}]}`))
	if err != nil || len(n.Entries) != 1 || !n.Entries[0].Credit || !n.Entries[0].Booked || n.Entries[0].Amount != "1.5" {
		t.Fatalf("%+v %v", n, err)
	}
	for _, bad := range []string{
		`{"msgId":"M","entries":[{"ref":"R","account":"A","amount":"1.5","currency":"HKD","credit":true,"amout":1}]}`,
		`{"msgId":"M","entries":[{"ref":"R","account":"A","currency":"HKD","credit":true}]}`,
		`{"msgId":"M","entries":[{"ref":"R","account":"A","amount":"1","currency":"HKD"}]}`,
		`{"msgId":"M"} {}`,
		`{"msgId":`,
	} {
		if _, err := parseJSONNotification([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

// TestStoreFormat: a store written by a format-1 bridge (deposits keyed
// by entry reference) is refused at open with ErrStoreFormat, naming what
// to do; a new store is written as format 2 and opens again.
func TestStoreFormat(t *testing.T) {
	dir := t.TempDir()
	db, err := pebble.Open(dir, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set(keyChainInfo, []byte(`{"chainId":1337}`), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := OpenStore(dir, 10, nil); !errors.Is(err, ErrStoreFormat) || !strings.Contains(err.Error(), "new datadir") {
		t.Fatalf("a format-1 store opened: %v", err)
	}
	fresh := t.TempDir()
	for range 2 {
		s, err := OpenStore(fresh, 10, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetChainInfo(&ChainInfo{ChainID: 1337}); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
}
