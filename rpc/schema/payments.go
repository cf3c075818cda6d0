package schema

import (
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
)

// Dispute is one dispute of tally_getDisputes (docs/payments.md).
type Dispute struct {
	ID       hexutil.Uint64 `json:"id"`
	Payer    common.Address `json:"payer"`
	Merchant common.Address `json:"merchant"`
	// Reference is the order reference of the disputed payment.
	Reference *Reference `json:"reference"`
	Amount    *Amount    `json:"amount"`
	// Reason is the payer's reason code by name: not-received,
	// duplicate, wrong-amount, refund-not-received, fraud.
	Reason string `json:"reason"`
	// Status is open, contested, refunded, upheld or dismissed.
	Status   string  `json:"status"`
	Refunded *Amount `json:"refunded"`
	// TxHash is the payment's transaction as the payer named it (null: not named).
	TxHash   *common.Hash   `json:"txHash"`
	OpenedMs hexutil.Uint64 `json:"openedMs"`
	// AnswerByMs is when an issuing bank may decide the dispute unanswered.
	AnswerByMs hexutil.Uint64  `json:"answerByMs"`
	ClosedMs   *hexutil.Uint64 `json:"closedMs"`
	// Answer is the merchant's reason for contesting ("" when it did not).
	Answer string `json:"answer"`
	// Bank decided it (null unless upheld or dismissed), with Decision as its reason.
	Bank     *common.Address `json:"bank"`
	Decision string          `json:"decision"`
}

// DisputePage is a page of tally_getDisputes, newest first.
type DisputePage struct {
	Items []Dispute `json:"items"`
	// NextCursor continues below the ids this page searched (the
	// "before" of the next call); null once the search reached id 1.
	NextCursor *hexutil.Uint64 `json:"nextCursor"`
}

// HeldPayment is one payment held for a second confirmation
// (tally_getHeldPayments, docs/payments.md).
type HeldPayment struct {
	ID   hexutil.Uint64 `json:"id"`
	From common.Address `json:"from"`
	// To is the recipient (null for a withdrawal).
	To     *common.Address `json:"to"`
	Amount *Amount         `json:"amount"`
	// Kind is native-transfer, transfer, payment or withdrawal.
	Kind string `json:"kind"`
	// Reference is a payment's order reference or a withdrawal's payout
	// reference (null for a transfer).
	Reference *Reference `json:"reference"`
	// Status is pending, confirmed, rejected, cancelled or expired.
	Status    string          `json:"status"`
	CreatedMs hexutil.Uint64  `json:"createdMs"`
	ExpiresMs hexutil.Uint64  `json:"expiresMs"`
	ClosedMs  *hexutil.Uint64 `json:"closedMs"`
}

// HeldPaymentPage is a page of tally_getHeldPayments, newest first.
type HeldPaymentPage struct {
	Items      []HeldPayment   `json:"items"`
	NextCursor *hexutil.Uint64 `json:"nextCursor"`
}

// ConfirmationSettings are an account's confirmation key and thresholds in
// force, and a change waiting for its time (tally_getConfirmation).
type ConfirmationSettings struct {
	Account    common.Address  `json:"account"`
	Key        *common.Address `json:"key"`
	Thresholds []*Amount       `json:"thresholds"`
	// Change is the change waiting (null when none).
	Change *ConfirmationChange `json:"change"`
}

// ConfirmationChange is a change of confirmation settings waiting for EffectiveMs.
type ConfirmationChange struct {
	Key         *common.Address `json:"key"`
	Thresholds  []*Amount       `json:"thresholds"`
	EffectiveMs hexutil.Uint64  `json:"effectiveMs"`
}
