package iso20022

import (
	"fmt"
	"regexp"
)

// Shared encoding/xml types. Each mirrors one complexType of the pinned XSDs
// (the name is given in its comment) restricted to the elements the bridge
// needs; fields are declared in the XSD's sequence order because
// encoding/xml marshals in field order, and xsd_test.go checks names, order
// and cardinality against testdata/xsd. Child elements carry no namespace in
// their tags: they inherit the default namespace declared on <Document>.

// xmlAmount mirrors ActiveOrHistoricCurrencyAndAmount (simpleContent with a
// required Ccy attribute). The value stays a string: see ValidateAmount.
type xmlAmount struct {
	Ccy   string `xml:"Ccy,attr"`
	Value string `xml:",chardata"`
}

// xmlCodeOrProprietary mirrors the many two-branch choices of a code and a
// proprietary text: AccountSchemeName1Choice, EntryStatus1Choice,
// BalanceType10Choice, CreditorReferenceType1Choice, StatusReason6Choice.
type xmlCodeOrProprietary struct {
	Cd    string `xml:"Cd,omitempty"`
	Prtry string `xml:"Prtry,omitempty"`
}

// xmlDateChoice mirrors DateAndDateTime2Choice.
type xmlDateChoice struct {
	Dt   string `xml:"Dt,omitempty"`
	DtTm string `xml:"DtTm,omitempty"`
}

// xmlAccountID mirrors AccountIdentification4Choice.
type xmlAccountID struct {
	IBAN string               `xml:"IBAN,omitempty"`
	Othr *xmlGenericAccountID `xml:"Othr,omitempty"`
}

// xmlGenericAccountID mirrors GenericAccountIdentification1.
type xmlGenericAccountID struct {
	ID      string                `xml:"Id"`
	SchmeNm *xmlCodeOrProprietary `xml:"SchmeNm,omitempty"`
}

// xmlCashAccount mirrors CashAccount38 (Id, Tp, Ccy, Nm, Prxy).
type xmlCashAccount struct {
	ID  xmlAccountID `xml:"Id"`
	Ccy string       `xml:"Ccy,omitempty"`
	Nm  string       `xml:"Nm,omitempty"`
}

// xmlCashAccount39 mirrors CashAccount39, the reported account of camt
// messages (CashAccount38 plus Ownr and Svcr).
type xmlCashAccount39 struct {
	ID   xmlAccountID `xml:"Id"`
	Ccy  string       `xml:"Ccy,omitempty"`
	Nm   string       `xml:"Nm,omitempty"`
	Ownr *xmlParty    `xml:"Ownr,omitempty"`
	Svcr *xmlAgent    `xml:"Svcr,omitempty"`
}

// xmlParty mirrors PartyIdentification135 (Nm, PstlAdr, Id, CtryOfRes,
// CtctDtls); only the name is used.
type xmlParty struct {
	Nm string        `xml:"Nm,omitempty"`
	ID *xmlParty38ID `xml:"Id,omitempty"`
}

// xmlParty38ID mirrors Party38Choice (OrgId | PrvtId); only an
// organisation's other identification is used: the id the bank gave its
// customer (the initiating party).
type xmlParty38ID struct {
	OrgID *xmlOrgID `xml:"OrgId,omitempty"`
}

// xmlOrgID mirrors OrganisationIdentification29 (AnyBIC, LEI, Othr*).
type xmlOrgID struct {
	Othr []xmlGenericOrgID `xml:"Othr"`
}

// xmlGenericOrgID mirrors GenericOrganisationIdentification1 (Id, SchmeNm, Issr).
type xmlGenericOrgID struct {
	ID string `xml:"Id"`
}

// xmlParty40 mirrors Party40Choice (Pty | Agt), used by camt related parties.
type xmlParty40 struct {
	Pty *xmlParty `xml:"Pty,omitempty"`
	Agt *xmlAgent `xml:"Agt,omitempty"`
}

// xmlAgent mirrors BranchAndFinancialInstitutionIdentification6.
type xmlAgent struct {
	FinInstnID xmlFinInstnID `xml:"FinInstnId"`
}

// xmlFinInstnID mirrors FinancialInstitutionIdentification18 (BICFI,
// ClrSysMmbId, LEI, Nm, PstlAdr, Othr).
type xmlFinInstnID struct {
	BICFI       string          `xml:"BICFI,omitempty"`
	ClrSysMmbID *xmlClrSysMmbID `xml:"ClrSysMmbId,omitempty"`
	Nm          string          `xml:"Nm,omitempty"`
}

// xmlClrSysMmbID mirrors ClearingSystemMemberIdentification2 (ClrSysId, MmbId).
type xmlClrSysMmbID struct {
	ClrSysID *xmlCodeOrProprietary `xml:"ClrSysId,omitempty"`
	MmbID    string                `xml:"MmbId"`
}

// xmlRemittance mirrors RemittanceInformation16 (Ustrd*, Strd*).
type xmlRemittance struct {
	Ustrd []string           `xml:"Ustrd"`
	Strd  []xmlStructuredRmt `xml:"Strd"`
}

// xmlStructuredRmt mirrors StructuredRemittanceInformation16; only the
// creditor reference is used.
type xmlStructuredRmt struct {
	CdtrRefInf *xmlCreditorRefInfo `xml:"CdtrRefInf,omitempty"`
}

// xmlCreditorRefInfo mirrors CreditorReferenceInformation2 (Tp, Ref).
type xmlCreditorRefInfo struct {
	Tp  *xmlCreditorRefType `xml:"Tp,omitempty"`
	Ref string              `xml:"Ref,omitempty"`
}

// xmlCreditorRefType mirrors CreditorReferenceType2 (CdOrPrtry, Issr).
type xmlCreditorRefType struct {
	CdOrPrtry xmlCodeOrProprietary `xml:"CdOrPrtry"`
	Issr      string               `xml:"Issr,omitempty"`
}

// Account identifies a cash account: by IBAN, or by another (e.g. domestic)
// account number. Exactly one of IBAN and Other is set, as the XSD's
// AccountIdentification4Choice demands.
type Account struct {
	IBAN     string // Id/IBAN
	Other    string // Id/Othr/Id, at most 34 characters
	Scheme   string // Id/Othr/SchmeNm/Cd, e.g. "BBAN"; optional
	Currency string // Ccy; optional
	Name     string // Nm; optional
}

// IsZero reports whether no account is given.
func (a Account) IsZero() bool { return a == Account{} }

// ID returns the account number, whichever form it takes.
func (a Account) ID() string {
	if a.IBAN != "" {
		return a.IBAN
	}
	return a.Other
}

func (a Account) validate(path string) error {
	switch {
	case a.IBAN != "" && a.Other != "":
		return invalidf(path+"/Id", "both IBAN and Othr given; the XSD allows one")
	case a.IBAN == "" && a.Other == "":
		return invalidf(path+"/Id", "missing account identification")
	case a.IBAN != "":
		if err := CheckIBAN(a.IBAN); err != nil {
			return invalidf(path+"/Id/IBAN", "%v", err)
		}
		if a.Scheme != "" {
			return invalidf(path+"/Id", "a scheme name only applies to Othr")
		}
	default:
		if err := validateText(path+"/Id/Othr/Id", a.Other, 34, true); err != nil {
			return err
		}
		if err := validateCode(path+"/Id/Othr/SchmeNm/Cd", a.Scheme, false); err != nil {
			return err
		}
	}
	if a.Currency != "" && !currencyRe.MatchString(a.Currency) {
		return invalidf(path+"/Ccy", "%q is not a currency code", a.Currency)
	}
	return validateText(path+"/Nm", a.Name, 70, false)
}

func (a Account) accountID() xmlAccountID {
	if a.IBAN != "" {
		return xmlAccountID{IBAN: a.IBAN}
	}
	o := &xmlGenericAccountID{ID: a.Other}
	if a.Scheme != "" {
		o.SchmeNm = &xmlCodeOrProprietary{Cd: a.Scheme}
	}
	return xmlAccountID{Othr: o}
}

func (a Account) toXML() xmlCashAccount {
	return xmlCashAccount{ID: a.accountID(), Ccy: a.Currency, Nm: a.Name}
}

func (a Account) toXMLPtr() *xmlCashAccount {
	if a.IsZero() {
		return nil
	}
	x := a.toXML()
	return &x
}

func accountFromXML(path string, id xmlAccountID, ccy, name string) (Account, error) {
	a := Account{IBAN: id.IBAN, Currency: ccy, Name: name}
	if id.Othr != nil {
		a.Other = id.Othr.ID
		if id.Othr.SchmeNm != nil {
			if id.Othr.SchmeNm.Prtry != "" {
				return Account{}, invalidf(path+"/Id/Othr/SchmeNm/Prtry", "proprietary account schemes are not supported")
			}
			a.Scheme = id.Othr.SchmeNm.Cd
		}
		if a.Other == "" {
			return Account{}, invalidf(path+"/Id/Othr/Id", "missing")
		}
	}
	return a, a.validate(path)
}

func optionalAccountFromXML(path string, x *xmlCashAccount) (Account, error) {
	if x == nil {
		return Account{}, nil
	}
	return accountFromXML(path, x.ID, x.Ccy, x.Nm)
}

// Party is a debtor or creditor: a name, an account, and the BIC of the bank
// that services the account. Every field is optional in the messages.
type Party struct {
	Name    string  // Nm, at most 140 characters
	Account Account // the party's account (DbtrAcct / CdtrAcct)
	Agent   string  // BIC of the party's bank (DbtrAgt / CdtrAgt BICFI)
	// AgentMember identifies the party's bank by its clearing system
	// member id (FinInstnId/ClrSysMmbId/MmbId), for banks without a BIC
	// or schemes that route by it; AgentClearing is the clearing system
	// (ClrSysId/Cd, e.g. "HKNCC"), optional.
	AgentMember   string
	AgentClearing string
}

// IsZero reports whether nothing is known about the party.
func (p Party) IsZero() bool { return p == Party{} }

func (p Party) validate(path string, accountRequired bool) error {
	if err := validateText(path+"/Nm", p.Name, 140, false); err != nil {
		return err
	}
	if !p.Account.IsZero() || accountRequired {
		if err := p.Account.validate(path + "Acct"); err != nil {
			return err
		}
	}
	if err := validateText(path+"Agt/FinInstnId/ClrSysMmbId/MmbId", p.AgentMember, 35, false); err != nil {
		return err
	}
	if p.AgentClearing != "" && p.AgentMember == "" {
		return invalidf(path+"Agt/FinInstnId/ClrSysMmbId/MmbId", "missing (a clearing system is given)")
	}
	// ExternalClearingSystemIdentification1Code is 1-5 characters (HKNCC, USABA).
	if p.AgentClearing != "" && !clearingRe.MatchString(p.AgentClearing) {
		return invalidf(path+"Agt/FinInstnId/ClrSysMmbId/ClrSysId/Cd", "%q is not 1-5 upper-case letters or digits", p.AgentClearing)
	}
	return validateBIC(path+"Agt/FinInstnId/BICFI", p.Agent)
}

// agentOf writes a party's bank: its BIC and/or clearing member id.
func (p Party) agentOf() *xmlAgent {
	if p.Agent == "" && p.AgentMember == "" {
		return nil
	}
	a := &xmlAgent{FinInstnID: xmlFinInstnID{BICFI: p.Agent}}
	if p.AgentMember != "" {
		a.FinInstnID.ClrSysMmbID = &xmlClrSysMmbID{MmbID: p.AgentMember}
		if p.AgentClearing != "" {
			a.FinInstnID.ClrSysMmbID.ClrSysID = &xmlCodeOrProprietary{Cd: p.AgentClearing}
		}
	}
	return a
}

// readAgent reads a party's bank back.
func (p *Party) readAgent(a *xmlAgent) {
	if a == nil {
		return
	}
	p.Agent = a.FinInstnID.BICFI
	if m := a.FinInstnID.ClrSysMmbID; m != nil {
		p.AgentMember = m.MmbID
		if m.ClrSysID != nil {
			p.AgentClearing = m.ClrSysID.Cd
		}
	}
}

func (p Party) partyXML() *xmlParty {
	if p.Name == "" {
		return nil
	}
	return &xmlParty{Nm: p.Name}
}

func agentXML(bic string) *xmlAgent {
	if bic == "" {
		return nil
	}
	return &xmlAgent{FinInstnID: xmlFinInstnID{BICFI: bic}}
}

func agentBIC(a *xmlAgent) string {
	if a == nil {
		return ""
	}
	return a.FinInstnID.BICFI
}

func partyName(p *xmlParty) string {
	if p == nil {
		return ""
	}
	return p.Nm
}

// party40Name reads the name of a Party40Choice, whichever branch is used:
// a bank that is itself the debtor is reported under Agt.
func party40Name(p *xmlParty40) string {
	switch {
	case p == nil:
		return ""
	case p.Pty != nil:
		return p.Pty.Nm
	case p.Agt != nil:
		return p.Agt.FinInstnID.Nm
	}
	return ""
}

func validateRemittance(path string, lines []string, creditorRef string) error {
	for i, l := range lines {
		if err := validateText(fmt.Sprintf("%s/Ustrd[%d]", path, i), l, 140, true); err != nil {
			return err
		}
	}
	return validateText(path+"/Strd/CdtrRefInf/Ref", creditorRef, 35, false)
}

func remittanceXML(lines []string, creditorRef string) *xmlRemittance {
	if len(lines) == 0 && creditorRef == "" {
		return nil
	}
	r := &xmlRemittance{Ustrd: lines}
	if creditorRef != "" {
		r.Strd = []xmlStructuredRmt{{CdtrRefInf: &xmlCreditorRefInfo{Ref: creditorRef}}}
	}
	return r
}

// remittanceFromXML returns the unstructured lines and the first structured
// creditor reference; other structured remittance data is not used.
func remittanceFromXML(r *xmlRemittance) ([]string, string) {
	if r == nil {
		return nil, ""
	}
	var ref string
	for _, s := range r.Strd {
		if s.CdtrRefInf != nil && s.CdtrRefInf.Ref != "" {
			ref = s.CdtrRefInf.Ref
			break
		}
	}
	var lines []string
	if len(r.Ustrd) > 0 {
		lines = append(lines, r.Ustrd...)
	}
	return lines, ref
}

// CheckIBAN checks an IBAN (ISO 13616): the XSD's shape, and the check
// digits: moved to the end with letters as 10..35, the number is 1 mod 97.
// A mistyped IBAN fails this before a payment order carries it.
func CheckIBAN(iban string) error {
	if !ibanRe.MatchString(iban) {
		return fmt.Errorf("%q is not an IBAN (two letters, two check digits, up to 30 letters or digits)", iban)
	}
	if r := mod97(iban[4:] + iban[:4]); r != 1 {
		return fmt.Errorf("IBAN %q: the check digits do not match (mod 97 gives %d, want 1)", iban, r)
	}
	return nil
}

// clearingRe is the shape of an ExternalClearingSystemIdentification1Code.
var clearingRe = regexp.MustCompile(`^[A-Z0-9]{1,5}$`)

// rfRe is the shape of an ISO 11649 creditor reference: RF, two check
// digits, 1 to 21 letters or digits.
var rfRe = regexp.MustCompile(`^RF[0-9]{2}[A-Z0-9]{1,21}$`)

// CheckCreditorReference checks an ISO 11649 structured creditor
// reference ("RF18539007547034"): its shape and its check digits, computed
// as for an IBAN (mod 97 of the reference with "RF" and the digits moved to
// the end is 1). A payer who mistypes it is caught here instead of paying
// someone else's wallet.
func CheckCreditorReference(ref string) error {
	if !rfRe.MatchString(ref) {
		return fmt.Errorf("%q is not an ISO 11649 creditor reference (RF, two check digits, 1 to 21 letters or digits)", ref)
	}
	if mod97(ref[4:]+ref[:4]) != 1 {
		return fmt.Errorf("creditor reference %q: the check digits do not match", ref)
	}
	return nil
}

// mod97 is the ISO 7064 MOD 97-10 remainder of s, letters counting as
// 10..35.
func mod97(s string) int {
	r := 0
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			r = (r*10 + int(c-'0')) % 97
		case c >= 'A' && c <= 'Z':
			r = (r*100 + int(c-'A'+10)) % 97
		case c >= 'a' && c <= 'z':
			r = (r*100 + int(c-'a'+10)) % 97
		}
	}
	return r
}
