package iso20022

import (
	"encoding/xml"
	"fmt"
	"io"
	"regexp"
	"time"
)

// camt053Document is the root of a camt.053.001.08 message.
type camt053Document struct {
	XMLName xml.Name            `xml:"urn:iso:std:iso:20022:tech:xsd:camt.053.001.08 Document"`
	Msg     xmlBkToCstmrStmtV08 `xml:"BkToCstmrStmt"`
}

// xmlBkToCstmrStmtV08 mirrors BankToCustomerStatementV08 (GrpHdr, Stmt+,
// SplmtryData*).
type xmlBkToCstmrStmtV08 struct {
	GrpHdr xmlGroupHeader81      `xml:"GrpHdr"`
	Stmt   []xmlAccountStatement `xml:"Stmt"`
}

// xmlAccountStatement mirrors AccountStatement9.
type xmlAccountStatement struct {
	ID           string             `xml:"Id"`
	ElctrncSeqNb string             `xml:"ElctrncSeqNb,omitempty"`
	CreDtTm      string             `xml:"CreDtTm,omitempty"`
	FrToDt       *xmlDateTimePeriod `xml:"FrToDt,omitempty"`
	Acct         xmlCashAccount39   `xml:"Acct"`
	Bal          []xmlCashBalance   `xml:"Bal"`
	Ntry         []xmlEntry         `xml:"Ntry"`
	AddtlStmtInf string             `xml:"AddtlStmtInf,omitempty"`
}

// xmlDateTimePeriod mirrors DateTimePeriod1 (FrDtTm, ToDtTm).
type xmlDateTimePeriod struct {
	FrDtTm string `xml:"FrDtTm"`
	ToDtTm string `xml:"ToDtTm"`
}

// xmlCashBalance mirrors CashBalance8 (Tp, CdtLine*, Amt, CdtDbtInd, Dt,
// Avlbty*).
type xmlCashBalance struct {
	Tp        xmlBalanceType `xml:"Tp"`
	Amt       xmlAmount      `xml:"Amt"`
	CdtDbtInd string         `xml:"CdtDbtInd"`
	Dt        xmlDateChoice  `xml:"Dt"`
}

// xmlBalanceType mirrors BalanceType13 (CdOrPrtry, SubTp).
type xmlBalanceType struct {
	CdOrPrtry xmlCodeOrProprietary `xml:"CdOrPrtry"`
}

// Balance types (ExternalBalanceType1Code) used for reconciliation.
const (
	BalanceOpeningBooked    = "OPBD"
	BalanceClosingBooked    = "CLBD"
	BalanceOpeningAvailable = "OPAV"
	BalanceClosingAvailable = "CLAV"
)

// Statement is a camt.053.001.08 BankToCustomerStatement: the end-of-period
// statement of an account, the authority the bridge reconciles the ledger's
// supply against.
type Statement struct {
	MsgID          string    // GrpHdr/MsgId
	Created        time.Time // GrpHdr/CreDtTm
	AdditionalInfo string    // GrpHdr/AddtlInf
	// Accounts holds one statement per account (Stmt).
	Accounts []AccountStatement
}

// AccountStatement is the statement of one account.
type AccountStatement struct {
	ID string // Stmt/Id
	// SequenceNumber is the electronic sequence number (ElctrncSeqNb), a
	// decimal integer; consecutive statements let the bridge notice a gap.
	SequenceNumber string
	Created        time.Time // Stmt/CreDtTm, zero when absent
	// From and To bound the reported period (FrToDt); both zero or both set.
	From, To       time.Time
	Account        Account
	Owner          string    // Acct/Ownr/Nm
	Servicer       string    // Acct/Svcr BIC
	Balances       []Balance // Bal, at least one
	Entries        []Entry   // Ntry
	AdditionalInfo string    // AddtlStmtInf
}

// Balance is one balance of a statement (CashBalance8).
type Balance struct {
	Type     string // Tp/CdOrPrtry/Cd, e.g. BalanceOpeningBooked
	Amount   string // exact, never negative; Credit gives the sign
	Currency string
	Credit   bool   // CRDT: in the account holder's favour
	Date     string // ISO 8601 date or date-time
}

// Balance returns the first balance of the given type.
func (s *AccountStatement) Balance(typ string) (Balance, bool) {
	for _, b := range s.Balances {
		if b.Type == typ {
			return b, true
		}
	}
	return Balance{}, false
}

// ParseCamt053 reads and validates a camt.053.001.08 message. It reads at
// most MaxMessageSize bytes and refuses any other message or version.
func ParseCamt053(r io.Reader) (*Statement, error) {
	data, err := readMessage(r)
	if err != nil {
		return nil, err
	}
	var doc camt053Document
	if err := decodeDocument(data, Camt053, &doc); err != nil {
		return nil, err
	}
	m := &doc.Msg
	s := &Statement{MsgID: m.GrpHdr.MsgID, AdditionalInfo: m.GrpHdr.AddtlInf}
	if s.Created, err = parseDateTimeField("GrpHdr/CreDtTm", m.GrpHdr.CreDtTm, true); err != nil {
		return nil, err
	}
	if len(m.Stmt) == 0 {
		return nil, invalidf("Stmt", "missing")
	}
	entries, txs := 0, 0
	for i := range m.Stmt {
		x := &m.Stmt[i]
		path := fmt.Sprintf("Stmt[%d]", i)
		entries += len(x.Ntry)
		if err := checkCount("entries", entries, MaxEntries); err != nil {
			return nil, err
		}
		if err := checkCount("balances", len(x.Bal), MaxEntries); err != nil {
			return nil, err
		}
		a := AccountStatement{
			ID: x.ID, SequenceNumber: x.ElctrncSeqNb, Owner: partyName(x.Acct.Ownr),
			Servicer: agentBIC(x.Acct.Svcr), AdditionalInfo: x.AddtlStmtInf,
		}
		if a.Created, err = parseDateTimeField(path+"/CreDtTm", x.CreDtTm, false); err != nil {
			return nil, err
		}
		if p := x.FrToDt; p != nil {
			if a.From, err = parseDateTimeField(path+"/FrToDt/FrDtTm", p.FrDtTm, true); err != nil {
				return nil, err
			}
			if a.To, err = parseDateTimeField(path+"/FrToDt/ToDtTm", p.ToDtTm, true); err != nil {
				return nil, err
			}
		}
		if a.Account, err = accountFromXML(path+"/Acct", x.Acct.ID, x.Acct.Ccy, x.Acct.Nm); err != nil {
			return nil, err
		}
		for j := range x.Bal {
			b, err := balanceFromXML(fmt.Sprintf("%s/Bal[%d]", path, j), &x.Bal[j])
			if err != nil {
				return nil, err
			}
			a.Balances = append(a.Balances, b)
		}
		for j := range x.Ntry {
			e, err := entryFromXML(fmt.Sprintf("%s/Ntry[%d]", path, j), &x.Ntry[j], &txs)
			if err != nil {
				return nil, err
			}
			a.Entries = append(a.Entries, e)
		}
		s.Accounts = append(s.Accounts, a)
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// WriteCamt053 validates s and writes it as a camt.053.001.08 message.
func WriteCamt053(w io.Writer, s *Statement) error {
	if err := s.validate(); err != nil {
		return err
	}
	doc := camt053Document{Msg: xmlBkToCstmrStmtV08{
		GrpHdr: xmlGroupHeader81{MsgID: s.MsgID, CreDtTm: formatDateTime(s.Created), AddtlInf: s.AdditionalInfo},
	}}
	for i := range s.Accounts {
		a := &s.Accounts[i]
		x := xmlAccountStatement{
			ID:           a.ID,
			ElctrncSeqNb: a.SequenceNumber,
			CreDtTm:      formatOptionalDateTime(a.Created),
			Acct:         account39XML(a.Account, a.Owner, a.Servicer),
			AddtlStmtInf: a.AdditionalInfo,
		}
		if !a.From.IsZero() {
			x.FrToDt = &xmlDateTimePeriod{FrDtTm: formatDateTime(a.From), ToDtTm: formatDateTime(a.To)}
		}
		for _, b := range a.Balances {
			x.Bal = append(x.Bal, xmlCashBalance{
				Tp:        xmlBalanceType{CdOrPrtry: xmlCodeOrProprietary{Cd: b.Type}},
				Amt:       xmlAmount{Ccy: b.Currency, Value: b.Amount},
				CdtDbtInd: creditDebit(b.Credit),
				Dt:        *dateChoiceXML(b.Date),
			})
		}
		for j := range a.Entries {
			x.Ntry = append(x.Ntry, a.Entries[j].toXML())
		}
		doc.Msg.Stmt = append(doc.Msg.Stmt, x)
	}
	return encodeDocument(w, &doc)
}

// numberRe is Number as used for ElctrncSeqNb: xs:decimal with
// fractionDigits 0 and totalDigits 18, written without sign.
var numberRe = regexp.MustCompile(`^[0-9]{1,18}$`)

func (s *Statement) validate() error {
	if err := validateGroupHeader(s.MsgID, s.Created, s.AdditionalInfo); err != nil {
		return err
	}
	if len(s.Accounts) == 0 {
		return invalidf("Stmt", "missing")
	}
	entries, txs := 0, 0
	for i := range s.Accounts {
		a := &s.Accounts[i]
		path := fmt.Sprintf("Stmt[%d]", i)
		if err := validateText(path+"/Id", a.ID, 35, true); err != nil {
			return err
		}
		if a.SequenceNumber != "" && !numberRe.MatchString(a.SequenceNumber) {
			return invalidf(path+"/ElctrncSeqNb", "%q is not an unsigned integer", a.SequenceNumber)
		}
		if a.From.IsZero() != a.To.IsZero() {
			return invalidf(path+"/FrToDt", "needs both FrDtTm and ToDtTm")
		}
		if err := validateReportedAccount(path+"/Acct", a.Account, a.Owner, a.Servicer); err != nil {
			return err
		}
		if len(a.Balances) == 0 {
			return invalidf(path+"/Bal", "missing (at least one balance is required)")
		}
		if err := checkCount("balances", len(a.Balances), MaxEntries); err != nil {
			return err
		}
		for j, b := range a.Balances {
			bp := fmt.Sprintf("%s/Bal[%d]", path, j)
			if err := validateCode(bp+"/Tp/CdOrPrtry/Cd", b.Type, true); err != nil {
				return err
			}
			if err := validateAmountAndCurrency(bp+"/Amt", b.Amount, b.Currency); err != nil {
				return err
			}
			if err := validateDateOrDateTime(bp+"/Dt", b.Date, true); err != nil {
				return err
			}
		}
		if err := validateText(path+"/AddtlStmtInf", a.AdditionalInfo, 500, false); err != nil {
			return err
		}
		entries += len(a.Entries)
		if err := checkCount("entries", entries, MaxEntries); err != nil {
			return err
		}
		for j := range a.Entries {
			txs += len(a.Entries[j].Details)
			if err := checkCount("transaction details", txs, MaxTransactions); err != nil {
				return err
			}
			if err := a.Entries[j].validate(fmt.Sprintf("%s/Ntry[%d]", path, j)); err != nil {
				return err
			}
		}
	}
	return nil
}

func balanceFromXML(path string, x *xmlCashBalance) (Balance, error) {
	if x.Tp.CdOrPrtry.Cd == "" && x.Tp.CdOrPrtry.Prtry != "" {
		return Balance{}, invalidf(path+"/Tp/CdOrPrtry/Prtry", "proprietary balance types are not supported")
	}
	b := Balance{Type: x.Tp.CdOrPrtry.Cd, Amount: trimSpace(x.Amt.Value), Currency: x.Amt.Ccy}
	switch x.CdtDbtInd {
	case credit:
		b.Credit = true
	case debit:
	case "":
		return Balance{}, invalidf(path+"/CdtDbtInd", "missing")
	default:
		return Balance{}, invalidf(path+"/CdtDbtInd", "%q is neither CRDT nor DBIT", x.CdtDbtInd)
	}
	d, err := dateChoiceFromXML(path+"/Dt", &x.Dt)
	if err != nil {
		return Balance{}, err
	}
	b.Date = d
	return b, nil
}
