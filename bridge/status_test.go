package bridge

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally/bridge/iso20022"
)

// bankSays is one message a bank sends about payout 7's order, written
// as the bank writes it and read by the bridge's own parsers.
type bankSays struct {
	name string
	body func(t *testing.T, u *unitBridge, p *Payout) (path string, body []byte)
}

func statusMsg(name, grpSts, grpReason, pmtSts, txSts, txReason string) bankSays {
	return bankSays{name, func(t *testing.T, u *unitBridge, p *Payout) (string, []byte) {
		ids := PayoutIDs(u.bank, 1337, "HKD", p.ID)
		r := &iso20022.StatusReport{MsgID: "BANK-" + strings.ReplaceAll(name, " ", "-"), Created: time.Now().UTC().Truncate(time.Second),
			OriginalMsgID: ids.MsgID, OriginalMsgName: iso20022.Pain001Version, GroupStatus: grpSts}
		if grpReason != "" {
			r.GroupReasons = []iso20022.StatusReason{{Code: grpReason}}
		}
		if pmtSts != "" || txSts != "" {
			ps := iso20022.PaymentStatus{OriginalPmtInfID: ids.PmtInfID, Status: pmtSts}
			if txSts != "" || pmtSts == "" {
				ts := iso20022.TransactionStatus{OriginalInstrID: ids.InstrID, OriginalEndToEndID: ids.EndToEndID, Status: txSts}
				if txReason != "" {
					ts.Reasons = []iso20022.StatusReason{{Code: txReason}}
				}
				ps.Transactions = []iso20022.TransactionStatus{ts}
			}
			r.Payments = []iso20022.PaymentStatus{ps}
		}
		var buf bytes.Buffer
		if err := iso20022.WritePain002(&buf, r); err != nil {
			t.Fatal(err)
		}
		return PathPaymentStatus, buf.Bytes()
	}}
}

// booked is the camt.054 debit entry that books the payout (of amount).
func booked(amount string) bankSays {
	return bankSays{"booked " + amount, func(t *testing.T, u *unitBridge, p *Payout) (string, []byte) {
		return PathNotifications, camt054(t, "BANK-DBT-"+amount, iso20022.Entry{Ref: "BNK-DBT-1", Amount: amount, Currency: "HKD",
			Status: iso20022.EntryBooked, BookingDate: "2026-12-02", Details: []iso20022.TxDetail{{EndToEndID: p.EndToEndID}}})
	}}
}

// returned is the camt.054 credit with RtrInf by which the beneficiary's
// bank sends the payout back.
func returned() bankSays {
	return bankSays{"returned", func(t *testing.T, u *unitBridge, p *Payout) (string, []byte) {
		return PathNotifications, camt054(t, "BANK-RTR-1", iso20022.Entry{Ref: "BNK-RTR-1", Amount: "50.00", Currency: "HKD", Credit: true,
			Status: iso20022.EntryBooked, BookingDate: "2026-12-03", Details: []iso20022.TxDetail{{EndToEndID: p.EndToEndID,
				Return: &iso20022.ReturnInfo{Reason: "AC04", AdditionalInfo: []string{"account closed"}}}}})
	}}
}

// returnedPacs004 is the pacs.004 by which the beneficiary's bank sends
// the payout back (forwarded by the bank core).
func returnedPacs004() bankSays {
	return bankSays{"pacs.004", func(t *testing.T, u *unitBridge, p *Payout) (string, []byte) {
		ids := PayoutIDs(u.bank, 1337, "HKD", p.ID)
		var buf bytes.Buffer
		if err := iso20022.WritePacs004(&buf, &iso20022.PaymentReturn{MsgID: "BANK-RTR-2", Created: time.Now().UTC().Truncate(time.Second),
			SettlementMethod: iso20022.SettlementClearingSystem, Returns: []iso20022.Return{{OriginalMsgID: ids.MsgID, OriginalMsgName: iso20022.Pain001Version,
				OriginalEndToEndID: ids.EndToEndID, OriginalUETR: ids.UETR, Amount: "49.50", Currency: "HKD",
				Reason: iso20022.ReturnInfo{Reason: "AC04"}}}}); err != nil {
			t.Fatal(err)
		}
		return PathPaymentStatus, buf.Bytes()
	}}
}

func camt054(t *testing.T, msgID string, es ...iso20022.Entry) []byte {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	n := &iso20022.Notification{MsgID: msgID, Created: now, Accounts: []iso20022.AccountNotification{{
		ID: msgID, Created: now, Account: iso20022.Account{Other: "SIM-OMNIBUS-0001", Currency: "HKD"}, Entries: es}}}
	var buf bytes.Buffer
	if err := iso20022.WriteCamt054(&buf, n); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var (
	sayACTC      = statusMsg("ACTC", "ACTC", "", "", "", "")
	sayACCP      = statusMsg("ACCP", "ACCP", "", "ACCP", "ACCP", "")
	sayACSP      = statusMsg("ACSP", "", "", "", "ACSP", "")
	sayACWC      = statusMsg("ACWC", "", "", "", "ACWC", "")
	sayPDNG      = statusMsg("PDNG", "PDNG", "", "", "PDNG", "")
	sayACSC      = statusMsg("ACSC", "ACSC", "", "ACSC", "ACSC", "")
	sayGroupACSC = statusMsg("group ACSC", "ACSC", "", "", "", "")
	sayRJCT      = statusMsg("RJCT AM04", "RJCT", "", "RJCT", "RJCT", "AM04")
	sayDU01      = statusMsg("DU01", "RJCT", "DU01", "", "", "")
	sayDU01Tx    = statusMsg("DU01 inherited", "RJCT", "DU01", "", "", "") // group DU01, the transaction listed without a status
	sayDU02      = statusMsg("DU02", "", "", "RJCT", "", "")
	sayDU04      = statusMsg("DU04", "", "", "", "RJCT", "DU04")
	sayFF01      = statusMsg("group RJCT FF01", "RJCT", "FF01", "", "", "")
	sayPmtACSC   = statusMsg("payment ACSC", "", "", "ACSC", "", "")
)

func init() {
	// sayDU01Tx lists the transaction with no status of its own: it
	// inherits the group's RJCT DU01.
	inner := sayDU01Tx.body
	sayDU01Tx.body = func(t *testing.T, u *unitBridge, p *Payout) (string, []byte) {
		path, body := inner(t, u, p)
		ids := PayoutIDs(u.bank, 1337, "HKD", p.ID)
		tx := "<OrgnlPmtInfAndSts><OrgnlPmtInfId>" + ids.PmtInfID + "</OrgnlPmtInfId><TxInfAndSts><OrgnlInstrId>" + ids.InstrID +
			"</OrgnlInstrId><OrgnlEndToEndId>" + ids.EndToEndID + "</OrgnlEndToEndId></TxInfAndSts></OrgnlPmtInfAndSts>"
		return path, bytes.Replace(body, []byte("</OrgnlGrpInfAndSts>"), []byte("</OrgnlGrpInfAndSts>"+tx), 1)
	}
	// sayDU02: the payment instruction rejected as a duplicate PmtInfId.
	inner2 := sayDU02.body
	sayDU02.body = func(t *testing.T, u *unitBridge, p *Payout) (string, []byte) {
		path, body := inner2(t, u, p)
		return path, bytes.Replace(body, []byte("<PmtInfSts>RJCT</PmtInfSts>"),
			[]byte("<PmtInfSts>RJCT</PmtInfSts><StsRsnInf><Rsn><Cd>DU02</Cd></Rsn></StsRsnInf>"), 1)
	}
}

// TestPayoutStatusTable runs every combination of what a bank gateway
// does to an order (acknowledgement lost and the order re-sent, DU01 on
// the re-sent MsgId, progress statuses, ACSC, RJCT, bookings, returns,
// reports arriving late and out of order) and checks that each ends in
// exactly one outcome: the first final word stands, progress and
// duplicate rejections decide nothing, and a contradiction is refused as
// a conflict, never applied.
func TestPayoutStatusTable(t *testing.T) {
	for _, tc := range []struct {
		name      string
		lostAck   bool // the order reached the bank, its 2xx did not reach the bridge
		says      []bankSays
		want      PayoutStatus
		conflicts int
	}{
		{name: "happy path", says: []bankSays{sayACTC, sayACCP, sayACSC}, want: PayoutSettling},
		{name: "lost ack, re-send answered DU01, original paid", lostAck: true, says: []bankSays{sayDU01, sayACCP, sayACSC}, want: PayoutSettling},
		{name: "lost ack, DU01 with the transaction listed", lostAck: true, says: []bankSays{sayDU01Tx, sayACSC}, want: PayoutSettling},
		{name: "lost ack, DU01 arrives after the ACSC", lostAck: true, says: []bankSays{sayACSC, sayDU01}, want: PayoutSettling},
		{name: "lost ack, DU01 then the original rejected", lostAck: true, says: []bankSays{sayDU01, sayACCP, sayRJCT}, want: PayoutRefunding},
		{name: "lost ack, only DU01 so far", lostAck: true, says: []bankSays{sayDU01}, want: PayoutOrdered},
		{name: "ACCP then RJCT", says: []bankSays{sayACCP, sayRJCT}, want: PayoutRefunding},
		{name: "ACCP alone", says: []bankSays{sayACCP}, want: PayoutOrdered},
		{name: "every progress status", says: []bankSays{sayACTC, sayPDNG, sayACCP, sayACWC, sayACSP}, want: PayoutOrdered},
		{name: "group-level ACSC alone", says: []bankSays{sayGroupACSC}, want: PayoutOrdered},
		{name: "payment-level ACSC alone", says: []bankSays{sayPmtACSC}, want: PayoutOrdered},
		{name: "DU02 on the instruction", says: []bankSays{sayDU02}, want: PayoutOrdered},
		{name: "DU04 on the transaction", says: []bankSays{sayDU04}, want: PayoutOrdered},
		{name: "file rejected FF01", says: []bankSays{sayACTC, sayFF01}, want: PayoutRefunding},
		{name: "ACSC then a late ACCP", says: []bankSays{sayACSC, sayACCP}, want: PayoutSettling},
		{name: "ACSC twice", says: []bankSays{sayACSC, sayACSC}, want: PayoutSettling},
		{name: "ACSC then RJCT", says: []bankSays{sayACSC, sayRJCT}, want: PayoutSettling, conflicts: 1},
		{name: "RJCT then ACSC", says: []bankSays{sayRJCT, sayACSC}, want: PayoutRefunding, conflicts: 1},
		{name: "RJCT then its booking", says: []bankSays{sayRJCT, booked("50.00")}, want: PayoutRefunding, conflicts: 1},
		{name: "booked debit", says: []bankSays{sayACCP, booked("50.00")}, want: PayoutSettling},
		{name: "booked debit then ACSC", says: []bankSays{booked("50.00"), sayACSC}, want: PayoutSettling},
		{name: "booked debit of another amount", says: []bankSays{booked("49.99")}, want: PayoutOrdered, conflicts: 1},
		{name: "paid then returned", says: []bankSays{sayACSC, returned()}, want: PayoutReturning},
		{name: "returned twice", says: []bankSays{sayACSC, returned(), returned()}, want: PayoutReturning},
		{name: "paid then returned by pacs.004, less charges", says: []bankSays{sayACSC, returnedPacs004()}, want: PayoutReturning},
		{name: "pacs.004 and camt.054 of one return", says: []bankSays{sayACSC, returnedPacs004(), returned()}, want: PayoutReturning},
		{name: "return before the ACSC", says: []bankSays{sayACCP, returned(), sayACSC}, want: PayoutRefunding},
		{name: "rejected then returned", says: []bankSays{sayRJCT, returned()}, want: PayoutRefunding, conflicts: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := newUnitBridge(t)
			p := u.addPayout(t, 7, 5000)
			if tc.lostAck {
				if _, err := u.store.ModifyPayout(7, func(q *Payout) (bool, error) { q.Status = PayoutNew; return true, nil }); err != nil {
					t.Fatal(err)
				}
			}
			conflicts := 0
			for _, s := range tc.says {
				path, body := s.body(t, u, p)
				_, resp := u.post(t, path, body)
				if len(resp.Entries) != 1 {
					t.Fatalf("%s: answer %+v", s.name, resp)
				}
				switch v := resp.Entries[0].Verdict; v {
				case VerdictConflict:
					conflicts++
				case VerdictUnknown, VerdictIgnored:
					t.Fatalf("%s: verdict %s (%s)", s.name, v, resp.Entries[0].Reason)
				}
			}
			got := u.payout(t, 7)
			if got.Status != tc.want || conflicts != tc.conflicts {
				t.Fatalf("ends %s with %d conflicts (outcome %q, progress %+v); want %s with %d", got.Status, conflicts, got.Outcome,
					got.Progress, tc.want, tc.conflicts)
			}
			if tc.lostAck && got.Status == PayoutNew {
				t.Fatal("the bank's report did not stop the re-sends: the payout is still new")
			}
		})
	}
}
