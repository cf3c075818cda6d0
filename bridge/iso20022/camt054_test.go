package iso20022

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseCamt054Sample(t *testing.T) {
	n := camt054Codec.rewriteStable(t, readTestdata(t, "camt054_deposit_payout.xml"))
	if n.MsgID != "NTF-20240315-000042" || !n.Created.Equal(mustTime(t, "2024-03-15T09:15:30Z")) {
		t.Errorf("group header: %q %v", n.MsgID, n.Created)
	}
	if len(n.Accounts) != 1 {
		t.Fatalf("%d account blocks", len(n.Accounts))
	}
	a := n.Accounts[0]
	want := AccountNotification{
		ID: "NTF-20240315-000042-1", Created: a.Created,
		Account: Account{IBAN: "DE89370400440532013000", Currency: "EUR"},
		Owner:   "Tally Omnibus Trust", Servicer: "COBADEFFXXX",
		Entries: []Entry{{
			Ref: "BNK-2024031500017", EntryRef: "1", Amount: "100.25", Currency: "EUR", Credit: true,
			Status: EntryBooked, BookingDate: "2024-03-15", ValueDate: "2024-03-15",
			BankTxCode: BankTxCode{Domain: "PMNT", Family: "RCDT", SubFamily: "ESCT"},
			Details: []TxDetail{{
				AcctSvcrRef: "BNK-2024031500017", EndToEndID: "NOTPROVIDED", TxID: "SCT-77810023",
				Amount: "100.25", Currency: "EUR", CreditDebit: "CRDT",
				Debtor:         Party{Name: "Jane Doe", Account: Account{IBAN: "DE02120300000000202051"}, Agent: "BYLADEM1001"},
				Creditor:       Party{Name: "Tally Omnibus Trust", Account: Account{IBAN: "DE89370400440532013000"}},
				RemittanceInfo: []string{"TALLY DEPOSIT acct 7f3a9c"},
			}},
		}, {
			Ref: "BNK-2024031500018", EntryRef: "2", Amount: "40.00", Currency: "EUR", Credit: false,
			Status: EntryBooked, BookingDate: "2024-03-15", ValueDate: "2024-03-15",
			BankTxCode: BankTxCode{Domain: "PMNT", Family: "ICDT", SubFamily: "ESCT"},
			Details: []TxDetail{{
				MsgID: "TLM1EA7B8794D71920A5E11B8EB3CA25769", AcctSvcrRef: "BNK-2024031500018",
				PmtInfID: "TLP1EA7B8794D71920A5E11B8EB3CA25769", InstrID: "TLE1EA7B8794D71920A5E11B8EB3CA25769",
				EndToEndID: "TLE1EA7B8794D71920A5E11B8EB3CA25769",
				Amount:     "40.00", Currency: "EUR", CreditDebit: "DBIT",
				Debtor:         Party{Name: "Tally Omnibus Trust", Account: Account{IBAN: "DE89370400440532013000"}},
				Creditor:       Party{Name: "John Smith", Account: Account{IBAN: "FR1420041010050500013M02606"}, Agent: "BNPAFRPPXXX"},
				RemittanceInfo: []string{"Tally withdrawal w-000123"},
			}},
		}},
	}
	if !reflect.DeepEqual(a, want) {
		t.Errorf("account notification:\n got %+v\nwant %+v", a, want)
	}
	// The payout's EndToEndId is the one the bridge derived for the
	// withdrawal, which is how the debit is matched.
	if _, _, e2e := PayoutIDs("w-000123"); n.Entries()[1].Details[0].EndToEndID != e2e {
		t.Errorf("payout EndToEndId %q, want %q", n.Entries()[1].Details[0].EndToEndID, e2e)
	}
	if d, ok := n.Entries()[0].Tx(); !ok || d.Debtor.Name != "Jane Doe" {
		t.Errorf("Tx() = %+v, %v", d, ok)
	}
}

// A real public camt.054.001.08 sample (genkgo/camt test data, see
// testdata/README.md): a batch-booked debit with three transactions and
// elements this package does not model.
func TestParseCamt054PublicSample(t *testing.T) {
	n := camt054Codec.rewriteStable(t, readTestdata(t, "public/genkgo_camt054.v8.xml"))
	if n.MsgID != "AAAASESS-FP-ACCR001" || n.AdditionalInfo != "Group header additional information" {
		t.Errorf("group header %+v", n)
	}
	a := n.Accounts[0]
	if a.Account.IBAN != "CH2801234000123456789" || a.Owner != "UNIFITS GmbH" || a.Servicer != "UBSWCHZH80A" {
		t.Errorf("account %+v", a)
	}
	e := a.Entries[0]
	if e.Ref != "ACSR160617103200001" || e.Amount != "200000" || e.Currency != "SEK" || e.Credit || e.AdditionalInfo != "Order" {
		t.Errorf("entry %+v", e)
	}
	if e.BankTxCode != (BankTxCode{Domain: "PMNT", Family: "ICDT", SubFamily: "DMCT", Proprietary: "Z24"}) {
		t.Errorf("bank transaction code %+v", e.BankTxCode)
	}
	if len(e.Details) != 3 {
		t.Fatalf("%d details", len(e.Details))
	}
	if _, ok := e.Tx(); ok {
		t.Error("Tx() on a batch entry must report false")
	}
	d0, d2 := e.Details[0], e.Details[2]
	if d0.EndToEndID != "UXC06170000006PI00001EE00001" || d0.Amount != "3.1" || d0.Currency != "CHF" ||
		d0.Creditor.Account.IBAN != "CH4112345003131313131" || d0.Debtor.Agent != "BANKCHZHXXX" ||
		d0.Creditor.Agent != "" || d0.CreditorRef != "ISR ref number V1" ||
		!reflect.DeepEqual(d0.RemittanceInfo, []string{"Unstructured Remittance Information V1"}) {
		t.Errorf("detail 0 %+v", d0)
	}
	if d2.Creditor.Agent != "BANKCHBE" || d2.CreditorRef != "Ref number V3 block 1" || len(d2.RemittanceInfo) != 2 {
		t.Errorf("detail 2 %+v", d2)
	}
}

func sampleNotification() *Notification {
	return &Notification{
		MsgID:   "SIM-NTF-0001",
		Created: time.Date(2024, 3, 15, 9, 15, 30, 0, time.UTC),
		Accounts: []AccountNotification{{
			ID:      "SIM-NTF-0001",
			Account: Account{Other: "0532013000", Scheme: "BBAN", Currency: "USD", Name: "Omnibus"},
			Entries: []Entry{{
				Ref: "SIM-REF-1", Amount: "1234567890123.12345", Currency: "USD", Credit: true,
				Status: EntryBooked, BookingDate: "2024-03-15T09:15:00Z", ValueDate: "2024-03-15",
				BankTxCode: BankTxCode{Proprietary: "DEP", Issuer: "SIMBANK"},
				Details: []TxDetail{{
					EndToEndID: "E2E-1", UETR: "eb6305c9-1f7f-49de-aed0-16487c27b42d",
					Debtor:      Party{Name: "Ærøskøbing & Søn <GmbH>", Account: Account{Other: "12345678"}},
					CreditorRef: "RF18539007547034",
				}},
			}, {
				Ref: "SIM-REF-2", Amount: "0.01", Currency: "USD", Reversal: true, Status: EntryPending,
				AdditionalInfo: "reversal of a returned payout",
			}},
		}},
	}
}

func TestCamt054RoundTrip(t *testing.T) {
	n := sampleNotification()
	out := camt054Codec.roundTrip(t, n)
	if !bytes.Contains(out, []byte(`<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08">`)) {
		t.Errorf("root namespace missing:\n%s", out)
	}
	// The parsed sample round-trips too.
	camt054Codec.roundTrip(t, camt054Codec.mustParse(t, readTestdata(t, "camt054_deposit_payout.xml")))
}

func TestCamt054Invalid(t *testing.T) {
	sample := readTestdata(t, "camt054_deposit_payout.xml")
	for _, tc := range []struct {
		name, old, new string
		err            error
		mention        string
	}{
		{"exponent amount", `<Amt Ccy="EUR">100.25</Amt>`, `<Amt Ccy="EUR">1e3</Amt>`, ErrInvalidAmount, "1e3"},
		{"six fraction digits", `<Amt Ccy="EUR">100.25</Amt>`, `<Amt Ccy="EUR">1.123456</Amt>`, ErrInvalidAmount, "1.123456"},
		{"negative amount", `<Amt Ccy="EUR">100.25</Amt>`, `<Amt Ccy="EUR">-5</Amt>`, ErrInvalidAmount, "-5"},
		{"19 digits", `<Amt Ccy="EUR">100.25</Amt>`, `<Amt Ccy="EUR">1234567890123456789</Amt>`, ErrInvalidAmount, "18 digits"},
		{"empty amount", `<Amt Ccy="EUR">100.25</Amt>`, `<Amt Ccy="EUR"></Amt>`, ErrInvalidMessage, "Ntry[0]/Amt"},
		{"lower-case currency", `<Amt Ccy="EUR">100.25</Amt>`, `<Amt Ccy="eur">100.25</Amt>`, ErrInvalidMessage, "Ccy"},
		{"missing currency", `<Amt Ccy="EUR">100.25</Amt>`, `<Amt>100.25</Amt>`, ErrInvalidMessage, "Ccy"},
		{"missing MsgId", `<MsgId>NTF-20240315-000042</MsgId>`, ``, ErrInvalidMessage, "GrpHdr/MsgId"},
		{"missing CreDtTm", `<CreDtTm>2024-03-15T10:15:30+01:00</CreDtTm>
    </GrpHdr>`, `</GrpHdr>`, ErrInvalidMessage, "GrpHdr/CreDtTm"},
		{"bad CreDtTm", `<CreDtTm>2024-03-15T10:15:30+01:00</CreDtTm>
    </GrpHdr>`, `<CreDtTm>15.03.2024</CreDtTm></GrpHdr>`, ErrInvalidMessage, "GrpHdr/CreDtTm"},
		{"missing CdtDbtInd", `<CdtDbtInd>CRDT</CdtDbtInd>
        <Sts>`, `<Sts>`, ErrInvalidMessage, "Ntry[0]/CdtDbtInd"},
		{"bad CdtDbtInd", `<CdtDbtInd>CRDT</CdtDbtInd>
        <Sts>`, `<CdtDbtInd>CREDIT</CdtDbtInd><Sts>`, ErrInvalidMessage, "CdtDbtInd"},
		{"missing status", `<Sts>
          <Cd>BOOK</Cd>
        </Sts>
        <BookgDt>
          <Dt>2024-03-15</Dt>
        </BookgDt>
        <ValDt>
          <Dt>2024-03-15</Dt>
        </ValDt>
        <AcctSvcrRef>BNK-2024031500017</AcctSvcrRef>`, `<AcctSvcrRef>BNK-2024031500017</AcctSvcrRef>`, ErrInvalidMessage, "Sts/Cd"},
		{"bad booking date", `<Dt>2024-03-15</Dt>`, `<Dt>2024-02-30</Dt>`, ErrInvalidMessage, "BookgDt"},
		{"missing account", `<IBAN>DE89370400440532013000</IBAN>
        </Id>
        <Ccy>EUR</Ccy>`, `</Id><Ccy>EUR</Ccy>`, ErrInvalidMessage, "Acct/Id"},
		{"bad IBAN", `<IBAN>DE02120300000000202051</IBAN>`, `<IBAN>not-an-iban</IBAN>`, ErrInvalidMessage, "DbtrAcct/Id/IBAN"},
		{"long reference", `<AcctSvcrRef>BNK-2024031500017</AcctSvcrRef>`, `<AcctSvcrRef>` + strings.Repeat("R", 36) + `</AcctSvcrRef>`, ErrInvalidMessage, "AcctSvcrRef"},
		{"bad BIC", `<BICFI>BYLADEM1001</BICFI>`, `<BICFI>bylademm</BICFI>`, ErrInvalidMessage, "BICFI"},
		{"partial bank tx code", `<SubFmlyCd>ESCT</SubFmlyCd>`, ``, ErrInvalidMessage, "SubFmlyCd"},
		{"proprietary status", `<Cd>BOOK</Cd>`, `<Prtry>BOOKED</Prtry>`, ErrInvalidMessage, "Sts/Prtry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCamt054(bytes.NewReader(edit(t, sample, tc.old, tc.new)))
			wantErr(t, err, tc.err, tc.mention)
		})
	}
}

func TestWriteCamt054Refuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Notification)
		err    error
	}{
		{"float-looking amount", func(n *Notification) { n.Accounts[0].Entries[0].Amount = "1e3" }, ErrInvalidAmount},
		{"negative amount", func(n *Notification) { n.Accounts[0].Entries[0].Amount = "-5" }, ErrInvalidAmount},
		{"no MsgID", func(n *Notification) { n.MsgID = "" }, ErrInvalidMessage},
		{"no time", func(n *Notification) { n.Created = time.Time{} }, ErrInvalidMessage},
		{"no accounts", func(n *Notification) { n.Accounts = nil }, ErrInvalidMessage},
		{"IBAN and other", func(n *Notification) { n.Accounts[0].Account.IBAN = "DE89370400440532013000" }, ErrInvalidMessage},
		{"bad UETR", func(n *Notification) { n.Accounts[0].Entries[0].Details[0].UETR = "not-a-uuid" }, ErrInvalidMessage},
		{"long Ustrd", func(n *Notification) {
			n.Accounts[0].Entries[0].Details[0].RemittanceInfo = []string{strings.Repeat("x", 141)}
		}, ErrInvalidMessage},
		{"too many entries", func(n *Notification) {
			n.Accounts[0].Entries = make([]Entry, MaxEntries+1)
		}, ErrTooManyEntries},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := sampleNotification()
			tc.mutate(n)
			var buf bytes.Buffer
			wantErr(t, WriteCamt054(&buf, n), tc.err)
			if buf.Len() != 0 {
				t.Error("a refused message must not be partially written")
			}
		})
	}
}

func TestParseCamt054EntryLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 5 MB message")
	}
	var b strings.Builder
	b.WriteString(`<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"><BkToCstmrDbtCdtNtfctn>` +
		`<GrpHdr><MsgId>M</MsgId><CreDtTm>2024-03-15T00:00:00Z</CreDtTm></GrpHdr>` +
		`<Ntfctn><Id>N</Id><Acct><Id><IBAN>DE89370400440532013000</IBAN></Id></Acct>`)
	for i := 0; i <= MaxEntries; i++ {
		b.WriteString(`<Ntry><Amt Ccy="EUR">1</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><BkTxCd/></Ntry>`)
	}
	b.WriteString(`</Ntfctn></BkToCstmrDbtCdtNtfctn></Document>`)
	_, err := ParseCamt054(strings.NewReader(b.String()))
	wantErr(t, err, ErrTooManyEntries, fmt.Sprint(MaxEntries))
}
