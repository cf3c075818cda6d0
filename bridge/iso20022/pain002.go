package iso20022

import (
	"encoding/xml"
	"fmt"
	"io"
	"time"
)

// pain002Document is the root of a pain.002.001.10 message.
type pain002Document struct {
	XMLName xml.Name             `xml:"urn:iso:std:iso:20022:tech:xsd:pain.002.001.10 Document"`
	Msg     xmlCstmrPmtStsRptV10 `xml:"CstmrPmtStsRpt"`
}

// xmlCstmrPmtStsRptV10 mirrors CustomerPaymentStatusReportV10 (GrpHdr,
// OrgnlGrpInfAndSts, OrgnlPmtInfAndSts*, SplmtryData*).
type xmlCstmrPmtStsRptV10 struct {
	GrpHdr            xmlGroupHeader86            `xml:"GrpHdr"`
	OrgnlGrpInfAndSts xmlOriginalGroupHeader17    `xml:"OrgnlGrpInfAndSts"`
	OrgnlPmtInfAndSts []xmlOriginalPaymentInstr32 `xml:"OrgnlPmtInfAndSts"`
}

// xmlGroupHeader86 mirrors GroupHeader86 (MsgId, CreDtTm, InitgPty,
// FwdgAgt, DbtrAgt, CdtrAgt).
type xmlGroupHeader86 struct {
	MsgID   string `xml:"MsgId"`
	CreDtTm string `xml:"CreDtTm"`
}

// xmlOriginalGroupHeader17 mirrors OriginalGroupHeader17.
type xmlOriginalGroupHeader17 struct {
	OrgnlMsgID   string                `xml:"OrgnlMsgId"`
	OrgnlMsgNmID string                `xml:"OrgnlMsgNmId"`
	OrgnlCreDtTm string                `xml:"OrgnlCreDtTm,omitempty"`
	GrpSts       string                `xml:"GrpSts,omitempty"`
	StsRsnInf    []xmlStatusReasonInfo `xml:"StsRsnInf"`
}

// xmlOriginalPaymentInstr32 mirrors OriginalPaymentInstruction32.
type xmlOriginalPaymentInstr32 struct {
	OrgnlPmtInfID string                `xml:"OrgnlPmtInfId"`
	PmtInfSts     string                `xml:"PmtInfSts,omitempty"`
	StsRsnInf     []xmlStatusReasonInfo `xml:"StsRsnInf"`
	TxInfAndSts   []xmlPaymentTx105     `xml:"TxInfAndSts"`
}

// xmlPaymentTx105 mirrors PaymentTransaction105.
type xmlPaymentTx105 struct {
	StsID           string                `xml:"StsId,omitempty"`
	OrgnlInstrID    string                `xml:"OrgnlInstrId,omitempty"`
	OrgnlEndToEndID string                `xml:"OrgnlEndToEndId,omitempty"`
	TxSts           string                `xml:"TxSts,omitempty"`
	StsRsnInf       []xmlStatusReasonInfo `xml:"StsRsnInf"`
	AccptncDtTm     string                `xml:"AccptncDtTm,omitempty"`
	AcctSvcrRef     string                `xml:"AcctSvcrRef,omitempty"`
}

// xmlStatusReasonInfo mirrors StatusReasonInformation12 (Orgtr, Rsn,
// AddtlInf*).
type xmlStatusReasonInfo struct {
	Rsn      *xmlCodeOrProprietary `xml:"Rsn,omitempty"`
	AddtlInf []string              `xml:"AddtlInf"`
}

// Payment statuses (ExternalPaymentTransactionStatus1Code and
// ExternalPaymentGroupStatus1Code).
const (
	StatusReceived                    = "RCVD"
	StatusAcceptedTechnical           = "ACTC"
	StatusAcceptedCustomerProfile     = "ACCP"
	StatusAcceptedSettlementInProcess = "ACSP"
	StatusAcceptedSettlementCompleted = "ACSC"
	StatusPending                     = "PDNG"
	StatusPartiallyAccepted           = "PART"
	StatusRejected                    = "RJCT"
)

// StatusReport is a pain.002.001.10 CustomerPaymentStatusReport: the bank's
// answer to one pain.001, at group, payment-instruction and transaction
// level.
type StatusReport struct {
	MsgID   string    // GrpHdr/MsgId
	Created time.Time // GrpHdr/CreDtTm
	// The message reported on (OrgnlGrpInfAndSts).
	OriginalMsgID   string    // OrgnlMsgId: the pain.001 MsgId
	OriginalMsgName string    // OrgnlMsgNmId, e.g. Pain001Version
	OriginalCreated time.Time // OrgnlCreDtTm, zero when absent
	// GroupStatus applies to the whole original message (GrpSts), e.g.
	// StatusRejected for a refused file; empty when absent.
	GroupStatus  string
	GroupReasons []StatusReason
	Payments     []PaymentStatus // OrgnlPmtInfAndSts
}

// PaymentStatus is the status of one original payment instruction.
type PaymentStatus struct {
	OriginalPmtInfID string // OrgnlPmtInfId
	Status           string // PmtInfSts, empty when absent
	Reasons          []StatusReason
	Transactions     []TransactionStatus // TxInfAndSts
}

// TransactionStatus is the status of one original transfer.
type TransactionStatus struct {
	StatusID           string // StsId, the bank's id of this status
	OriginalInstrID    string // OrgnlInstrId
	OriginalEndToEndID string // OrgnlEndToEndId: the payout's EndToEndId
	Status             string // TxSts, empty when absent
	Reasons            []StatusReason
	AcceptanceTime     time.Time // AccptncDtTm, zero when absent
	AcctSvcrRef        string    // the bank's reference of the booking
}

// StatusReason explains a status (StatusReasonInformation12): a reason
// code from the ISO external code list (e.g. "AC04" closed account, "AM04"
// insufficient funds, "DUPL" duplicate) or a proprietary reason, plus free
// text lines of at most 105 characters.
type StatusReason struct {
	Code           string // Rsn/Cd
	Proprietary    string // Rsn/Prtry
	AdditionalInfo []string
}

// Rejected reports whether the transaction was rejected.
func (t TransactionStatus) Rejected() bool { return t.Status == StatusRejected }

// Settled reports whether the bank reports the transfer as executed
// (settlement completed).
func (t TransactionStatus) Settled() bool { return t.Status == StatusAcceptedSettlementCompleted }

// StatusOf resolves the status of the transfer with the given EndToEndId.
// Per the standard, a transaction without its own status takes that of its
// payment instruction, and that one the group's; found is false when the
// report neither lists the transaction nor carries a group status.
func (r *StatusReport) StatusOf(endToEndID string) (status string, reasons []StatusReason, found bool) {
	for _, p := range r.Payments {
		for _, t := range p.Transactions {
			if t.OriginalEndToEndID != endToEndID {
				continue
			}
			switch {
			case t.Status != "":
				return t.Status, t.Reasons, true
			case p.Status != "":
				return p.Status, p.Reasons, true
			case r.GroupStatus != "":
				return r.GroupStatus, r.GroupReasons, true
			}
			return "", nil, false
		}
	}
	if r.GroupStatus != "" {
		return r.GroupStatus, r.GroupReasons, true
	}
	return "", nil, false
}

// NewStatusReport builds the report that gives every transfer of the order o
// the same status (and reasons), at transaction, payment-instruction and
// group level: what a bank, or the bank core simulator, answers when it
// accepts, settles or rejects a whole pain.001.
func NewStatusReport(o *PaymentOrder, msgID string, created time.Time, status string, reasons ...StatusReason) *StatusReport {
	r := &StatusReport{
		MsgID: msgID, Created: created,
		OriginalMsgID: o.MsgID, OriginalMsgName: Pain001Version, OriginalCreated: o.Created,
		GroupStatus: status,
	}
	for _, p := range o.Payments {
		ps := PaymentStatus{OriginalPmtInfID: p.ID, Status: status}
		for _, t := range p.Transfers {
			ps.Transactions = append(ps.Transactions, TransactionStatus{
				OriginalInstrID: t.InstrID, OriginalEndToEndID: t.EndToEndID, Status: status,
				Reasons: append([]StatusReason(nil), reasons...),
			})
		}
		r.Payments = append(r.Payments, ps)
	}
	return r
}

// ParsePain002 reads and validates a pain.002.001.10 message. It reads at
// most MaxMessageSize bytes and refuses any other message or version.
func ParsePain002(r io.Reader) (*StatusReport, error) {
	data, err := readMessage(r)
	if err != nil {
		return nil, err
	}
	var doc pain002Document
	if err := decodeDocument(data, Pain002, &doc); err != nil {
		return nil, err
	}
	m := &doc.Msg
	g := &m.OrgnlGrpInfAndSts
	s := &StatusReport{MsgID: m.GrpHdr.MsgID, OriginalMsgID: g.OrgnlMsgID, OriginalMsgName: g.OrgnlMsgNmID, GroupStatus: g.GrpSts}
	if s.Created, err = parseDateTimeField("GrpHdr/CreDtTm", m.GrpHdr.CreDtTm, true); err != nil {
		return nil, err
	}
	if s.OriginalCreated, err = parseDateTimeField("OrgnlGrpInfAndSts/OrgnlCreDtTm", g.OrgnlCreDtTm, false); err != nil {
		return nil, err
	}
	if s.GroupReasons, err = reasonsFromXML("OrgnlGrpInfAndSts", g.StsRsnInf); err != nil {
		return nil, err
	}
	if err := checkCount("payment statuses", len(m.OrgnlPmtInfAndSts), MaxTransactions); err != nil {
		return nil, err
	}
	txs := 0
	for i := range m.OrgnlPmtInfAndSts {
		x := &m.OrgnlPmtInfAndSts[i]
		path := fmt.Sprintf("OrgnlPmtInfAndSts[%d]", i)
		txs += len(x.TxInfAndSts)
		if err := checkCount("transaction statuses", txs, MaxTransactions); err != nil {
			return nil, err
		}
		p := PaymentStatus{OriginalPmtInfID: x.OrgnlPmtInfID, Status: x.PmtInfSts}
		if p.Reasons, err = reasonsFromXML(path, x.StsRsnInf); err != nil {
			return nil, err
		}
		for j := range x.TxInfAndSts {
			tx := &x.TxInfAndSts[j]
			tp := fmt.Sprintf("%s/TxInfAndSts[%d]", path, j)
			t := TransactionStatus{
				StatusID: tx.StsID, OriginalInstrID: tx.OrgnlInstrID, OriginalEndToEndID: tx.OrgnlEndToEndID,
				Status: tx.TxSts, AcctSvcrRef: tx.AcctSvcrRef,
			}
			if t.Reasons, err = reasonsFromXML(tp, tx.StsRsnInf); err != nil {
				return nil, err
			}
			if t.AcceptanceTime, err = parseDateTimeField(tp+"/AccptncDtTm", tx.AccptncDtTm, false); err != nil {
				return nil, err
			}
			p.Transactions = append(p.Transactions, t)
		}
		s.Payments = append(s.Payments, p)
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// WritePain002 validates s and writes it as a pain.002.001.10 message.
func WritePain002(w io.Writer, s *StatusReport) error {
	if err := s.validate(); err != nil {
		return err
	}
	doc := pain002Document{Msg: xmlCstmrPmtStsRptV10{
		GrpHdr: xmlGroupHeader86{MsgID: s.MsgID, CreDtTm: formatDateTime(s.Created)},
		OrgnlGrpInfAndSts: xmlOriginalGroupHeader17{
			OrgnlMsgID: s.OriginalMsgID, OrgnlMsgNmID: s.OriginalMsgName,
			OrgnlCreDtTm: formatOptionalDateTime(s.OriginalCreated),
			GrpSts:       s.GroupStatus, StsRsnInf: reasonsXML(s.GroupReasons),
		},
	}}
	for _, p := range s.Payments {
		x := xmlOriginalPaymentInstr32{OrgnlPmtInfID: p.OriginalPmtInfID, PmtInfSts: p.Status, StsRsnInf: reasonsXML(p.Reasons)}
		for _, t := range p.Transactions {
			x.TxInfAndSts = append(x.TxInfAndSts, xmlPaymentTx105{
				StsID: t.StatusID, OrgnlInstrID: t.OriginalInstrID, OrgnlEndToEndID: t.OriginalEndToEndID,
				TxSts: t.Status, StsRsnInf: reasonsXML(t.Reasons),
				AccptncDtTm: formatOptionalDateTime(t.AcceptanceTime), AcctSvcrRef: t.AcctSvcrRef,
			})
		}
		doc.Msg.OrgnlPmtInfAndSts = append(doc.Msg.OrgnlPmtInfAndSts, x)
	}
	return encodeDocument(w, &doc)
}

func (s *StatusReport) validate() error {
	if err := validateGroupHeader(s.MsgID, s.Created, ""); err != nil {
		return err
	}
	if err := validateText("OrgnlGrpInfAndSts/OrgnlMsgId", s.OriginalMsgID, 35, true); err != nil {
		return err
	}
	if err := validateText("OrgnlGrpInfAndSts/OrgnlMsgNmId", s.OriginalMsgName, 35, true); err != nil {
		return err
	}
	if err := validateCode("OrgnlGrpInfAndSts/GrpSts", s.GroupStatus, false); err != nil {
		return err
	}
	if err := validateReasons("OrgnlGrpInfAndSts", s.GroupReasons); err != nil {
		return err
	}
	if err := checkCount("payment statuses", len(s.Payments), MaxTransactions); err != nil {
		return err
	}
	txs := 0
	for i, p := range s.Payments {
		path := fmt.Sprintf("OrgnlPmtInfAndSts[%d]", i)
		if err := validateText(path+"/OrgnlPmtInfId", p.OriginalPmtInfID, 35, true); err != nil {
			return err
		}
		if err := validateCode(path+"/PmtInfSts", p.Status, false); err != nil {
			return err
		}
		if err := validateReasons(path, p.Reasons); err != nil {
			return err
		}
		txs += len(p.Transactions)
		if err := checkCount("transaction statuses", txs, MaxTransactions); err != nil {
			return err
		}
		for j, t := range p.Transactions {
			tp := fmt.Sprintf("%s/TxInfAndSts[%d]", path, j)
			for _, f := range []struct{ name, v string }{
				{"StsId", t.StatusID}, {"OrgnlInstrId", t.OriginalInstrID},
				{"OrgnlEndToEndId", t.OriginalEndToEndID}, {"AcctSvcrRef", t.AcctSvcrRef},
			} {
				if err := validateText(tp+"/"+f.name, f.v, 35, false); err != nil {
					return err
				}
			}
			if err := validateCode(tp+"/TxSts", t.Status, false); err != nil {
				return err
			}
			if err := validateReasons(tp, t.Reasons); err != nil {
				return err
			}
		}
	}
	return nil
}

func validateReasons(path string, rs []StatusReason) error {
	if err := checkCount("status reasons", len(rs), MaxTransactions); err != nil {
		return err
	}
	for i, r := range rs {
		rp := fmt.Sprintf("%s/StsRsnInf[%d]", path, i)
		if r.Code != "" && r.Proprietary != "" {
			return invalidf(rp+"/Rsn", "both Cd and Prtry given; the XSD allows one")
		}
		if err := validateCode(rp+"/Rsn/Cd", r.Code, false); err != nil {
			return err
		}
		if err := validateText(rp+"/Rsn/Prtry", r.Proprietary, 35, false); err != nil {
			return err
		}
		for j, l := range r.AdditionalInfo {
			if err := validateText(fmt.Sprintf("%s/AddtlInf[%d]", rp, j), l, 105, true); err != nil {
				return err
			}
		}
	}
	return nil
}

func reasonsXML(rs []StatusReason) []xmlStatusReasonInfo {
	var out []xmlStatusReasonInfo
	for _, r := range rs {
		x := xmlStatusReasonInfo{AddtlInf: r.AdditionalInfo}
		if r.Code != "" || r.Proprietary != "" {
			x.Rsn = &xmlCodeOrProprietary{Cd: r.Code, Prtry: r.Proprietary}
		}
		out = append(out, x)
	}
	return out
}

func reasonsFromXML(path string, xs []xmlStatusReasonInfo) ([]StatusReason, error) {
	if err := checkCount("status reasons", len(xs), MaxTransactions); err != nil {
		return nil, err
	}
	var out []StatusReason
	for i, x := range xs {
		r := StatusReason{}
		if len(x.AddtlInf) > 0 {
			r.AdditionalInfo = append([]string(nil), x.AddtlInf...)
		}
		if x.Rsn != nil {
			r.Code, r.Proprietary = x.Rsn.Cd, x.Rsn.Prtry
			if r.Code == "" && r.Proprietary == "" {
				return nil, invalidf(fmt.Sprintf("%s/StsRsnInf[%d]/Rsn", path, i), "neither Cd nor Prtry given")
			}
		}
		out = append(out, r)
	}
	return out, nil
}
