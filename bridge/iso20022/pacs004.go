package iso20022

import (
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"time"
)

// pacs004Document is the root of a pacs.004.001.10 message.
type pacs004Document struct {
	XMLName xml.Name            `xml:"urn:iso:std:iso:20022:tech:xsd:pacs.004.001.10 Document"`
	Msg     xmlPaymentReturnV10 `xml:"PmtRtr"`
}

// xmlPaymentReturnV10 mirrors PaymentReturnV10 (GrpHdr, OrgnlGrpInf,
// TxInf*, SplmtryData*).
type xmlPaymentReturnV10 struct {
	GrpHdr xmlGroupHeader90  `xml:"GrpHdr"`
	TxInf  []xmlPaymentTx118 `xml:"TxInf"`
}

// xmlGroupHeader90 mirrors GroupHeader90 (MsgId, CreDtTm, ..., NbOfTxs,
// ..., SttlmInf, ...).
type xmlGroupHeader90 struct {
	MsgID    string                   `xml:"MsgId"`
	CreDtTm  string                   `xml:"CreDtTm"`
	NbOfTxs  string                   `xml:"NbOfTxs"`
	SttlmInf xmlSettlementInstruction `xml:"SttlmInf"`
}

// xmlSettlementInstruction mirrors SettlementInstruction7; only the
// settlement method is used.
type xmlSettlementInstruction struct {
	SttlmMtd string `xml:"SttlmMtd"`
}

// xmlPaymentTx118 mirrors PaymentTransaction118: one returned payment.
type xmlPaymentTx118 struct {
	RtrID              string                `xml:"RtrId,omitempty"`
	OrgnlGrpInf        *xmlOriginalGroupInfo `xml:"OrgnlGrpInf,omitempty"`
	OrgnlInstrID       string                `xml:"OrgnlInstrId,omitempty"`
	OrgnlEndToEndID    string                `xml:"OrgnlEndToEndId,omitempty"`
	OrgnlUETR          string                `xml:"OrgnlUETR,omitempty"`
	RtrdIntrBkSttlmAmt xmlAmount             `xml:"RtrdIntrBkSttlmAmt"`
	IntrBkSttlmDt      string                `xml:"IntrBkSttlmDt,omitempty"`
	RtrRsnInf          []xmlReturnReason6    `xml:"RtrRsnInf"`
}

// xmlOriginalGroupInfo mirrors OriginalGroupInformation29.
type xmlOriginalGroupInfo struct {
	OrgnlMsgID   string `xml:"OrgnlMsgId"`
	OrgnlMsgNmID string `xml:"OrgnlMsgNmId"`
}

// xmlReturnReason6 mirrors PaymentReturnReason6 (Orgtr, Rsn, AddtlInf*).
type xmlReturnReason6 struct {
	Orgtr    *xmlParty             `xml:"Orgtr,omitempty"`
	Rsn      *xmlCodeOrProprietary `xml:"Rsn,omitempty"`
	AddtlInf []string              `xml:"AddtlInf"`
}

// Settlement methods (SettlementMethod1Code).
const (
	SettlementInstructedAgent = "INDA"
	SettlementInstructingAgt  = "INGA"
	SettlementCoverMethod     = "COVE"
	SettlementClearingSystem  = "CLRG"
)

// PaymentReturn is a pacs.004.001.10 PaymentReturn: a bank sends back
// payments it received (the beneficiary's account is closed, unknown,
// blocked, ...). Each Return names the original payment by its
// EndToEndId, InstrId and UETR.
type PaymentReturn struct {
	MsgID            string
	Created          time.Time
	SettlementMethod string // GrpHdr/SttlmInf/SttlmMtd
	Returns          []Return
}

// Return is one returned payment (TxInf).
type Return struct {
	ReturnID           string // RtrId
	OriginalMsgID      string // OrgnlGrpInf/OrgnlMsgId
	OriginalMsgName    string // OrgnlGrpInf/OrgnlMsgNmId
	OriginalInstrID    string
	OriginalEndToEndID string
	OriginalUETR       string
	// Amount and Currency returned (RtrdIntrBkSttlmAmt): the original less
	// any charges the banks took.
	Amount   string
	Currency string
	// SettlementDate is IntrBkSttlmDt (YYYY-MM-DD), optional.
	SettlementDate string
	Reason         ReturnInfo // RtrRsnInf (the first)
}

// ParsePacs004 reads and validates a pacs.004.001.10 message. It reads at
// most MaxMessageSize bytes and refuses any other message or version.
func ParsePacs004(r io.Reader) (*PaymentReturn, error) {
	data, err := readMessage(r)
	if err != nil {
		return nil, err
	}
	var doc pacs004Document
	if err := decodeDocument(data, Pacs004, &doc); err != nil {
		return nil, err
	}
	m := &doc.Msg
	p := &PaymentReturn{MsgID: m.GrpHdr.MsgID, SettlementMethod: m.GrpHdr.SttlmInf.SttlmMtd}
	if p.Created, err = parseDateTimeField("GrpHdr/CreDtTm", m.GrpHdr.CreDtTm, true); err != nil {
		return nil, err
	}
	if err := checkCount("returns", len(m.TxInf), MaxTransactions); err != nil {
		return nil, err
	}
	for i := range m.TxInf {
		x := &m.TxInf[i]
		rt := Return{ReturnID: x.RtrID, OriginalInstrID: x.OrgnlInstrID, OriginalEndToEndID: x.OrgnlEndToEndID, OriginalUETR: x.OrgnlUETR,
			Amount: trimSpace(x.RtrdIntrBkSttlmAmt.Value), Currency: x.RtrdIntrBkSttlmAmt.Ccy, SettlementDate: x.IntrBkSttlmDt}
		if g := x.OrgnlGrpInf; g != nil {
			rt.OriginalMsgID, rt.OriginalMsgName = g.OrgnlMsgID, g.OrgnlMsgNmID
		}
		if len(x.RtrRsnInf) > 0 {
			rr := x.RtrRsnInf[0]
			rt.Reason = ReturnInfo{Originator: partyName(rr.Orgtr)}
			if len(rr.AddtlInf) > 0 {
				rt.Reason.AdditionalInfo = append([]string(nil), rr.AddtlInf...)
			}
			if rr.Rsn != nil {
				rt.Reason.Reason, rt.Reason.Proprietary = rr.Rsn.Cd, rr.Rsn.Prtry
			}
		}
		p.Returns = append(p.Returns, rt)
	}
	if n, err := strconv.Atoi(m.GrpHdr.NbOfTxs); err != nil || n != len(p.Returns) || !numberRe.MatchString(m.GrpHdr.NbOfTxs) {
		return nil, invalidf("GrpHdr/NbOfTxs", "says %q transactions, message has %d", m.GrpHdr.NbOfTxs, len(p.Returns))
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// WritePacs004 validates p and writes it as a pacs.004.001.10 message.
func WritePacs004(w io.Writer, p *PaymentReturn) error {
	if err := p.validate(); err != nil {
		return err
	}
	doc := pacs004Document{Msg: xmlPaymentReturnV10{GrpHdr: xmlGroupHeader90{MsgID: p.MsgID, CreDtTm: formatDateTime(p.Created),
		NbOfTxs: strconv.Itoa(len(p.Returns)), SttlmInf: xmlSettlementInstruction{SttlmMtd: p.SettlementMethod}}}}
	for _, rt := range p.Returns {
		x := xmlPaymentTx118{RtrID: rt.ReturnID, OrgnlInstrID: rt.OriginalInstrID, OrgnlEndToEndID: rt.OriginalEndToEndID,
			OrgnlUETR: rt.OriginalUETR, RtrdIntrBkSttlmAmt: xmlAmount{Ccy: rt.Currency, Value: rt.Amount}, IntrBkSttlmDt: rt.SettlementDate}
		if rt.OriginalMsgID != "" {
			x.OrgnlGrpInf = &xmlOriginalGroupInfo{OrgnlMsgID: rt.OriginalMsgID, OrgnlMsgNmID: rt.OriginalMsgName}
		}
		r := rt.Reason
		if r.Reason != "" || r.Proprietary != "" || r.Originator != "" || len(r.AdditionalInfo) > 0 {
			rr := xmlReturnReason6{AddtlInf: r.AdditionalInfo}
			if r.Originator != "" {
				rr.Orgtr = &xmlParty{Nm: r.Originator}
			}
			if r.Reason != "" || r.Proprietary != "" {
				rr.Rsn = &xmlCodeOrProprietary{Cd: r.Reason, Prtry: r.Proprietary}
			}
			x.RtrRsnInf = []xmlReturnReason6{rr}
		}
		doc.Msg.TxInf = append(doc.Msg.TxInf, x)
	}
	return encodeDocument(w, &doc)
}

func (p *PaymentReturn) validate() error {
	if err := validateGroupHeader(p.MsgID, p.Created, ""); err != nil {
		return err
	}
	switch p.SettlementMethod {
	case SettlementInstructedAgent, SettlementInstructingAgt, SettlementCoverMethod, SettlementClearingSystem:
	default:
		return invalidf("GrpHdr/SttlmInf/SttlmMtd", "%q is not INDA, INGA, COVE or CLRG", p.SettlementMethod)
	}
	if err := checkCount("returns", len(p.Returns), MaxTransactions); err != nil {
		return err
	}
	for i, rt := range p.Returns {
		path := fmt.Sprintf("TxInf[%d]", i)
		for _, f := range []struct{ name, v string }{{"RtrId", rt.ReturnID}, {"OrgnlInstrId", rt.OriginalInstrID}, {"OrgnlEndToEndId", rt.OriginalEndToEndID}} {
			if err := validateText(path+"/"+f.name, f.v, 35, false); err != nil {
				return err
			}
		}
		if rt.OriginalMsgID != "" || rt.OriginalMsgName != "" {
			if err := validateText(path+"/OrgnlGrpInf/OrgnlMsgId", rt.OriginalMsgID, 35, true); err != nil {
				return err
			}
			if err := validateText(path+"/OrgnlGrpInf/OrgnlMsgNmId", rt.OriginalMsgName, 35, true); err != nil {
				return err
			}
		}
		if rt.OriginalUETR != "" && !uetrRe.MatchString(rt.OriginalUETR) {
			return invalidf(path+"/OrgnlUETR", "%q is not a UUIDv4", rt.OriginalUETR)
		}
		if err := validateAmountAndCurrency(path+"/RtrdIntrBkSttlmAmt", rt.Amount, rt.Currency); err != nil {
			return err
		}
		if err := validateDate(path+"/IntrBkSttlmDt", rt.SettlementDate, false); err != nil {
			return err
		}
		if err := rt.Reason.validate(path + "/RtrRsnInf"); err != nil {
			return err
		}
	}
	return nil
}
