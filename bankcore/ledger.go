package bankcore

import (
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/tally-ledger/tally/bridge/iso20022"
)

// The ledger counts in units of 10^-5, the finest amount the pinned XSDs
// allow (ActiveOrHistoricCurrencyAndAmount has at most 5 decimals), so
// every amount a message can carry is exact.
const scale = 5

var unit = new(big.Int).Exp(big.NewInt(10), big.NewInt(scale), nil)

// parseAmount reads an exact, non-negative ISO 20022 amount.
func parseAmount(s string) (*big.Int, error) {
	if err := iso20022.ValidateAmount(s); err != nil {
		return nil, err
	}
	whole, frac, _ := strings.Cut(s, ".")
	// Trailing zeros are not digits of the value ("97.310000000000000000"
	// is 97.31, as a bridge writes an 18-decimal asset's amount).
	frac = strings.TrimRight(frac, "0")
	if len(frac) > scale {
		return nil, fmt.Errorf("amount %q: more than %d decimals", s, scale)
	}
	frac += strings.Repeat("0", scale-len(frac))
	v, ok := new(big.Int).SetString(whole+frac, 10)
	if !ok {
		return nil, fmt.Errorf("amount %q: not a decimal", s)
	}
	return v, nil
}

// formatAmount writes v (which may be negative) with the fewest decimals,
// at least two, as banks write currency amounts.
func formatAmount(v *big.Int) string {
	a := new(big.Int).Abs(v)
	q, r := new(big.Int).QuoRem(a, unit, new(big.Int))
	frac := fmt.Sprintf("%0*d", scale, r)
	frac = strings.TrimRight(frac, "0")
	for len(frac) < 2 {
		frac += "0"
	}
	s := q.String() + "." + frac
	if v.Sign() < 0 {
		s = "-" + s
	}
	return s
}

// LedgerEntry is one booking on the omnibus account.
type LedgerEntry struct {
	Seq uint64 `json:"seq"`
	// Ref is the bank's reference of the booking (AcctSvcrRef): for a
	// deposit, the reference the bridge derives the bankRef from.
	Ref      string `json:"ref"`
	Credit   bool   `json:"credit"`
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
	// Account is the customer's account on the other side.
	Account string `json:"account"`
	// EndToEndID is a payout's id (the bridge's pain.001 EndToEndId);
	// MsgID the order's MsgId.
	EndToEndID string `json:"endToEndId,omitempty"`
	MsgID      string `json:"msgId,omitempty"`
	// Return is the reason of a payout returned by the beneficiary's bank
	// (a credit); Reversal marks a booking that reverses the one whose
	// reference is Reverses.
	Return   string `json:"return,omitempty"`
	Reversal bool   `json:"reversal,omitempty"`
	Reverses string `json:"reverses,omitempty"`
	// Batch is the bank's reference of a batch booking: the deposits of
	// one batch are notified as one entry with a transaction each.
	Batch    string    `json:"batch,omitempty"`
	BookedAt time.Time `json:"bookedAt"`
}

// Order is a payout order the simulator accepted, and what became of it.
type Order struct {
	MsgID      string    `json:"msgId"`
	EndToEndID string    `json:"endToEndId"`
	Account    string    `json:"account"`
	Amount     string    `json:"amount"`
	Currency   string    `json:"currency"`
	ReceivedAt time.Time `json:"receivedAt"`
	Status     string    `json:"status"` // received, ACSC or RJCT
	Reason     string    `json:"reason,omitempty"`
	Returned   bool      `json:"returned,omitempty"`
	// Sends counts the messages that carried this order (a re-send with
	// the same MsgId is answered DU01 and counted here).
	Sends    int                    `json:"sends"`
	Original *iso20022.PaymentOrder `json:"original"`
}

// Order statuses besides the ISO codes.
const orderReceived = "received"

// Ledger is the simulator's books; it is also the snapshot file's content.
type Ledger struct {
	// Seq numbers every id the simulator makes (messages, bookings).
	Seq            uint64            `json:"seq"`
	Started        time.Time         `json:"started"`
	OpeningBalance string            `json:"openingBalance"`
	Balances       map[string]string `json:"balances"`
	Entries        []LedgerEntry     `json:"entries"`
	Orders         []*Order          `json:"orders"`
}

func (l *Ledger) next() uint64 {
	l.Seq++
	return l.Seq
}

func (l *Ledger) balance(account string) *big.Int {
	v, err := parseSigned(l.Balances[account])
	if err != nil {
		return new(big.Int)
	}
	return v
}

// move books amount from one account to another.
func (l *Ledger) move(from, to string, amount *big.Int) {
	f := l.balance(from)
	t := l.balance(to)
	l.Balances[from] = formatAmount(f.Sub(f, amount))
	l.Balances[to] = formatAmount(t.Add(t, amount))
}

func (l *Ledger) order(msgID, endToEndID string) *Order {
	for _, o := range l.Orders {
		if o.MsgID == msgID || (endToEndID != "" && o.EndToEndID == endToEndID) {
			return o
		}
	}
	return nil
}

func (l *Ledger) refUsed(ref string) bool {
	for _, e := range l.Entries {
		if e.Ref == ref {
			return true
		}
	}
	return false
}

func parseSigned(s string) (*big.Int, error) {
	if s == "" {
		return new(big.Int), nil
	}
	if rest, ok := strings.CutPrefix(s, "-"); ok {
		v, err := parseAmount(rest)
		if err != nil {
			return nil, err
		}
		return v.Neg(v), nil
	}
	return parseAmount(s)
}
