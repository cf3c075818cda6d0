package iso20022

import (
	"bytes"
	"math/big"
	"reflect"
	"testing"
	"time"
)

func TestParseCamt053Sample(t *testing.T) {
	s := camt053Codec.rewriteStable(t, readTestdata(t, "camt053_statement.xml"))
	if s.MsgID != "STMT-20240315-0074" || len(s.Accounts) != 1 {
		t.Fatalf("statement %+v", s)
	}
	a := s.Accounts[0]
	if a.ID != "STMT-20240315-1" || a.SequenceNumber != "74" || a.Account.IBAN != "DE89370400440532013000" ||
		a.Account.Currency != "EUR" || a.Owner != "Tally Omnibus Trust" ||
		!a.From.Equal(mustTime(t, "2024-03-14T23:00:00Z")) || !a.To.Equal(mustTime(t, "2024-03-15T22:59:59Z")) {
		t.Errorf("account statement %+v", a)
	}
	opening, ok1 := a.Balance(BalanceOpeningBooked)
	closing, ok2 := a.Balance(BalanceClosingBooked)
	if !ok1 || !ok2 || opening != (Balance{BalanceOpeningBooked, "25000.00", "EUR", true, "2024-03-15"}) ||
		closing.Amount != "25059.75" {
		t.Fatalf("balances %+v %+v", opening, closing)
	}
	if len(a.Entries) != 3 {
		t.Fatalf("%d entries", len(a.Entries))
	}
	fee := a.Entries[2]
	if fee.Ref != "BNK-2024031500019" || fee.Credit || fee.Amount != "0.50" || len(fee.Details) != 0 ||
		fee.BankTxCode != (BankTxCode{Domain: "ACMT", Family: "MDOP", SubFamily: "CHRG"}) || fee.AdditionalInfo != "Payment order fee" {
		t.Errorf("fee entry %+v", fee)
	}
	if d, _ := a.Entries[1].Tx(); d.EndToEndID != "TLE1EA7B8794D71920A5E11B8EB3CA25769" || d.Creditor.Name != "John Smith" {
		t.Errorf("payout detail %+v", d)
	}

	// What the reconciler does: opening + credits - debits = closing,
	// computed exactly.
	sum := rat(t, opening.Amount)
	for _, e := range a.Entries {
		if e.Credit {
			sum.Add(sum, rat(t, e.Amount))
		} else {
			sum.Sub(sum, rat(t, e.Amount))
		}
	}
	if sum.Cmp(rat(t, closing.Amount)) != 0 {
		t.Errorf("entries do not reconcile: %s != %s", sum.FloatString(2), closing.Amount)
	}
}

func rat(t *testing.T, s string) *big.Rat {
	t.Helper()
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		t.Fatalf("bad decimal %q", s)
	}
	return r
}

// A real public camt.053.001.08 sample (genkgo/camt test data).
func TestParseCamt053PublicSample(t *testing.T) {
	s := camt053Codec.rewriteStable(t, readTestdata(t, "public/genkgo_camt053.v8.xml"))
	a := s.Accounts[0]
	if a.Account.Other != "NL26VAYB8060476890" || a.Owner != "FINPETROL" || len(a.Balances) != 4 || a.SequenceNumber != "12312" {
		t.Errorf("account statement %+v", a)
	}
	if b, _ := a.Balance(BalanceClosingAvailable); b != (Balance{"CLAV", "2700", "JPY", false, "2014-12-31"}) {
		t.Errorf("CLAV %+v", b)
	}
	e := a.Entries[0]
	if e.BookingDate != "2014-12-31T13:15:00+01:00" || e.ValueDate != "2015-01-02" || e.Ref != "AAAASESS-FP-CN_98765/01" {
		t.Errorf("entry %+v", e)
	}
	d := e.Details[0]
	if d.EndToEndID != "MUELL/FINP/RA12345" || d.CreditorRef != "4654654654654654" ||
		d.Creditor.Account != (Account{IBAN: "NL56AGDH9619008421", Currency: "EUR"}) || d.Debtor.Name != "NAME NAME" {
		t.Errorf("detail %+v", d)
	}
}

func sampleStatement() *Statement {
	day := time.Date(2024, 3, 15, 0, 0, 0, 0, time.UTC)
	return &Statement{
		MsgID:   "SIM-STMT-1",
		Created: day.Add(24 * time.Hour),
		Accounts: []AccountStatement{{
			ID: "SIM-STMT-1-A", SequenceNumber: "1", From: day, To: day.Add(24*time.Hour - time.Second),
			Account: Account{IBAN: "DE89370400440532013000", Currency: "EUR"},
			Balances: []Balance{
				{BalanceOpeningBooked, "0", "EUR", true, "2024-03-15"},
				{BalanceClosingBooked, "10.5", "EUR", false, "2024-03-15"},
			},
			Entries: []Entry{{
				Ref: "R1", Amount: "10.5", Currency: "EUR", Status: EntryBooked, BookingDate: "2024-03-15",
				BankTxCode: BankTxCode{Domain: "PMNT", Family: "ICDT", SubFamily: "ESCT"},
				Details:    []TxDetail{{EndToEndID: "E1", Creditor: Party{Name: "X", Account: Account{IBAN: "FR1420041010050500013M02606"}}}},
			}},
		}, {
			ID:       "SIM-STMT-1-B",
			Account:  Account{Other: "ACC-2"},
			Balances: []Balance{{BalanceClosingBooked, "9999999999999.99999", "USD", true, "2024-03-15T23:59:59Z"}},
		}},
	}
}

func TestCamt053RoundTrip(t *testing.T) {
	camt053Codec.roundTrip(t, sampleStatement())
	camt053Codec.roundTrip(t, camt053Codec.mustParse(t, readTestdata(t, "camt053_statement.xml")))
}

func TestCamt053Invalid(t *testing.T) {
	sample := readTestdata(t, "camt053_statement.xml")
	for _, tc := range []struct {
		name    string
		data    []byte
		err     error
		mention string
	}{
		{"balance amount", edit(t, sample, `<Amt Ccy="EUR">25000.00</Amt>`, `<Amt Ccy="EUR">25,000.00</Amt>`), ErrInvalidAmount, "25,000.00"},
		{"balance date", edit(t, sample, `<Dt>
          <Dt>2024-03-15</Dt>
        </Dt>`, `<Dt></Dt>`), ErrInvalidMessage, "Bal[0]/Dt"},
		{"balance sign", edit(t, sample, `<CdtDbtInd>CRDT</CdtDbtInd>
        <Dt>`, `<Dt>`), ErrInvalidMessage, "Bal[0]/CdtDbtInd"},
		{"sequence number", edit(t, sample, `<ElctrncSeqNb>74</ElctrncSeqNb>`, `<ElctrncSeqNb>7.4</ElctrncSeqNb>`), ErrInvalidMessage, "ElctrncSeqNb"},
		{"half period", edit(t, sample, `<ToDtTm>2024-03-15T23:59:59+01:00</ToDtTm>`, ``), ErrInvalidMessage, "FrToDt/ToDtTm"},
		{"no statement", edit(t, edit(t, sample, `<Stmt>`, `<!--`), `</Stmt>`, `-->`), ErrInvalidMessage, "Stmt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCamt053(bytes.NewReader(tc.data))
			wantErr(t, err, tc.err, tc.mention)
		})
	}

	s := sampleStatement()
	s.Accounts[1].Balances = nil
	wantErr(t, WriteCamt053(&bytes.Buffer{}, s), ErrInvalidMessage, "Stmt[1]/Bal")
	s = sampleStatement()
	s.Accounts[0].To = time.Time{}
	wantErr(t, WriteCamt053(&bytes.Buffer{}, s), ErrInvalidMessage, "FrToDt")
}

func TestStatementBalanceLookup(t *testing.T) {
	a := sampleStatement().Accounts[0]
	if _, ok := a.Balance(BalanceClosingAvailable); ok {
		t.Error("found a balance that is not there")
	}
	if b, ok := a.Balance(BalanceClosingBooked); !ok || !reflect.DeepEqual(b, a.Balances[1]) {
		t.Errorf("Balance(CLBD) = %+v, %v", b, ok)
	}
}
