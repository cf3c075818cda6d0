package state

import (
	"encoding/binary"
	"fmt"
	"math/big"
	"slices"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/rlp"

	"github.com/tally-ledger/tally/chain"
)

// Confirmation of large payments (DESIGN.md decision 13; the contract at
// chain.ConfirmationsAddress, abi/Confirmations.json; docs/payments.md).
//
// An account registers a confirmation key (a second device, or its wallet
// provider's one-time-code service) and per-asset thresholds. A transfer
// (native or of an asset), a payment (transferWithReference) or a
// withdrawal request over its asset's threshold does not move the money:
// the operation is checked as it would run now, and the amount goes from
// the sender's balance into escrow as a held payment with an id
// (ConfirmationRequired). Then exactly one of:
//
//	confirmPayment (the key)   → the operation runs as its sender, under the rules
//	                             in force now (freeze, suspension, KYC tier, limits,
//	                             velocity, the recipient's); if they refuse it, the
//	                             confirmation reverts and the payment stays held
//	rejectPayment (the key)    → the escrow returns to the sender
//	cancelPayment (the sender) → the escrow returns to the sender
//	expiry                     → from expiresAtMs on it cannot be confirmed, and
//	                             expirePayments (anyone's; every validator's node
//	                             sends one while it leads and payments are due)
//	                             returns the escrow to the sender: PaymentExpired
//
// Expiry runs in a transaction, not at the end of a block, because a block
// end has no receipt: the money's return then has its event in the logs
// like every other move, and every node and the audit run it identically.
//
// A change of the settings takes effect at once when the account has no
// key yet, or when it only makes them stricter (same key, thresholds no
// higher, none removed); any other change (a new key, removal, a higher or
// removed threshold) waits rules.KeyChangeDelay() unless the current key
// approves it, and the key or the account may cancel it meanwhile: a
// stolen primary key cannot switch the confirmation off before its owner
// notices.

// Held payment kinds: what runs when it is confirmed.
const (
	HeldKindNative     uint8 = 1 // a native transfer (a transaction's value)
	HeldKindTransfer   uint8 = 2 // an asset's transfer
	HeldKindPayment    uint8 = 3 // an asset's transferWithReference
	HeldKindWithdrawal uint8 = 4 // an asset's requestWithdrawal (ref is the payout reference)
)

// Held payment statuses.
const (
	HeldPending   uint8 = 1
	HeldConfirmed uint8 = 2
	HeldRejected  uint8 = 3
	HeldCancelled uint8 = 4
	HeldExpired   uint8 = 5
)

// HeldStatusName names a held payment status (RPC, CLI, explorer).
func HeldStatusName(s uint8) string {
	switch s {
	case HeldPending:
		return "pending"
	case HeldConfirmed:
		return "confirmed"
	case HeldRejected:
		return "rejected"
	case HeldCancelled:
		return "cancelled"
	case HeldExpired:
		return "expired"
	}
	return "unknown"
}

// HeldKindName names a held payment kind.
func HeldKindName(k uint8) string {
	switch k {
	case HeldKindNative:
		return "native transfer"
	case HeldKindTransfer:
		return "transfer"
	case HeldKindPayment:
		return "payment"
	case HeldKindWithdrawal:
		return "withdrawal"
	}
	return "unknown"
}

// heldSlotMs is the length of an expiry bucket. A held payment expires at
// a whole second of block time (its hold rounded up), and the payments
// expiring in one second share a bucket: a record of the bucket's next
// index and how many of its entries are live, and one entry per payment
// (its id), which closing the payment deletes. Every operation on a
// bucket is O(1), however many payments it holds; the cursor passes each
// second once (advanceHeldCursor) and expirePayments reads the due buckets.
const heldSlotMs = 1000

// Threshold is an account's threshold of one asset: a held operation moves
// more than Amount (exactly Amount goes through).
type Threshold struct {
	Asset  uint32
	Amount *big.Int
}

// ConfirmChange is a change of confirmation settings waiting for its time.
type ConfirmChange struct {
	Key         common.Address
	Thresholds  []Threshold
	EffectiveMs uint64
}

// ConfirmSettings are an account's confirmation key and thresholds (sorted
// by asset, distinct), and at most one change waiting (Change holds 0 or 1).
type ConfirmSettings struct {
	Key        common.Address
	Thresholds []Threshold
	Change     []ConfirmChange
}

// At returns the settings in force at block time t: a waiting change whose
// time has come is in force, without any transaction.
func (s ConfirmSettings) At(t uint64) ConfirmSettings {
	if len(s.Change) == 1 && t >= s.Change[0].EffectiveMs {
		return ConfirmSettings{Key: s.Change[0].Key, Thresholds: s.Change[0].Thresholds}
	}
	return s
}

// ThresholdOf returns the threshold of asset, if one is set.
func (s ConfirmSettings) ThresholdOf(asset uint32) (*big.Int, bool) {
	for _, t := range s.Thresholds {
		if t.Asset == asset {
			return t.Amount, true
		}
	}
	return nil, false
}

// stricter reports whether next asks no less than s: the same key, and
// every threshold of s kept at most as high (new assets may be added).
func (s ConfirmSettings) stricter(next ConfirmSettings) bool {
	if next.Key != s.Key {
		return false
	}
	for _, t := range s.Thresholds {
		n, ok := next.ThresholdOf(t.Asset)
		if !ok || n.Cmp(t.Amount) > 0 {
			return false
		}
	}
	return true
}

// ConfirmSettings returns a's confirmation settings as stored (a change
// may be waiting; At gives those in force).
func (o *Overlay) ConfirmSettings(a common.Address) (ConfirmSettings, error) {
	var s ConfirmSettings
	v, err := o.Get(key(prefixConfirm, a[:]))
	if err != nil || len(v) == 0 {
		return s, err
	}
	if err := rlp.DecodeBytes(v, &s); err != nil {
		return s, fmt.Errorf("state: confirmation settings of %s: %w", a, err)
	}
	return s, nil
}

// setConfirmSettings writes a's settings and the account flag; settings
// with no key and no change delete the record and clear the flag.
func (o *Overlay) setConfirmSettings(a common.Address, s ConfirmSettings) error {
	acc, err := o.Account(a)
	if err != nil {
		return err
	}
	var v []byte
	if s.Key != (common.Address{}) || len(s.Change) > 0 {
		if v, err = rlp.EncodeToBytes(&s); err != nil {
			panic(fmt.Sprintf("encode confirmation settings: %v", err)) // addresses and non-negative integers always encode
		}
	} else {
		s = ConfirmSettings{}
	}
	o.Set(key(prefixConfirm, a[:]), v)
	if on := v != nil; acc.Confirm != on {
		acc.Confirm = on
		o.SetAccount(a, acc)
	}
	return nil
}

// HeldPayment is an operation over its sender's threshold, held in escrow
// until its confirmation key confirms or rejects it, its sender cancels it
// or it expires. While Status is HeldPending, Amount counts in the asset's
// Supply.Escrow.
type HeldPayment struct {
	Kind      uint8
	Asset     uint32
	From, To  common.Address
	Amount    *big.Int
	Ref       common.Hash
	CreatedMs uint64
	ExpiresMs uint64
	Status    uint8
	ClosedMs  uint64 // block time of the confirmation, rejection, cancellation or expiry
	// ExpiryIndex is the payment's entry in the bucket of its expiry's
	// second (closing it deletes the entry).
	ExpiryIndex uint32
}

// HeldPayment returns held payment id; ok is false if there is none.
func (o *Overlay) HeldPayment(id uint64) (p HeldPayment, ok bool, err error) {
	v, err := o.Get(key(prefixHeld, u64(id)))
	if err != nil || len(v) == 0 {
		return p, false, err
	}
	if err := rlp.DecodeBytes(v, &p); err != nil {
		return p, false, fmt.Errorf("state: held payment %d: %w", id, err)
	}
	return p, true, nil
}

func (o *Overlay) setHeldPayment(id uint64, p HeldPayment) {
	v, err := rlp.EncodeToBytes(&p)
	if err != nil {
		panic(fmt.Sprintf("encode held payment: %v", err))
	}
	o.Set(key(prefixHeld, u64(id)), v)
}

// EscrowOf returns the escrow a state record holds while it is open: a
// pending withdrawal, an open exchange offer or a pending held payment
// (ok false for any other key or a closed one). The audit sums it per asset
// against each asset's Supply.Escrow.
func EscrowOf(k, v []byte) (asset uint32, amount *big.Int, ok bool, err error) {
	if len(k) != 2+8 {
		return 0, nil, false, nil
	}
	switch string(k[:2]) {
	case WithdrawPrefix:
		var w Withdrawal
		if err := rlp.DecodeBytes(v, &w); err != nil {
			return 0, nil, false, fmt.Errorf("withdrawal %d: %w", binary.BigEndian.Uint64(k[2:]), err)
		}
		return w.Asset, w.Amount, w.Status == WithdrawalPending, nil
	case OfferPrefix:
		var f Offer
		if err := rlp.DecodeBytes(v, &f); err != nil {
			return 0, nil, false, fmt.Errorf("offer %d: %w", binary.BigEndian.Uint64(k[2:]), err)
		}
		return f.AssetOut, f.AmountOut, f.Status == OfferOpen, nil
	case HeldPrefix:
		var p HeldPayment
		if err := rlp.DecodeBytes(v, &p); err != nil {
			return 0, nil, false, fmt.Errorf("held payment %d: %w", binary.BigEndian.Uint64(k[2:]), err)
		}
		return p.Asset, p.Amount, p.Status == HeldPending, nil
	}
	return 0, nil, false, nil
}

// seq allocates the next id of the sequence at k (ids start at 1).
func (o *Overlay) seq(k []byte) (uint64, error) {
	v, err := o.Get(k)
	if err != nil {
		return 0, err
	}
	var last uint64
	if len(v) == 8 {
		last = binary.BigEndian.Uint64(v)
	}
	o.Set(k, u64(last+1))
	return last + 1, nil
}

// heldCursor returns the last second of block time the expiry sweep
// finished, and how many held payments are pending.
func (o *Overlay) heldCursor() (slot, pending uint64, err error) {
	v, err := o.Get(keyHeldCursor)
	if err != nil || len(v) == 0 {
		return 0, 0, err
	}
	if len(v) != 16 {
		return 0, 0, fmt.Errorf("state: held payment cursor is %d bytes", len(v))
	}
	return binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:]), nil
}

func (o *Overlay) setHeldCursor(slot, pending uint64) {
	o.Set(keyHeldCursor, append(u64(slot), u64(pending)...))
}

// heldBucket returns the bucket of second sec: the index its next entry
// takes, and how many of its entries are live.
func (o *Overlay) heldBucket(sec uint64) (next, live uint32, err error) {
	v, err := o.Get(key(prefixHeldExpiry, u64(sec)))
	if err != nil || len(v) == 0 {
		return 0, 0, err
	}
	if len(v) != 8 {
		return 0, 0, fmt.Errorf("state: held payment bucket of second %d is %d bytes", sec, len(v))
	}
	return binary.BigEndian.Uint32(v), binary.BigEndian.Uint32(v[4:]), nil
}

// setHeldBucket writes the bucket of sec; no live entry deletes it.
func (o *Overlay) setHeldBucket(sec uint64, next, live uint32) {
	var v []byte
	if live > 0 {
		v = append(u32(next), u32(live)...)
	}
	o.Set(key(prefixHeldExpiry, u64(sec)), v)
}

// heldEntryKey is the key of entry i of the bucket of second sec.
func heldEntryKey(sec uint64, i uint32) []byte { return key(prefixHeldExpiry, u64(sec), u32(i)) }

// enqueueHeld adds payment id, expiring at expiresMs (a whole second), to
// its bucket and returns its entry's index.
func (o *Overlay) enqueueHeld(id, expiresMs uint64) (uint32, error) {
	sec := expiresMs / heldSlotMs
	next, live, err := o.heldBucket(sec)
	if err != nil {
		return 0, err
	}
	o.Set(heldEntryKey(sec, next), u64(id))
	o.setHeldBucket(sec, next+1, live+1)
	return next, nil
}

// dequeueHeld deletes p's entry from its bucket (the bucket too when it was
// its last live entry).
func (o *Overlay) dequeueHeld(p HeldPayment) error {
	sec := p.ExpiresMs / heldSlotMs
	next, live, err := o.heldBucket(sec)
	if err != nil {
		return err
	}
	if live == 0 {
		return fmt.Errorf("state: held payment bucket of second %d has no live entry for index %d", sec, p.ExpiryIndex)
	}
	o.Set(heldEntryKey(sec, p.ExpiryIndex), nil)
	o.setHeldBucket(sec, next, live-1)
	return nil
}

// addPending counts one more (d = +1) or one fewer (d = -1) pending held
// payment. When the count leaves 0, the sweep's cursor jumps to now: no
// pending payment expires earlier, and the seconds passed while none was
// pending are never read.
func (o *Overlay) addPending(d int, nowMs uint64) error {
	slot, n, err := o.heldCursor()
	if err != nil {
		return err
	}
	if d > 0 {
		if n == 0 {
			slot = max(slot, nowMs/heldSlotMs)
		}
		n++
	} else {
		if n == 0 {
			panic("state: held payment count below zero") // invariant: counts every pending one
		}
		n--
	}
	o.setHeldCursor(slot, n)
	return nil
}

// confirmations runs operation name of the confirmations contract
// (abi/Confirmations.json) with decoded args.
func (x *exec) confirmations(name string, args []any) ([]any, error) {
	addr := func(i int) common.Address { return args[i].(common.Address) }
	num := func(i int) *big.Int { return args[i].(*big.Int) }
	ok := []any{true}
	switch name {
	case "confirmationOf":
		s, err := x.o.ConfirmSettings(addr(0))
		if err != nil {
			return nil, err
		}
		now := s.At(x.blk.TimeMs)
		out := []any{now.Key, false, common.Address{}, uint64(0)}
		if len(now.Change) == 1 {
			out[1], out[2], out[3] = true, now.Change[0].Key, now.Change[0].EffectiveMs
		}
		return out, nil
	case "thresholdOf":
		id, err := x.assetAt("asset", addr(1))
		if err != nil {
			return nil, err
		}
		s, err := x.o.ConfirmSettings(addr(0))
		if err != nil {
			return nil, err
		}
		t, set := s.At(x.blk.TimeMs).ThresholdOf(id)
		if !set {
			t = new(big.Int)
		}
		return []any{set, t}, nil
	case "pendingPayment":
		p, found, err := x.heldOf(num(0))
		if err != nil || !found {
			return []any{common.Address{}, common.Address{}, common.Address{}, new(big.Int), [32]byte{}, uint8(0), uint64(0), uint8(0)}, err
		}
		return []any{p.From, p.To, chain.AssetAddress(p.Asset), p.Amount, [32]byte(p.Ref), p.Kind, p.ExpiresMs, p.Status}, nil
	case "setConfirmation":
		return ok, x.setConfirmation(addr(0), args[1].([]common.Address), args[2].([]*big.Int))
	case "approveConfirmationChange":
		return ok, x.approveConfirmationChange(addr(0))
	case "cancelConfirmationChange":
		return ok, x.cancelConfirmationChange(addr(0))
	case "confirmPayment":
		return ok, x.confirmPayment(num(0))
	case "rejectPayment", "cancelPayment":
		return ok, x.returnHeld(num(0), name == "rejectPayment")
	case "expirePayments":
		n, err := x.expirePayments()
		return []any{new(big.Int).SetUint64(n)}, err
	}
	return nil, revertf("operation %s is not implemented by the confirmations contract", name)
}

// setConfirmation sets the caller's confirmation key and thresholds, at
// once or after the delay (see the top of this file). key zero with no
// thresholds removes the confirmation.
func (x *exec) setConfirmation(key common.Address, assets []common.Address, amounts []*big.Int) error {
	next := ConfirmSettings{Key: key}
	switch {
	case len(assets) != len(amounts):
		return revertf("setConfirmation has %d assets but %d thresholds", len(assets), len(amounts))
	case len(assets) > len(x.rules.Assets):
		return revertf("setConfirmation has %d thresholds: there are %d assets", len(assets), len(x.rules.Assets))
	case key == x.from:
		return revertf("the confirmation key %s is the account itself: a second confirmation needs a second key", key)
	case chain.IsSystemAddress(key):
		return revertf("the confirmation key %s is a system address", key)
	case key == (common.Address{}) && len(assets) > 0:
		return revertf("thresholds without a confirmation key: give a key, or no thresholds to remove the confirmation")
	}
	for i, a := range assets {
		id, err := x.assetAt(fmt.Sprintf("assets[%d]", i), a)
		if err != nil {
			return err
		}
		if _, dup := next.ThresholdOf(id); dup {
			return revertf("assets[%d]: %s appears twice", i, x.rules.Assets[id].Symbol)
		}
		next.Thresholds = append(next.Thresholds, Threshold{Asset: id, Amount: new(big.Int).Set(amounts[i])})
	}
	slices.SortFunc(next.Thresholds, func(a, b Threshold) int { return int(a.Asset) - int(b.Asset) })
	stored, err := x.o.ConfirmSettings(x.from)
	if err != nil {
		return err
	}
	cur := stored.At(x.blk.TimeMs)
	cur.Change = nil // a new request replaces a waiting change
	if cur.Key == (common.Address{}) && key == (common.Address{}) {
		return revertf("account %s has no confirmation key to remove", x.from)
	}
	assetsOut, amountsOut := x.thresholdArgs(next.Thresholds)
	if cur.Key == (common.Address{}) || cur.stricter(next) {
		if err := x.o.setConfirmSettings(x.from, next); err != nil {
			return err
		}
		x.log(chain.ConfirmationsAddress, chain.ConfirmationsABI.Events["ConfirmationSet"], []common.Hash{addrTopic(x.from), addrTopic(key)}, assetsOut, amountsOut)
		return nil
	}
	at := x.blk.TimeMs + x.rules.KeyChangeDelay()*1000
	cur.Change = []ConfirmChange{{Key: next.Key, Thresholds: next.Thresholds, EffectiveMs: at}}
	if err := x.o.setConfirmSettings(x.from, cur); err != nil {
		return err
	}
	x.log(chain.ConfirmationsAddress, chain.ConfirmationsABI.Events["ConfirmationChangeScheduled"], []common.Hash{addrTopic(x.from), addrTopic(key)}, at, assetsOut, amountsOut)
	return nil
}

// thresholdArgs renders thresholds as the events' assets and amounts.
func (x *exec) thresholdArgs(ts []Threshold) ([]common.Address, []*big.Int) {
	assets, amounts := make([]common.Address, len(ts)), make([]*big.Int, len(ts))
	for i, t := range ts {
		assets[i], amounts[i] = chain.AssetAddress(t.Asset), t.Amount
	}
	return assets, amounts
}

// waitingChange returns account's settings in force and the change that
// is still waiting, refusing when there is none.
func (x *exec) waitingChange(account common.Address) (ConfirmSettings, error) {
	stored, err := x.o.ConfirmSettings(account)
	if err != nil {
		return stored, err
	}
	cur := stored.At(x.blk.TimeMs)
	if len(cur.Change) == 0 {
		return cur, revertf("account %s has no confirmation change waiting", account)
	}
	return cur, nil
}

// approveConfirmationChange is the current confirmation key putting a
// waiting change in force now.
func (x *exec) approveConfirmationChange(account common.Address) error {
	cur, err := x.waitingChange(account)
	if err != nil {
		return err
	}
	if x.from != cur.Key {
		return revertf("only the confirmation key %s of %s may approve its change", cur.Key, account)
	}
	c := cur.Change[0]
	if err := x.o.setConfirmSettings(account, ConfirmSettings{Key: c.Key, Thresholds: c.Thresholds}); err != nil {
		return err
	}
	assets, amounts := x.thresholdArgs(c.Thresholds)
	x.log(chain.ConfirmationsAddress, chain.ConfirmationsABI.Events["ConfirmationSet"], []common.Hash{addrTopic(account), addrTopic(c.Key)}, assets, amounts)
	return nil
}

// cancelConfirmationChange drops a waiting change: the account or its
// current confirmation key may (the key's holder noticing a change it did
// not ask for).
func (x *exec) cancelConfirmationChange(account common.Address) error {
	cur, err := x.waitingChange(account)
	if err != nil {
		return err
	}
	if x.from != account && x.from != cur.Key {
		return revertf("only %s or its confirmation key %s may cancel its confirmation change", account, cur.Key)
	}
	cur.Change = nil
	if err := x.o.setConfirmSettings(account, cur); err != nil {
		return err
	}
	x.log(chain.ConfirmationsAddress, chain.ConfirmationsABI.Events["ConfirmationChangeCancelled"], []common.Hash{addrTopic(account), addrTopic(x.from)})
	return nil
}

// needsConfirmation reports whether from's settings in force hold an
// operation moving amount of asset, and returns the threshold.
func (x *exec) needsConfirmation(from common.Address, asset uint32, amount *big.Int) (*big.Int, bool, error) {
	if x.noHold || x.senderRulesOff(from) {
		return nil, false, nil
	}
	acc, err := x.o.Account(from)
	if err != nil || !acc.Confirm {
		return nil, false, err
	}
	s, err := x.o.ConfirmSettings(from)
	if err != nil {
		return nil, false, err
	}
	now := s.At(x.blk.TimeMs)
	t, set := now.ThresholdOf(asset)
	if now.Key == (common.Address{}) || !set || amount.Cmp(t) <= 0 {
		return nil, false, nil
	}
	return t, true, nil
}

// refuseUnconfirmable refuses an operation that moves amount of from's
// asset over its threshold but cannot wait for a confirmation (a batch,
// a transferFrom, an exchange offer): it would otherwise be a way around
// the confirmation.
func (x *exec) refuseUnconfirmable(op string, from common.Address, asset uint32, amount *big.Int) error {
	t, need, err := x.needsConfirmation(from, asset, amount)
	if err != nil || !need {
		return err
	}
	return revertf("%s of %s from %s is over its confirmation threshold %s, and only a transfer, transferWithReference or requestWithdrawal can wait for a confirmation",
		op, x.units(asset, amount), from, x.units(asset, t))
}

// heldOp is an operation a held payment runs when confirmed.
type heldOp struct {
	kind   uint8
	asset  uint32
	to     common.Address
	amount *big.Int
	ref    common.Hash
}

// perform runs h as x.from, with every check of the operation.
func (x *exec) perform(h heldOp) error {
	if err := x.checkNotPaused(h.asset); err != nil {
		return err
	}
	switch h.kind {
	case HeldKindNative:
		return x.move(NativeAsset, x.from, h.to, h.amount, false)
	case HeldKindTransfer:
		if err := x.move(h.asset, x.from, h.to, h.amount, false); err != nil {
			return err
		}
		x.transferLog(h.asset, x.from, h.to, h.amount)
		return nil
	case HeldKindPayment:
		return x.pay(h.asset, h.to, h.amount, h.ref)
	case HeldKindWithdrawal:
		_, err := x.requestWithdrawal(h.asset, h.amount, h.ref)
		return err
	}
	return fmt.Errorf("state: held payment of kind %d", h.kind)
}

// hold holds h when x.from's settings ask for a confirmation of it: it
// checks h as it would run now (the same checks, on a scratch overlay),
// then moves the amount into escrow. held false: run h as usual.
func (x *exec) hold(h heldOp) (held bool, err error) {
	if _, need, err := x.needsConfirmation(x.from, h.asset, h.amount); err != nil || !need {
		return false, err
	}
	trial := &exec{o: NewOverlay(x.o), rules: x.rules, blk: x.blk, from: x.from, noHold: true}
	if err := trial.perform(h); err != nil {
		return true, err
	}
	bal, err := x.o.Balance(h.asset, x.from)
	if err != nil {
		return true, err
	}
	s, err := x.o.Supply(h.asset)
	if err != nil {
		return true, err
	}
	id, err := x.o.seq(keyHeldSeq)
	if err != nil {
		return true, err
	}
	p := HeldPayment{Kind: h.kind, Asset: h.asset, From: x.from, To: h.to, Amount: new(big.Int).Set(h.amount), Ref: h.ref,
		CreatedMs: x.blk.TimeMs, ExpiresMs: expiryOf(x.blk.TimeMs, x.rules.Hold()), Status: HeldPending}
	if p.ExpiryIndex, err = x.o.enqueueHeld(id, p.ExpiresMs); err != nil {
		return true, err
	}
	if err := x.o.addPending(+1, x.blk.TimeMs); err != nil {
		return true, err
	}
	x.o.SetBalance(h.asset, x.from, bal.Sub(bal, h.amount))
	s.Escrow.Add(s.Escrow, h.amount)
	x.o.SetSupply(h.asset, s)
	x.o.setHeldPayment(id, p)
	if h.kind != HeldKindNative {
		x.transferLog(h.asset, x.from, chain.AssetAddress(h.asset), h.amount)
	}
	x.log(chain.ConfirmationsAddress, chain.ConfirmationsABI.Events["ConfirmationRequired"], []common.Hash{numTopic(id), addrTopic(x.from), addrTopic(h.to)},
		chain.AssetAddress(h.asset), h.amount, [32]byte(h.ref), h.kind, p.ExpiresMs)
	return true, nil
}

// heldOf returns held payment id, if there is one.
func (x *exec) heldOf(id *big.Int) (HeldPayment, bool, error) {
	if !id.IsUint64() {
		return HeldPayment{}, false, nil
	}
	return x.o.HeldPayment(id.Uint64())
}

// pendingHeld returns held payment id if it is still pending.
func (x *exec) pendingHeld(id *big.Int) (HeldPayment, error) {
	p, found, err := x.heldOf(id)
	switch {
	case err != nil:
		return p, err
	case !found:
		return p, revertf("no pending payment %s", id)
	case p.Status != HeldPending:
		return p, revertf("pending payment %s is already %s", id, HeldStatusName(p.Status))
	}
	return p, nil
}

// confirmPayment is the sender's confirmation key confirming a held
// payment before it expires: the operation runs as the sender under the
// rules in force now. If they refuse it, the confirmation reverts with
// their reason and the payment stays held.
func (x *exec) confirmPayment(id *big.Int) error {
	p, err := x.pendingHeld(id)
	if err != nil {
		return err
	}
	s, err := x.o.ConfirmSettings(p.From)
	if err != nil {
		return err
	}
	key := s.At(x.blk.TimeMs).Key
	if key == (common.Address{}) || x.from != key {
		return revertf("only the confirmation key %s of %s may confirm pending payment %s", key, p.From, id)
	}
	if x.blk.TimeMs >= p.ExpiresMs {
		return revertf("pending payment %s expired at %s", id, FormatTimeMs(p.ExpiresMs))
	}
	if err := x.releaseEscrow(p.Asset, p.Amount); err != nil {
		return err
	}
	bal, err := x.o.Balance(p.Asset, p.From)
	if err != nil {
		return err
	}
	x.o.SetBalance(p.Asset, p.From, bal.Add(bal, p.Amount))
	run := &exec{o: x.o, rules: x.rules, blk: x.blk, from: p.From, noHold: true}
	if err := run.perform(heldOp{kind: p.Kind, asset: p.Asset, to: p.To, amount: p.Amount, ref: p.Ref}); err != nil {
		if r, ok := IsRevert(err); ok {
			out := *r
			out.Reason = fmt.Sprintf("pending payment %s cannot be confirmed now: %s", id, r.Reason)
			return &out
		}
		return err
	}
	facade := chain.AssetAddress(p.Asset)
	transfer := chain.AssetABI.Events["Transfer"].ID
	for _, l := range run.logs {
		// The money leaves the escrow, not the sender's balance (it left
		// that when it was held): the Transfer from the sender is from
		// the facade, and a withdrawal's into the escrow is no move.
		if l.Address == facade && len(l.Topics) == 3 && l.Topics[0] == transfer && l.Topics[1] == addrTopic(p.From) {
			if p.Kind == HeldKindWithdrawal {
				continue
			}
			l.Topics[1] = addrTopic(facade)
		}
		x.logs = append(x.logs, l)
	}
	return x.closeHeld(id.Uint64(), p, HeldConfirmed, "PaymentConfirmed", []common.Hash{numTopic(id.Uint64()), addrTopic(p.From), addrTopic(x.from)})
}

// closeHeld records p's outcome, takes it off its expiry bucket (which
// lists only pending payments) and logs it.
func (x *exec) closeHeld(id uint64, p HeldPayment, status uint8, event string, topics []common.Hash, data ...any) error {
	p.Status, p.ClosedMs = status, x.blk.TimeMs
	x.o.setHeldPayment(id, p)
	if err := x.o.dequeueHeld(p); err != nil {
		return err
	}
	if err := x.o.addPending(-1, x.blk.TimeMs); err != nil {
		return err
	}
	x.log(chain.ConfirmationsAddress, chain.ConfirmationsABI.Events[event], topics, data...)
	return nil
}

// returnHeld is a rejection (by the confirmation key) or a cancellation
// (by the sender): the escrow returns to the sender whatever its state
// (frozen, over its maximum balance, a paused asset), as a refunded
// withdrawal does.
func (x *exec) returnHeld(id *big.Int, reject bool) error {
	p, err := x.pendingHeld(id)
	if err != nil {
		return err
	}
	topics := []common.Hash{numTopic(id.Uint64()), addrTopic(p.From)}
	status, event := HeldCancelled, "PaymentCancelled"
	if reject {
		s, err := x.o.ConfirmSettings(p.From)
		if err != nil {
			return err
		}
		key := s.At(x.blk.TimeMs).Key
		if key == (common.Address{}) || x.from != key {
			return revertf("only the confirmation key %s of %s may reject pending payment %s", key, p.From, id)
		}
		status, event = HeldRejected, "PaymentRejected"
		topics = append(topics, addrTopic(x.from))
	} else if x.from != p.From {
		return revertf("only the sender %s may cancel pending payment %s", p.From, id)
	}
	if err := refundHeld(x.o, p); err != nil {
		return err
	}
	if p.Kind != HeldKindNative {
		x.transferLog(p.Asset, chain.AssetAddress(p.Asset), p.From, p.Amount)
	}
	return x.closeHeld(id.Uint64(), p, status, event, topics)
}

// refundHeld moves p's escrow back to its sender's balance.
func refundHeld(o *Overlay, p HeldPayment) error {
	s, err := o.Supply(p.Asset)
	if err != nil {
		return err
	}
	s.Escrow.Sub(s.Escrow, p.Amount)
	if s.Escrow.Sign() < 0 {
		panic("state: escrow below zero") // invariant: escrow holds every pending payment
	}
	o.SetSupply(p.Asset, s)
	bal, err := o.Balance(p.Asset, p.From)
	if err != nil {
		return err
	}
	o.SetBalance(p.Asset, p.From, bal.Add(bal, p.Amount))
	return nil
}

// expiryOf is when a payment held at nowMs for holdSeconds expires: the
// hold rounded up to a whole second, so a bucket's payments all expire at
// once.
func expiryOf(nowMs, holdSeconds uint64) uint64 {
	end := nowMs + holdSeconds*1000
	return (end + heldSlotMs - 1) / heldSlotMs * heldSlotMs
}

// MaxExpiriesPerCall bounds the held payments one expirePayments returns,
// so that one transaction's work stays small; more due wait for the next
// call (the keeper sends one per block while some are due).
const MaxExpiriesPerCall = 64

// expirePayments returns to their senders held payments still pending
// whose expiry is at or before the block time, oldest expiry first, at
// most MaxExpiriesPerCall, each with the event PaymentExpired (and the
// ERC-20 Transfer from the facade back to the sender, as a rejection). It
// is open to anyone: it only does what the hold's time already decided. A
// call with nothing due reverts, so a keeper's eth_call tells it to wait.
//
// The sweep starts at the cursor: the end of every block moves it over the
// seconds whose bucket holds nothing (advanceHeldCursor), so the first
// bucket after it is the earliest expiry, read in O(1).
func (x *exec) expirePayments() (uint64, error) {
	cursor, pending, err := x.o.heldCursor()
	if err != nil {
		return 0, err
	}
	now := x.blk.TimeMs / heldSlotMs
	var n uint64
	for sec := cursor + 1; sec <= now && pending > 0 && n < MaxExpiriesPerCall; sec++ {
		next, live, err := x.o.heldBucket(sec)
		if err != nil {
			return 0, err
		}
		for i := uint32(0); i < next && live > 0 && n < MaxExpiriesPerCall; i++ {
			v, err := x.o.Get(heldEntryKey(sec, i))
			if err != nil {
				return 0, err
			}
			if len(v) == 0 {
				continue // closed before it expired
			}
			if len(v) != 8 {
				return 0, fmt.Errorf("state: held payment entry %d of second %d is %d bytes", i, sec, len(v))
			}
			id := binary.BigEndian.Uint64(v)
			p, found, err := x.o.HeldPayment(id)
			switch {
			case err != nil:
				return 0, err
			case !found || p.Status != HeldPending || p.ExpiresMs != sec*heldSlotMs:
				return 0, fmt.Errorf("state: held payment %d listed to expire at second %d is not pending until then (found %v, %s)", id, sec, found, HeldStatusName(p.Status))
			}
			if err := refundHeld(x.o, p); err != nil {
				return 0, err
			}
			if p.Kind != HeldKindNative {
				x.transferLog(p.Asset, chain.AssetAddress(p.Asset), p.From, p.Amount)
			}
			// closeHeld takes the entry off the bucket and counts one
			// fewer pending; a bucket emptied is deleted.
			if err := x.closeHeld(id, p, HeldExpired, "PaymentExpired", []common.Hash{numTopic(id), addrTopic(p.From)}, chain.AssetAddress(p.Asset), p.Amount); err != nil {
				return 0, err
			}
			live--
			pending--
			n++
		}
	}
	if n == 0 {
		return 0, revertf("no held payment is due to expire at %s", FormatTimeMs(x.blk.TimeMs))
	}
	return n, advanceHeldCursor(x.o, x.blk)
}

// IsExpirePayments reports whether a transaction to to with data calls
// expirePayments: the one operation admission takes from any sender, an
// unverified one too, while a payment is due (mempool).
func IsExpirePayments(to common.Address, data []byte) bool {
	return to == chain.ConfirmationsAddress && len(data) == 4 && [4]byte(data) == [4]byte(chain.ConfirmationsABI.Methods["expirePayments"].ID)
}

// HeldDue reports whether a held payment still pending has reached its
// expiry at block time nowMs: what a keeper asks before it sends
// expirePayments. Two reads: the cursor and the bucket after it.
func HeldDue(r Reader, nowMs uint64) (bool, error) {
	o := NewOverlay(r)
	cursor, pending, err := o.heldCursor()
	if err != nil || pending == 0 || (cursor+1)*heldSlotMs > nowMs {
		return false, err
	}
	_, live, err := o.heldBucket(cursor + 1)
	return live > 0, err
}

// advanceHeldCursor moves the expiry cursor over the seconds up to block
// blk's time whose bucket holds no pending payment, and stops before the
// first that holds one: that bucket waits, due, for expirePayments. While
// none is pending the cursor stays still (addPending moves it to the time
// the next payment is held), so the end of a block reads one record, and
// while some are it reads each second of block time passed once.
func advanceHeldCursor(o *Overlay, blk BlockContext) error {
	cursor, pending, err := o.heldCursor()
	if err != nil || pending == 0 {
		return err
	}
	c := cursor
	for now := blk.TimeMs / heldSlotMs; c < now; c++ {
		_, live, err := o.heldBucket(c + 1)
		if err != nil {
			return err
		}
		if live > 0 {
			break
		}
	}
	if c != cursor {
		o.setHeldCursor(c, pending)
	}
	return nil
}

// EndBlock runs what happens at the end of every block, after its
// transactions: the expiry cursor moves over empty seconds
// (advanceHeldCursor), then the governance changes due take effect
// (ApplyScheduled).
func EndBlock(o *Overlay, rules *Rules, blk BlockContext) error {
	if err := advanceHeldCursor(o, blk); err != nil {
		return fmt.Errorf("held payment cursor: %w", err)
	}
	return ApplyScheduled(o, rules, blk)
}

// LastHeldID is the highest held payment id (ids are 1..last).
func (o *Overlay) LastHeldID() (uint64, error) {
	v, err := o.Get(keyHeldSeq)
	if err != nil || len(v) != 8 {
		return 0, err
	}
	return binary.BigEndian.Uint64(v), nil
}
