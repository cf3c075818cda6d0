package iso20022

import (
	"encoding/xml"
	"fmt"
	"io"
	"time"
)

// camt054Document is the root of a camt.054.001.08 message.
type camt054Document struct {
	XMLName xml.Name                    `xml:"urn:iso:std:iso:20022:tech:xsd:camt.054.001.08 Document"`
	Msg     xmlBkToCstmrDbtCdtNtfctnV08 `xml:"BkToCstmrDbtCdtNtfctn"`
}

// xmlBkToCstmrDbtCdtNtfctnV08 mirrors BankToCustomerDebitCreditNotificationV08
// (GrpHdr, Ntfctn+, SplmtryData*).
type xmlBkToCstmrDbtCdtNtfctnV08 struct {
	GrpHdr xmlGroupHeader81         `xml:"GrpHdr"`
	Ntfctn []xmlAccountNotification `xml:"Ntfctn"`
}

// xmlAccountNotification mirrors AccountNotification17.
type xmlAccountNotification struct {
	ID             string           `xml:"Id"`
	CreDtTm        string           `xml:"CreDtTm,omitempty"`
	Acct           xmlCashAccount39 `xml:"Acct"`
	Ntry           []xmlEntry       `xml:"Ntry"`
	AddtlNtfctnInf string           `xml:"AddtlNtfctnInf,omitempty"`
}

// Notification is a camt.054.001.08 BankToCustomerDebitCreditNotification:
// the bank core's push of individual credits and debits on an account,
// sent as they are booked (or pending).
type Notification struct {
	MsgID   string    // GrpHdr/MsgId, unique per message from the bank
	Created time.Time // GrpHdr/CreDtTm
	// AdditionalInfo is GrpHdr/AddtlInf, free text.
	AdditionalInfo string
	// Accounts holds one block per notified account (Ntfctn); the bank core
	// of an omnibus setup sends exactly one.
	Accounts []AccountNotification
}

// AccountNotification is the part of a Notification about one account.
type AccountNotification struct {
	ID             string    // Ntfctn/Id
	Created        time.Time // Ntfctn/CreDtTm, zero when absent
	Account        Account   // Ntfctn/Acct
	Owner          string    // Ntfctn/Acct/Ownr/Nm, optional
	Servicer       string    // Ntfctn/Acct/Svcr BIC, optional
	Entries        []Entry   // Ntfctn/Ntry
	AdditionalInfo string    // Ntfctn/AddtlNtfctnInf
}

// Entries returns the entries of every account block, in message order.
func (n *Notification) Entries() []Entry {
	var out []Entry
	for _, a := range n.Accounts {
		out = append(out, a.Entries...)
	}
	return out
}

// ParseCamt054 reads and validates a camt.054.001.08 message. It reads at
// most MaxMessageSize bytes and refuses any other message or version.
func ParseCamt054(r io.Reader) (*Notification, error) {
	data, err := readMessage(r)
	if err != nil {
		return nil, err
	}
	var doc camt054Document
	if err := decodeDocument(data, Camt054, &doc); err != nil {
		return nil, err
	}
	m := &doc.Msg
	n := &Notification{MsgID: m.GrpHdr.MsgID, AdditionalInfo: m.GrpHdr.AddtlInf}
	if n.Created, err = parseDateTimeField("GrpHdr/CreDtTm", m.GrpHdr.CreDtTm, true); err != nil {
		return nil, err
	}
	if len(m.Ntfctn) == 0 {
		return nil, invalidf("Ntfctn", "missing")
	}
	entries, txs := 0, 0
	for i := range m.Ntfctn {
		x := &m.Ntfctn[i]
		path := fmt.Sprintf("Ntfctn[%d]", i)
		entries += len(x.Ntry)
		if err := checkCount("entries", entries, MaxEntries); err != nil {
			return nil, err
		}
		a := AccountNotification{ID: x.ID, Owner: partyName(x.Acct.Ownr), Servicer: agentBIC(x.Acct.Svcr), AdditionalInfo: x.AddtlNtfctnInf}
		if a.Created, err = parseDateTimeField(path+"/CreDtTm", x.CreDtTm, false); err != nil {
			return nil, err
		}
		if a.Account, err = accountFromXML(path+"/Acct", x.Acct.ID, x.Acct.Ccy, x.Acct.Nm); err != nil {
			return nil, err
		}
		for j := range x.Ntry {
			e, err := entryFromXML(fmt.Sprintf("%s/Ntry[%d]", path, j), &x.Ntry[j], &txs)
			if err != nil {
				return nil, err
			}
			a.Entries = append(a.Entries, e)
		}
		n.Accounts = append(n.Accounts, a)
	}
	if err := n.validate(); err != nil {
		return nil, err
	}
	return n, nil
}

// WriteCamt054 validates n and writes it as a camt.054.001.08 message.
func WriteCamt054(w io.Writer, n *Notification) error {
	if err := n.validate(); err != nil {
		return err
	}
	doc := camt054Document{Msg: xmlBkToCstmrDbtCdtNtfctnV08{
		GrpHdr: xmlGroupHeader81{MsgID: n.MsgID, CreDtTm: formatDateTime(n.Created), AddtlInf: n.AdditionalInfo},
	}}
	for i := range n.Accounts {
		a := &n.Accounts[i]
		x := xmlAccountNotification{
			ID:             a.ID,
			CreDtTm:        formatOptionalDateTime(a.Created),
			Acct:           account39XML(a.Account, a.Owner, a.Servicer),
			AddtlNtfctnInf: a.AdditionalInfo,
		}
		for j := range a.Entries {
			x.Ntry = append(x.Ntry, a.Entries[j].toXML())
		}
		doc.Msg.Ntfctn = append(doc.Msg.Ntfctn, x)
	}
	return encodeDocument(w, &doc)
}

func (n *Notification) validate() error {
	if err := validateGroupHeader(n.MsgID, n.Created, n.AdditionalInfo); err != nil {
		return err
	}
	if len(n.Accounts) == 0 {
		return invalidf("Ntfctn", "missing")
	}
	entries, txs := 0, 0
	for i := range n.Accounts {
		a := &n.Accounts[i]
		path := fmt.Sprintf("Ntfctn[%d]", i)
		if err := validateText(path+"/Id", a.ID, 35, true); err != nil {
			return err
		}
		if err := validateReportedAccount(path+"/Acct", a.Account, a.Owner, a.Servicer); err != nil {
			return err
		}
		if err := validateText(path+"/AddtlNtfctnInf", a.AdditionalInfo, 500, false); err != nil {
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

func validateGroupHeader(msgID string, created time.Time, addtlInf string) error {
	if err := validateText("GrpHdr/MsgId", msgID, 35, true); err != nil {
		return err
	}
	if created.IsZero() {
		return invalidf("GrpHdr/CreDtTm", "missing")
	}
	return validateText("GrpHdr/AddtlInf", addtlInf, 500, false)
}

func validateReportedAccount(path string, a Account, owner, servicer string) error {
	if err := a.validate(path); err != nil {
		return err
	}
	if err := validateText(path+"/Ownr/Nm", owner, 140, false); err != nil {
		return err
	}
	return validateBIC(path+"/Svcr/FinInstnId/BICFI", servicer)
}

func account39XML(a Account, owner, servicer string) xmlCashAccount39 {
	x := xmlCashAccount39{ID: a.accountID(), Ccy: a.Currency, Nm: a.Name, Svcr: agentXML(servicer)}
	if owner != "" {
		x.Ownr = &xmlParty{Nm: owner}
	}
	return x
}
