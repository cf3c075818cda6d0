package bridge

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"

	"github.com/tally-ledger/tally/bridge/iso20022"
)

// This file maps ISO 20022 messages (package iso20022 parses and writes
// them, pinned to one version each) to and from the bridge's own types.

// parseCamt054 reads a camt.054.001.08 notification into entries:
//
//   - a credit is a deposit, keyed by DepositKey: the reported account,
//     the transaction's reference (DepositRef) and the booking date. An
//     entry booked as a batch (several TxDtls) is one deposit per
//     transaction, each with its own amount; a batch whose transactions
//     carry no amounts cannot be split and is held as one.
//   - Account is the customer's account the money came from (the debtor
//     account of the transaction, TxDtls/RltdPties/DbtrAcct): the account
//     a customer links to a wallet.
//   - a credit whose transaction carries return information (RtrInf) is a
//     payout coming back, named by its EndToEndId; a reversed debit
//     (RvslInd on a credit entry) is a payout taken back too.
//   - a debit entry is a payout leaving the omnibus account: each of its
//     transactions' EndToEndId names a payout (one entry may book a batch);
//     a reversed credit (RvslInd on a debit entry) takes a deposit back,
//     named by the original's references.
//   - Booked is Sts/Cd = BOOK: a pending entry may still disappear.
func parseCamt054(body []byte) (*Notification, error) {
	n, err := iso20022.ParseCamt054(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	out := &Notification{MsgID: n.MsgID}
	for _, a := range n.Accounts {
		for _, e := range a.Entries {
			out.Entries = append(out.Entries, entriesOf(a.Account.ID(), e)...)
		}
	}
	return out, nil
}

// entriesOf splits one camt entry on reported account acct into the
// bridge's entries (see parseCamt054).
func entriesOf(acct string, e iso20022.Entry) []Entry {
	entryRef := e.Ref
	if entryRef == "" {
		entryRef = e.EntryRef
	}
	base := Entry{ReportedAccount: acct, BookingDate: dateOnly(e.BookingDate), EntryRef: entryRef, Amount: e.Amount, Currency: e.Currency,
		Credit: e.Credit, Booked: e.Status == iso20022.EntryBooked, Reversal: e.Reversal}
	details := e.Details
	if len(details) == 0 {
		details = []iso20022.TxDetail{{}}
	}
	split := len(details) > 1
	var out []Entry
	for i, d := range details {
		it := base
		it.Ref = DepositRef(e, i)
		it.EndToEndID, it.UETR, it.CreditorRef = d.EndToEndID, d.UETR, d.CreditorRef
		it.Account, it.CreditedAccount = d.Debtor.Account.ID(), d.Creditor.Account.ID()
		if d.Return != nil {
			it.Return = returnText(d.Return)
		}
		if split {
			if d.Amount == "" {
				// A batch without per-transaction amounts cannot be split:
				// one held deposit for the whole entry.
				it = base
				it.Ref = DepositRef(iso20022.Entry{Ref: e.Ref, EntryRef: e.EntryRef}, 0)
				it.Problem = fmt.Sprintf("entry %s books %d transactions as one and gives no amount per transaction: it cannot be split into deposits", entryRef, len(details))
				return []Entry{it}
			}
			it.Amount, it.Currency = d.Amount, d.Currency
		}
		out = append(out, it)
	}
	return out
}

// DepositRef is the reference of transaction i of a credit entry, the
// middle part of its deposit's key: the transaction's AcctSvcrRef (the
// bank's reference of that booking), else its UETR, else its EndToEndId
// (unless the payer gave none: NOTPROVIDED); an entry of one transaction
// without any falls back to the entry's AcctSvcrRef, else its NtryRef, and
// a transaction of a batch to the entry's reference and its position
// ("<ref>/<i+1>"). NtryRef alone is the weakest: banks number entries per
// message, so it repeats across messages and days, which the booking date
// in the key and the content check (a key reused with other content is a
// conflict, never a duplicate) guard against.
func DepositRef(e iso20022.Entry, i int) string {
	if i < len(e.Details) {
		d := e.Details[i]
		switch {
		case d.AcctSvcrRef != "":
			return d.AcctSvcrRef
		case d.UETR != "":
			return d.UETR
		case d.EndToEndID != "" && d.EndToEndID != "NOTPROVIDED":
			return d.EndToEndID
		}
	}
	ref := e.Ref
	if ref == "" {
		ref = e.EntryRef
	}
	if len(e.Details) > 1 && ref != "" {
		return fmt.Sprintf("%s/%d", ref, i+1)
	}
	return ref
}

// dateOnly is the date part of an ISO date or date-time.
func dateOnly(s string) string {
	if len(s) >= 10 {
		return s[:10]
	}
	return s
}

// returnText renders a return reason as "AC04 account closed".
func returnText(r *iso20022.ReturnInfo) string {
	words := []string{}
	for _, w := range append([]string{r.Reason, r.Proprietary}, r.AdditionalInfo...) {
		if w != "" {
			words = append(words, w)
		}
	}
	if len(words) == 0 {
		return "returned (no reason given)"
	}
	return strings.Join(words, " ")
}

// parseStatusXML reads a payment status report: a pain.002.001.10, or a
// camt.054.001.08 whose debit entries report payouts as booked.
func parseStatusXML(body []byte) (*StatusReport, error) {
	typ, version, err := iso20022.Detect(body)
	if err != nil {
		return nil, err
	}
	switch typ {
	case iso20022.Camt054:
		n, err := parseCamt054(body)
		if err != nil {
			return nil, err
		}
		r := &StatusReport{MsgID: n.MsgID}
		for _, e := range n.Entries {
			if it, ok := payoutItem(e); ok {
				r.Items = append(r.Items, it)
			}
		}
		return r, nil
	case iso20022.Pain002:
		return parsePain002(body)
	case iso20022.Pacs004:
		return parsePacs004(body)
	}
	return nil, fmt.Errorf("%s is not a payment status report (pain.002, camt.054 or pacs.004)", version)
}

// parsePain002 reads a pain.002.001.10 status report into one item per
// thing it reports on, each with the level its status comes from:
//
//   - a transaction (TxInfAndSts) with its own TxSts: LevelTransaction,
//     named by its OrgnlEndToEndId (else OrgnlInstrId);
//   - a transaction without one takes its instruction's PmtInfSts, else
//     the group's GrpSts, at that level (ISO 20022's inheritance);
//   - an instruction with a status and no transactions: LevelPayment,
//     named by its OrgnlPmtInfId;
//   - a group status with no instruction listed: LevelGroup, named by
//     OrgnlMsgId.
//
// What a status at each level may decide is classify's job.
func parsePain002(body []byte) (*StatusReport, error) {
	r, err := iso20022.ParsePain002(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	out := &StatusReport{MsgID: r.MsgID}
	group := StatusItem{Ref: r.OriginalMsgID, Level: LevelGroup, Status: r.GroupStatus, Codes: reasonCodes(r.GroupReasons), Reason: reasonText(r.GroupReasons)}
	for _, p := range r.Payments {
		pay := StatusItem{Ref: p.OriginalPmtInfID, Level: LevelPayment, Status: p.Status, Codes: reasonCodes(p.Reasons), Reason: reasonText(p.Reasons)}
		for _, t := range p.Transactions {
			it := StatusItem{Ref: t.OriginalEndToEndID, EndToEndID: t.OriginalEndToEndID, Level: LevelTransaction, Status: t.Status,
				Codes: reasonCodes(t.Reasons), Reason: reasonText(t.Reasons)}
			if it.Ref == "" {
				it.Ref = t.OriginalInstrID
			}
			switch {
			case t.Status != "":
			case p.Status != "":
				it.Level, it.Status, it.Codes, it.Reason = LevelPayment, pay.Status, pay.Codes, pay.Reason
			default:
				it.Level, it.Status, it.Codes, it.Reason = LevelGroup, group.Status, group.Codes, group.Reason
			}
			if it.Status != "" {
				out.Items = append(out.Items, it)
			}
		}
		if len(p.Transactions) == 0 && p.Status != "" {
			out.Items = append(out.Items, pay)
		}
	}
	if len(r.Payments) == 0 && r.GroupStatus != "" {
		out.Items = append(out.Items, group)
	}
	return out, nil
}

// parsePacs004 reads a pacs.004.001.10 payment return: each returned
// payment, named by its original EndToEndId (else InstrId), is a return
// of that payout (LevelReturn) with the amount that came back.
func parsePacs004(body []byte) (*StatusReport, error) {
	p, err := iso20022.ParsePacs004(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	out := &StatusReport{MsgID: p.MsgID}
	for _, r := range p.Returns {
		ref := r.OriginalEndToEndID
		if ref == "" {
			ref = r.OriginalInstrID
		}
		reason := r.Reason
		it := StatusItem{Ref: ref, EndToEndID: r.OriginalEndToEndID, Level: LevelReturn, Status: statusReturned,
			Reason: returnText(&reason), Amount: r.Amount, Currency: r.Currency}
		if r.Reason.Reason != "" {
			it.Codes = []string{r.Reason.Reason}
		}
		out.Items = append(out.Items, it)
	}
	return out, nil
}

// reasonCodes are the reason codes of rs (Rsn/Cd).
func reasonCodes(rs []iso20022.StatusReason) []string {
	var out []string
	for _, r := range rs {
		if r.Code != "" {
			out = append(out, r.Code)
		}
	}
	return out
}

// reasonText renders status reasons as "AC04 account closed; ...".
func reasonText(rs []iso20022.StatusReason) string {
	var parts []string
	for _, r := range rs {
		words := []string{}
		for _, w := range append([]string{r.Code, r.Proprietary}, r.AdditionalInfo...) {
			if w != "" {
				words = append(words, w)
			}
		}
		if len(words) > 0 {
			parts = append(parts, strings.Join(words, " "))
		}
	}
	return strings.Join(parts, "; ")
}

// writePain001 writes a payout order as a pain.001.001.09: one message,
// one payment instruction, one credit transfer, each with its own
// identifier (PayoutIDs). The creditor's bank is the bridge's bank itself
// (the accounts linked are its customers'). The remittance text names the
// withdrawal, never the holder's wallet address: remittance information
// reaches the beneficiary's statement and the bank's screening, and a
// wallet address there is personal data the payment does not need.
func (b *Bridge) writePain001(o PayoutOrder) ([]byte, error) {
	bc := b.cfg.BankCore
	bank := iso20022.Party{Agent: bc.DebtorAgentBIC, AgentMember: bc.DebtorAgentMember, AgentClearing: bc.ClearingSystem}
	debtor, creditor := bank, bank
	debtor.Name, debtor.Account = o.DebtorName, isoAccount(o.DebtorAccount)
	creditor.Name, creditor.Account = o.CreditorName, isoAccount(o.Account)
	order := &iso20022.PaymentOrder{
		MsgID: o.MsgID, Created: o.CreatedAt, InitiatingParty: o.DebtorName, InitiatingPartyID: bc.InitiatingPartyID,
		Payments: []iso20022.PaymentInfo{{
			ID: o.PmtInfID, ExecutionDate: o.ExecutionDate, Debtor: debtor, ChargeBearer: bc.ChargeBearer, ServiceLevel: bc.ServiceLevel,
			Transfers: []iso20022.Transfer{{
				InstrID: o.InstrID, EndToEndID: o.EndToEndID, UETR: o.UETR, Amount: o.Amount, Currency: o.Currency,
				Creditor:       creditor,
				RemittanceInfo: []string{remittance(o)},
			}},
		}},
	}
	var buf bytes.Buffer
	if err := iso20022.WritePain001(&buf, order); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// remittance is an order's remittance text: its own, else the
// withdrawal's id.
func remittance(o PayoutOrder) string {
	if o.Remittance != "" {
		return o.Remittance
	}
	return fmt.Sprintf("Tally withdrawal %d", o.WithdrawalID)
}

// ibanPattern is the shape of an IBAN (ISO 13616), as the XSD's
// IBAN2007Identifier has it.
var ibanPattern = regexp.MustCompile(`^[A-Z]{2}[0-9]{2}[a-zA-Z0-9]{1,30}$`)

// looksLikeIBAN reports whether an account id has an IBAN's shape: it is
// written, and checked, as an IBAN.
func looksLikeIBAN(id string) bool { return ibanPattern.MatchString(id) }

// isoAccount writes an account id as an IBAN when it has an IBAN's shape,
// else as another identification (Othr/Id).
func isoAccount(id string) iso20022.Account {
	if looksLikeIBAN(id) {
		return iso20022.Account{IBAN: id}
	}
	return iso20022.Account{Other: id}
}
