package state

import (
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/rlp"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
)

// Preventive risk rules (DESIGN.md decisions 12 and 14), evaluated during
// execution from the state and the block time only:
//
//   - velocity caps (genesis.VelocityRule): per tier and asset, how many
//     transfers and how much an account may send in a rolling hour or day;
//   - automatic suspension: a velocity rule with suspendSeconds suspends
//     the sender it refuses (a temporary freeze that lifts itself at its
//     end of block time unless compliance confirms it);
//   - the watch list: addresses compliance listed, with a reason; payments
//     to or from them are refused with it.
//
// The account record (records.go) carries a flag for a suspension and one
// for a listing, so an account with neither costs no read.

// Rolling windows are sums of fixed buckets of block time (decision 14):
// the hour is the 12 five-minute buckets ending with the one the block
// time falls in, the day the 24 one-hour buckets ending with the block
// time's.
const (
	minuteBucketMs = 300_000
	hourBucketMs   = 3_600_000
	hourBuckets    = 12
	dayBuckets     = 24
)

// bucket is what an account sent of one asset in one bucket of block time.
type bucket struct {
	Slot   uint64 // block time in ms ÷ the bucket's length
	Count  uint64
	Amount *big.Int
}

// Velocity is an account's counters of one asset: the buckets of the
// rolling hour and the rolling day that hold any transfer, oldest first.
// At most 12 + 24 buckets: older ones are dropped whenever it is written.
type Velocity struct {
	Minutes []bucket // 5-minute buckets
	Hours   []bucket // 1-hour buckets
}

// Window is what the counters hold for one window at one block time.
type Window struct {
	Transfers uint64
	Amount    *big.Int
}

// firstSlot is the oldest slot of a window of n buckets of length ms at
// block time t.
func firstSlot(t, ms, n uint64) uint64 {
	if s := t / ms; s >= n-1 {
		return s - (n - 1)
	}
	return 0
}

func sumFrom(bs []bucket, first uint64) Window {
	w := Window{Amount: new(big.Int)}
	for _, b := range bs {
		if b.Slot >= first {
			w.Transfers += b.Count
			w.Amount.Add(w.Amount, b.Amount)
		}
	}
	return w
}

// Hour and Day are the rolling windows at block time t (ms).
func (v Velocity) Hour(t uint64) Window {
	return sumFrom(v.Minutes, firstSlot(t, minuteBucketMs, hourBuckets))
}
func (v Velocity) Day(t uint64) Window {
	return sumFrom(v.Hours, firstSlot(t, hourBucketMs, dayBuckets))
}

// in returns the window a rule counts.
func (v Velocity) in(window string, t uint64) Window {
	if window == genesis.WindowDay {
		return v.Day(t)
	}
	return v.Hour(t)
}

// add counts n transfers of amount at block time t, dropping the buckets
// that left their window.
func (v *Velocity) add(t, n uint64, amount *big.Int) {
	v.Minutes = addTo(v.Minutes, t/minuteBucketMs, firstSlot(t, minuteBucketMs, hourBuckets), n, amount)
	v.Hours = addTo(v.Hours, t/hourBucketMs, firstSlot(t, hourBucketMs, dayBuckets), n, amount)
}

func addTo(bs []bucket, slot, first, n uint64, amount *big.Int) []bucket {
	kept := bs[:0:0]
	for _, b := range bs {
		if b.Slot >= first {
			kept = append(kept, b)
		}
	}
	if l := len(kept); l > 0 && kept[l-1].Slot == slot {
		kept[l-1] = bucket{Slot: slot, Count: kept[l-1].Count + n, Amount: new(big.Int).Add(kept[l-1].Amount, amount)}
		return kept
	}
	// Block time never goes back, so the current slot is the newest.
	return append(kept, bucket{Slot: slot, Count: n, Amount: new(big.Int).Set(amount)})
}

func velocityKey(asset uint32, a common.Address) []byte {
	return key(prefixVelocity, u32(asset), a[:])
}

// Velocity returns a's counters of asset (empty when it has none).
func (o *Overlay) Velocity(asset uint32, a common.Address) (Velocity, error) {
	var v Velocity
	raw, err := o.Get(velocityKey(asset, a))
	if err != nil || len(raw) == 0 {
		return v, err
	}
	if err := rlp.DecodeBytes(raw, &v); err != nil {
		return v, fmt.Errorf("state: velocity of %s in asset %d: %w", a, asset, err)
	}
	return v, nil
}

func (o *Overlay) setVelocity(asset uint32, a common.Address, v Velocity) {
	raw, err := rlp.EncodeToBytes(&v)
	if err != nil {
		panic(fmt.Sprintf("encode velocity: %v", err)) // counts and non-negative amounts always encode
	}
	o.Set(velocityKey(asset, a), raw)
}

// velocityOf returns the velocity rules that apply to a sender of tier
// sending asset id, in the rules' order; a tier beyond the rules has the
// top tier's.
func (r *Rules) velocityOf(tier uint8, id uint32) []genesis.VelocityRule {
	if len(r.velocity) == 0 {
		return nil
	}
	if int(tier) >= len(r.velocity) {
		tier = r.TopTier()
	}
	return r.velocity[tier][id]
}

// compileVelocity indexes gr's velocity rules by tier and asset id.
func compileVelocity(gr *genesis.Rules) [][][]genesis.VelocityRule {
	vs := gr.VelocityRules()
	if len(vs) == 0 {
		return nil
	}
	out := make([][][]genesis.VelocityRule, len(gr.Tiers))
	for t := range out {
		out[t] = make([][]genesis.VelocityRule, len(gr.Assets))
	}
	for _, v := range vs {
		id, _ := gr.AssetID(v.Asset) // validated: the asset exists
		out[v.Tier][id] = append(out[v.Tier][id], v)
	}
	return out
}

// charge is what a sender's successful operation records: its outflow of
// the day (under a daily limit) and its velocity counters (under a
// velocity rule). The checks compute it; commit writes it once every
// other check of the operation passed.
type charge struct {
	asset    uint32
	from     common.Address
	outflow  *big.Int  // nil: no daily limit
	velocity *Velocity // nil: no velocity rule
}

// commit writes c. A zero amount leaves the outflow as it was (a zero
// transfer does not start a new day's record), but counts as a transfer.
func (x *exec) commit(c *charge, amount *big.Int) {
	if c == nil {
		return
	}
	if c.outflow != nil && amount.Sign() > 0 {
		x.o.SetOutflow(c.asset, c.from, x.blk.Day(), c.outflow)
	}
	if c.velocity != nil {
		x.o.setVelocity(c.asset, c.from, *c.velocity)
	}
}

// checkVelocity checks the velocity rules of from's tier for n more
// transfers of amount in total of asset, in the rules' order; it returns
// the counters with them added (nil when no rule applies). The first rule
// that would be broken refuses the operation with a reason naming it and
// its numbers; a rule with a suspension also suspends the sender (the
// revert carries the suspension, which ExecuteTx writes).
func (x *exec) checkVelocity(acc Account, asset uint32, from common.Address, n uint64, amount *big.Int) (*Velocity, error) {
	rules := x.rules.velocityOf(acc.Tier, asset)
	if len(rules) == 0 {
		return nil, nil
	}
	v, err := x.o.Velocity(asset, from)
	if err != nil {
		return nil, err
	}
	t := x.blk.TimeMs
	for _, r := range rules {
		w := v.in(r.Window, t)
		var detail string
		switch after := new(big.Int).Add(w.Amount, amount); {
		case r.MaxTransfers != 0 && w.Transfers+n > r.MaxTransfers:
			detail = fmt.Sprintf("%d transfers in %s, limit %d", w.Transfers+n, r.Window, r.MaxTransfers)
		case r.MaxAmount != nil && after.Cmp(r.MaxAmount.Int) > 0:
			detail = fmt.Sprintf("%s sent in %s, limit %s", x.units(asset, after), r.Window, x.units(asset, r.MaxAmount.Int))
		default:
			continue
		}
		rv := &Revert{Reason: fmt.Sprintf("velocity %s: %s", r.Name, detail)}
		if r.SuspendSeconds != 0 {
			s := Suspension{Rule: r.Name, Reason: "risk:" + r.Name + ":" + detail, SinceMs: t, UntilMs: t + r.SuspendSeconds*1000, Height: x.blk.Number}
			rv.Reason += fmt.Sprintf("; %s suspended until %s", from, FormatTimeMs(s.UntilMs))
			rv.suspend = &suspension{account: from, s: s}
		}
		return nil, rv
	}
	v.add(t, n, amount)
	return &v, nil
}

// Suspension is an automatic temporary freeze: a velocity rule refused a
// transfer and suspended its sender from SinceMs until UntilMs (block
// time). It lifts itself when block time reaches UntilMs; compliance can
// confirm it (a freeze until unfreeze) or lift it early.
type Suspension struct {
	Rule    string // the rule's name
	Reason  string // "risk:<rule>:<numbers>"
	SinceMs uint64
	UntilMs uint64
	Height  uint64 // the block whose transaction fired the rule
}

// ActiveAt reports whether s still holds at block time t (ms).
func (s Suspension) ActiveAt(t uint64) bool { return t < s.UntilMs }

// suspension is a suspension to record on a refused transaction.
type suspension struct {
	account common.Address
	s       Suspension
}

// Suspension returns a's last suspension; ok is false when it has none
// (never suspended, or lifted or confirmed since). An expired suspension
// is still returned: ActiveAt tells.
func (o *Overlay) Suspension(a common.Address) (s Suspension, ok bool, err error) {
	raw, err := o.Get(key(prefixSuspension, a[:]))
	if err != nil || len(raw) == 0 {
		return s, false, err
	}
	if err := rlp.DecodeBytes(raw, &s); err != nil {
		return s, false, fmt.Errorf("state: suspension of %s: %w", a, err)
	}
	return s, true, nil
}

// suspend records s on its account: the record and the account's flag.
// It writes on the transaction's overlay, after its operation reverted.
func (o *Overlay) suspend(s *suspension) error {
	acc, err := o.Account(s.account)
	if err != nil {
		return err
	}
	raw, err := rlp.EncodeToBytes(&s.s)
	if err != nil {
		panic(fmt.Sprintf("encode suspension: %v", err))
	}
	o.Set(key(prefixSuspension, s.account[:]), raw)
	acc.Suspended = true
	o.SetAccount(s.account, acc)
	return nil
}

// clearSuspension removes a's suspension record and flag.
func (o *Overlay) clearSuspension(a common.Address, acc Account) {
	o.Set(key(prefixSuspension, a[:]), nil)
	acc.Suspended = false
	o.SetAccount(a, acc)
}

// activeSuspension returns a's suspension when one holds at block time t.
func (o *Overlay) activeSuspension(a common.Address, acc Account, t uint64) (Suspension, bool, error) {
	if !acc.Suspended {
		return Suspension{}, false, nil
	}
	s, ok, err := o.Suspension(a)
	if err != nil || !ok {
		return s, false, err
	}
	return s, s.ActiveAt(t), nil
}

// Stopped reports whether a, whose account record is acc, is stopped at
// block time t: frozen, or under a suspension that still holds at t
// (decision 14: a suspension stops what a freeze stops while t < until,
// and nothing after). It is the one test of it: execution refuses a
// stopped account's operations (checkNotFrozen, which also names why),
// isFrozen answers it, and the node never exempts a stopped account from
// its rate limits, since its transactions are still admitted and included
// (with status 0).
func (o *Overlay) Stopped(a common.Address, acc Account, t uint64) (bool, error) {
	if acc.Frozen {
		return true, nil
	}
	_, suspended, err := o.activeSuspension(a, acc, t)
	return suspended, err
}

// checkNotFrozen refuses an account that is frozen, or suspended at the
// block's time: every operation a freeze stops, a suspension stops.
func (x *exec) checkNotFrozen(a common.Address, acc Account) error {
	if acc.Frozen {
		return revertf("account %s is frozen", a)
	}
	s, active, err := x.o.activeSuspension(a, acc, x.blk.TimeMs)
	if err != nil {
		return err
	}
	if active {
		return revertf("account %s is suspended until %s: %s", a, FormatTimeMs(s.UntilMs), s.Reason)
	}
	return nil
}

// WatchEntry is an address on the compliance authority's watch list.
type WatchEntry struct {
	Reason string
	Height uint64 // the block that listed it
}

// WatchEntry returns a's watch list entry; ok is false when it is not listed.
func (o *Overlay) WatchEntry(a common.Address) (e WatchEntry, ok bool, err error) {
	raw, err := o.Get(key(prefixWatch, a[:]))
	if err != nil || len(raw) == 0 {
		return e, false, err
	}
	if err := rlp.DecodeBytes(raw, &e); err != nil {
		return e, false, fmt.Errorf("state: watch list entry of %s: %w", a, err)
	}
	return e, true, nil
}

// checkNotListed refuses a payment to or from a watch-listed account with
// its entry's reason.
func (x *exec) checkNotListed(a common.Address, acc Account) error {
	if !acc.Listed {
		return nil
	}
	e, ok, err := x.o.WatchEntry(a)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("state: %s is flagged as listed but has no watch list entry", a) // invariant: flag and entry change together
	}
	return revertf("%s is on the watch list: %s", a, e.Reason)
}

// watch lists or unlists addr (compliance watch and unwatch).
func (x *exec) watch(addr common.Address, acc Account, reason string, list bool) error {
	if err := reasonArg(reason); err != nil {
		return err
	}
	if err := accountArg(addr); err != nil {
		return err
	}
	switch {
	case list && acc.Listed:
		return revertf("%s is already on the watch list", addr)
	case !list && !acc.Listed:
		return revertf("%s is not on the watch list", addr)
	}
	acc.Listed = list
	x.o.SetAccount(addr, acc)
	var raw []byte
	if list {
		var err error
		if raw, err = rlp.EncodeToBytes(&WatchEntry{Reason: reason, Height: x.blk.Number}); err != nil {
			panic(fmt.Sprintf("encode watch entry: %v", err))
		}
	}
	x.o.Set(key(prefixWatch, addr[:]), raw)
	return nil
}

// accountArg refuses an address that cannot be an account.
func accountArg(a common.Address) error {
	if a == (common.Address{}) {
		return revertf("the zero address is not an account")
	}
	if chain.IsSystemAddress(a) {
		return revertf("%s is a system contract address, not an account", a)
	}
	return nil
}

// FormatTimeMs renders block time (ms since the Unix epoch) as UTC ISO
// 8601 with milliseconds ("2026-01-01T01:00:00.000Z"), without the time
// package (the state imports no clock): days to civil date as in Howard
// Hinnant's civil_from_days.
func FormatTimeMs(ms uint64) string {
	days, rem := int64(ms/86_400_000), ms%86_400_000
	z := days + 719468
	era := z / 146097
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	return fmt.Sprintf("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y, m, d, rem/3_600_000, rem/60_000%60, rem/1000%60, rem%1000)
}

// changeVelocity applies governance's proposeSetVelocityRule (add or
// replace the rule of that name) or proposeRemoveVelocityRule to r; the
// caller validates r afterwards, which names a bad field.
func changeVelocity(r *genesis.Rules, kind uint8, args []any) error {
	name := args[0].(string)
	if !genesis.ValidRuleName(name) {
		return revertf("rule name %q must be 1..%d characters a-z, 0-9 or '-'", name, genesis.MaxRuleName)
	}
	if kind == KindRemoveVelocityRule {
		if !r.RemoveVelocityRule(name) {
			return revertf("there is no velocity rule %s", name)
		}
		return nil
	}
	id, ok := chain.AssetID(args[2].(common.Address))
	if !ok || int(id) >= len(r.Assets) {
		return revertf("no asset at %s", args[2].(common.Address))
	}
	v := genesis.VelocityRule{Name: name, Tier: args[1].(uint8), Asset: r.Assets[id].Symbol, Window: args[3].(string),
		MaxTransfers: args[4].(uint64), SuspendSeconds: args[6].(uint64)}
	if m := args[5].(*big.Int); m.Cmp(maxUint256) != 0 { // 2^256-1 means no cap on the amount
		v.MaxAmount = &genesis.Amount{Int: new(big.Int).Set(m)}
	}
	r.SetVelocityRule(v)
	return nil
}

// Counter is one velocity rule's window for one account: what the account
// sent in it, against the rule's caps.
type Counter struct {
	Rule      genesis.VelocityRule
	Transfers uint64
	Amount    *big.Int
}

// RiskStatus is what the risk rules hold about an account at a block time
// (tally_getAccount): its active suspension, its watch list entry, and
// the counters of every velocity rule of its tier.
type RiskStatus struct {
	Suspension *Suspension // nil: none active
	Watch      *WatchEntry // nil: not listed
	Counters   []Counter
}

// ReadRiskStatus returns a's risk status under rules at block time blk.
func ReadRiskStatus(o *Overlay, rules *Rules, blk BlockContext, a common.Address) (RiskStatus, error) {
	var st RiskStatus
	acc, err := o.Account(a)
	if err != nil {
		return st, err
	}
	if s, active, err := o.activeSuspension(a, acc, blk.TimeMs); err != nil {
		return st, err
	} else if active {
		st.Suspension = &s
	}
	if acc.Listed {
		e, ok, err := o.WatchEntry(a)
		if err != nil {
			return st, err
		}
		if ok {
			st.Watch = &e
		}
	}
	for id := range rules.Assets {
		rs := rules.velocityOf(acc.Tier, uint32(id))
		if len(rs) == 0 {
			continue
		}
		v, err := o.Velocity(uint32(id), a)
		if err != nil {
			return st, err
		}
		for _, r := range rs {
			w := v.in(r.Window, blk.TimeMs)
			st.Counters = append(st.Counters, Counter{Rule: r, Transfers: w.Transfers, Amount: w.Amount})
		}
	}
	return st, nil
}
