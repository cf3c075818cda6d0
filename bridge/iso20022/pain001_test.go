package iso20022

import (
	"bytes"
	"reflect"
	"regexp"
	"testing"
	"time"
)

var omnibus = Party{Name: "Tally Omnibus Trust", Account: Account{IBAN: "DE89370400440532013000", Currency: "EUR"}, Agent: "COBADEFFXXX"}

func samplePayout() *PaymentOrder {
	o := NewPayout("w-000123", time.Date(2024, 3, 15, 9, 0, 0, 0, time.UTC), "2024-03-15", "Tally Bridge", omnibus, Transfer{
		Amount: "40.00", Currency: "EUR",
		Creditor:       Party{Name: "John Smith", Account: Account{IBAN: "FR1420041010050500013M02606"}, Agent: "BNPAFRPPXXX"},
		RemittanceInfo: []string{"Tally withdrawal w-000123"},
	})
	o.Payments[0].ChargeBearer = ChargesSLEV
	return o
}

func TestParsePain001Sample(t *testing.T) {
	// The sample is exactly what the bridge builds for withdrawal w-000123.
	o := pain001Codec.rewriteStable(t, readTestdata(t, "pain001_payout.xml"))
	if want := samplePayout(); !reflect.DeepEqual(o, want) {
		t.Errorf("sample:\n got %+v\nwant %+v", o, want)
	}
	tr := o.Transfers()
	if len(tr) != 1 || tr[0].EndToEndID != "TLE1EA7B8794D71920A5E11B8EB3CA25769" || tr[0].Amount != "40.00" {
		t.Errorf("transfers %+v", tr)
	}
}

func TestPayoutIDs(t *testing.T) {
	m1, p1, e1 := PayoutIDs("w-000123")
	m2, p2, e2 := PayoutIDs("w-000123")
	if m1 != m2 || p1 != p2 || e1 != e2 {
		t.Fatal("PayoutIDs is not deterministic")
	}
	id := regexp.MustCompile(`^[A-Z0-9]{35}$`)
	for _, s := range []string{m1, p1, e1} {
		if !id.MatchString(s) {
			t.Errorf("%q is not 35 characters of [A-Z0-9]", s)
		}
	}
	if m1 == p1 || p1 == e1 {
		t.Error("the three identifiers must differ")
	}
	seen := map[string]bool{}
	for _, w := range []string{"w-000124", "w-000123 ", "W-000123", "", "0xdeadbeef", string(make([]byte, 1000))} {
		_, _, e := PayoutIDs(w)
		if e == e1 || seen[e] {
			t.Errorf("collision for %q", w)
		}
		seen[e] = true
	}
}

func TestPain001RoundTrip(t *testing.T) {
	pain001Codec.roundTrip(t, samplePayout())

	multi := &PaymentOrder{
		MsgID: "SIM-BATCH-1", Created: time.Date(2024, 3, 15, 9, 0, 0, 0, time.UTC),
		Payments: []PaymentInfo{{
			ID: "PI-1", ExecutionDate: "2024-03-16", Debtor: Party{Account: Account{Other: "0532013000", Scheme: "BBAN"}},
			Transfers: []Transfer{
				{EndToEndID: "E-1", Amount: "0.10", Currency: "USD", Creditor: Party{Account: Account{Other: "111"}}, CreditorRef: "RF18539007547034"},
				{InstrID: "I-2", EndToEndID: "E-2", Amount: "0.2", Currency: "USD", Creditor: Party{Name: "B", Account: Account{Other: "222"}}},
			},
		}, {
			ID: "PI-2", ExecutionDate: "2024-03-16T10:00:00Z", Debtor: omnibus, ChargeBearer: ChargesDebtor,
			Transfers: []Transfer{{EndToEndID: "E-3", Amount: "1000000", Currency: "EUR", Creditor: Party{Account: Account{IBAN: "DE02120300000000202051"}}}},
		}},
	}
	out := pain001Codec.roundTrip(t, multi)
	for _, want := range []string{
		"<NbOfTxs>3</NbOfTxs>\n      <CtrlSum>1000000.30</CtrlSum>",
		"<NbOfTxs>2</NbOfTxs>\n      <CtrlSum>0.30</CtrlSum>",
		"<PmtMtd>TRF</PmtMtd>\n      <BtchBookg>false</BtchBookg>",
		"<DbtrAgt>\n        <FinInstnId></FinInstnId>\n      </DbtrAgt>",
	} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestPain001Invalid(t *testing.T) {
	sample := readTestdata(t, "pain001_payout.xml")
	for _, tc := range []struct {
		name    string
		data    []byte
		err     error
		mention string
	}{
		{"group count", edit(t, sample, "<NbOfTxs>1</NbOfTxs>\n      <CtrlSum>40.00</CtrlSum>\n      <InitgPty>", "<NbOfTxs>2</NbOfTxs>\n      <CtrlSum>40.00</CtrlSum>\n      <InitgPty>"), ErrInvalidMessage, "GrpHdr/NbOfTxs"},
		{"group sum", edit(t, sample, "<CtrlSum>40.00</CtrlSum>\n      <InitgPty>", "<CtrlSum>40.01</CtrlSum>\n      <InitgPty>"), ErrInvalidMessage, "GrpHdr/CtrlSum"},
		{"payment sum", edit(t, sample, "<CtrlSum>40.00</CtrlSum>\n      <ReqdExctnDt>", "<CtrlSum>4.00</CtrlSum>\n      <ReqdExctnDt>"), ErrInvalidMessage, "PmtInf[0]/CtrlSum"},
		{"missing group count", edit(t, sample, "<NbOfTxs>1</NbOfTxs>\n      <CtrlSum>40.00</CtrlSum>\n      <InitgPty>", "<CtrlSum>40.00</CtrlSum>\n      <InitgPty>"), ErrInvalidMessage, "GrpHdr/NbOfTxs"},
		{"cheque", edit(t, sample, "<PmtMtd>TRF</PmtMtd>", "<PmtMtd>CHK</PmtMtd>"), ErrInvalidMessage, "PmtMtd"},
		{"no execution date", edit(t, sample, "<Dt>2024-03-15</Dt>", ""), ErrInvalidMessage, "ReqdExctnDt"},
		{"no debtor account", edit(t, sample, "<IBAN>DE89370400440532013000</IBAN>", ""), ErrInvalidMessage, "DbtrAcct"},
		{"no EndToEndId", edit(t, sample, "<EndToEndId>TLE1EA7B8794D71920A5E11B8EB3CA25769</EndToEndId>", ""), ErrInvalidMessage, "EndToEndId"},
		{"equivalent amount", edit(t, sample, `<InstdAmt Ccy="EUR">40.00</InstdAmt>`, `<EqvtAmt><Amt Ccy="EUR">40.00</Amt><CcyOfTrf>USD</CcyOfTrf></EqvtAmt>`), ErrInvalidMessage, "EqvtAmt"},
		{"exponent", edit(t, sample, `<InstdAmt Ccy="EUR">40.00</InstdAmt>`, `<InstdAmt Ccy="EUR">4e1</InstdAmt>`), ErrInvalidAmount, "4e1"},
		{"negative", edit(t, sample, `<InstdAmt Ccy="EUR">40.00</InstdAmt>`, `<InstdAmt Ccy="EUR">-40.00</InstdAmt>`), ErrInvalidAmount, "-40.00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePain001(bytes.NewReader(tc.data))
			wantErr(t, err, tc.err, tc.mention)
		})
	}
}

func TestWritePain001Refuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*PaymentOrder)
		err    error
	}{
		{"six fraction digits", func(o *PaymentOrder) { o.Payments[0].Transfers[0].Amount = "1.123456" }, ErrInvalidAmount},
		{"no creditor account", func(o *PaymentOrder) { o.Payments[0].Transfers[0].Creditor.Account = Account{} }, ErrInvalidMessage},
		{"no debtor account", func(o *PaymentOrder) { o.Payments[0].Debtor.Account = Account{} }, ErrInvalidMessage},
		{"no transfers", func(o *PaymentOrder) { o.Payments[0].Transfers = nil }, ErrInvalidMessage},
		{"bad charge bearer", func(o *PaymentOrder) { o.Payments[0].ChargeBearer = "OUR" }, ErrInvalidMessage},
		{"long EndToEndId", func(o *PaymentOrder) { o.Payments[0].Transfers[0].EndToEndID += "X" }, ErrInvalidMessage},
		{"bad date", func(o *PaymentOrder) { o.Payments[0].ExecutionDate = "15/03/2024" }, ErrInvalidMessage},
		{"too many", func(o *PaymentOrder) {
			t := o.Payments[0].Transfers[0]
			o.Payments[0].Transfers = make([]Transfer, MaxTransactions+1)
			for i := range o.Payments[0].Transfers {
				o.Payments[0].Transfers[i] = t
			}
		}, ErrTooManyEntries},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := samplePayout()
			tc.mutate(o)
			wantErr(t, WritePain001(&bytes.Buffer{}, o), tc.err)
		})
	}
}

func TestNewPayoutMatchesSampleBytes(t *testing.T) {
	sample := readTestdata(t, "pain001_payout.xml")
	// Drop the explanatory comment; everything else is the writer's output.
	start, end := bytes.Index(sample, []byte("<!--")), bytes.Index(sample, []byte("-->\n"))
	sample = append(append([]byte{}, sample[:start]...), sample[end+4:]...)
	if got := pain001Codec.mustWrite(t, samplePayout()); !bytes.Equal(got, sample) {
		t.Errorf("writer output differs from the sample:\n%s", got)
	}
}
