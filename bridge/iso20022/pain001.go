package iso20022

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"time"
)

// pain001Document is the root of a pain.001.001.09 message.
type pain001Document struct {
	XMLName xml.Name               `xml:"urn:iso:std:iso:20022:tech:xsd:pain.001.001.09 Document"`
	Msg     xmlCstmrCdtTrfInitnV09 `xml:"CstmrCdtTrfInitn"`
}

// xmlCstmrCdtTrfInitnV09 mirrors CustomerCreditTransferInitiationV09
// (GrpHdr, PmtInf+, SplmtryData*).
type xmlCstmrCdtTrfInitnV09 struct {
	GrpHdr xmlGroupHeader85          `xml:"GrpHdr"`
	PmtInf []xmlPaymentInstruction30 `xml:"PmtInf"`
}

// xmlGroupHeader85 mirrors GroupHeader85 (MsgId, CreDtTm, Authstn{0,2},
// NbOfTxs, CtrlSum, InitgPty, FwdgAgt).
type xmlGroupHeader85 struct {
	MsgID    string   `xml:"MsgId"`
	CreDtTm  string   `xml:"CreDtTm"`
	NbOfTxs  string   `xml:"NbOfTxs"`
	CtrlSum  string   `xml:"CtrlSum,omitempty"`
	InitgPty xmlParty `xml:"InitgPty"`
}

// xmlPaymentInstruction30 mirrors PaymentInstruction30.
type xmlPaymentInstruction30 struct {
	PmtInfID    string                `xml:"PmtInfId"`
	PmtMtd      string                `xml:"PmtMtd"`
	BtchBookg   *bool                 `xml:"BtchBookg,omitempty"`
	NbOfTxs     string                `xml:"NbOfTxs,omitempty"`
	CtrlSum     string                `xml:"CtrlSum,omitempty"`
	PmtTpInf    *xmlPaymentTypeInfo   `xml:"PmtTpInf,omitempty"`
	ReqdExctnDt xmlDateChoice         `xml:"ReqdExctnDt"`
	Dbtr        xmlParty              `xml:"Dbtr"`
	DbtrAcct    xmlCashAccount        `xml:"DbtrAcct"`
	DbtrAgt     xmlAgent              `xml:"DbtrAgt"`
	ChrgBr      string                `xml:"ChrgBr,omitempty"`
	CdtTrfTxInf []xmlCreditTransferTx `xml:"CdtTrfTxInf"`
}

// xmlPaymentTypeInfo mirrors PaymentTypeInformation26 (InstrPrty,
// SvcLvl*, LclInstrm, CtgyPurp); only the service level is used.
type xmlPaymentTypeInfo struct {
	SvcLvl []xmlCodeOrProprietary `xml:"SvcLvl"`
}

// xmlCreditTransferTx mirrors CreditTransferTransaction34.
type xmlCreditTransferTx struct {
	PmtID    xmlPaymentID    `xml:"PmtId"`
	Amt      xmlAmountType4  `xml:"Amt"`
	CdtrAgt  *xmlAgent       `xml:"CdtrAgt,omitempty"`
	Cdtr     *xmlParty       `xml:"Cdtr,omitempty"`
	CdtrAcct *xmlCashAccount `xml:"CdtrAcct,omitempty"`
	RmtInf   *xmlRemittance  `xml:"RmtInf,omitempty"`
}

// xmlPaymentID mirrors PaymentIdentification6 (InstrId, EndToEndId, UETR).
type xmlPaymentID struct {
	InstrID    string `xml:"InstrId,omitempty"`
	EndToEndID string `xml:"EndToEndId"`
	UETR       string `xml:"UETR,omitempty"`
}

// xmlAmountType4 mirrors AmountType4Choice (InstdAmt | EqvtAmt); only the
// instructed amount is supported.
type xmlAmountType4 struct {
	InstdAmt *xmlAmount `xml:"InstdAmt,omitempty"`
	EqvtAmt  *struct{}  `xml:"EqvtAmt,omitempty"`
}

// Payment method (PaymentMethod3Code): the bridge only sends credit transfers.
const paymentMethodTransfer = "TRF"

// Charge bearer codes (ChargeBearerType1Code).
const (
	ChargesDebtor   = "DEBT"
	ChargesCreditor = "CRED"
	ChargesShared   = "SHAR"
	ChargesSLEV     = "SLEV" // following the payment scheme's service level
)

// PaymentOrder is a pain.001.001.09 CustomerCreditTransferInitiation: the
// bridge's order to the bank to pay out of the omnibus account.
type PaymentOrder struct {
	// MsgID identifies the message (GrpHdr/MsgId). Banks refuse a second
	// message with a MsgId they have seen, which is what makes a resent
	// payout harmless; see PayoutIDs.
	MsgID           string
	Created         time.Time // GrpHdr/CreDtTm
	InitiatingParty string    // GrpHdr/InitgPty/Nm
	// InitiatingPartyID is the id the bank gave its customer
	// (GrpHdr/InitgPty/Id/OrgId/Othr/Id): banks match an order to the
	// contract that allows it by this.
	InitiatingPartyID string
	Payments          []PaymentInfo
}

// PaymentInfo is one debit instruction (PmtInf): transfers out of one
// account, executed on one date.
type PaymentInfo struct {
	ID string // PmtInfId
	// ExecutionDate is the requested execution date (ReqdExctnDt), an ISO
	// 8601 date or date-time.
	ExecutionDate string
	// Debtor is the ordering account holder: Dbtr/Nm, DbtrAcct (required)
	// and DbtrAgt BIC.
	Debtor       Party
	ChargeBearer string // ChrgBr, optional: ChargesDebtor, ...
	// ServiceLevel is PmtTpInf/SvcLvl/Cd (ExternalServiceLevel1Code, e.g.
	// NURG, URGP, SEPA), optional.
	ServiceLevel string
	Transfers    []Transfer
}

// Transfer is one credit transfer (CdtTrfTxInf).
type Transfer struct {
	InstrID string // PmtId/InstrId, optional
	// EndToEndID (PmtId/EndToEndId) travels unchanged to the creditor and
	// back in the bank's camt and pain.002 messages: it is how a payout is
	// matched to its withdrawal.
	EndToEndID string
	// UETR (PmtId/UETR) is the payment's universally unique reference, a
	// UUID version 4: banks and SWIFT gpi track and deduplicate by it.
	UETR     string
	Amount   string // Amt/InstdAmt, exact decimal
	Currency string // Amt/InstdAmt/@Ccy
	// Creditor is the payee: Cdtr/Nm, CdtrAcct and CdtrAgt BIC. The XSD
	// makes them optional, but a transfer without a creditor account cannot
	// be executed, so Creditor.Account is required here.
	Creditor       Party
	RemittanceInfo []string // RmtInf/Ustrd
	CreditorRef    string   // RmtInf/Strd/CdtrRefInf/Ref
}

// PayoutIDs derives the identifiers of the pain.001 that pays out one
// withdrawal. They depend only on the withdrawal id, so an order rebuilt and
// resent after a crash carries the same MsgId, PmtInfId and EndToEndId and
// the bank deduplicates it instead of paying twice. Each is 35 characters of
// [A-Z0-9] (Max35Text, and safe for every payment scheme's character set):
// a fixed prefix and 128 bits of SHA-256 of the withdrawal id.
func PayoutIDs(withdrawalID string) (msgID, pmtInfID, endToEndID string) {
	sum := sha256.Sum256([]byte("tally/payout/v1\x00" + withdrawalID))
	h := hex.EncodeToString(sum[:16]) // 32 hex characters
	upper := []byte(h)
	for i, c := range upper {
		if c >= 'a' && c <= 'f' {
			upper[i] = c - 'a' + 'A'
		}
	}
	id := string(upper)
	return "TLM" + id, "TLP" + id, "TLE" + id
}

// NewPayout builds the payment order that pays out one withdrawal: one
// message, one payment instruction, one transfer, with identifiers from
// PayoutIDs. The transfer's EndToEndID (and InstrID) are set accordingly.
func NewPayout(withdrawalID string, created time.Time, executionDate, initiatingParty string, debtor Party, t Transfer) *PaymentOrder {
	msgID, pmtInfID, e2e := PayoutIDs(withdrawalID)
	t.EndToEndID, t.InstrID = e2e, e2e
	return &PaymentOrder{
		MsgID:           msgID,
		Created:         created,
		InitiatingParty: initiatingParty,
		Payments: []PaymentInfo{{
			ID:            pmtInfID,
			ExecutionDate: executionDate,
			Debtor:        debtor,
			Transfers:     []Transfer{t},
		}},
	}
}

// Transfers returns every transfer of the order, in message order.
func (o *PaymentOrder) Transfers() []Transfer {
	var out []Transfer
	for _, p := range o.Payments {
		out = append(out, p.Transfers...)
	}
	return out
}

// ParsePain001 reads and validates a pain.001.001.09 message, including its
// control totals (NbOfTxs, CtrlSum). It reads at most MaxMessageSize bytes
// and refuses any other message or version.
func ParsePain001(r io.Reader) (*PaymentOrder, error) {
	data, err := readMessage(r)
	if err != nil {
		return nil, err
	}
	var doc pain001Document
	if err := decodeDocument(data, Pain001, &doc); err != nil {
		return nil, err
	}
	m := &doc.Msg
	o := &PaymentOrder{MsgID: m.GrpHdr.MsgID, InitiatingParty: m.GrpHdr.InitgPty.Nm}
	if id := m.GrpHdr.InitgPty.ID; id != nil && id.OrgID != nil && len(id.OrgID.Othr) > 0 {
		o.InitiatingPartyID = id.OrgID.Othr[0].ID
	}
	if o.Created, err = parseDateTimeField("GrpHdr/CreDtTm", m.GrpHdr.CreDtTm, true); err != nil {
		return nil, err
	}
	if len(m.PmtInf) == 0 {
		return nil, invalidf("PmtInf", "missing")
	}
	var all []string
	for i := range m.PmtInf {
		x := &m.PmtInf[i]
		path := fmt.Sprintf("PmtInf[%d]", i)
		if err := checkCount("transfers", len(all)+len(x.CdtTrfTxInf), MaxTransactions); err != nil {
			return nil, err
		}
		if x.PmtMtd != paymentMethodTransfer {
			return nil, invalidf(path+"/PmtMtd", "%q is not supported (only TRF)", x.PmtMtd)
		}
		p := PaymentInfo{ID: x.PmtInfID, Debtor: Party{Name: x.Dbtr.Nm}, ChargeBearer: x.ChrgBr}
		p.Debtor.readAgent(&x.DbtrAgt)
		if x.PmtTpInf != nil {
			for _, l := range x.PmtTpInf.SvcLvl {
				if l.Cd != "" {
					p.ServiceLevel = l.Cd
					break
				}
			}
		}
		if p.ExecutionDate, err = dateChoiceFromXML(path+"/ReqdExctnDt", &x.ReqdExctnDt); err != nil {
			return nil, err
		}
		if p.Debtor.Account, err = accountFromXML(path+"/DbtrAcct", x.DbtrAcct.ID, x.DbtrAcct.Ccy, x.DbtrAcct.Nm); err != nil {
			return nil, err
		}
		var amounts []string
		for j := range x.CdtTrfTxInf {
			t, err := transferFromXML(fmt.Sprintf("%s/CdtTrfTxInf[%d]", path, j), &x.CdtTrfTxInf[j])
			if err != nil {
				return nil, err
			}
			p.Transfers = append(p.Transfers, t)
			amounts = append(amounts, t.Amount)
		}
		if err := checkControl(path, x.NbOfTxs, x.CtrlSum, amounts); err != nil {
			return nil, err
		}
		all = append(all, amounts...)
		o.Payments = append(o.Payments, p)
	}
	if m.GrpHdr.NbOfTxs == "" {
		return nil, invalidf("GrpHdr/NbOfTxs", "missing")
	}
	if err := checkControl("GrpHdr", m.GrpHdr.NbOfTxs, m.GrpHdr.CtrlSum, all); err != nil {
		return nil, err
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	return o, nil
}

// WritePain001 validates o and writes it as a pain.001.001.09 message, with
// NbOfTxs and CtrlSum computed for the group and each payment instruction
// and batch booking off, so the bank books (and reports) every transfer as
// its own entry.
func WritePain001(w io.Writer, o *PaymentOrder) error {
	if err := o.validate(); err != nil {
		return err
	}
	var all []string
	doc := pain001Document{}
	noBatch := false
	for i := range o.Payments {
		p := &o.Payments[i]
		var amounts []string
		x := xmlPaymentInstruction30{
			PmtInfID:    p.ID,
			PmtMtd:      paymentMethodTransfer,
			BtchBookg:   &noBatch,
			ReqdExctnDt: *dateChoiceXML(p.ExecutionDate),
			Dbtr:        xmlParty{Nm: p.Debtor.Name},
			DbtrAcct:    p.Debtor.Account.toXML(),
			ChrgBr:      p.ChargeBearer,
		}
		if a := p.Debtor.agentOf(); a != nil {
			x.DbtrAgt = *a
		}
		if p.ServiceLevel != "" {
			x.PmtTpInf = &xmlPaymentTypeInfo{SvcLvl: []xmlCodeOrProprietary{{Cd: p.ServiceLevel}}}
		}
		for j := range p.Transfers {
			t := &p.Transfers[j]
			x.CdtTrfTxInf = append(x.CdtTrfTxInf, xmlCreditTransferTx{
				PmtID:    xmlPaymentID{InstrID: t.InstrID, EndToEndID: t.EndToEndID, UETR: t.UETR},
				Amt:      xmlAmountType4{InstdAmt: &xmlAmount{Ccy: t.Currency, Value: t.Amount}},
				CdtrAgt:  t.Creditor.agentOf(),
				Cdtr:     t.Creditor.partyXML(),
				CdtrAcct: t.Creditor.Account.toXMLPtr(),
				RmtInf:   remittanceXML(t.RemittanceInfo, t.CreditorRef),
			})
			amounts = append(amounts, t.Amount)
		}
		sum, err := SumAmounts(amounts...)
		if err != nil {
			return err
		}
		if err := validateDecimalNumber(fmt.Sprintf("PmtInf[%d]/CtrlSum", i), sum); err != nil {
			return err
		}
		x.NbOfTxs, x.CtrlSum = strconv.Itoa(len(amounts)), sum
		all = append(all, amounts...)
		doc.Msg.PmtInf = append(doc.Msg.PmtInf, x)
	}
	sum, err := SumAmounts(all...)
	if err != nil {
		return err
	}
	if err := validateDecimalNumber("GrpHdr/CtrlSum", sum); err != nil {
		return err
	}
	doc.Msg.GrpHdr = xmlGroupHeader85{
		MsgID: o.MsgID, CreDtTm: formatDateTime(o.Created),
		NbOfTxs: strconv.Itoa(len(all)), CtrlSum: sum,
		InitgPty: xmlParty{Nm: o.InitiatingParty},
	}
	if o.InitiatingPartyID != "" {
		doc.Msg.GrpHdr.InitgPty.ID = &xmlParty38ID{OrgID: &xmlOrgID{Othr: []xmlGenericOrgID{{ID: o.InitiatingPartyID}}}}
	}
	return encodeDocument(w, &doc)
}

func (o *PaymentOrder) validate() error {
	if err := validateGroupHeader(o.MsgID, o.Created, ""); err != nil {
		return err
	}
	if err := validateText("GrpHdr/InitgPty/Nm", o.InitiatingParty, 140, false); err != nil {
		return err
	}
	if err := validateText("GrpHdr/InitgPty/Id/OrgId/Othr/Id", o.InitiatingPartyID, 35, false); err != nil {
		return err
	}
	if len(o.Payments) == 0 {
		return invalidf("PmtInf", "missing")
	}
	n := 0
	for i := range o.Payments {
		p := &o.Payments[i]
		path := fmt.Sprintf("PmtInf[%d]", i)
		if err := validateText(path+"/PmtInfId", p.ID, 35, true); err != nil {
			return err
		}
		if err := validateDateOrDateTime(path+"/ReqdExctnDt", p.ExecutionDate, true); err != nil {
			return err
		}
		if err := p.Debtor.validate(path+"/Dbtr", true); err != nil {
			return err
		}
		if err := validateCode(path+"/PmtTpInf/SvcLvl/Cd", p.ServiceLevel, false); err != nil {
			return err
		}
		switch p.ChargeBearer {
		case "", ChargesDebtor, ChargesCreditor, ChargesShared, ChargesSLEV:
		default:
			return invalidf(path+"/ChrgBr", "%q is not a ChargeBearerType1Code", p.ChargeBearer)
		}
		if len(p.Transfers) == 0 {
			return invalidf(path+"/CdtTrfTxInf", "missing")
		}
		n += len(p.Transfers)
		if err := checkCount("transfers", n, MaxTransactions); err != nil {
			return err
		}
		for j := range p.Transfers {
			t := &p.Transfers[j]
			tp := fmt.Sprintf("%s/CdtTrfTxInf[%d]", path, j)
			if err := validateText(tp+"/PmtId/InstrId", t.InstrID, 35, false); err != nil {
				return err
			}
			if err := validateText(tp+"/PmtId/EndToEndId", t.EndToEndID, 35, true); err != nil {
				return err
			}
			if t.UETR != "" && !uetrRe.MatchString(t.UETR) {
				return invalidf(tp+"/PmtId/UETR", "%q is not a UUIDv4", t.UETR)
			}
			if err := validateAmountAndCurrency(tp+"/Amt/InstdAmt", t.Amount, t.Currency); err != nil {
				return err
			}
			if err := t.Creditor.validate(tp+"/Cdtr", true); err != nil {
				return err
			}
			if err := validateRemittance(tp+"/RmtInf", t.RemittanceInfo, t.CreditorRef); err != nil {
				return err
			}
		}
	}
	return nil
}

func transferFromXML(path string, x *xmlCreditTransferTx) (Transfer, error) {
	if x.Amt.EqvtAmt != nil {
		return Transfer{}, invalidf(path+"/Amt/EqvtAmt", "equivalent amounts are not supported (use InstdAmt)")
	}
	if x.Amt.InstdAmt == nil {
		return Transfer{}, invalidf(path+"/Amt/InstdAmt", "missing")
	}
	t := Transfer{
		InstrID:    x.PmtID.InstrID,
		EndToEndID: x.PmtID.EndToEndID,
		UETR:       x.PmtID.UETR,
		Amount:     trimSpace(x.Amt.InstdAmt.Value),
		Currency:   x.Amt.InstdAmt.Ccy,
		Creditor:   Party{Name: partyName(x.Cdtr)},
	}
	t.Creditor.readAgent(x.CdtrAgt)
	var err error
	if t.Creditor.Account, err = optionalAccountFromXML(path+"/CdtrAcct", x.CdtrAcct); err != nil {
		return Transfer{}, err
	}
	t.RemittanceInfo, t.CreditorRef = remittanceFromXML(x.RmtInf)
	if err := validateAmountAndCurrency(path+"/Amt/InstdAmt", t.Amount, t.Currency); err != nil {
		return Transfer{}, err
	}
	return t, nil
}

// checkControl verifies a NbOfTxs / CtrlSum pair against the transfers it
// covers. A mismatch means a truncated or tampered file; the bank would
// reject it, and so does the simulator.
func checkControl(path, nbOfTxs, ctrlSum string, amounts []string) error {
	if nbOfTxs != "" {
		if !numberRe.MatchString(nbOfTxs) || len(nbOfTxs) > 15 {
			return invalidf(path+"/NbOfTxs", "%q is not Max15NumericText", nbOfTxs)
		}
		if n, err := strconv.Atoi(nbOfTxs); err != nil || n != len(amounts) {
			return invalidf(path+"/NbOfTxs", "says %s transactions, message has %d", nbOfTxs, len(amounts))
		}
	}
	if ctrlSum != "" {
		ctrlSum = trimSpace(ctrlSum)
		if err := validateDecimalNumber(path+"/CtrlSum", ctrlSum); err != nil {
			return err
		}
		sum, err := SumAmounts(amounts...)
		if err != nil {
			return err
		}
		if !decimalEqual(sum, ctrlSum) {
			return invalidf(path+"/CtrlSum", "says %s, transactions add up to %s", ctrlSum, sum)
		}
	}
	return nil
}
