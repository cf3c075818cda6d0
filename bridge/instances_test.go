package bridge

import (
	"math/big"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/genesis"
)

// meeting holds every party that arrives until all of them have (or wait
// has passed), so two bridges can be made to sign with the same pending
// nonce: each has read it before either sends.
type meeting struct {
	wg     sync.WaitGroup
	done   chan struct{}
	wait   time.Duration
	signed atomic.Int32 // times any party reached its point
}

func newMeeting(parties int, wait time.Duration) *meeting {
	m := &meeting{done: make(chan struct{}), wait: wait}
	m.wg.Add(parties)
	go func() { m.wg.Wait(); close(m.done) }()
	return m
}

// hook returns a crash hook that joins the meeting the first time the
// bridge reaches point, and never crashes.
func (m *meeting) hook(point string) func(string) bool {
	var once sync.Once
	return func(p string) bool {
		if p == point {
			m.signed.Add(1)
			once.Do(func() {
				m.wg.Done()
				select {
				case <-m.done:
				case <-time.After(m.wait):
				}
			})
		}
		return false
	}
}

// met reports whether every party arrived.
func (m *meeting) met() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// TestTwoInstancesRaceOneClaim: two instances of one bank (one key, two
// stores, one core) follow one withdrawal and claim it at the same moment,
// signing with the same pending nonce. The chain records one instance's
// order id; only that instance sends the pain.001, the other closes its
// payout as claimed by another instance. The bank's ACSC then reaches the
// instance that did not order (one address in front of both): it settles
// the withdrawal, and the instance that ordered closes its payout from the
// chain's WithdrawalSettled log (before, it stayed ordered for ever).
func TestTwoInstancesRaceOneClaim(t *testing.T) {
	e := newTestEnv(t)
	m := newMeeting(2, 10*time.Second)
	open := func() *Bridge {
		return e.open(t, e.config(t), func(b *Bridge) { b.hooks.crash = m.hook(crashAfterClaimSigned) })
	}
	b1, b2 := open(), open()
	holder := devKey(t, 6)
	e.link(t, b1, holder, "HK-INST-6")
	e.link(t, b2, holder, "HK-INST-6")
	id := e.withdraw(t, holder, "3.21", [32]byte{})
	e2e := PayoutEndToEndID(genesis.DevChainID, "HKD", id)

	winner, loser := waitOneOrders(t, b1, b2, id)
	if !m.met() {
		t.Fatal("the two instances did not both sign a claim: the race this test is about did not happen")
	}
	time.Sleep(100 * time.Millisecond) // give a second order every chance
	if n := len(e.core.orders(e2e)); n != 1 {
		t.Fatalf("the core received %d orders for %s, want 1", n, e2e)
	}
	lp, err := loser.Store().Payout(id)
	if err != nil || lp.Closed != "claimed-by-instance" || lp.Orders != 0 {
		t.Fatalf("the other instance's payout: %+v, %v", lp, err)
	}
	wp, err := winner.Store().Payout(id)
	if err != nil || wp.ClaimOrder == nil {
		t.Fatalf("the winner's payout: %+v, %v", wp, err)
	}
	w, err := e.client.Withdrawal(e.ctx, hkdID, id)
	if err != nil || w.Bank != winner.Bank() || w.OrderID != *wp.ClaimOrder {
		t.Fatalf("withdrawal %d on chain: %+v, %v; want claimed with the winner's order id", id, w, err)
	}
	// The bank's core may report to either instance (one address in front
	// of both): the ACSC reaches the one that did not order; it settles
	// the withdrawal, as the bank's key, once, and the winner closes too.
	if code, resp := e.reportStatus(t, loser, "PS-INST-1", e2e, "ACSC", ""); code != http.StatusOK || resp.Entries[0].Verdict != VerdictSettling {
		t.Fatalf("ACSC: %d %+v", code, resp)
	}
	waitFor(t, "the withdrawal settled on chain", func() bool { return e.withdrawalStatus(t, id) == withdrawalSettled })
	if p := waitPayout(t, winner, id, PayoutClosed); p.Closed != "settled" {
		t.Fatalf("the winner's payout: %+v", p)
	}
	if n := len(e.logs(t, "WithdrawalSettled", common.BigToHash(new(big.Int).SetUint64(id)))); n != 1 {
		t.Fatalf("%d WithdrawalSettled logs, want 1", n)
	}
}

// TestTwoInstancesShareTheNonce: one instance of a bank mints a deposit
// while the other claims a withdrawal, both signing with the bank's same
// pending nonce. The node admits one; the other is refused ("replacement
// transaction underpriced" or "nonce too low") and is re-signed
// with a fresh nonce: the deposit is minted once, the payout ordered once,
// nothing stalls.
func TestTwoInstancesShareTheNonce(t *testing.T) {
	e := newTestEnv(t)
	m := newMeeting(2, 10*time.Second)
	minter := e.open(t, e.config(t), func(b *Bridge) {
		b.hooks.workers = map[string]bool{workerOutbox: true}
		b.hooks.crash = m.hook(crashAfterMintRecorded)
	})
	payer := e.open(t, e.config(t), func(b *Bridge) {
		b.hooks.workers = map[string]bool{workerFollower: true, workerPayout: true}
		b.hooks.crash = m.hook(crashAfterClaimSigned)
	})
	depositor, holder := freshKey(t), devKey(t, 7)
	e.link(t, minter, depositor, "HK-NONCE-D")
	e.link(t, payer, holder, "HK-NONCE-W")

	if code, resp := e.notify(t, minter, "MSG-NONCE-1", credit("DEP-NONCE-1", "HK-NONCE-D", "5.00")); code != http.StatusOK {
		t.Fatalf("notification: %d %+v", code, resp)
	}
	id := e.withdraw(t, holder, "4.00", [32]byte{})
	e2e := PayoutEndToEndID(genesis.DevChainID, "HKD", id)

	d := waitDeposit(t, minter, "DEP-NONCE-1", DepositMinted)
	waitPayout(t, payer, id, PayoutOrdered)
	if !m.met() {
		t.Fatal("the mint and the claim were not signed together: the nonce race this test is about did not happen")
	}
	if n := len(e.logs(t, "Minted", d.BankRef)); n != 1 {
		t.Fatalf("%d Minted logs for the deposit, want 1", n)
	}
	if got := e.balance(t, depositor.Address()); got.Cmp(hkd(t, "5.00")) != 0 {
		t.Fatalf("depositor holds %v, want 500", got)
	}
	if n := len(e.core.orders(e2e)); n != 1 {
		t.Fatalf("the core received %d orders for %s, want 1", n, e2e)
	}
	// Both signed with one nonce, so one of them signed again.
	if n := m.signed.Load(); n < 3 {
		t.Fatalf("%d mints and claims signed: want one of them re-signed after the shared nonce", n)
	}
}

// TestReportBeforeFollowedIsResent: the bank's ACSC of an order one
// instance sent reaches the other instance before its follower has seen
// the withdrawal. It must ask for the report again (503: a bank does not
// resend a message refused with a 4xx, and the instance that ordered
// would wait for ever); before, it refused it as an unknown payout (422).
// A report of a withdrawal this bank did not claim is still refused.
func TestReportBeforeFollowedIsResent(t *testing.T) {
	e := newTestEnv(t)
	orderer := e.open(t, e.config(t), nil)
	behind := e.open(t, e.config(t), func(b *Bridge) { b.hooks.workers = map[string]bool{workerCloser: true} })
	holder := devKey(t, 8)
	e.link(t, orderer, holder, "HK-BEHIND-8")
	e.link(t, behind, holder, "HK-BEHIND-8")
	id := e.withdraw(t, holder, "2.50", [32]byte{})
	e2e := PayoutEndToEndID(genesis.DevChainID, "HKD", id)
	waitPayout(t, orderer, id, PayoutOrdered)

	code, resp := e.reportStatus(t, behind, "PS-BEHIND-1", e2e, "ACSC", "")
	if code != http.StatusServiceUnavailable || len(resp.Entries) != 1 || resp.Entries[0].Verdict != VerdictUnknown ||
		!strings.Contains(resp.Entries[0].Reason, "not yet followed") {
		t.Fatalf("ACSC at the instance behind: %d %+v; want 503, resend", code, resp)
	}
	if st := e.withdrawalStatus(t, id); st == withdrawalSettled {
		t.Fatal("the instance behind settled a withdrawal it has no payout of")
	}
	// The resent report, at the instance that ordered, settles it once.
	if code, resp := e.reportStatus(t, orderer, "PS-BEHIND-1", e2e, "ACSC", ""); code != http.StatusOK || resp.Entries[0].Verdict != VerdictSettling {
		t.Fatalf("ACSC at the orderer: %d %+v", code, resp)
	}
	waitFor(t, "the withdrawal settled on chain", func() bool { return e.withdrawalStatus(t, id) == withdrawalSettled })

	// No withdrawal 999999 on chain: unknown, not to be resent.
	other := PayoutEndToEndID(genesis.DevChainID, "HKD", 999999)
	if code, resp := e.reportStatus(t, behind, "PS-BEHIND-2", other, "ACSC", ""); code != http.StatusUnprocessableEntity || resp.Entries[0].Verdict != VerdictUnknown {
		t.Fatalf("ACSC of no withdrawal: %d %+v; want 422 unknown", code, resp)
	}
}

// TestOutcomeBeforeClaimLostIsKept: the bank's ACSC of the order one
// instance sent reaches the other instance while that one's payout
// worker is about to find the claim taken (it read the payout before the
// report came). Closing the record as claimed-by-instance would discard
// the only copy of the report: the withdrawal stayed pending for ever
// (seen in the bridge campaign). The outcome is kept and settles it.
func TestOutcomeBeforeClaimLostIsKept(t *testing.T) {
	e := newTestEnv(t)
	orderer := e.open(t, e.config(t), nil)
	late := e.open(t, e.config(t), func(b *Bridge) { b.hooks.workers = map[string]bool{workerFollower: true} })
	holder := devKey(t, 9)
	e.link(t, orderer, holder, "HK-LATE-9")
	e.link(t, late, holder, "HK-LATE-9")
	id := e.withdraw(t, holder, "1.75", [32]byte{})
	e2e := PayoutEndToEndID(genesis.DevChainID, "HKD", id)
	waitPayout(t, orderer, id, PayoutOrdered)
	stale := waitPayout(t, late, id, PayoutNew) // what its payout worker read

	if code, resp := e.reportStatus(t, late, "PS-LATE-1", e2e, "ACSC", ""); code != http.StatusOK || resp.Entries[0].Verdict != VerdictSettling {
		t.Fatalf("ACSC at the instance that did not order: %d %+v", code, resp)
	}
	if ok, err := late.claim(e.ctx, stale); ok || err != nil {
		t.Fatalf("claim by the instance that lost it: %v, %v", ok, err)
	}
	if p, err := late.Store().Payout(id); err != nil || p.Status != PayoutSettling {
		t.Fatalf("after the lost claim, the payout holding the ACSC is %+v, %v; want settling", p, err)
	}
}

// TestReturnDuringSettleIsGivenBack: the bank returns a payout while the
// bridge's settleWithdrawal is in flight (sent, receipt awaited). The
// closer, holding the payout as it read it (settling), must not close it
// as settled over the return: before, the return was dropped and the
// holder never got the money back (seen in the bridge campaign).
func TestReturnDuringSettleIsGivenBack(t *testing.T) {
	e := newTestEnv(t)
	reached, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	b := e.open(t, e.config(t), func(b *Bridge) {
		b.hooks.crash = func(p string) bool {
			if p == crashAfterCloseSent {
				once.Do(func() { close(reached); <-release })
			}
			return false
		}
	})
	holder := devKey(t, 10)
	e.link(t, b, holder, "HK-RTRN-10")
	id := e.withdraw(t, holder, "3.40", [32]byte{})
	e2e := PayoutEndToEndID(genesis.DevChainID, "HKD", id)
	waitPayout(t, b, id, PayoutOrdered)
	if code, resp := e.reportStatus(t, b, "PS-RTRN-1", e2e, "ACSC", ""); code != http.StatusOK {
		t.Fatalf("ACSC: %d %+v", code, resp)
	}
	select {
	case <-reached:
	case <-time.After(30 * time.Second):
		t.Fatal("the settlement was not sent")
	}
	code, resp := e.reportStatus(t, b, "PS-RTRN-2", e2e, "RTRN", "AC04 account closed")
	close(release)
	if code != http.StatusOK || resp.Entries[0].Verdict != VerdictReturning {
		t.Fatalf("return: %d %+v", code, resp)
	}
	waitFor(t, "the withdrawal returned on chain", func() bool { return e.withdrawalStatus(t, id) == withdrawalReturned })
	if p := waitPayout(t, b, id, PayoutClosed); p.Closed != "returned" {
		t.Fatalf("payout: %+v", p)
	}
}
