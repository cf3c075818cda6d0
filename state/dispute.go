package state

import (
	"encoding/binary"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/rlp"

	"github.com/tally-ledger/tally/chain"
)

// Disputes (the contract at chain.DisputesAddress, abi/Disputes.json;
// docs/payments.md): a payer's complaint about a payment it made under an
// order reference (transferWithReference, or a leg of a batchTransfer).
//
//	openDispute (payer, within the asset's disputeWindowSeconds of the payment)
//	   │
//	   ▼
//	1 open ──contestDispute (merchant)──▶ 2 contested
//	   │                                     │
//	   ├─ refunds (the merchant's refund of the payment) reaching the amount ─▶ 3 refunded
//	   │                                     │
//	   └─ an issuing bank of the asset, once contested or unanswered for
//	      rules.DisputeResponse(): upholdDispute (a forced transfer from the
//	      merchant to the payer naming the dispute) ─▶ 4 upheld,
//	      or dismissDispute ─▶ 5 dismissed
//
// A payment has at most one active (open or contested) dispute; once it is
// closed the payer may open another within the window.

// Dispute statuses.
const (
	DisputeOpen      uint8 = 1
	DisputeContested uint8 = 2
	DisputeRefunded  uint8 = 3
	DisputeUpheld    uint8 = 4
	DisputeDismissed uint8 = 5
)

// DisputeStatusNames name the dispute statuses (RPC, CLI, explorer).
var DisputeStatusNames = map[uint8]string{DisputeOpen: "open", DisputeContested: "contested", DisputeRefunded: "refunded",
	DisputeUpheld: "upheld", DisputeDismissed: "dismissed"}

// Dispute reason codes, the payer's complaint.
const (
	DisputeNotReceived       uint8 = 1
	DisputeDuplicate         uint8 = 2
	DisputeWrongAmount       uint8 = 3
	DisputeRefundNotReceived uint8 = 4
	DisputeFraud             uint8 = 5
)

// DisputeReasonNames name the reason codes (RPC, CLI, explorer).
var DisputeReasonNames = map[uint8]string{DisputeNotReceived: "not-received", DisputeDuplicate: "duplicate",
	DisputeWrongAmount: "wrong-amount", DisputeRefundNotReceived: "refund-not-received", DisputeFraud: "fraud"}

// Dispute is a payer's dispute of what it paid Merchant under Ref.
type Dispute struct {
	Asset    uint32
	Payer    common.Address
	Merchant common.Address
	Ref      common.Hash
	Amount   *big.Int // what the payer disputes
	Reason   uint8
	TxHash   common.Hash // the payment's transaction, as the payer named it (zero: not named)
	OpenedMs uint64
	Status   uint8
	Refunded *big.Int // what the merchant refunded of the payment since the dispute opened
	Answer   string   // the merchant's reason for contesting
	Bank     common.Address
	Decision string // the bank's reason
	ClosedMs uint64
}

// Active reports whether d still awaits an outcome.
func (d Dispute) Active() bool { return d.Status == DisputeOpen || d.Status == DisputeContested }

// Dispute returns dispute id; ok is false if there is none.
func (o *Overlay) Dispute(id uint64) (d Dispute, ok bool, err error) {
	v, err := o.Get(key(prefixDispute, u64(id)))
	if err != nil || len(v) == 0 {
		return d, false, err
	}
	if err := rlp.DecodeBytes(v, &d); err != nil {
		return d, false, fmt.Errorf("state: dispute %d: %w", id, err)
	}
	return d, true, nil
}

func (o *Overlay) setDispute(id uint64, d Dispute) {
	v, err := rlp.EncodeToBytes(&d)
	if err != nil {
		panic(fmt.Sprintf("encode dispute: %v", err))
	}
	o.Set(key(prefixDispute, u64(id)), v)
}

func openDisputeKey(asset uint32, merchant common.Address, ref common.Hash, payer common.Address) []byte {
	return key(prefixOpenDispute, u32(asset), merchant[:], ref[:], payer[:])
}

// ActiveDispute returns the id of the active dispute of a payment (0: none).
func (o *Overlay) ActiveDispute(asset uint32, merchant common.Address, ref common.Hash, payer common.Address) (uint64, error) {
	v, err := o.Get(openDisputeKey(asset, merchant, ref, payer))
	if err != nil || len(v) == 0 {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("state: active dispute record of %s is %d bytes", ref, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// LastDisputeID is the highest dispute id (ids are 1..last).
func (o *Overlay) LastDisputeID() (uint64, error) {
	v, err := o.Get(keyDisputeSeq)
	if err != nil || len(v) != 8 {
		return 0, err
	}
	return binary.BigEndian.Uint64(v), nil
}

// stampPayment records the block time of a payment of an asset that takes
// disputes: its window runs from it.
func (x *exec) stampPayment(asset uint32, p *Payment) {
	if x.rules.Assets[asset].DisputeWindowSeconds != 0 {
		p.PaidMs = x.blk.TimeMs
	}
}

// disputes runs operation name of the disputes contract
// (abi/Disputes.json) with decoded args.
func (x *exec) disputes(name string, args []any) ([]any, error) {
	addr := func(i int) common.Address { return args[i].(common.Address) }
	num := func(i int) *big.Int { return args[i].(*big.Int) }
	hash := func(i int) common.Hash { return common.Hash(args[i].([32]byte)) }
	ok := []any{true}
	switch name {
	case "dispute":
		d, found, err := x.disputeOf(num(0))
		if err != nil || !found {
			return []any{common.Address{}, common.Address{}, common.Address{}, [32]byte{}, new(big.Int), uint8(0), uint8(0), new(big.Int), uint64(0), [32]byte{}}, err
		}
		return []any{d.Payer, d.Merchant, chain.AssetAddress(d.Asset), [32]byte(d.Ref), d.Amount, d.Reason, d.Status, d.Refunded, d.OpenedMs, [32]byte(d.TxHash)}, nil
	case "disputeOf":
		asset, err := x.assetAt("asset", addr(0))
		if err != nil {
			return nil, err
		}
		id, err := x.o.ActiveDispute(asset, addr(1), hash(2), addr(3))
		return []any{new(big.Int).SetUint64(id)}, err
	case "openDispute":
		id, err := x.openDispute(addr(0), addr(1), hash(2), num(3), args[4].(uint8), hash(5))
		return []any{new(big.Int).SetUint64(id)}, err
	case "contestDispute":
		return ok, x.contestDispute(num(0), args[1].(string))
	case "upholdDispute":
		return ok, x.decideDispute(num(0), num(1), args[2].(string), true)
	case "dismissDispute":
		return ok, x.decideDispute(num(0), nil, args[1].(string), false)
	}
	return nil, revertf("operation %s is not implemented by the disputes contract", name)
}

// openDispute opens the caller's dispute of what it paid merchant under
// ref: within the asset's window from the payment, for at most what is
// left unrefunded, one active dispute per payment.
func (x *exec) openDispute(assetAddr, merchant common.Address, ref common.Hash, amount *big.Int, reason uint8, txHash common.Hash) (uint64, error) {
	asset, err := x.assetAt("asset", assetAddr)
	if err != nil {
		return 0, err
	}
	info := x.rules.Assets[asset]
	if info.DisputeWindowSeconds == 0 {
		return 0, revertf("%s takes no disputes: its rules set no disputeWindowSeconds", info.Symbol)
	}
	if _, known := DisputeReasonNames[reason]; !known {
		return 0, revertf("dispute reason %d is not a reason code (1 not-received, 2 duplicate, 3 wrong-amount, 4 refund-not-received, 5 fraud)", reason)
	}
	if err := positive(amount); err != nil {
		return 0, err
	}
	p, err := x.o.Payment(asset, merchant, ref, x.from)
	if err != nil {
		return 0, err
	}
	if p.Paid.Sign() == 0 {
		return 0, revertf("%s paid %s nothing under reference %s in %s", x.from, merchant, ref, info.Symbol)
	}
	if p.PaidMs == 0 {
		return 0, revertf("the payment under reference %s was made before %s recorded payment times: it cannot be disputed", ref, info.Symbol)
	}
	if closes := p.PaidMs + info.DisputeWindowSeconds*1000; x.blk.TimeMs > closes {
		return 0, revertf("the dispute window of the payment under reference %s closed at %s", ref, FormatTimeMs(closes))
	}
	left := new(big.Int).Sub(p.Paid, p.Refunded)
	if amount.Cmp(left) > 0 {
		return 0, revertf("disputed amount %s is more than the %s paid and not refunded under reference %s", x.units(asset, amount), x.units(asset, left), ref)
	}
	if active, err := x.o.ActiveDispute(asset, merchant, ref, x.from); err != nil || active != 0 {
		if err != nil {
			return 0, err
		}
		return 0, revertf("the payment under reference %s already has dispute %d", ref, active)
	}
	id, err := x.o.seq(keyDisputeSeq)
	if err != nil {
		return 0, err
	}
	x.o.setDispute(id, Dispute{Asset: asset, Payer: x.from, Merchant: merchant, Ref: ref, Amount: new(big.Int).Set(amount), Reason: reason,
		TxHash: txHash, OpenedMs: x.blk.TimeMs, Status: DisputeOpen, Refunded: new(big.Int)})
	x.o.Set(openDisputeKey(asset, merchant, ref, x.from), u64(id))
	x.log(chain.DisputesAddress, chain.DisputesABI.Events["DisputeOpened"], []common.Hash{numTopic(id), addrTopic(x.from), addrTopic(merchant)},
		chain.AssetAddress(asset), [32]byte(ref), amount, reason, [32]byte(txHash))
	return id, nil
}

// disputeOf returns dispute id, if there is one.
func (x *exec) disputeOf(id *big.Int) (Dispute, bool, error) {
	if !id.IsUint64() {
		return Dispute{}, false, nil
	}
	return x.o.Dispute(id.Uint64())
}

// activeDispute returns dispute id if it still awaits an outcome.
func (x *exec) activeDispute(id *big.Int) (Dispute, error) {
	d, found, err := x.disputeOf(id)
	switch {
	case err != nil:
		return d, err
	case !found:
		return d, revertf("no dispute %s", id)
	case !d.Active():
		return d, revertf("dispute %s is already %s", id, DisputeStatusNames[d.Status])
	}
	return d, nil
}

// contestDispute is the merchant answering an open dispute with a reason.
func (x *exec) contestDispute(id *big.Int, reason string) error {
	d, err := x.activeDispute(id)
	if err != nil {
		return err
	}
	switch {
	case x.from != d.Merchant:
		return revertf("only the merchant %s may contest dispute %s", d.Merchant, id)
	case d.Status == DisputeContested:
		return revertf("dispute %s is already contested", id)
	}
	if err := reasonArg(reason); err != nil {
		return err
	}
	d.Status, d.Answer = DisputeContested, reason
	x.o.setDispute(id.Uint64(), d)
	x.log(chain.DisputesAddress, chain.DisputesABI.Events["DisputeContested"], []common.Hash{numTopic(id.Uint64()), addrTopic(x.from)}, reason)
	return nil
}

// closeDispute records d's outcome and frees its payment for another.
func (x *exec) closeDispute(id uint64, d Dispute, status uint8) {
	d.Status, d.ClosedMs = status, x.blk.TimeMs
	x.o.setDispute(id, d)
	x.o.Set(openDisputeKey(d.Asset, d.Merchant, d.Ref, d.Payer), nil)
}

// refundDispute counts a merchant's refund of a payment towards its active
// dispute: the dispute closes as refunded once the refunds since it opened
// reach the disputed amount (the existing refund path closes it).
//
// It looks whatever the asset's window is now: governance may have closed
// the window (proposeSetDisputeWindow to 0) of an asset with disputes
// still active, and a refund must still close them.
func (x *exec) refundDispute(asset uint32, ref common.Hash, payer common.Address, amount *big.Int) error {
	id, err := x.o.ActiveDispute(asset, x.from, ref, payer)
	if err != nil || id == 0 {
		return err
	}
	d, found, err := x.o.Dispute(id)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("state: active dispute %d of reference %s is missing", id, ref)
	}
	d.Refunded.Add(d.Refunded, amount)
	if d.Refunded.Cmp(d.Amount) < 0 {
		x.o.setDispute(id, d)
		return nil
	}
	x.closeDispute(id, d, DisputeRefunded)
	x.log(chain.DisputesAddress, chain.DisputesABI.Events["DisputeRefunded"], []common.Hash{numTopic(id), addrTopic(x.from)}, d.Refunded)
	return nil
}

// decideDispute is an issuing bank of the dispute's asset deciding it,
// once the merchant contested it or left it unanswered for
// rules.DisputeResponse(): for the payer (uphold: amount moves from the
// merchant to the payer as a forced transfer, whatever the merchant's
// limits; the payer's recipient checks apply) or against (dismiss).
func (x *exec) decideDispute(id *big.Int, amount *big.Int, reason string, uphold bool) error {
	d, err := x.activeDispute(id)
	if err != nil {
		return err
	}
	if err := x.checkBank(d.Asset); err != nil {
		return err
	}
	if err := reasonArg(reason); err != nil {
		return err
	}
	if answerBy := d.OpenedMs + x.rules.DisputeResponse()*1000; d.Status == DisputeOpen && x.blk.TimeMs < answerBy {
		return revertf("dispute %s awaits the merchant's refund or answer until %s", id, FormatTimeMs(answerBy))
	}
	d.Bank, d.Decision = x.from, reason
	if !uphold {
		x.closeDispute(id.Uint64(), d, DisputeDismissed)
		x.log(chain.DisputesAddress, chain.DisputesABI.Events["DisputeDismissed"], []common.Hash{numTopic(id.Uint64()), addrTopic(x.from)}, reason)
		return nil
	}
	if err := positive(amount); err != nil {
		return err
	}
	if left := new(big.Int).Sub(d.Amount, d.Refunded); amount.Cmp(left) > 0 {
		return revertf("amount %s is more than the %s of dispute %s not refunded", x.units(d.Asset, amount), x.units(d.Asset, left), id)
	}
	if err := x.checkNotPaused(d.Asset); err != nil {
		return err
	}
	if err := x.move(d.Asset, d.Merchant, d.Payer, amount, true); err != nil {
		return err
	}
	p, err := x.o.Payment(d.Asset, d.Merchant, d.Ref, d.Payer)
	if err != nil {
		return err
	}
	p.Refunded.Add(p.Refunded, amount) // the merchant cannot refund it again
	x.o.SetPayment(d.Asset, d.Merchant, d.Ref, d.Payer, p)
	x.closeDispute(id.Uint64(), d, DisputeUpheld)
	x.transferLog(d.Asset, d.Merchant, d.Payer, amount)
	x.log(chain.DisputesAddress, chain.DisputesABI.Events["DisputeUpheld"], []common.Hash{numTopic(id.Uint64()), addrTopic(x.from)}, amount, reason)
	return nil
}
