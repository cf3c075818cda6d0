package bridge

import (
	"bytes"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/bankcore"
	"github.com/tally-ledger/tally/bridge/iso20022"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/wallet"
)

// TestReconcileWithSimulator runs the whole money loop on a dev node —
// bank core simulator → bridge → chain and back — then reconciles the
// simulator's camt.053 with the chain: clean first, then with each kind of
// break injected into the statement.
func TestReconcileWithSimulator(t *testing.T) {
	e := newTestEnv(t)
	sim, simCfg, cfg := e.startSim(t, func(c *bankcore.Config) {
		c.StatusDelay = bankcore.Duration(50 * time.Millisecond)
		c.Reject = bankcore.RejectRule{Accounts: []string{"REC-REJECT"}, Reason: "AC04 account closed"}
	})
	b := e.open(t, cfg, nil)
	sim.SetBridgeURL("http://" + b.Addr())

	// Withdrawing takes a KYC-verified holder: dev accounts are.
	wa, wb, wr := devKey(t, 5), freshKey(t), devKey(t, 6)
	aBefore, rBefore := e.balance(t, wa.Address()), e.balance(t, wr.Address())
	e.link(t, b, wa, "REC-A")
	e.link(t, b, wb, "REC-B")
	e.link(t, b, wr, "REC-REJECT")

	// Deposits in: three notifications, one of them delivered twice.
	if _, err := sim.SetFaults([]byte(`{"duplicate": 1}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Deposit([]byte(`{"deposits": [
		{"account": "REC-A", "amount": "100.00", "reference": "REC-DEP-1"},
		{"account": "REC-B", "amount": "50.25", "reference": "REC-DEP-2"},
		{"account": "REC-REJECT", "amount": "20.00", "reference": "REC-DEP-3"}]}`)); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"REC-DEP-1", "REC-DEP-2", "REC-DEP-3"} {
		waitFor(t, "deposit "+ref+" minted", func() bool {
			ds, err := b.Store().DepositsByRef(simCfg.OmnibusAccount, ref, 2)
			return err == nil && len(ds) == 1 && ds[0].Status == DepositMinted
		})
	}
	if got := e.balance(t, wa.Address()); new(big.Int).Sub(got, aBefore).Cmp(hkd(t, "100.00")) != 0 {
		t.Fatalf("REC-A's wallet holds %v, had %v: want 10000 more", got, aBefore)
	}

	// Withdrawals out: one paid and settled, one rejected and refunded.
	paid := e.withdraw(t, wa, "30.00", [32]byte{})
	rejected := e.withdraw(t, wr, "10.00", [32]byte{})
	if p := waitPayout(t, b, paid, PayoutClosed); p.Closed != "settled" || e.withdrawalStatus(t, paid) != withdrawalSettled {
		t.Fatalf("paid payout %+v", p)
	}
	if p := waitPayout(t, b, rejected, PayoutClosed); p.Closed != "refunded" || e.withdrawalStatus(t, rejected) != withdrawalRefunded {
		t.Fatalf("rejected payout %+v", p)
	}
	if got := e.balance(t, wr.Address()); new(big.Int).Sub(got, rBefore).Cmp(hkd(t, "20.00")) != 0 {
		t.Fatalf("the refunded wallet holds %v, had %v: want 2000 more", got, rBefore)
	}
	l := sim.Ledger()
	if l.Balances[simCfg.OmnibusAccount] != "140.25" || l.Balances["REC-A"] != "-70.00" {
		t.Fatalf("simulator balances %v", l.Balances)
	}

	stmt, err := sim.Statement()
	if err != nil {
		t.Fatal(err)
	}
	r, err := Reconcile(e.ctx, cfg, stmt, ReconcileOptions{Bank: e.bank.Address()})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Clean() || r.Credits != 3 || r.Debits != 1 || r.Mints != 3 || r.Settlements != 1 || r.StatementNet != "140.25" || r.ChainNet != "140.25" {
		var buf bytes.Buffer
		r.WriteText(&buf)
		t.Fatalf("clean reconciliation:\n%s", buf.String())
	}

	// Breaks, each injected into a copy of the statement.
	e2e := PayoutEndToEndID(genesis.DevChainID, "HKD", paid)
	for _, c := range []struct {
		name   string
		edit   func(a *iso20022.AccountStatement)
		want   string
		wantID string // a reference the break must carry
	}{
		{"credit the bridge never saw", func(a *iso20022.AccountStatement) {
			g := a.Entries[0]
			g.Ref, g.Amount = "REC-GHOST", "5.00"
			g.Details = []iso20022.TxDetail{{AcctSvcrRef: "REC-GHOST", EndToEndID: "NOTPROVIDED"}}
			a.Entries = append(a.Entries, g)
		}, BreakDepositNotMinted, "REC-GHOST"},
		{"tampered amount", func(a *iso20022.AccountStatement) {
			a.Entries[0].Amount = "100.01"
		}, BreakAmountMismatch, "REC-DEP-1"},
		{"removed debit", func(a *iso20022.AccountStatement) {
			a.Entries = a.Entries[:3]
		}, BreakSettlementWithoutPayout, e2e},
		{"removed credit", func(a *iso20022.AccountStatement) {
			a.Entries = a.Entries[1:]
		}, BreakMintWithoutDeposit, ""},
		{"debit of no payout", func(a *iso20022.AccountStatement) {
			d := a.Entries[3]
			d.Details = []iso20022.TxDetail{{EndToEndID: "SOMETHING-ELSE"}}
			a.Entries = append(a.Entries, d)
		}, BreakPayoutNotSettled, "SOMETHING-ELSE"},
		{"closing balance off", func(a *iso20022.AccountStatement) {
			for i := range a.Balances {
				if a.Balances[i].Type == iso20022.BalanceClosingBooked {
					a.Balances[i].Amount = "999.00"
				}
			}
		}, BreakTotalMismatch, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, text := e.reconcileEdited(t, cfg, stmt, c.edit)
			found := false
			for _, br := range r.Breaks {
				if br.Kind == c.want && (c.wantID == "" || br.Ref == c.wantID || br.EndToEndID == c.wantID) {
					found = true
				}
			}
			if !found {
				t.Fatalf("no %s break (ref %q) listed:\n%s", c.want, c.wantID, text.String())
			}
			t.Logf("\n%s", text.String())
		})
	}

	// Returns and reversals: a settled payout comes back (a camt.054
	// credit with RtrInf) and is returned on chain; a minted deposit is
	// reversed (a debit with RvslInd) and its mint reversed on chain. The
	// statement, which books both, reconciles clean.
	if _, err := sim.Return([]byte(`{"endToEndId": "` + e2e + `", "reason": "AC04 account closed", "form": "camt054"}`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the returned payout closed", func() bool {
		p, err := b.Store().Payout(paid)
		return err == nil && p.Closed == "returned"
	})
	if st := e.withdrawalStatus(t, paid); st != withdrawalReturned {
		t.Fatalf("returned withdrawal %d has status %d on chain", paid, st)
	}
	if _, err := sim.Deposit([]byte(`{"account": "REC-A", "amount": "8.00", "reference": "REC-DEP-4"}`)); err != nil {
		t.Fatal(err)
	}
	waitDeposit(t, b, "REC-DEP-4", DepositMinted)
	// The bridge dies with the reverseMint recorded but not yet sent;
	// restarted, it reverses the mint exactly once.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = e.open(t, cfg, func(b *Bridge) { b.hooks.crash = func(p string) bool { return p == crashAfterReverseRecorded } })
	sim.SetBridgeURL("http://" + b.Addr())
	aBefore = e.balance(t, wa.Address())
	if _, err := sim.Reverse([]byte(`{"reference": "REC-DEP-4"}`)); err != nil {
		t.Fatal(err)
	}
	var recorded *Deposit
	waitFor(t, "the reverseMint recorded", func() bool {
		recorded = findDeposit(t, b, "REC-DEP-4")
		return recorded != nil && recorded.Status == DepositReversing && recorded.ReverseTx != nil
	})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(e.logs(t, "MintReversed", recorded.BankRef)); n != 0 {
		t.Fatalf("%d MintReversed logs before the recorded reverseMint was sent", n)
	}
	b = e.open(t, cfg, nil)
	sim.SetBridgeURL("http://" + b.Addr())
	rd := waitDeposit(t, b, "REC-DEP-4", DepositReversed)
	time.Sleep(100 * time.Millisecond) // give a second reversal every chance
	if n := len(e.logs(t, "MintReversed", rd.BankRef)); n != 1 {
		t.Fatalf("%d MintReversed logs after the restart, want 1", n)
	}
	if got := e.balance(t, wa.Address()); new(big.Int).Sub(aBefore, got).Cmp(hkd(t, "8.00")) != 0 {
		t.Fatalf("REC-A's wallet holds %v, had %v: want 800 less", got, aBefore)
	}
	// A second payout, settled and not returned, for a return credit the
	// chain never saw.
	paid2 := e.withdraw(t, wa, "5.00", [32]byte{})
	if p := waitPayout(t, b, paid2, PayoutClosed); p.Closed != "settled" {
		t.Fatalf("second paid payout %+v", p)
	}
	stmt2, err := sim.Statement()
	if err != nil {
		t.Fatal(err)
	}
	r2, err := Reconcile(e.ctx, cfg, stmt2, ReconcileOptions{Bank: e.bank.Address()})
	if err != nil {
		t.Fatal(err)
	}
	// In: 140.25 + 30.00 back + 8.00 − 8.00 − 5.00 = 165.25.
	if !r2.Clean() || r2.Returns != 1 || r2.Reversals != 1 || r2.StatementNet != "165.25" || r2.ChainNet != "165.25" {
		var buf bytes.Buffer
		r2.WriteText(&buf)
		t.Fatalf("clean reconciliation after a return and a reversal:\n%s", buf.String())
	}
	e2e2 := PayoutEndToEndID(genesis.DevChainID, "HKD", paid2)
	entryOf := func(a *iso20022.AccountStatement, match func(iso20022.Entry) bool) int {
		for i, en := range a.Entries {
			if match(en) {
				return i
			}
		}
		t.Fatal("no such entry in the statement")
		return -1
	}
	isReturn := func(en iso20022.Entry) bool { return len(en.Details) == 1 && en.Details[0].Return != nil }
	isReversal := func(en iso20022.Entry) bool { return en.Reversal && !en.Credit }
	rdRef := rd.BankRef.Hex()
	for _, c := range []struct {
		name   string
		edit   func(a *iso20022.AccountStatement)
		want   string
		wantID string
	}{
		{"return credit missing", func(a *iso20022.AccountStatement) {
			i := entryOf(a, isReturn)
			a.Entries = append(a.Entries[:i], a.Entries[i+1:]...)
		}, BreakReturnWithoutCredit, e2e},
		{"return not on chain", func(a *iso20022.AccountStatement) {
			g := a.Entries[entryOf(a, isReturn)]
			g.Ref, g.Amount = "REC-RTN-GHOST", "5.00"
			d := g.Details[0]
			d.EndToEndID, d.AcctSvcrRef = e2e2, "REC-RTN-GHOST"
			g.Details = []iso20022.TxDetail{d}
			a.Entries = append(a.Entries, g)
		}, BreakReturnNotOnChain, e2e2},
		{"reversal debit missing", func(a *iso20022.AccountStatement) {
			i := entryOf(a, isReversal)
			a.Entries = append(a.Entries[:i], a.Entries[i+1:]...)
		}, BreakReversalWithoutDebit, rdRef},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, text := e.reconcileEdited(t, cfg, stmt2, c.edit)
			if !hasBreak(r, c.want, c.wantID) {
				t.Fatalf("no %s break (ref %q) listed:\n%s", c.want, c.wantID, text.String())
			}
			t.Logf("\n%s", text.String())
		})
	}

	// A reversal the chain refuses (the wallet spent the money): the
	// deposit stays reversing, and reconciliation names it as an unhandled
	// reversal, the difference it makes explained, not a total mismatch.
	spender := devKey(t, 7)
	e.link(t, b, spender, "REC-C")
	if _, err := sim.Deposit([]byte(`{"account": "REC-C", "amount": "3.00", "reference": "REC-DEP-5"}`)); err != nil {
		t.Fatal(err)
	}
	md := waitDeposit(t, b, "REC-DEP-5", DepositMinted)
	spend, err := wallet.AssetOp(hkdID, "transfer", wa.Address(), e.balance(t, spender.Address()))
	if err != nil {
		t.Fatal(err)
	}
	e.send(t, spender, spend)
	if _, err := sim.Reverse([]byte(`{"reference": "REC-DEP-5"}`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the refused reversal raised", func() bool {
		d := findDeposit(t, b, "REC-DEP-5")
		return d != nil && d.Status == DepositReversing && strings.Contains(d.Reason, "less than")
	})
	stmt3, err := sim.Statement()
	if err != nil {
		t.Fatal(err)
	}
	r3, err := Reconcile(e.ctx, cfg, stmt3, ReconcileOptions{Bank: e.bank.Address()})
	if err != nil {
		t.Fatal(err)
	}
	var text3 bytes.Buffer
	r3.WriteText(&text3)
	if len(r3.Breaks) != 1 || !hasBreak(r3, BreakReversalUnhandled, "REC-DEP-5") || *r3.Breaks[0].BankRef != md.BankRef ||
		!strings.Contains(text3.String(), md.BankRef.Hex()) {
		t.Fatalf("a refused reversal, want one %s break naming REC-DEP-5 (%s):\n%s", BreakReversalUnhandled, md.BankRef.Hex(), text3.String())
	}
	t.Logf("\n%s", text3.String())

	// A statement that cannot be read is a *StatementError, before any
	// node is asked.
	for _, bad := range [][]byte{[]byte("<Document"), bytes.ReplaceAll(stmt, []byte("camt.053.001.08"), []byte("camt.053.001.02"))} {
		if _, err := Reconcile(e.ctx, cfg, bad, ReconcileOptions{Bank: e.bank.Address()}); !IsStatementError(err) {
			t.Fatalf("unreadable statement: %v, want a StatementError", err)
		}
	}

	// The chain's net equals what supply says this bank (the only issuer
	// minting on this node) did.
	minted, burned := e.supply(t)
	if net := new(big.Int).Sub(minted, burned); net.Cmp(hkd(t, r.ChainNet)) < 0 {
		t.Fatalf("supply net %v below the bank's %s", net, r.ChainNet)
	}
}

// reconcileEdited reconciles statement with its first account changed by
// edit, and returns the report and its text.
func (e *testEnv) reconcileEdited(t *testing.T, cfg Config, statement []byte, edit func(*iso20022.AccountStatement)) (*ReconcileReport, *bytes.Buffer) {
	t.Helper()
	st, err := iso20022.ParseCamt053(bytes.NewReader(statement))
	if err != nil {
		t.Fatal(err)
	}
	edit(&st.Accounts[0])
	var buf bytes.Buffer
	if err := iso20022.WriteCamt053(&buf, st); err != nil {
		t.Fatal(err)
	}
	r, err := Reconcile(e.ctx, cfg, buf.Bytes(), ReconcileOptions{Bank: e.bank.Address()})
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	r.WriteText(&text)
	return r, &text
}

// hasBreak reports whether r lists a break of kind whose reference
// (entry, EndToEndId or bankRef) is id, or of kind at all when id is "".
func hasBreak(r *ReconcileReport, kind, id string) bool {
	for _, br := range r.Breaks {
		if br.Kind != kind {
			continue
		}
		if id == "" || br.Ref == id || br.EndToEndID == id || br.BankRef != nil && br.BankRef.Hex() == id {
			return true
		}
	}
	return false
}

// TestComparePayoutsThatCameBack: a payout the bank debited and got back
// (a return with RtrInf, or the reversal of its debit with RvslInd) is
// matched with the chain however the bridge closed it: settled and
// returned, or refunded because it came back before the chain settled it.
// Without either on chain each side is a break, and the totals are
// explained by them.
func TestComparePayoutsThatCameBack(t *testing.T) {
	info := ChainInfo{ChainID: genesis.DevChainID, Symbol: "HKD", Decimals: 2, Bank: common.HexToAddress("0x9586A4833970847aef259aD5BFB7aa8901DDf746")}
	e2e := PayoutEndToEndID(genesis.DevChainID, "HKD", 7)
	debit := iso20022.Entry{Ref: "D-1", Amount: "12.00", Currency: "HKD", Status: iso20022.EntryBooked,
		Details: []iso20022.TxDetail{{EndToEndID: e2e, AcctSvcrRef: "D-1"}}}
	back := func(ret bool) iso20022.Entry {
		e := iso20022.Entry{Ref: "B-1", Amount: "12.00", Currency: "HKD", Credit: true, Status: iso20022.EntryBooked,
			Details: []iso20022.TxDetail{{EndToEndID: e2e, AcctSvcrRef: "B-1"}}}
		if ret {
			e.Details[0].Return = &iso20022.ReturnInfo{Reason: "AC04"}
		} else {
			e.Reversal = true
		}
		return e
	}
	w := SettlementLog{ID: 7, Amount: big.NewInt(1200)}
	for _, c := range []struct {
		name  string
		ret   bool
		facts ChainFacts
		want  []string
	}{
		{"return, settled and returned", true, ChainFacts{Settlements: []SettlementLog{w}, Returns: []SettlementLog{w}}, nil},
		{"reversed debit, settled and returned", false, ChainFacts{Settlements: []SettlementLog{w}, Returns: []SettlementLog{w}}, nil},
		{"return, refunded", true, ChainFacts{Refunds: []SettlementLog{w}}, nil},
		{"reversed debit, refunded", false, ChainFacts{Refunds: []SettlementLog{w}}, nil},
		{"return, settled only", true, ChainFacts{Settlements: []SettlementLog{w}}, []string{BreakReturnNotOnChain}},
		{"return, nothing on chain", true, ChainFacts{}, []string{BreakPayoutNotSettled, BreakReturnNotOnChain}},
	} {
		t.Run(c.name, func(t *testing.T) {
			acct := &iso20022.AccountStatement{Account: iso20022.Account{Other: "SIM-OMNIBUS-0001"}, Entries: []iso20022.Entry{debit, back(c.ret)}}
			r := CompareStatement("M-1", acct, info, &c.facts)
			var got []string
			for _, b := range r.Breaks {
				got = append(got, b.Kind)
			}
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				var buf bytes.Buffer
				r.WriteText(&buf)
				t.Fatalf("breaks %v, want %v:\n%s", got, c.want, buf.String())
			}
		})
	}
}
