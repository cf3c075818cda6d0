package bridge

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/tally-ledger/tally/bridge/iso20022"
)

// This file maps ISO 20022 messages (package iso20022 parses and writes
// them, pinned to one version each) to and from the bridge's own types.

// parseCamt054 reads a camt.054.001.08 notification. Per entry:
//
//   - Ref is the bank's booking reference, AcctSvcrRef, else NtryRef;
//   - Account is the customer's account the money came from (the debtor
//     account of the entry's transaction, TxDtls/RltdPties/DbtrAcct): the
//     account a customer links to a wallet;
//   - Booked is Sts/Cd = BOOK: a pending entry may still disappear;
//   - a debit entry is a payout leaving the omnibus account: each of its
//     transactions' EndToEndId names a payout (one entry may book a batch).
//
// A credit entry with several transactions is a batch booked as one; it
// keeps no debtor account, so it is held as an unknown account rather than
// minted to anyone. A reversal (RvslInd) is not a deposit: it is ignored
// and left to reconciliation.
func parseCamt054(body []byte) (*Notification, error) {
	n, err := iso20022.ParseCamt054(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	out := &Notification{MsgID: n.MsgID}
	for _, e := range n.Entries() {
		ref := e.Ref
		if ref == "" {
			ref = e.EntryRef
		}
		base := Entry{Ref: ref, Amount: e.Amount, Currency: e.Currency, Credit: e.Credit, Booked: e.Status == iso20022.EntryBooked}
		if e.Reversal {
			base.Booked = false // acknowledged and ignored
		}
		if !e.Credit && len(e.Details) > 1 {
			for _, d := range e.Details {
				item := base
				item.EndToEndID = d.EndToEndID
				out.Entries = append(out.Entries, item)
			}
			continue
		}
		if tx, ok := e.Tx(); ok {
			base.EndToEndID = tx.EndToEndID
			base.Account = tx.Debtor.Account.ID()
		}
		out.Entries = append(out.Entries, base)
	}
	return out, nil
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
			if !e.Credit && e.Booked {
				r.Items = append(r.Items, StatusItem{EndToEndID: e.EndToEndID, Status: "BOOK"})
			}
		}
		return r, nil
	case iso20022.Pain002:
		return parsePain002(body)
	}
	return nil, fmt.Errorf("%s is not a payment status report (pain.002 or camt.054)", version)
}

// parsePain002 reads a pain.002.001.10 status report. Each transaction's
// status is resolved as the standard says (its own, else its payment
// instruction's, else the group's). A report with statuses only at the
// payment-instruction or group level still names the payout: the bridge's
// PmtInfId and MsgId are the payout's EndToEndId.
func parsePain002(body []byte) (*StatusReport, error) {
	r, err := iso20022.ParsePain002(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	out := &StatusReport{MsgID: r.MsgID}
	for _, p := range r.Payments {
		for _, t := range p.Transactions {
			st, reasons, _ := r.StatusOf(t.OriginalEndToEndID)
			out.Items = append(out.Items, StatusItem{EndToEndID: t.OriginalEndToEndID, Status: st, Reason: reasonText(reasons)})
		}
		if len(p.Transactions) == 0 && p.Status != "" {
			out.Items = append(out.Items, StatusItem{EndToEndID: p.OriginalPmtInfID, Status: p.Status, Reason: reasonText(p.Reasons)})
		}
	}
	if len(out.Items) == 0 && r.GroupStatus != "" {
		out.Items = append(out.Items, StatusItem{EndToEndID: r.OriginalMsgID, Status: r.GroupStatus, Reason: reasonText(r.GroupReasons)})
	}
	return out, nil
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
// one payment instruction, one credit transfer, with MsgId, PmtInfId,
// InstrId and EndToEndId all the payout's stable id, and the creation
// time and requested execution date from the payout record, so a resend
// is the same bytes.
func writePain001(o PayoutOrder) ([]byte, error) {
	order := &iso20022.PaymentOrder{
		MsgID: o.MsgID, Created: o.CreatedAt, InitiatingParty: o.DebtorName,
		Payments: []iso20022.PaymentInfo{{
			ID:            o.MsgID,
			ExecutionDate: o.CreatedAt.UTC().Format(time.DateOnly),
			Debtor:        iso20022.Party{Name: o.DebtorName, Account: isoAccount(o.DebtorAccount)},
			Transfers: []iso20022.Transfer{{
				InstrID: o.MsgID, EndToEndID: o.EndToEndID, Amount: o.Amount, Currency: o.Currency,
				Creditor:       iso20022.Party{Account: isoAccount(o.Account)},
				RemittanceInfo: []string{fmt.Sprintf("Tally withdrawal %d by %s", o.WithdrawalID, o.Holder.Hex())},
			}},
		}},
	}
	var buf bytes.Buffer
	if err := iso20022.WritePain001(&buf, order); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ibanPattern is the shape of an IBAN (ISO 13616), as the XSD's
// IBAN2007Identifier has it.
var ibanPattern = regexp.MustCompile(`^[A-Z]{2}[0-9]{2}[a-zA-Z0-9]{1,30}$`)

// isoAccount writes an account id as an IBAN when it has an IBAN's shape,
// else as another identification (Othr/Id).
func isoAccount(id string) iso20022.Account {
	if ibanPattern.MatchString(id) {
		return iso20022.Account{IBAN: id}
	}
	return iso20022.Account{Other: id}
}
