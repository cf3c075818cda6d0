package bridge

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/bridge/iso20022"
	"github.com/tally-ledger/tally/config"
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

// Entry is one booked movement: for a credit, one deposit (an entry
// booked as a batch is several Entries, one per transaction).
type Entry struct {
	// Ref is the reference that identifies the movement at the bank: for
	// a credit the transaction's (DepositRef), for a debit the entry's.
	Ref string
	// ReportedAccount is the account the entry is booked on (camt.054
	// Ntfctn/Acct; the JSON form: bankcore.debtor-account); BookingDate
	// its booking date (YYYY-MM-DD), empty when the bank gives none. With
	// Ref they are the deposit's key (DepositKey).
	ReportedAccount string
	BookingDate     string
	// EntryRef is the entry's own reference (Ntry/AcctSvcrRef, else
	// NtryRef), for messages and logs.
	EntryRef string
	// Account is the customer's bank account the entry is for.
	Account string
	// Amount is the decimal amount as written; Currency its ISO 4217 code.
	Amount   string
	Currency string
	// Credit is true for money in (a deposit), false for money out (a
	// payout leaving the omnibus account).
	Credit     bool
	EndToEndID string
	UETR       string
	// CreditorRef is the structured creditor reference
	// (RmtInf/Strd/CdtrRefInf/Ref); CreditedAccount the account credited
	// (TxDtls/RltdPties/CdtrAcct: a virtual account number when the bank
	// gives each customer one).
	CreditorRef     string
	CreditedAccount string
	// Booked is false for an entry the bank reports as pending: it is
	// acknowledged and ignored until the bank reports it booked.
	Booked bool
	// Reversal is set for an entry that reverses an earlier one (RvslInd):
	// a debit reversing a deposit, or a credit reversing a payout.
	Reversal bool
	// Return is set for a credit that returns a payout (camt.054 RtrInf,
	// or a pacs.004): the reason, as text.
	Return string
	// Problem, when set, is why the entry cannot be a deposit as reported
	// (it is held with this reason).
	Problem string
}

// StatusReport is a pain.002 (or its JSON form), the debit entries of a
// camt.054, or the returns of a pacs.004 or a camt.054: what the bank says
// about payout orders.
type StatusReport struct {
	MsgID string
	Items []StatusItem
}

// Levels a status is reported at (statusLevel* below).
const (
	// LevelTransaction: the transaction's own status (pain.002 TxInfAndSts/TxSts).
	LevelTransaction = "transaction"
	// LevelPayment: a payment instruction's status (PmtInfSts), for its
	// transactions that have none of their own, or for the instruction.
	LevelPayment = "payment"
	// LevelGroup: the whole message's status (OrgnlGrpInfAndSts/GrpSts).
	LevelGroup = "group"
	// LevelBooking: a booked debit of the omnibus account (camt.054).
	LevelBooking = "booking"
	// LevelReturn: the money came back (pacs.004, a camt.054 credit with
	// RtrInf, or a reversed debit).
	LevelReturn = "return"
)

// StatusItem is one thing the bank says about one payout order.
type StatusItem struct {
	// Ref names the payout: an EndToEndId, or the InstrId, PmtInfId or
	// MsgId of its order (LevelPayment and LevelGroup statuses name the
	// instruction or the message).
	Ref string
	// EndToEndID is the transaction's EndToEndId when the item names a
	// transaction (empty for a group or instruction status).
	EndToEndID string
	// Level is one of the Level* constants.
	Level string
	// Status is an ISO 20022 ExternalPaymentTransactionStatus1Code (ACSC,
	// ACCP, RJCT, PDNG, ...), BOOK for a booked camt.054 debit entry or
	// RTRN for a return.
	Status string
	// Codes are the reason codes (StsRsnInf/Rsn/Cd, RtrInf/Rsn/Cd);
	// Reason is the reasons as text: codes and additional information.
	Codes  []string
	Reason string
	// Amount and Currency of a booked debit or a return, compared with the
	// payout's.
	Amount   string
	Currency string
}

// payoutItem is what an entry says about a payout, if anything: a booked
// debit books one; a booked credit that is a return (RtrInf) or a
// reversed debit (RvslInd) brings one back. Entries that are deposits,
// pending or a reversed credit (a deposit taken back) are not.
func payoutItem(e Entry) (StatusItem, bool) {
	if !e.Booked {
		return StatusItem{}, false
	}
	it := StatusItem{Ref: e.EndToEndID, EndToEndID: e.EndToEndID, Amount: e.Amount, Currency: e.Currency}
	switch {
	case !e.Credit && !e.Reversal:
		it.Level, it.Status = LevelBooking, statusBooked
	case e.Credit && (e.Return != "" || e.Reversal):
		it.Level, it.Status, it.Reason = LevelReturn, statusReturned, e.Return
		if e.Reversal && it.Reason == "" {
			it.Reason = "the bank reversed the debit (RvslInd)"
		}
		if code, _, _ := strings.Cut(it.Reason, " "); reasonCode.MatchString(code) {
			it.Codes = []string{code}
		}
	default:
		return StatusItem{}, false
	}
	return it, true
}

// Booked debits and returns (not ISO status codes: the bridge's names for
// a camt.054 debit entry and for a return).
const (
	statusBooked   = "BOOK"
	statusReturned = "RTRN"
)

// statusClass is what a status item means for a payout.
type statusClass int

const (
	// classProgress: recorded, decides nothing (ACTC, ACCP, ACSP, ACWC,
	// PDNG, RCVD, a group-level ACSC, an unknown code, ...).
	classProgress statusClass = iota
	// classDuplicate: the bank refused a message or transaction as a
	// duplicate of one it already has (RJCT with DU01..DU05, DUPL or
	// AM05): the original stands, so this decides nothing either.
	classDuplicate
	// classSettled: paid (a transaction-level ACSC, a matching booked debit).
	classSettled
	// classRejected: will not be paid (RJCT, CANC).
	classRejected
	// classReturned: paid and then returned by the beneficiary's bank, or
	// the debit reversed: the money is back on the omnibus account.
	classReturned
)

// duplicateReasons are the ExternalStatusReason1Code codes by which a
// bank says it already has the message or transaction: DU01 duplicate
// MsgId, DU02 duplicate PmtInfId, DU03 duplicate transaction, DU04
// duplicate EndToEndId, DU05 duplicate InstrId, DUPL duplicate payment,
// AM05 duplication.
var duplicateReasons = map[string]bool{"DU01": true, "DU02": true, "DU03": true, "DU04": true, "DU05": true, "DUPL": true, "AM05": true}

// classify is the one rule for what a bank status means for a payout
// (docs/bridge.md, "Payout statuses"): only a transaction-level ACSC or a
// booked debit settles; RJCT (or CANC) at any level rejects, unless a
// reason says the bank refused a duplicate; everything else is progress.
func classify(it StatusItem) statusClass {
	switch it.Status {
	case statusBooked:
		return classSettled
	case statusReturned:
		return classReturned
	case iso20022.StatusAcceptedSettlementCompleted:
		if it.Level == LevelTransaction {
			return classSettled
		}
		return classProgress
	case iso20022.StatusRejected, statusCancelled:
		for _, c := range it.Codes {
			if duplicateReasons[c] {
				return classDuplicate
			}
		}
		return classRejected
	}
	return classProgress
}

// statusCancelled is CANC: the payment was cancelled before execution.
const statusCancelled = "CANC"

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
	// UETR, BookingDate (YYYY-MM-DD, part of the deposit's key) and
	// CreditorRef (an RF creditor reference) are optional.
	UETR        string `json:"uetr,omitempty"`
	BookingDate string `json:"bookingDate,omitempty"`
	CreditorRef string `json:"creditorRef,omitempty"`
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

// parseJSONNotification reads the JSON form of a notification.
func parseJSONNotification(body []byte) (*Notification, error) {
	var jn jsonNotification
	if err := config.DecodeJSON(body, &jn); err != nil {
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
		if e.BookingDate != "" {
			if _, err := time.Parse(time.DateOnly, e.BookingDate); err != nil {
				return nil, fmt.Errorf("JSON notification: entries[%d]: bookingDate %q is not YYYY-MM-DD", i, truncate(e.BookingDate, 40))
			}
		}
		n.Entries = append(n.Entries, Entry{Ref: e.Ref, EntryRef: e.Ref, Account: e.Account, Amount: *e.Amount, Currency: e.Currency,
			Credit: *e.Credit, EndToEndID: e.EndToEndID, UETR: e.UETR, BookingDate: e.BookingDate, CreditorRef: e.CreditorRef, Booked: booked})
	}
	return n, nil
}

// parseJSONStatusReport reads the JSON form of a payment status report.
func parseJSONStatusReport(body []byte) (*StatusReport, error) {
	var js jsonStatusReport
	if err := config.DecodeJSON(body, &js); err != nil {
		return nil, fmt.Errorf("JSON status report: %w", err)
	}
	r := &StatusReport{MsgID: js.MsgID}
	for _, s := range js.Statuses {
		it := StatusItem{Ref: s.EndToEndID, EndToEndID: s.EndToEndID, Level: LevelTransaction, Status: s.Status, Reason: s.Reason}
		if code, _, _ := strings.Cut(s.Reason, " "); reasonCode.MatchString(code) {
			it.Codes = []string{code}
		}
		r.Items = append(r.Items, it)
	}
	return r, nil
}

// reasonCode is the shape of an ISO external reason code (AC04, DU01, ...):
// the JSON form's reason starts with one.
var reasonCode = regexp.MustCompile(`^[A-Z0-9]{4}$`)

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

// PayoutEndToEndID is the EndToEndId of withdrawal id's payout:
// TALLY-<chainId>-<symbol>-W<id>. It travels unchanged to the beneficiary
// and back in every status, booking and return, and every re-send of the
// order carries it.
func PayoutEndToEndID(chainID uint64, symbol string, id uint64) string {
	return payoutID(chainID, symbol, 'W', id)
}

// PayoutIdentifiers are the identifiers of one payout's order
// (docs/bridge.md, "Identifiers"). Each names one thing, so that a status
// at any level is read for what it is about: MsgId the message, PmtInfId
// the payment instruction, InstrId the instruction between the bridge and
// its bank, EndToEndId and UETR the payment itself, end to end. All are
// derived from the withdrawal, so a re-send after a crash carries the same
// ones and the bank's duplicate checks (DU01 on MsgId first) catch it.
type PayoutIdentifiers struct {
	MsgID      string // TALLY-<chainId>-<symbol>-M<id>
	PmtInfID   string // TALLY-<chainId>-<symbol>-P<id>
	InstrID    string // TALLY-<chainId>-<symbol>-I<id>
	EndToEndID string // TALLY-<chainId>-<symbol>-W<id>
	// UETR is a UUID version 4 (RFC 4122 variant) made from keccak256 of
	// the bank, chain, asset and withdrawal, so it is unique to the
	// payment and the same on every re-send.
	UETR string
}

// PayoutIDs returns withdrawal id's payout identifiers for bank.
func PayoutIDs(bank common.Address, chainID uint64, symbol string, id uint64) PayoutIdentifiers {
	h := crypto.Keccak256([]byte("tally-uetr-v1"), bank[:], []byte(strconv.FormatUint(chainID, 10)), []byte{0}, []byte(symbol), []byte{0},
		[]byte(strconv.FormatUint(id, 10)))
	u := h[:16]
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	uetr := fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
	return PayoutIdentifiers{MsgID: payoutID(chainID, symbol, 'M', id), PmtInfID: payoutID(chainID, symbol, 'P', id),
		InstrID: payoutID(chainID, symbol, 'I', id), EndToEndID: payoutID(chainID, symbol, 'W', id), UETR: uetr}
}

func payoutID(chainID uint64, symbol string, kind byte, id uint64) string {
	return fmt.Sprintf("TALLY-%d-%s-%c%d", chainID, symbol, kind, id)
}

// parsePayoutEndToEndID returns the withdrawal id of one of this bridge's
// EndToEndIds; ok is false for any other text.
func parsePayoutEndToEndID(chainID uint64, symbol, s string) (uint64, bool) {
	id, kind, ok := parsePayoutRef(chainID, symbol, s)
	return id, ok && kind == 'W'
}

// parsePayoutRef returns the withdrawal id and the kind (M, P, I or W) of
// any of this bridge's payout identifiers; ok is false for other text.
func parsePayoutRef(chainID uint64, symbol, s string) (uint64, byte, bool) {
	prefix := fmt.Sprintf("TALLY-%d-%s-", chainID, symbol)
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok || len(rest) < 2 || !strings.ContainsRune("MPIW", rune(rest[0])) {
		return 0, 0, false
	}
	kind, digits := rest[0], rest[1:]
	if len(digits) > 1 && digits[0] == '0' {
		return 0, 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, 0, false
		}
	}
	id, err := strconv.ParseUint(digits, 10, 64)
	return id, kind, err == nil
}
