package iso20022

import (
	"fmt"
	"strings"
)

// Types shared by camt.053.001.08 and camt.054.001.08, which use the same
// GroupHeader81, CashAccount39 and ReportEntry10 definitions.

// xmlGroupHeader81 mirrors GroupHeader81 (MsgId, CreDtTm, MsgRcpt,
// MsgPgntn, OrgnlBizQry, AddtlInf).
type xmlGroupHeader81 struct {
	MsgID    string `xml:"MsgId"`
	CreDtTm  string `xml:"CreDtTm"`
	AddtlInf string `xml:"AddtlInf,omitempty"`
}

// xmlEntry mirrors ReportEntry10.
type xmlEntry struct {
	NtryRef      string               `xml:"NtryRef,omitempty"`
	Amt          xmlAmount            `xml:"Amt"`
	CdtDbtInd    string               `xml:"CdtDbtInd"`
	RvslInd      *bool                `xml:"RvslInd,omitempty"`
	Sts          xmlCodeOrProprietary `xml:"Sts"`
	BookgDt      *xmlDateChoice       `xml:"BookgDt,omitempty"`
	ValDt        *xmlDateChoice       `xml:"ValDt,omitempty"`
	AcctSvcrRef  string               `xml:"AcctSvcrRef,omitempty"`
	BkTxCd       xmlBankTxCode        `xml:"BkTxCd"`
	NtryDtls     []xmlEntryDetails    `xml:"NtryDtls"`
	AddtlNtryInf string               `xml:"AddtlNtryInf,omitempty"`
}

// xmlBankTxCode mirrors BankTransactionCodeStructure4 (Domn, Prtry).
type xmlBankTxCode struct {
	Domn  *xmlBankTxDomain      `xml:"Domn,omitempty"`
	Prtry *xmlBankTxProprietary `xml:"Prtry,omitempty"`
}

// xmlBankTxDomain mirrors BankTransactionCodeStructure5 (Cd, Fmly).
type xmlBankTxDomain struct {
	Cd   string          `xml:"Cd"`
	Fmly xmlBankTxFamily `xml:"Fmly"`
}

// xmlBankTxFamily mirrors BankTransactionCodeStructure6 (Cd, SubFmlyCd).
type xmlBankTxFamily struct {
	Cd        string `xml:"Cd"`
	SubFmlyCd string `xml:"SubFmlyCd"`
}

// xmlBankTxProprietary mirrors ProprietaryBankTransactionCodeStructure1.
type xmlBankTxProprietary struct {
	Cd   string `xml:"Cd"`
	Issr string `xml:"Issr,omitempty"`
}

// xmlEntryDetails mirrors EntryDetails9 (Btch, TxDtls*).
type xmlEntryDetails struct {
	TxDtls []xmlTxDetails `xml:"TxDtls"`
}

// xmlTxDetails mirrors EntryTransaction10.
type xmlTxDetails struct {
	Refs       *xmlTxRefs         `xml:"Refs,omitempty"`
	Amt        *xmlAmount         `xml:"Amt,omitempty"`
	CdtDbtInd  string             `xml:"CdtDbtInd,omitempty"`
	RltdPties  *xmlRelatedParties `xml:"RltdPties,omitempty"`
	RltdAgts   *xmlRelatedAgents  `xml:"RltdAgts,omitempty"`
	RmtInf     *xmlRemittance     `xml:"RmtInf,omitempty"`
	RtrInf     *xmlReturnReason   `xml:"RtrInf,omitempty"`
	AddtlTxInf string             `xml:"AddtlTxInf,omitempty"`
}

// xmlReturnReason mirrors PaymentReturnReason5 (OrgnlBkTxCd, Orgtr, Rsn,
// AddtlInf*): why a payment came back.
type xmlReturnReason struct {
	Orgtr    *xmlParty             `xml:"Orgtr,omitempty"`
	Rsn      *xmlCodeOrProprietary `xml:"Rsn,omitempty"`
	AddtlInf []string              `xml:"AddtlInf"`
}

// xmlTxRefs mirrors TransactionReferences6.
type xmlTxRefs struct {
	MsgID       string `xml:"MsgId,omitempty"`
	AcctSvcrRef string `xml:"AcctSvcrRef,omitempty"`
	PmtInfID    string `xml:"PmtInfId,omitempty"`
	InstrID     string `xml:"InstrId,omitempty"`
	EndToEndID  string `xml:"EndToEndId,omitempty"`
	UETR        string `xml:"UETR,omitempty"`
	TxID        string `xml:"TxId,omitempty"`
}

// xmlRelatedParties mirrors TransactionParties6.
type xmlRelatedParties struct {
	Dbtr     *xmlParty40     `xml:"Dbtr,omitempty"`
	DbtrAcct *xmlCashAccount `xml:"DbtrAcct,omitempty"`
	Cdtr     *xmlParty40     `xml:"Cdtr,omitempty"`
	CdtrAcct *xmlCashAccount `xml:"CdtrAcct,omitempty"`
}

// xmlRelatedAgents mirrors TransactionAgents5.
type xmlRelatedAgents struct {
	DbtrAgt *xmlAgent `xml:"DbtrAgt,omitempty"`
	CdtrAgt *xmlAgent `xml:"CdtrAgt,omitempty"`
}

// Credit/debit indicator values (CreditDebitCode).
const (
	credit = "CRDT"
	debit  = "DBIT"
)

// Entry statuses (ExternalEntryStatus1Code).
const (
	EntryBooked  = "BOOK" // booked on the account: final
	EntryPending = "PDNG" // not yet booked; may still change or disappear
	EntryInfo    = "INFO" // for information only, never booked
)

// Entry is one booking on the reported account (a camt ReportEntry10): a
// deposit credited to the omnibus account, a payout debited from it, a fee.
type Entry struct {
	// Ref is the account servicer's reference for the booking
	// (Ntry/AcctSvcrRef), unique at the bank. For a credit it becomes the
	// mint's bankRef; it is optional in the XSD, so the bridge must refuse
	// entries that lack it.
	Ref string
	// EntryRef is the entry's reference within the report (Ntry/NtryRef).
	EntryRef string
	// Amount is the exact decimal amount, never negative; Credit gives the
	// direction.
	Amount   string
	Currency string
	Credit   bool // CdtDbtInd CRDT (true) or DBIT (false)
	Reversal bool // RvslInd: the entry reverses an earlier one
	// Status is the entry status code (Sts/Cd): EntryBooked, EntryPending
	// or EntryInfo.
	Status string
	// BookingDate and ValueDate are ISO 8601 dates (YYYY-MM-DD) or
	// date-times, as the bank sent them; empty when absent.
	BookingDate string
	ValueDate   string
	BankTxCode  BankTxCode
	// AdditionalInfo is AddtlNtryInf, free text.
	AdditionalInfo string
	// Details are the underlying transactions (NtryDtls/TxDtls), usually
	// exactly one. More than one means the bank booked a batch as a single
	// entry: the bridge must then not treat the entry as one deposit.
	Details []TxDetail
}

// Tx returns the entry's only transaction detail, or the zero TxDetail and
// false when there is none or several.
func (e Entry) Tx() (TxDetail, bool) {
	if len(e.Details) != 1 {
		return TxDetail{}, false
	}
	return e.Details[0], true
}

// BankTxCode is the bank transaction code of an entry: the ISO structured
// domain/family/sub-family (e.g. PMNT/RCDT/DMCT for a received domestic
// credit transfer) and/or a proprietary code.
type BankTxCode struct {
	Domain      string // Domn/Cd
	Family      string // Domn/Fmly/Cd
	SubFamily   string // Domn/Fmly/SubFmlyCd
	Proprietary string // Prtry/Cd
	Issuer      string // Prtry/Issr
}

// TxDetail is one transaction behind an entry (EntryTransaction10).
type TxDetail struct {
	// References (Refs). EndToEndID is the payer's reference carried
	// unchanged through the payment chain: for a payout it is the
	// EndToEndId of the bridge's pain.001.
	MsgID       string
	PmtInfID    string
	InstrID     string
	EndToEndID  string
	UETR        string
	TxID        string
	AcctSvcrRef string
	// Amount and Currency of the transaction (Amt), optional; when absent
	// the entry amount applies.
	Amount   string
	Currency string
	// CreditDebit is the transaction's own CdtDbtInd ("CRDT", "DBIT" or
	// empty).
	CreditDebit string
	Debtor      Party
	Creditor    Party
	// RemittanceInfo holds the unstructured remittance lines (RmtInf/Ustrd);
	// CreditorRef the structured creditor reference (Strd/CdtrRefInf/Ref).
	RemittanceInfo []string
	CreditorRef    string
	// Return is set when the transaction is a payment coming back (RtrInf):
	// the beneficiary's bank returned a credit transfer, whose references
	// (EndToEndID above) are the original's.
	Return         *ReturnInfo
	AdditionalInfo string // AddtlTxInf
}

// ReturnInfo is why a payment was returned (PaymentReturnReason5): an
// ExternalReturnReason1Code (AC04 closed account, AC01 incorrect account
// number, ...) or a proprietary reason, who returned it, and free text.
type ReturnInfo struct {
	Reason         string // Rsn/Cd
	Proprietary    string // Rsn/Prtry
	Originator     string // Orgtr/Nm
	AdditionalInfo []string
}

func (r *ReturnInfo) validate(path string) error {
	if r.Reason != "" && r.Proprietary != "" {
		return invalidf(path+"/Rsn", "both Cd and Prtry given; the XSD allows one")
	}
	if err := validateCode(path+"/Rsn/Cd", r.Reason, false); err != nil {
		return err
	}
	if err := validateText(path+"/Rsn/Prtry", r.Proprietary, 35, false); err != nil {
		return err
	}
	if err := validateText(path+"/Orgtr/Nm", r.Originator, 140, false); err != nil {
		return err
	}
	if err := checkCount("return reason lines", len(r.AdditionalInfo), MaxTransactions); err != nil {
		return err
	}
	for i, l := range r.AdditionalInfo {
		if err := validateText(fmt.Sprintf("%s/AddtlInf[%d]", path, i), l, 105, true); err != nil {
			return err
		}
	}
	return nil
}

func (e *Entry) validate(path string) error {
	if err := validateText(path+"/NtryRef", e.EntryRef, 35, false); err != nil {
		return err
	}
	if err := validateAmountAndCurrency(path+"/Amt", e.Amount, e.Currency); err != nil {
		return err
	}
	if err := validateCode(path+"/Sts/Cd", e.Status, true); err != nil {
		return err
	}
	if err := validateDateOrDateTime(path+"/BookgDt", e.BookingDate, false); err != nil {
		return err
	}
	if err := validateDateOrDateTime(path+"/ValDt", e.ValueDate, false); err != nil {
		return err
	}
	if err := validateText(path+"/AcctSvcrRef", e.Ref, 35, false); err != nil {
		return err
	}
	if err := e.BankTxCode.validate(path + "/BkTxCd"); err != nil {
		return err
	}
	if err := validateText(path+"/AddtlNtryInf", e.AdditionalInfo, 500, false); err != nil {
		return err
	}
	for i := range e.Details {
		if err := e.Details[i].validate(fmt.Sprintf("%s/NtryDtls/TxDtls[%d]", path, i)); err != nil {
			return err
		}
	}
	return nil
}

func (c BankTxCode) validate(path string) error {
	structured := c.Domain != "" || c.Family != "" || c.SubFamily != ""
	if structured {
		// Structures 5 and 6 require all three codes.
		if err := validateCode(path+"/Domn/Cd", c.Domain, true); err != nil {
			return err
		}
		if err := validateCode(path+"/Domn/Fmly/Cd", c.Family, true); err != nil {
			return err
		}
		if err := validateCode(path+"/Domn/Fmly/SubFmlyCd", c.SubFamily, true); err != nil {
			return err
		}
	}
	if c.Issuer != "" && c.Proprietary == "" {
		return invalidf(path+"/Prtry/Cd", "missing (issuer given)")
	}
	if err := validateText(path+"/Prtry/Cd", c.Proprietary, 35, false); err != nil {
		return err
	}
	return validateText(path+"/Prtry/Issr", c.Issuer, 35, false)
}

func (d *TxDetail) validate(path string) error {
	for _, f := range []struct{ name, v string }{
		{"MsgId", d.MsgID}, {"AcctSvcrRef", d.AcctSvcrRef}, {"PmtInfId", d.PmtInfID},
		{"InstrId", d.InstrID}, {"EndToEndId", d.EndToEndID}, {"TxId", d.TxID},
	} {
		if err := validateText(path+"/Refs/"+f.name, f.v, 35, false); err != nil {
			return err
		}
	}
	if d.UETR != "" && !uetrRe.MatchString(d.UETR) {
		return invalidf(path+"/Refs/UETR", "%q is not a UUIDv4", d.UETR)
	}
	if d.Amount != "" || d.Currency != "" {
		if err := validateAmountAndCurrency(path+"/Amt", d.Amount, d.Currency); err != nil {
			return err
		}
	}
	if d.CreditDebit != "" && d.CreditDebit != credit && d.CreditDebit != debit {
		return invalidf(path+"/CdtDbtInd", "%q is neither CRDT nor DBIT", d.CreditDebit)
	}
	if err := d.Debtor.validate(path+"/RltdPties/Dbtr", false); err != nil {
		return err
	}
	if err := d.Creditor.validate(path+"/RltdPties/Cdtr", false); err != nil {
		return err
	}
	if err := validateRemittance(path+"/RmtInf", d.RemittanceInfo, d.CreditorRef); err != nil {
		return err
	}
	if d.Return != nil {
		if err := d.Return.validate(path + "/RtrInf"); err != nil {
			return err
		}
	}
	return validateText(path+"/AddtlTxInf", d.AdditionalInfo, 500, false)
}

func creditDebit(isCredit bool) string {
	if isCredit {
		return credit
	}
	return debit
}

func dateChoiceXML(s string) *xmlDateChoice {
	switch {
	case s == "":
		return nil
	case containsT(s):
		return &xmlDateChoice{DtTm: s}
	default:
		return &xmlDateChoice{Dt: s}
	}
}

func dateChoiceFromXML(path string, d *xmlDateChoice) (string, error) {
	if d == nil {
		return "", nil
	}
	switch {
	case d.Dt != "" && d.DtTm != "":
		return "", invalidf(path, "both Dt and DtTm given")
	case d.Dt != "":
		return d.Dt, validateDate(path+"/Dt", d.Dt, true)
	case d.DtTm != "":
		if !containsT(d.DtTm) {
			return "", invalidf(path+"/DtTm", "%q is not a date-time", d.DtTm)
		}
		return d.DtTm, validateDateOrDateTime(path+"/DtTm", d.DtTm, true)
	}
	return "", invalidf(path, "neither Dt nor DtTm given")
}

func containsT(s string) bool { return strings.Contains(s, "T") }

func (e *Entry) toXML() xmlEntry {
	x := xmlEntry{
		NtryRef:      e.EntryRef,
		Amt:          xmlAmount{Ccy: e.Currency, Value: e.Amount},
		CdtDbtInd:    creditDebit(e.Credit),
		Sts:          xmlCodeOrProprietary{Cd: e.Status},
		BookgDt:      dateChoiceXML(e.BookingDate),
		ValDt:        dateChoiceXML(e.ValueDate),
		AcctSvcrRef:  e.Ref,
		AddtlNtryInf: e.AdditionalInfo,
	}
	if e.Reversal {
		t := true
		x.RvslInd = &t
	}
	if c := e.BankTxCode; c.Domain != "" {
		x.BkTxCd.Domn = &xmlBankTxDomain{Cd: c.Domain, Fmly: xmlBankTxFamily{Cd: c.Family, SubFmlyCd: c.SubFamily}}
	}
	if c := e.BankTxCode; c.Proprietary != "" {
		x.BkTxCd.Prtry = &xmlBankTxProprietary{Cd: c.Proprietary, Issr: c.Issuer}
	}
	if len(e.Details) > 0 {
		d := xmlEntryDetails{TxDtls: make([]xmlTxDetails, len(e.Details))}
		for i := range e.Details {
			d.TxDtls[i] = e.Details[i].toXML()
		}
		x.NtryDtls = []xmlEntryDetails{d}
	}
	return x
}

func (d *TxDetail) toXML() xmlTxDetails {
	x := xmlTxDetails{CdtDbtInd: d.CreditDebit, AddtlTxInf: d.AdditionalInfo}
	refs := xmlTxRefs{
		MsgID: d.MsgID, AcctSvcrRef: d.AcctSvcrRef, PmtInfID: d.PmtInfID, InstrID: d.InstrID,
		EndToEndID: d.EndToEndID, UETR: d.UETR, TxID: d.TxID,
	}
	if refs != (xmlTxRefs{}) {
		x.Refs = &refs
	}
	if d.Amount != "" {
		x.Amt = &xmlAmount{Ccy: d.Currency, Value: d.Amount}
	}
	var p xmlRelatedParties
	if d.Debtor.Name != "" {
		p.Dbtr = &xmlParty40{Pty: &xmlParty{Nm: d.Debtor.Name}}
	}
	p.DbtrAcct = d.Debtor.Account.toXMLPtr()
	if d.Creditor.Name != "" {
		p.Cdtr = &xmlParty40{Pty: &xmlParty{Nm: d.Creditor.Name}}
	}
	p.CdtrAcct = d.Creditor.Account.toXMLPtr()
	if p != (xmlRelatedParties{}) {
		x.RltdPties = &p
	}
	if d.Debtor.Agent != "" || d.Creditor.Agent != "" {
		x.RltdAgts = &xmlRelatedAgents{DbtrAgt: agentXML(d.Debtor.Agent), CdtrAgt: agentXML(d.Creditor.Agent)}
	}
	x.RmtInf = remittanceXML(d.RemittanceInfo, d.CreditorRef)
	if r := d.Return; r != nil {
		x.RtrInf = &xmlReturnReason{AddtlInf: r.AdditionalInfo}
		if r.Originator != "" {
			x.RtrInf.Orgtr = &xmlParty{Nm: r.Originator}
		}
		if r.Reason != "" || r.Proprietary != "" {
			x.RtrInf.Rsn = &xmlCodeOrProprietary{Cd: r.Reason, Prtry: r.Proprietary}
		}
	}
	return x
}

// entryFromXML converts and validates one entry. txCount accumulates the
// TxDtls seen so far in the message, to enforce MaxTransactions.
func entryFromXML(path string, x *xmlEntry, txCount *int) (Entry, error) {
	e := Entry{
		Ref:            x.AcctSvcrRef,
		EntryRef:       x.NtryRef,
		Amount:         trimSpace(x.Amt.Value),
		Currency:       x.Amt.Ccy,
		Status:         x.Sts.Cd,
		AdditionalInfo: x.AddtlNtryInf,
	}
	switch x.CdtDbtInd {
	case credit:
		e.Credit = true
	case debit:
	case "":
		return Entry{}, invalidf(path+"/CdtDbtInd", "missing")
	default:
		return Entry{}, invalidf(path+"/CdtDbtInd", "%q is neither CRDT nor DBIT", x.CdtDbtInd)
	}
	if x.RvslInd != nil {
		e.Reversal = *x.RvslInd
	}
	if x.Sts.Cd == "" && x.Sts.Prtry != "" {
		return Entry{}, invalidf(path+"/Sts/Prtry", "proprietary entry statuses are not supported")
	}
	var err error
	if e.BookingDate, err = dateChoiceFromXML(path+"/BookgDt", x.BookgDt); err != nil {
		return Entry{}, err
	}
	if e.ValueDate, err = dateChoiceFromXML(path+"/ValDt", x.ValDt); err != nil {
		return Entry{}, err
	}
	if d := x.BkTxCd.Domn; d != nil {
		e.BankTxCode.Domain, e.BankTxCode.Family, e.BankTxCode.SubFamily = d.Cd, d.Fmly.Cd, d.Fmly.SubFmlyCd
	}
	if p := x.BkTxCd.Prtry; p != nil {
		e.BankTxCode.Proprietary, e.BankTxCode.Issuer = p.Cd, p.Issr
	}
	for _, nd := range x.NtryDtls {
		*txCount += len(nd.TxDtls)
		if err := checkCount("transaction details", *txCount, MaxTransactions); err != nil {
			return Entry{}, err
		}
		for j := range nd.TxDtls {
			d, err := txDetailFromXML(fmt.Sprintf("%s/NtryDtls/TxDtls[%d]", path, len(e.Details)), &nd.TxDtls[j])
			if err != nil {
				return Entry{}, err
			}
			e.Details = append(e.Details, d)
		}
	}
	return e, e.validate(path)
}

func txDetailFromXML(path string, x *xmlTxDetails) (TxDetail, error) {
	d := TxDetail{CreditDebit: x.CdtDbtInd, AdditionalInfo: x.AddtlTxInf}
	if r := x.Refs; r != nil {
		d.MsgID, d.AcctSvcrRef, d.PmtInfID, d.InstrID = r.MsgID, r.AcctSvcrRef, r.PmtInfID, r.InstrID
		d.EndToEndID, d.UETR, d.TxID = r.EndToEndID, r.UETR, r.TxID
	}
	if x.Amt != nil {
		d.Amount, d.Currency = trimSpace(x.Amt.Value), x.Amt.Ccy
		if d.Amount == "" {
			return TxDetail{}, invalidf(path+"/Amt", "empty amount")
		}
	}
	var err error
	if p := x.RltdPties; p != nil {
		d.Debtor.Name = party40Name(p.Dbtr)
		d.Creditor.Name = party40Name(p.Cdtr)
		if d.Debtor.Account, err = optionalAccountFromXML(path+"/RltdPties/DbtrAcct", p.DbtrAcct); err != nil {
			return TxDetail{}, err
		}
		if d.Creditor.Account, err = optionalAccountFromXML(path+"/RltdPties/CdtrAcct", p.CdtrAcct); err != nil {
			return TxDetail{}, err
		}
	}
	if a := x.RltdAgts; a != nil {
		d.Debtor.Agent = agentBIC(a.DbtrAgt)
		d.Creditor.Agent = agentBIC(a.CdtrAgt)
	}
	d.RemittanceInfo, d.CreditorRef = remittanceFromXML(x.RmtInf)
	if r := x.RtrInf; r != nil {
		d.Return = &ReturnInfo{Originator: partyName(r.Orgtr)}
		if len(r.AddtlInf) > 0 {
			d.Return.AdditionalInfo = append([]string(nil), r.AddtlInf...)
		}
		if r.Rsn != nil {
			d.Return.Reason, d.Return.Proprietary = r.Rsn.Cd, r.Rsn.Prtry
		}
	}
	return d, nil
}
