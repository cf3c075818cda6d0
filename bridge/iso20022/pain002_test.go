package iso20022

import (
	"bytes"
	"reflect"
	"testing"
	"time"
)

func TestParsePain002Settled(t *testing.T) {
	r := pain002Codec.rewriteStable(t, readTestdata(t, "pain002_settled.xml"))
	msgID, pmtInfID, e2e := PayoutIDs("w-000123")
	if r.OriginalMsgID != msgID || r.OriginalMsgName != Pain001Version || r.GroupStatus != StatusAcceptedSettlementCompleted ||
		!r.OriginalCreated.Equal(mustTime(t, "2024-03-15T09:00:00Z")) {
		t.Errorf("report %+v", r)
	}
	tx := r.Payments[0].Transactions[0]
	if r.Payments[0].OriginalPmtInfID != pmtInfID || tx.OriginalEndToEndID != e2e || !tx.Settled() || tx.Rejected() ||
		tx.AcctSvcrRef != "BNK-2024031500018" || !tx.AcceptanceTime.Equal(mustTime(t, "2024-03-15T08:04:58Z")) {
		t.Errorf("transaction %+v", tx)
	}
	if st, _, ok := r.StatusOf(e2e); !ok || st != StatusAcceptedSettlementCompleted {
		t.Errorf("StatusOf = %q, %v", st, ok)
	}
}

func TestParsePain002Rejected(t *testing.T) {
	r := pain002Codec.rewriteStable(t, readTestdata(t, "pain002_rejected.xml"))
	_, _, e2e := PayoutIDs("w-000124")
	st, reasons, ok := r.StatusOf(e2e)
	want := []StatusReason{{Code: "AC04", AdditionalInfo: []string{"Creditor account FR7630006000011234567890189 is closed"}}}
	if !ok || st != StatusRejected || !reflect.DeepEqual(reasons, want) {
		t.Errorf("StatusOf = %q %+v %v", st, reasons, ok)
	}
	if !r.Payments[0].Transactions[0].Rejected() {
		t.Error("not rejected")
	}
}

func TestStatusOfInheritance(t *testing.T) {
	r := &StatusReport{
		GroupStatus: StatusPartiallyAccepted,
		Payments: []PaymentStatus{{
			Status: StatusRejected, Reasons: []StatusReason{{Code: "AM04"}},
			Transactions: []TransactionStatus{
				{OriginalEndToEndID: "A", Status: StatusAcceptedSettlementCompleted},
				{OriginalEndToEndID: "B"},
			},
		}, {
			Transactions: []TransactionStatus{{OriginalEndToEndID: "C"}},
		}},
	}
	for _, tc := range []struct{ e2e, want string }{
		{"A", StatusAcceptedSettlementCompleted}, // own status
		{"B", StatusRejected},                    // from its payment instruction
		{"C", StatusPartiallyAccepted},           // from the group
		{"unknown", StatusPartiallyAccepted},     // group status covers every transaction
	} {
		if st, _, ok := r.StatusOf(tc.e2e); !ok || st != tc.want {
			t.Errorf("StatusOf(%s) = %q, %v; want %q", tc.e2e, st, ok, tc.want)
		}
	}
	r.GroupStatus = ""
	if _, _, ok := r.StatusOf("unknown"); ok {
		t.Error("found a status for a transaction the report does not cover")
	}
	if _, _, ok := r.StatusOf("C"); ok {
		t.Error("found a status for a transaction without one")
	}
}

func sampleStatusReport() *StatusReport {
	_, pmtInfID, e2e := PayoutIDs("w-9")
	msgID, _, _ := PayoutIDs("w-9")
	return &StatusReport{
		MsgID: "SIM-STS-1", Created: time.Date(2024, 3, 15, 9, 5, 0, 0, time.UTC),
		OriginalMsgID: msgID, OriginalMsgName: Pain001Version,
		GroupReasons: []StatusReason{{Proprietary: "SIM-PARTIAL", AdditionalInfo: []string{"one of two rejected"}}},
		Payments: []PaymentStatus{{
			OriginalPmtInfID: pmtInfID,
			Transactions: []TransactionStatus{
				{OriginalEndToEndID: e2e, Status: StatusAcceptedCustomerProfile},
				{StatusID: "S2", OriginalInstrID: "I2", OriginalEndToEndID: "E2", Status: StatusRejected,
					Reasons: []StatusReason{{Code: "AM04", AdditionalInfo: []string{"line 1", "line 2"}}, {}}},
			},
		}},
	}
}

func TestPain002RoundTrip(t *testing.T) {
	pain002Codec.roundTrip(t, sampleStatusReport())
	group := &StatusReport{
		MsgID: "SIM-STS-2", Created: time.Date(2024, 3, 15, 9, 5, 0, 0, time.UTC),
		OriginalMsgID: "X", OriginalMsgName: Pain001Version, GroupStatus: StatusRejected,
		GroupReasons: []StatusReason{{Code: "DUPL"}},
	}
	pain002Codec.roundTrip(t, group)
}

func TestPain002Invalid(t *testing.T) {
	sample := readTestdata(t, "pain002_rejected.xml")
	for _, tc := range []struct {
		name    string
		data    []byte
		mention string
	}{
		{"no original message", edit(t, sample, "<OrgnlMsgId>TLM264B32D424250D670410422040B9D836</OrgnlMsgId>", ""), "OrgnlMsgId"},
		{"no original name", edit(t, sample, "<OrgnlMsgNmId>pain.001.001.09</OrgnlMsgNmId>", ""), "OrgnlMsgNmId"},
		{"long status", edit(t, sample, "<TxSts>RJCT</TxSts>", "<TxSts>REJECTED</TxSts>"), "TxSts"},
		{"long reason", edit(t, sample, "<Cd>AC04</Cd>", "<Cd>AC040</Cd>"), "Rsn/Cd"},
		{"empty reason", edit(t, sample, "<Cd>AC04</Cd>", ""), "Rsn"},
		{"no payment id", edit(t, sample, "<OrgnlPmtInfId>TLP264B32D424250D670410422040B9D836</OrgnlPmtInfId>", ""), "OrgnlPmtInfId"},
		{"long info", edit(t, sample, "Creditor account FR7630006000011234567890189 is closed", string(bytes.Repeat([]byte("x"), 106))), "AddtlInf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePain002(bytes.NewReader(tc.data))
			wantErr(t, err, ErrInvalidMessage, tc.mention)
		})
	}
	r := sampleStatusReport()
	r.Payments[0].Transactions[1].Reasons[0].Proprietary = "X"
	wantErr(t, WritePain002(&bytes.Buffer{}, r), ErrInvalidMessage, "both Cd and Prtry")
}

func TestNewStatusReport(t *testing.T) {
	order := samplePayout()
	reason := StatusReason{Code: "AC04", AdditionalInfo: []string{"account closed"}}
	r := NewStatusReport(order, "SIM-STS-9", time.Date(2024, 3, 15, 10, 0, 0, 0, time.UTC), StatusRejected, reason)
	pain002Codec.roundTrip(t, r)
	st, reasons, ok := r.StatusOf(order.Payments[0].Transfers[0].EndToEndID)
	if !ok || st != StatusRejected || !reflect.DeepEqual(reasons, []StatusReason{reason}) {
		t.Errorf("StatusOf = %q %+v %v", st, reasons, ok)
	}
	if r.OriginalMsgID != order.MsgID || r.Payments[0].OriginalPmtInfID != order.Payments[0].ID || !r.OriginalCreated.Equal(order.Created) {
		t.Errorf("report does not refer to the order: %+v", r)
	}
}
