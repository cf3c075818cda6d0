package merchant

import (
	"math/big"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/wallet"
)

// Order statuses. An order's status follows from what was paid and
// refunded under its reference (Order.status, the one rule):
//
//	nothing paid                          awaiting_payment (expired once past its expiry)
//	everything paid refunded              refunded
//	some refunded, net below the amount   partially_refunded
//	net below the amount                  partially_paid
//	net equal to the amount               paid
//	net above the amount                  overpaid
//
// where net is paid minus refunded.
const (
	StatusAwaiting          = "awaiting_payment"
	StatusExpired           = "expired"
	StatusPartiallyPaid     = "partially_paid"
	StatusPaid              = "paid"
	StatusOverpaid          = "overpaid"
	StatusPartiallyRefunded = "partially_refunded"
	StatusRefunded          = "refunded"
)

// Webhook events: a payment is notified as the status it leaves the
// order in; every refund as order.refunded (with the status after it).
const (
	EventPaid          = "order.paid"
	EventPartiallyPaid = "order.partially_paid"
	EventOverpaid      = "order.overpaid"
	EventRefunded      = "order.refunded"
	// EventDisputed is a dispute opened on a payment of the order;
	// EventDisputeClosed its close: refunded by the merchant, upheld by
	// the bank (a forced transfer back, counted as refunded) or
	// dismissed.
	EventDisputed      = "order.disputed"
	EventDisputeClosed = "order.dispute_closed"
	// EventExpired is an order nothing was paid to by its expiry, by
	// the chain's clock (expire.go).
	EventExpired = "order.expired"
)

// Order is a registered payment request and what the chain did under its
// reference. Amounts are decimal strings of base units (exact); the
// *Text fields are for people ("12.34 HKD").
type Order struct {
	wallet.PaymentRequest
	Registered time.Time `json:"registered"`
	Status     string    `json:"status"`
	Paid       string    `json:"paid"`
	Refunded   string    `json:"refunded"`
	NetText    string    `json:"netText"`
	// Payments and Refunds list the chain's movements under the
	// reference, oldest first, at most orders.max-movements each;
	// Movements counts them all.
	Payments  []Movement `json:"payments"`
	Refunds   []Movement `json:"refunds"`
	Movements int        `json:"movements"`
	// Disputes are the disputes opened on the order's payments
	// (docs/payments.md), oldest first.
	Disputes []Dispute `json:"disputes,omitempty"`
	// ExpiredAt is the block at which the order expired unpaid (the
	// order.expired notification); a later payment is still counted.
	ExpiredAt *Expiry `json:"expiredAt,omitempty"`
}

// Dispute is a dispute on a payment of the order, as the chain's events
// left it.
type Dispute struct {
	ID     string         `json:"id"`
	Payer  common.Address `json:"payer"`
	Amount string         `json:"amount"`
	Text   string         `json:"text"`
	// Reason is the payer's reason code's name (not-received,
	// duplicate, …); Status open, refunded, upheld or dismissed.
	Reason string `json:"reason"`
	Status string `json:"status"`
	// Payment is the disputed payment's transaction, when the payer
	// named it; Opened and Closed the dispute's own transactions.
	Payment common.Hash `json:"payment"`
	Opened  common.Hash `json:"opened"`
	Closed  common.Hash `json:"closed,omitempty"`
}

// Movement is one PaymentReference or Refund event of the order.
type Movement struct {
	Tx       common.Hash `json:"tx"`
	LogIndex uint        `json:"logIndex"`
	Block    uint64      `json:"block"`
	// Payer is who paid (a payment) or who was refunded (a refund).
	Payer  common.Address `json:"payer"`
	Amount string         `json:"amount"`
	Text   string         `json:"text"`
}

// Notification is a webhook POST's body.
type Notification struct {
	// ID is the delivery id, the same in every retry of the delivery
	// (and in the X-Tally-Delivery header): "payment-<tx>-<log index>",
	// "refund-<tx>-<log index>", "dispute-<tx>-<log index>" or
	// "expired-<reference>-<block>", unique per event on chain.
	ID    string `json:"id"`
	Event string `json:"event"`
	// Order is the order as this event left it.
	Order *Order `json:"order"`
	// Payment or Refund is the event's movement.
	Payment *Movement `json:"payment,omitempty"`
	Refund  *Movement `json:"refund,omitempty"`
	Dispute *Dispute  `json:"dispute,omitempty"`
	Expiry  *Expiry   `json:"expiry,omitempty"`
}

func amountOf(s string) *big.Int {
	v, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return new(big.Int)
	}
	return v
}

// status is the order's status after what was paid and refunded (the
// table above); expiry is the API's concern (View).
func (o *Order) status() string {
	paid, refunded, want := amountOf(o.Paid), amountOf(o.Refunded), amountOf(o.AmountBase)
	net := new(big.Int).Sub(paid, refunded)
	switch {
	case paid.Sign() == 0:
		return StatusAwaiting
	case net.Sign() <= 0:
		return StatusRefunded
	case refunded.Sign() > 0 && net.Cmp(want) < 0:
		return StatusPartiallyRefunded
	case net.Cmp(want) < 0:
		return StatusPartiallyPaid
	case net.Cmp(want) == 0:
		return StatusPaid
	}
	return StatusOverpaid
}

// View is the order as the API shows it at now: an order nothing was
// paid to is expired once past its expiry.
func (o *Order) View(now time.Time) *Order {
	v := *o
	if v.Status == StatusAwaiting && v.Expired(now) {
		v.Status = StatusExpired
	}
	return &v
}

// apply adds a payment (refund false) or a refund to the order and
// returns the event to notify.
func (o *Order) apply(m Movement, refund bool, maxMovements int, minor uint8) string {
	v := amountOf(m.Amount)
	o.Movements++
	if refund {
		o.Refunded = new(big.Int).Add(amountOf(o.Refunded), v).String()
		if len(o.Refunds) < maxMovements {
			o.Refunds = append(o.Refunds, m)
		}
	} else {
		o.Paid = new(big.Int).Add(amountOf(o.Paid), v).String()
		if len(o.Payments) < maxMovements {
			o.Payments = append(o.Payments, m)
		}
	}
	o.NetText = units(new(big.Int).Sub(amountOf(o.Paid), amountOf(o.Refunded)), o.Decimals, minor, o.Asset)
	o.Status = o.status()
	switch {
	case refund:
		return EventRefunded
	case o.Status == StatusOverpaid:
		return EventOverpaid
	case o.Status == StatusPaid:
		return EventPaid
	}
	return EventPartiallyPaid
}

// units renders an amount as people read it: "12.50 HKD" (the currency's
// minor units at least).
func units(v *big.Int, decimals, minor uint8, symbol string) string {
	return genesis.FormatUnits(v, decimals, minor) + " " + symbol
}
