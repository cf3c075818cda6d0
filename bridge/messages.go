package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/crypto"
)

// The bridge reads two message formats on each endpoint: ISO 20022 XML
// (package iso20022) and a small JSON form for cores that do not speak it.
// Both are turned into the types below, so everything after parsing is
// one code path.

// Notification is a camt.054 (or its JSON form): the entries the bank
// booked on the accounts it reports.
type Notification struct {
	MsgID   string
	Entries []Entry
}

// Entry is one booked movement.
type Entry struct {
	// Ref is the bank's entry reference (camt.054 AcctSvcrRef, else NtryRef).
	Ref string
	// Account is the customer's bank account the entry is for.
	Account string
	// Amount is the decimal amount as written; Currency its ISO 4217 code.
	Amount   string
	Currency string
	// Credit is true for money in (a deposit), false for money out (a
	// payout leaving the omnibus account).
	Credit     bool
	EndToEndID string
	// Booked is false for an entry the bank reports as pending: it is
	// acknowledged and ignored until the bank reports it booked.
	Booked bool
}

// StatusReport is a pain.002 (or its JSON form), or the debit entries of a
// camt.054: the outcomes of payout orders.
type StatusReport struct {
	MsgID string
	Items []StatusItem
}

// StatusItem is the status of one payout order.
type StatusItem struct {
	EndToEndID string
	// Status is an ISO 20022 ExternalPaymentTransactionStatus1Code (ACSC,
	// ACCP, RJCT, PDNG, ...) or BOOK for a booked camt.054 debit entry.
	Status string
	// Reason is the rejection reason: code and additional information.
	Reason string
}

// Settled and rejected statuses (docs/bridge.md, "Withdrawals out").
func settledStatus(s string) bool  { return s == "ACSC" || s == "ACCP" || s == "BOOK" }
func rejectedStatus(s string) bool { return s == "RJCT" }

// Bounds of identifiers, from the ISO 20022 text types the fields have.
const (
	maxRefLen     = 35  // Max35Text: MsgId, NtryRef, AcctSvcrRef, EndToEndId
	maxAccountLen = 34  // Max34Text: an account's Othr/Id (an IBAN is at most 34)
	maxAmountLen  = 64  // generous for ActiveOrHistoricCurrencyAndAmount
	maxReasonLen  = 256 // what refundWithdrawal accepts
)

// jsonNotification is the JSON form of a notification.
type jsonNotification struct {
	MsgID   string      `json:"msgId"`
	Entries []jsonEntry `json:"entries"`
}

type jsonEntry struct {
	Ref        string  `json:"ref"`
	Account    string  `json:"account"`
	Amount     *string `json:"amount"`
	Currency   string  `json:"currency"`
	Credit     *bool   `json:"credit"`
	EndToEndID string  `json:"endToEndId,omitempty"`
	// Booked defaults to true: the JSON form reports booked entries.
	Booked *bool `json:"booked,omitempty"`
}

// jsonStatusReport is the JSON form of a payment status report.
type jsonStatusReport struct {
	MsgID    string           `json:"msgId"`
	Statuses []jsonStatusItem `json:"statuses"`
}

type jsonStatusItem struct {
	EndToEndID string `json:"endToEndId"`
	Status     string `json:"status"`
	Reason     string `json:"reason,omitempty"`
}

// decodeStrict decodes one JSON value, refusing unknown fields and
// trailing data, so a typo in a field name is an error and not a silently
// missing value.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// parseJSONNotification reads the JSON form of a notification.
func parseJSONNotification(body []byte) (*Notification, error) {
	var jn jsonNotification
	if err := decodeStrict(body, &jn); err != nil {
		return nil, fmt.Errorf("JSON notification: %w", err)
	}
	n := &Notification{MsgID: jn.MsgID}
	for i, e := range jn.Entries {
		if e.Amount == nil {
			return nil, fmt.Errorf("JSON notification: entries[%d]: amount is missing", i)
		}
		if e.Credit == nil {
			return nil, fmt.Errorf("JSON notification: entries[%d]: credit is missing (true for money in, false for money out)", i)
		}
		booked := e.Booked == nil || *e.Booked
		n.Entries = append(n.Entries, Entry{Ref: e.Ref, Account: e.Account, Amount: *e.Amount, Currency: e.Currency,
			Credit: *e.Credit, EndToEndID: e.EndToEndID, Booked: booked})
	}
	return n, nil
}

// parseJSONStatusReport reads the JSON form of a payment status report.
func parseJSONStatusReport(body []byte) (*StatusReport, error) {
	var js jsonStatusReport
	if err := decodeStrict(body, &js); err != nil {
		return nil, fmt.Errorf("JSON status report: %w", err)
	}
	r := &StatusReport{MsgID: js.MsgID}
	for _, s := range js.Statuses {
		r.Items = append(r.Items, StatusItem(s))
	}
	return r, nil
}

// checkText checks an identifier: present, at most max bytes, printable
// UTF-8 on one line (it ends up in signed messages, logs and XML).
func checkText(what, s string, max int) error {
	if s == "" {
		return fmt.Errorf("%s is missing", what)
	}
	if len(s) > max {
		return fmt.Errorf("%s %q is longer than %d characters", what, truncate(s, 40), max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8", what)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%s %q contains a control character", what, truncate(s, 40))
		}
	}
	if strings.TrimSpace(s) != s {
		return fmt.Errorf("%s %q has leading or trailing spaces", what, truncate(s, 40))
	}
	return nil
}

// BankRefDomain separates bank references from any other keccak256 input.
const BankRefDomain = "tally-bankref-v1"

// BankRef is the bankRef a bank's deposit mints under:
// keccak256("tally-bankref-v1" ‖ bank address (20 bytes) ‖ asset symbol ‖
// the bank's entry reference). The chain refuses a second mint under it,
// forever, which is what makes a deposit mint at most once whatever the
// bridge does; the bank address and symbol keep two banks' (or two
// assets') references apart.
func BankRef(bank common.Address, symbol, reference string) common.Hash {
	return crypto.Keccak256([]byte(BankRefDomain), bank[:], []byte(symbol), []byte(reference))
}

// PayoutMsgID is the pain.001 MsgId and EndToEndId of withdrawal id:
// TALLY-<chainId>-<symbol>-W<id>. Every resend of the order carries it, so
// the bank deduplicates resends.
func PayoutMsgID(chainID uint64, symbol string, id uint64) string {
	return fmt.Sprintf("TALLY-%d-%s-W%d", chainID, symbol, id)
}

// parsePayoutMsgID returns the withdrawal id of one of this bridge's
// payout ids; ok is false for any other text.
func parsePayoutMsgID(chainID uint64, symbol, s string) (uint64, bool) {
	prefix := fmt.Sprintf("TALLY-%d-%s-W", chainID, symbol)
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok || rest == "" || (len(rest) > 1 && rest[0] == '0') {
		return 0, false
	}
	id, err := strconv.ParseUint(rest, 10, 64)
	return id, err == nil
}
