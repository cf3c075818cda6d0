package bridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/accounts"
	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/bridge/iso20022"
	"github.com/tally-ledger/tally/crypto"
)

// register links an account, a creditor reference or a virtual account
// (kind) to key's wallet through POST /v1/links.
func (u *unitBridge) register(t *testing.T, kind, id string, key *crypto.PrivateKey) (int, Response) {
	t.Helper()
	sig, err := key.Sign(common.BytesToHash(accounts.TextHash([]byte(RouteMessage(kind, u.bank, id, key.Address())))))
	if err != nil {
		t.Fatal(err)
	}
	req := LinkRequest{Wallet: key.Address().Hex(), Signature: fmt.Sprintf("0x%x", sig)}
	switch kind {
	case RouteAccount:
		req.Account = id
	case RouteCreditorReference:
		req.Reference = id
	case RouteVirtualAccount:
		req.VirtualAccount = id
	}
	body, _ := json.Marshal(req)
	return u.post(t, PathLinks, body)
}

// credit is a booked camt.054 credit on the omnibus account.
func creditEntry(ref, debtor, amount, creditorRef, creditedAccount string) iso20022.Entry {
	d := iso20022.TxDetail{AcctSvcrRef: ref, EndToEndID: "NOTPROVIDED", Debtor: iso20022.Party{Account: iso20022.Account{Other: debtor}}, CreditorRef: creditorRef}
	if creditedAccount != "" {
		d.Creditor = iso20022.Party{Account: iso20022.Account{Other: creditedAccount}}
	}
	return iso20022.Entry{Amount: amount, Currency: "HKD", Credit: true, Status: iso20022.EntryBooked, BookingDate: "2026-12-02",
		BankTxCode: iso20022.BankTxCode{Domain: "PMNT", Family: "RCDT", SubFamily: "DMCT"}, Details: []iso20022.TxDetail{d}}
}

// TestDepositIdentity: a key reused with other content is refused as a
// conflict naming what differs, never acknowledged as a duplicate; the
// same credit again is a duplicate; the same reference on another booking
// day is another deposit; a batch entry is one deposit per transaction.
func TestDepositIdentity(t *testing.T) {
	u := newUnitBridge(t)
	w := freshKey(t)
	if code, resp := u.register(t, RouteAccount, "HK-001", w); code != http.StatusOK {
		t.Fatalf("link: %d %+v", code, resp)
	}
	first := camt054(t, "N-1", creditEntry("TX-1", "HK-001", "10.00", "", ""))
	if _, resp := u.post(t, PathNotifications, first); resp.Entries[0].Verdict != VerdictAccepted {
		t.Fatalf("first: %+v", resp)
	}
	if _, resp := u.post(t, PathNotifications, first); resp.Entries[0].Verdict != VerdictDuplicate {
		t.Fatalf("the same credit again: %+v", resp)
	}
	code, resp := u.post(t, PathNotifications, camt054(t, "N-2", creditEntry("TX-1", "HK-001", "11.00", "", "")))
	if code != http.StatusUnprocessableEntity || resp.Entries[0].Verdict != VerdictConflict || !strings.Contains(resp.Entries[0].Reason, "amount 10.00 HKD, not 11.00 HKD") {
		t.Fatalf("the key with another amount: %d %+v", code, resp)
	}
	other := creditEntry("TX-1", "HK-001", "10.00", "", "")
	other.BookingDate = "2026-12-03"
	if _, resp := u.post(t, PathNotifications, camt054(t, "N-3", other)); resp.Entries[0].Verdict != VerdictAccepted {
		t.Fatalf("the reference on another day: %+v", resp)
	}
	batch := creditEntry("", "HK-001", "30.00", "", "")
	batch.Ref = "BATCH-1"
	batch.Details = []iso20022.TxDetail{
		{AcctSvcrRef: "TX-B1", Amount: "12.00", Currency: "HKD", Debtor: iso20022.Party{Account: iso20022.Account{Other: "HK-001"}}},
		{AcctSvcrRef: "TX-B2", Amount: "18.00", Currency: "HKD", Debtor: iso20022.Party{Account: iso20022.Account{Other: "HK-001"}}}}
	if _, resp := u.post(t, PathNotifications, camt054(t, "N-4", batch)); len(resp.Entries) != 2 || resp.Entries[0].Verdict != VerdictAccepted ||
		resp.Entries[1].Verdict != VerdictAccepted || resp.Entries[1].Ref != "TX-B2" {
		t.Fatalf("batch: %+v", resp)
	}
	batch.Details[1].Amount, batch.Details[1].Currency = "", ""
	batch.Ref = "BATCH-2"
	if _, resp := u.post(t, PathNotifications, camt054(t, "N-5", batch)); len(resp.Entries) != 1 || resp.Entries[0].Verdict != VerdictHeld ||
		!strings.Contains(resp.Entries[0].Reason, "cannot be split") {
		t.Fatalf("a batch without per-transaction amounts: %+v", resp)
	}
	if ds, _ := u.store.Deposits(100); len(ds) != 5 {
		t.Fatalf("%d deposits, want 5", len(ds))
	}
}

// TestRouting: deposits find their wallet by an RF creditor reference or a
// virtual account registered for it, as routing.by says; a reference
// with wrong check digits routes nothing; under routing.strict, ways that
// name different wallets hold the deposit.
func TestRouting(t *testing.T) {
	u := newUnitBridge(t)
	u.cfg.Routing = RoutingConfig{By: []string{RouteAccount, RouteCreditorReference, RouteVirtualAccount}, Strict: true}
	wa, wr, wv := freshKey(t), freshKey(t), freshKey(t)
	for _, r := range []struct {
		kind, id string
		key      *crypto.PrivateKey
	}{{RouteAccount, "HK-A", wa}, {RouteCreditorReference, "RF18539007547034", wr}, {RouteVirtualAccount, "VA-7788", wv}} {
		if code, resp := u.register(t, r.kind, r.id, r.key); code != http.StatusOK {
			t.Fatalf("register %s %s: %d %+v", r.kind, r.id, code, resp)
		}
	}
	if code, resp := u.register(t, RouteCreditorReference, "RF19539007547034", wr); code != http.StatusBadRequest || !strings.Contains(resp.Error, "check digits") {
		t.Fatalf("a reference with bad check digits registered: %d %+v", code, resp)
	}
	if code, _ := u.register(t, RouteAccount, "GB82WEST12345698765433", wa); code != http.StatusBadRequest {
		t.Fatal("an IBAN with bad check digits was linked")
	}
	for _, c := range []struct {
		name    string
		e       iso20022.Entry
		verdict string
		wallet  common.Address
		how     string
	}{
		{"by creditor reference", creditEntry("R-1", "HK-UNKNOWN", "1.00", "RF18539007547034", ""), VerdictAccepted, wr.Address(), RouteCreditorReference},
		{"by virtual account", creditEntry("R-2", "HK-UNKNOWN", "1.00", "", "VA-7788"), VerdictAccepted, wv.Address(), RouteVirtualAccount},
		{"mistyped reference", creditEntry("R-3", "HK-UNKNOWN", "1.00", "RF19539007547034", ""), VerdictHeld, common.Address{}, ""},
		{"ways disagree", creditEntry("R-4", "HK-A", "1.00", "RF18539007547034", ""), VerdictHeld, common.Address{}, ""},
		{"ways agree", creditEntry("R-5", "HK-A", "1.00", "", ""), VerdictAccepted, wa.Address(), RouteAccount},
	} {
		_, resp := u.post(t, PathNotifications, camt054(t, "RN-"+c.e.Details[0].AcctSvcrRef, c.e))
		if resp.Entries[0].Verdict != c.verdict {
			t.Fatalf("%s: %+v", c.name, resp)
		}
		d := findDeposit(t, u.Bridge, c.e.Details[0].AcctSvcrRef)
		if d.Wallet != c.wallet || d.RoutedBy != c.how {
			t.Fatalf("%s: deposit to %s by %q (%s)", c.name, d.Wallet, d.RoutedBy, d.Reason)
		}
	}
	// Not strict: the first way that names a wallet wins.
	u.cfg.Routing.Strict = false
	_, resp := u.post(t, PathNotifications, camt054(t, "RN-6", creditEntry("R-6", "HK-A", "1.00", "RF18539007547034", "")))
	if d := findDeposit(t, u.Bridge, "R-6"); resp.Entries[0].Verdict != VerdictAccepted || d.Wallet != wa.Address() {
		t.Fatalf("not strict: %+v, %+v", resp, d)
	}
}

// TestDepositReversal: the bank reverses credits in every state of their
// deposits. Not minted → reversed, and the outbox can no longer sign it;
// minted → reversing, raised; mint in flight → 503 (resend), and the mint
// landing makes it reversing; a reversal naming nothing → unknown, raised.
func TestDepositReversal(t *testing.T) {
	u := newUnitBridge(t)
	w := freshKey(t)
	u.register(t, RouteAccount, "HK-R", w)
	for i, ref := range []string{"RV-1", "RV-2", "RV-3"} {
		u.post(t, PathNotifications, camt054(t, fmt.Sprintf("RVN-%d", i), creditEntry(ref, "HK-R", "5.00", "", "")))
	}
	set := func(ref string, st DepositStatus) *Deposit {
		d := findDeposit(t, u.Bridge, ref)
		d.Status = st
		if err := u.store.UpdateDeposit(d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	set("RV-2", DepositMinted)
	inFlight := set("RV-3", DepositSubmitted)
	reversal := func(ref string) iso20022.Entry {
		e := creditEntry(ref, "HK-R", "5.00", "", "")
		e.Credit, e.Reversal, e.BookingDate = false, true, "2026-12-04"
		return e
	}
	code, resp := u.post(t, PathNotifications, camt054(t, "RVR-1", reversal("RV-1"), reversal("RV-2")))
	if code != http.StatusOK || resp.Entries[0].Verdict != VerdictReversed || resp.Entries[0].Status != string(DepositReversed) ||
		resp.Entries[1].Status != string(DepositReversing) {
		t.Fatalf("reversals: %d %+v", code, resp)
	}
	// The outbox's copy of RV-1 (accepted) cannot move it to submitted.
	d1 := findDeposit(t, u.Bridge, "RV-1")
	d1.Status = DepositSubmitted
	d1.Reversal = nil
	if err := u.store.UpdateDeposit(d1); !errors.Is(err, ErrReversed) {
		t.Fatalf("a reversed deposit was moved to submitted: %v", err)
	}
	if code, resp := u.post(t, PathNotifications, camt054(t, "RVR-2", reversal("RV-3"))); code != http.StatusServiceUnavailable || resp.Entries[0].Verdict != VerdictReversed {
		t.Fatalf("reversal of a deposit whose mint is in flight: %d %+v", code, resp)
	}
	inFlight.Status = DepositMinted
	if err := u.store.UpdateDeposit(inFlight); err != nil {
		t.Fatal(err)
	}
	if d := findDeposit(t, u.Bridge, "RV-3"); d.Status != DepositReversing {
		t.Fatalf("the mint landed after the reversal: %s", d.Status)
	}
	if code, resp := u.post(t, PathNotifications, camt054(t, "RVR-3", reversal("RV-404"))); code != http.StatusUnprocessableEntity || resp.Entries[0].Verdict != VerdictUnknown {
		t.Fatalf("reversal of nothing: %d %+v", code, resp)
	}
	// The minted ones wait for the reverser (their queue); the unmatched
	// reversal is raised at once.
	if q, _ := u.store.QueuedDeposits(DepositReversing, 10); len(q) != 2 {
		t.Fatalf("%d deposits queued for reverseMint, want 2 (RV-2, RV-3)", len(q))
	}
	rs, _ := u.store.Refusals(20)
	raised := 0
	for _, r := range rs {
		if r.Kind == RefusedUnhandledReversal {
			raised++
		}
	}
	if raised != 1 {
		t.Fatalf("%d reversals raised, want 1 (RV-404): %+v", raised, rs)
	}
}
