package store

import (
	"bytes"
	"fmt"
	"maps"
	"math/big"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/state"
)

// TestPropertyConservation applies thousands of random operations from
// ~30 accounts at mixed tiers (including ones that must fail: over a limit,
// frozen, tier 0, replayed bank references, double settlements) in blocks of
// ~50 whose times cross many UTC days. After every block it checks the
// database's own conservation check and compares the whole state with an
// independent reference ledger kept by the test: every balance, nonce, tier,
// freeze, daily outflow, allowance, payment, withdrawal, bank reference and
// the supply; every limit; each transaction's status against the model's
// prediction; and the balances a wallet would rebuild from Transfer logs.
//
// TALLY_PROPERTY_SEED replays another seed, TALLY_PROPERTY_TXS changes the
// number of transactions.
func TestPropertyConservation(t *testing.T) {
	seed := uint64(20260101)
	if s := os.Getenv("TALLY_PROPERTY_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			t.Fatalf("TALLY_PROPERTY_SEED: %v", err)
		}
		seed = v
	}
	txs := 6000
	if testing.Short() {
		txs = 2000
	}
	if s := os.Getenv("TALLY_PROPERTY_TXS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			t.Fatalf("TALLY_PROPERTY_TXS: %q", s)
		}
		txs = v
	}
	t.Logf("seed %d (TALLY_PROPERTY_SEED=%d to replay), %d transactions", seed, seed, txs)

	p := newPropRun(t, seed)
	p.setup()
	for p.sent < txs {
		p.randomBlock(40 + p.rng.IntN(21))
	}
	p.report()
}

// Accounts of the property test: four rich top-tier dev accounts and 26
// fresh ones raised to tiers 1, 2 and 3 in the first block, or left at 0.
const (
	propFresh      = 600
	propFreshCount = 26
)

func propInitialTier(i int) uint8 {
	switch {
	case i < 8:
		return 1
	case i < 16:
		return 2
	case i < 20:
		return 3
	}
	return 0
}

// pOp is one random operation, described for both the chain and the model.
type pOp struct {
	kind     string
	caller   uint32 // the signer, a dev index
	asset    uint32
	from, to common.Address // parties: owner/holder and recipient/spender/account
	amount   *big.Int
	ref      [32]byte
	wid      uint64
	tier     uint8
	reason   string
	// batchTransfer legs
	tos     []common.Address
	amounts []*big.Int
	// createOffer gives amount of asset for amountIn of assetIn to `to`;
	// acceptOffer and cancelOffer name offer.
	assetIn  uint32
	amountIn *big.Int
	expiry   uint64
	offer    uint64
}

func (op pOp) step() opStep {
	switch op.kind {
	case "value":
		return valueTx(op.caller, op.to, op.amount)
	case "transfer":
		return assetTx(op.caller, op.asset, "transfer", op.to, op.amount)
	case "pay":
		return assetTx(op.caller, op.asset, "transferWithReference", op.to, op.amount, op.ref)
	case "refund":
		return assetTx(op.caller, op.asset, "refund", op.ref, op.to, op.amount)
	case "approve":
		return assetTx(op.caller, op.asset, "approve", op.to, op.amount)
	case "transferFrom":
		return assetTx(op.caller, op.asset, "transferFrom", op.from, op.to, op.amount)
	case "mint":
		return assetTx(op.caller, op.asset, "mint", op.to, op.amount, op.ref)
	case "withdraw":
		return assetTx(op.caller, op.asset, "requestWithdrawal", op.amount, op.ref)
	case "settle":
		return assetTx(op.caller, op.asset, "settleWithdrawal", new(big.Int).SetUint64(op.wid))
	case "refundW":
		return assetTx(op.caller, op.asset, "refundWithdrawal", new(big.Int).SetUint64(op.wid), op.reason)
	case "claim":
		return assetTx(op.caller, op.asset, "claimWithdrawal", new(big.Int).SetUint64(op.wid), op.ref)
	case "returnW":
		return assetTx(op.caller, op.asset, "returnWithdrawal", new(big.Int).SetUint64(op.wid), op.reason)
	case "reverse":
		return assetTx(op.caller, op.asset, "reverseMint", op.ref, op.reason)
	case "force":
		return assetTx(op.caller, op.asset, "forceTransfer", op.from, op.to, op.amount, op.reason)
	case "setTier":
		return complianceTx(op.caller, "setKycTier", op.to, op.tier, "periodic review")
	case "freeze":
		return complianceTx(op.caller, "freeze", op.to, op.reason)
	case "unfreeze":
		return complianceTx(op.caller, "unfreeze", op.to, "released")
	case "batch":
		return assetTx(op.caller, op.asset, "batchTransfer", op.tos, op.amounts, op.ref)
	case "offer":
		return exchangeTx(op.caller, "createOffer", chain.AssetAddress(op.asset), op.amount, chain.AssetAddress(op.assetIn), op.amountIn, op.to, op.expiry)
	case "accept":
		return exchangeTx(op.caller, "acceptOffer", new(big.Int).SetUint64(op.offer))
	case "cancel":
		return exchangeTx(op.caller, "cancelOffer", new(big.Int).SetUint64(op.offer))
	}
	panic("unknown op kind " + op.kind)
}

// The reference ledger: a plain model of DESIGN.md decisions 8 and 9 and the
// operations' documented rules, written independently of the state package.
type (
	allowKey struct {
		asset          uint32
		owner, spender common.Address
	}
	payKey struct {
		asset           uint32
		merchant, payer common.Address
		ref             [32]byte
	}
	dayAmount struct {
		day    uint64
		amount *big.Int
	}
	mWithdrawal struct {
		asset  uint32
		holder common.Address
		amount *big.Int
		status uint8
		bank   common.Address // the claiming bank, zero while unclaimed
		order  [32]byte
	}
	mMint struct {
		asset        uint32
		bank, holder common.Address
		amount       *big.Int
		reversed     bool
	}
	issKey struct {
		asset uint32
		bank  common.Address
	}
	mOffer struct {
		maker, counterparty common.Address
		out, in             uint32
		amountOut, amountIn *big.Int
		expiry              uint64
		status              uint8
	}
)

type propModel struct {
	g                      *genesis.Genesis
	bal                    [2]map[common.Address]*big.Int
	minted, burned, escrow [2]*big.Int
	tier                   map[common.Address]uint8
	frozen                 map[common.Address]bool
	outflow                [2]map[common.Address]dayAmount
	allow                  map[allowKey]*big.Int
	paid                   map[payKey][2]*big.Int // paid, refunded
	wd                     []*mWithdrawal         // withdrawal id i+1
	offers                 []*mOffer              // offer id i+1
	nowSec                 uint64                 // the block time in Unix seconds, for offer expiries
	refs                   map[[32]byte]bool
	mints                  map[[32]byte]*mMint
	issued                 map[issKey][2]*big.Int // a bank's minted (with returns), burned (settled, reversed)
	nonce                  map[common.Address]uint64
	// Allowed ways past a limit: a refunded withdrawal may take a holder
	// over its maximum balance, and lowering a tier may leave a holder over
	// the new maximum balance or today's outflow over the new daily limit.
	overMax  [2]map[common.Address]bool
	overDay  [2]map[common.Address]uint64 // day+1 on which outflow may exceed the limit
	excusals int
}

func newPropModel(g *genesis.Genesis) *propModel {
	m := &propModel{g: g, tier: map[common.Address]uint8{}, frozen: map[common.Address]bool{},
		allow: map[allowKey]*big.Int{}, paid: map[payKey][2]*big.Int{}, refs: map[[32]byte]bool{}, nonce: map[common.Address]uint64{},
		mints: map[[32]byte]*mMint{}, issued: map[issKey][2]*big.Int{}}
	for a := range 2 {
		m.bal[a] = map[common.Address]*big.Int{}
		m.outflow[a] = map[common.Address]dayAmount{}
		m.overMax[a] = map[common.Address]bool{}
		m.overDay[a] = map[common.Address]uint64{}
		m.minted[a], m.burned[a], m.escrow[a] = new(big.Int), new(big.Int), new(big.Int)
	}
	for _, al := range g.Alloc {
		m.tier[al.Address] = al.Tier
		for sym, v := range al.Balances {
			id, _ := g.AssetID(sym)
			m.bal[id][al.Address] = new(big.Int).Set(v.Int)
			m.minted[id].Add(m.minted[id], v.Int)
		}
	}
	return m
}

func (m *propModel) limits(a common.Address, asset uint32) (maxBal, maxTx, maxDaily *big.Int) {
	t := int(m.tier[a])
	if t >= len(m.g.Tiers) {
		t = len(m.g.Tiers) - 1
	}
	l := m.g.Tiers[t].Limits[m.g.Assets[asset].Symbol]
	return l.MaxBalance.Big(), l.MaxTransfer.Big(), l.MaxDailyOutflow.Big()
}

func (m *propModel) balOf(asset uint32, a common.Address) *big.Int {
	if v := m.bal[asset][a]; v != nil {
		return new(big.Int).Set(v)
	}
	return new(big.Int)
}

func (m *propModel) setBal(asset uint32, a common.Address, v *big.Int) {
	if v.Sign() < 0 {
		panic(fmt.Sprintf("model: negative balance of %s", nameOf(a)))
	}
	if v.Sign() == 0 {
		delete(m.bal[asset], a)
		return
	}
	m.bal[asset][a] = v
}

func (m *propModel) out(asset uint32, a common.Address, day uint64) *big.Int {
	if o, ok := m.outflow[asset][a]; ok && o.day == day {
		return new(big.Int).Set(o.amount)
	}
	return new(big.Int)
}

func (m *propModel) isBank(asset uint32, a common.Address) bool {
	return slices.Contains(m.g.Assets[asset].Banks, a)
}

func (m *propModel) allowance(k allowKey) *big.Int {
	if v := m.allow[k]; v != nil {
		return new(big.Int).Set(v)
	}
	return new(big.Int)
}

func (m *propModel) payment(k payKey) (paid, refunded *big.Int) {
	if v, ok := m.paid[k]; ok {
		return new(big.Int).Set(v[0]), new(big.Int).Set(v[1])
	}
	return new(big.Int), new(big.Int)
}

// Failure keywords: each is a substring of the revert reason of one check.
const (
	fFrozen      = "is frozen"
	fTier0       = "not KYC-verified"
	fPerTransfer = "per-transfer limit"
	fDaily       = "daily outflow limit"
	fBalance     = "insufficient balance"
	fMaxBalance  = "over the maximum"
	fZeroAddr    = "to the zero address"
	fSystemAddr  = "to system address"
	fNotBank     = "is not an issuing bank"
	fPositive    = "amount must be positive"
	fBankRef     = "has already minted"
	fAllowance   = "allowance of"
	fRefundLeft  = "left to refund"
	fSettled     = "is already settled"
	fRefunded    = "is already refunded"
	fReason      = "a reason is required"
	// the bank edge
	fMinor          = "minor units"
	fCap            = "over its cap"
	fNotClaimed     = "is not claimed"
	fClaimedBy      = "is claimed by"
	fAlreadyClaimed = "is already claimed"
	fNotSettled     = "is not settled"
	fWasRefunded    = "was refunded, not settled"
	fReturned       = "is already returned"
	fNotMinted      = "has not minted"
	fOtherAsset     = "minted another asset"
	fMintedBy       = "was minted by"
	fReversed       = "is already reversed"
	fCannotReverse  = "cannot reverse the mint"
	fAuthority      = "only the compliance authority"
	fNoTier         = "does not exist"
	fAlreadyFroz    = "is already frozen"
	fNotFrozen      = "is not frozen"
	// batchTransfer and the exchange
	fNoLegs          = "needs at least one recipient"
	fLegCount        = "recipients but"
	fTooLong         = "legs is over the limit"
	fSameAsset       = "two different assets"
	fMustBePositive  = "must be positive"
	fCounterpartyIs  = "is the maker"
	fSystemCP        = "is a system address"
	fExpiryPast      = "is already past"
	fNoOffer         = "no offer"
	fAccepted        = "is already accepted"
	fCancelled       = "is already cancelled"
	fNotCounterparty = "only the counterparty"
	fNotMaker        = "only the maker"
	fExpired         = "expired at"
)

// senderFails lists the checks from would fail sending amount of asset today.
func (m *propModel) senderFails(asset uint32, from common.Address, amount *big.Int, day uint64) []string {
	var f []string
	if m.frozen[from] {
		f = append(f, fFrozen)
	}
	if m.tier[from] < 1 {
		f = append(f, fTier0)
	}
	_, maxTx, maxDaily := m.limits(from, asset)
	if maxTx != nil && amount.Cmp(maxTx) > 0 {
		f = append(f, fPerTransfer)
	}
	if out := m.out(asset, from, day); maxDaily != nil && out.Add(out, amount).Cmp(maxDaily) > 0 {
		f = append(f, fDaily)
	}
	return f
}

// recipientFails lists the checks to would fail holding newBal of asset.
func (m *propModel) recipientFails(asset uint32, to common.Address, newBal *big.Int) []string {
	var f []string
	if to == (common.Address{}) {
		f = append(f, fZeroAddr)
	}
	if chain.IsSystemAddress(to) {
		f = append(f, fSystemAddr)
	}
	if m.frozen[to] {
		f = append(f, fFrozen)
	}
	if maxBal, _, _ := m.limits(to, asset); maxBal != nil && newBal.Cmp(maxBal) > 0 {
		f = append(f, fMaxBalance)
	}
	return f
}

func (m *propModel) moveFails(asset uint32, from, to common.Address, amount *big.Int, forced bool, day uint64) []string {
	var f []string
	if !forced {
		f = m.senderFails(asset, from, amount, day)
	}
	fromBal := m.balOf(asset, from)
	if fromBal.Cmp(amount) < 0 {
		f = append(f, fBalance)
	}
	newBal := fromBal
	if from != to {
		newBal = m.balOf(asset, to)
		newBal.Add(newBal, amount)
	}
	return append(f, m.recipientFails(asset, to, newBal)...)
}

// addOutflow counts amount towards from's outflow today. Outflow is only
// tracked while the account's tier has a daily limit.
func (m *propModel) addOutflow(asset uint32, from common.Address, amount *big.Int, day uint64) {
	if _, _, maxDaily := m.limits(from, asset); maxDaily == nil {
		return
	}
	o := m.out(asset, from, day)
	m.outflow[asset][from] = dayAmount{day, o.Add(o, amount)}
}

func (m *propModel) move(asset uint32, from, to common.Address, amount *big.Int, forced bool, day uint64) {
	if !forced && amount.Sign() > 0 {
		m.addOutflow(asset, from, amount, day)
	}
	if from == to {
		return
	}
	fb, tb := m.balOf(asset, from), m.balOf(asset, to)
	m.setBal(asset, from, fb.Sub(fb, amount))
	m.setBal(asset, to, tb.Add(tb, amount))
}

// issuance returns a bank's (minted, burned) of asset, copies.
func (m *propModel) issuance(asset uint32, bank common.Address) (*big.Int, *big.Int) {
	v, ok := m.issued[issKey{asset, bank}]
	if !ok {
		return new(big.Int), new(big.Int)
	}
	return new(big.Int).Set(v[0]), new(big.Int).Set(v[1])
}

func (m *propModel) addIssued(asset uint32, bank common.Address, minted, burned *big.Int) {
	mi, bu := m.issuance(asset, bank)
	m.issued[issKey{asset, bank}] = [2]*big.Int{mi.Add(mi, minted), bu.Add(bu, burned)}
}

// withdrawalOf returns withdrawal wid if it is of asset, else nil.
func (m *propModel) withdrawalOf(asset uint32, wid uint64) *mWithdrawal {
	if wid >= 1 && wid <= uint64(len(m.wd)) && m.wd[wid-1].asset == asset {
		return m.wd[wid-1]
	}
	return nil
}

func (m *propModel) bankFails(asset uint32, caller common.Address) []string {
	var f []string
	if !m.isBank(asset, caller) {
		f = append(f, fNotBank)
	}
	if m.frozen[caller] {
		f = append(f, fFrozen)
	}
	return f
}

// apply predicts op in a block of UTC day, applies it to the model if it
// succeeds, and returns the keywords of every check that fails (none: the
// operation succeeds).
func (m *propModel) apply(op pOp, day uint64) []string {
	caller := who(op.caller)
	m.nonce[caller]++
	var f []string
	positive := func() {
		if op.amount.Sign() <= 0 {
			f = append(f, fPositive)
		}
	}
	reason := func() {
		if op.reason == "" {
			f = append(f, fReason)
		}
	}
	switch op.kind {
	case "value", "transfer", "pay":
		if op.kind == "value" && chain.IsSystemAddress(op.to) {
			// Value to a system address is a system call, and calls take no value.
			if op.amount.Sign() > 0 {
				return []string{"system operations take no value"}
			}
			return []string{"calldata has no 4-byte selector"}
		}
		if f = m.moveFails(op.asset, caller, op.to, op.amount, false, day); len(f) == 0 {
			m.move(op.asset, caller, op.to, op.amount, false, day)
			if op.kind == "pay" {
				k := payKey{op.asset, op.to, caller, op.ref}
				p, r := m.payment(k)
				m.paid[k] = [2]*big.Int{p.Add(p, op.amount), r}
			}
		}
	case "refund":
		positive()
		k := payKey{op.asset, caller, op.to, op.ref}
		p, r := m.payment(k)
		if left := new(big.Int).Sub(p, r); op.amount.Cmp(left) > 0 {
			f = append(f, fRefundLeft)
		}
		if f = append(f, m.moveFails(op.asset, caller, op.to, op.amount, false, day)...); len(f) == 0 {
			m.move(op.asset, caller, op.to, op.amount, false, day)
			m.paid[k] = [2]*big.Int{p, r.Add(r, op.amount)}
		}
	case "approve":
		if m.frozen[caller] {
			f = append(f, fFrozen)
		}
		if len(f) == 0 {
			m.allow[allowKey{op.asset, caller, op.to}] = new(big.Int).Set(op.amount)
		}
	case "transferFrom":
		if m.frozen[caller] {
			f = append(f, fFrozen)
		}
		k := allowKey{op.asset, op.from, caller}
		a := m.allowance(k)
		if a.Cmp(op.amount) < 0 {
			f = append(f, fAllowance)
		}
		if f = append(f, m.moveFails(op.asset, op.from, op.to, op.amount, false, day)...); len(f) == 0 {
			m.move(op.asset, op.from, op.to, op.amount, false, day)
			m.allow[k] = a.Sub(a, op.amount)
		}
	case "mint":
		f = m.bankFails(op.asset, caller)
		positive()
		if m.refs[op.ref] {
			f = append(f, fBankRef)
		}
		nb := m.balOf(op.asset, op.to)
		nb.Add(nb, op.amount)
		if limit := m.g.Assets[op.asset].CapOf(caller); limit != nil {
			mi, bu := m.issuance(op.asset, caller)
			if mi.Sub(mi, bu).Add(mi, op.amount).Cmp(limit) > 0 {
				f = append(f, fCap)
			}
		}
		if f = append(f, m.recipientFails(op.asset, op.to, nb)...); len(f) == 0 {
			m.setBal(op.asset, op.to, nb)
			m.minted[op.asset].Add(m.minted[op.asset], op.amount)
			m.refs[op.ref] = true
			m.mints[op.ref] = &mMint{asset: op.asset, bank: caller, holder: op.to, amount: new(big.Int).Set(op.amount)}
			m.addIssued(op.asset, caller, op.amount, new(big.Int))
		}
	case "withdraw":
		positive()
		if op.asset == assetCNY && new(big.Int).Mod(op.amount, cent).Sign() != 0 {
			f = append(f, fMinor) // CNY has 2 decimal places, the native asset 18
		}
		f = append(f, m.senderFails(op.asset, caller, op.amount, day)...)
		b := m.balOf(op.asset, caller)
		if b.Cmp(op.amount) < 0 {
			f = append(f, fBalance)
		}
		if len(f) == 0 {
			m.addOutflow(op.asset, caller, op.amount, day)
			m.setBal(op.asset, caller, b.Sub(b, op.amount))
			m.escrow[op.asset].Add(m.escrow[op.asset], op.amount)
			m.wd = append(m.wd, &mWithdrawal{asset: op.asset, holder: caller, amount: new(big.Int).Set(op.amount), status: state.WithdrawalPending})
		}
	case "settle", "refundW":
		f = m.bankFails(op.asset, caller)
		if op.kind == "refundW" {
			reason()
		}
		w := m.withdrawalOf(op.asset, op.wid)
		switch {
		case w == nil:
			f = append(f, "no "+m.g.Assets[op.asset].Symbol+" withdrawal")
		case w.status == state.WithdrawalSettled || w.status == state.WithdrawalReturned:
			f = append(f, fSettled)
		case w.status == state.WithdrawalRefunded:
			f = append(f, fRefunded)
		case w.bank != (common.Address{}) && w.bank != caller:
			f = append(f, fClaimedBy)
		case w.bank == (common.Address{}) && op.kind == "settle":
			f = append(f, fNotClaimed)
		}
		if len(f) == 0 {
			m.escrow[op.asset].Sub(m.escrow[op.asset], w.amount)
			if op.kind == "settle" {
				w.status = state.WithdrawalSettled
				m.burned[op.asset].Add(m.burned[op.asset], w.amount)
				m.addIssued(op.asset, caller, new(big.Int), w.amount)
			} else {
				w.status = state.WithdrawalRefunded
				b := m.balOf(op.asset, w.holder)
				m.setBal(op.asset, w.holder, b.Add(b, w.amount))
				if maxBal, _, _ := m.limits(w.holder, op.asset); maxBal != nil && b.Cmp(maxBal) > 0 {
					m.overMax[op.asset][w.holder] = true // a refund returns the money whatever the limits
					m.excusals++
				}
			}
		}
	case "claim":
		f = m.bankFails(op.asset, caller)
		w := m.withdrawalOf(op.asset, op.wid)
		switch {
		case w == nil:
			f = append(f, "no "+m.g.Assets[op.asset].Symbol+" withdrawal")
		case w.status == state.WithdrawalSettled || w.status == state.WithdrawalReturned:
			f = append(f, fSettled)
		case w.status == state.WithdrawalRefunded:
			f = append(f, fRefunded)
		case w.bank != (common.Address{}) && (w.bank != caller || w.order != op.ref):
			f = append(f, fAlreadyClaimed)
		}
		if len(f) == 0 {
			w.bank, w.order = caller, op.ref
		}
	case "returnW":
		f = m.bankFails(op.asset, caller)
		reason()
		w := m.withdrawalOf(op.asset, op.wid)
		switch {
		case w == nil:
			f = append(f, "no "+m.g.Assets[op.asset].Symbol+" withdrawal")
		case w.status == state.WithdrawalPending:
			f = append(f, fNotSettled)
		case w.status == state.WithdrawalRefunded:
			f = append(f, fWasRefunded)
		case w.status == state.WithdrawalReturned:
			f = append(f, fReturned)
		case w.bank != caller:
			f = append(f, fClaimedBy)
		}
		if len(f) == 0 {
			w.status = state.WithdrawalReturned
			m.minted[op.asset].Add(m.minted[op.asset], w.amount)
			m.addIssued(op.asset, caller, w.amount, new(big.Int))
			b := m.balOf(op.asset, w.holder)
			m.setBal(op.asset, w.holder, b.Add(b, w.amount))
			if maxBal, _, _ := m.limits(w.holder, op.asset); maxBal != nil && b.Cmp(maxBal) > 0 {
				m.overMax[op.asset][w.holder] = true // a return gives the money back whatever the limits
				m.excusals++
			}
		}
	case "reverse":
		f = m.bankFails(op.asset, caller)
		reason()
		mt := m.mints[op.ref]
		switch {
		case mt == nil:
			f = append(f, fNotMinted)
		case mt.asset != op.asset:
			f = append(f, fOtherAsset)
		case mt.reversed:
			f = append(f, fReversed)
		case mt.bank != caller:
			f = append(f, fMintedBy)
		case m.balOf(op.asset, mt.holder).Cmp(mt.amount) < 0:
			f = append(f, fCannotReverse)
		}
		if len(f) == 0 {
			mt.reversed = true
			b := m.balOf(op.asset, mt.holder)
			m.setBal(op.asset, mt.holder, b.Sub(b, mt.amount))
			m.burned[op.asset].Add(m.burned[op.asset], mt.amount)
			m.addIssued(op.asset, caller, new(big.Int), mt.amount)
		}
	case "force":
		if caller != m.g.Compliance {
			f = append(f, fAuthority)
		}
		reason()
		positive()
		if f = append(f, m.moveFails(op.asset, op.from, op.to, op.amount, true, day)...); len(f) == 0 {
			m.move(op.asset, op.from, op.to, op.amount, true, day)
		}
	case "setTier", "freeze", "unfreeze":
		if caller != m.g.Compliance {
			f = append(f, fAuthority)
		}
		switch op.kind {
		case "setTier":
			if int(op.tier) >= len(m.g.Tiers) {
				f = append(f, fNoTier)
			}
		case "freeze":
			reason()
			if m.frozen[op.to] {
				f = append(f, fAlreadyFroz)
			}
		case "unfreeze":
			if !m.frozen[op.to] {
				f = append(f, fNotFrozen)
			}
		}
		if len(f) > 0 {
			break
		}
		switch op.kind {
		case "setTier":
			m.tier[op.to] = op.tier
			for asset := range uint32(2) {
				maxBal, _, maxDaily := m.limits(op.to, asset)
				if maxBal != nil && m.balOf(asset, op.to).Cmp(maxBal) > 0 {
					m.overMax[asset][op.to] = true // a lowered tier keeps what the account holds
					m.excusals++
				}
				if maxDaily != nil && m.out(asset, op.to, day).Cmp(maxDaily) > 0 {
					m.overDay[asset][op.to] = day + 1 // and what it sent today
					m.excusals++
				}
			}
		case "freeze":
			m.frozen[op.to] = true
		case "unfreeze":
			delete(m.frozen, op.to)
		}
	case "batch":
		return m.applyBatch(op, caller, day)
	case "offer", "accept", "cancel":
		return m.applyOffer(op, caller, day)
	default:
		panic("unknown op kind " + op.kind)
	}
	return f
}

// applyBatch is apply for batchTransfer: the payer's per-transfer limit
// bounds each leg, its daily outflow and balance the total; each recipient
// is checked on the balances the earlier legs left.
func (m *propModel) applyBatch(op pOp, caller common.Address, day uint64) []string {
	switch {
	case len(op.tos) == 0:
		return []string{fNoLegs}
	case len(op.tos) != len(op.amounts):
		return []string{fLegCount}
	case len(op.tos) > chain.MaxBatchTransfer:
		return []string{fTooLong}
	}
	var f []string
	if m.frozen[caller] {
		f = append(f, fFrozen)
	}
	if m.tier[caller] < 1 {
		f = append(f, fTier0)
	}
	_, maxTx, maxDaily := m.limits(caller, op.asset)
	total := new(big.Int)
	for _, a := range op.amounts {
		if maxTx != nil && a.Cmp(maxTx) > 0 {
			f = append(f, fPerTransfer)
		}
		total.Add(total, a)
	}
	if out := m.out(op.asset, caller, day); maxDaily != nil && out.Add(out, total).Cmp(maxDaily) > 0 {
		f = append(f, fDaily)
	}
	if m.balOf(op.asset, caller).Cmp(total) < 0 {
		f = append(f, fBalance)
	}
	scratch := map[common.Address]*big.Int{}
	balance := func(a common.Address) *big.Int {
		if v, ok := scratch[a]; ok {
			return new(big.Int).Set(v)
		}
		return m.balOf(op.asset, a)
	}
	for i, to := range op.tos {
		payer := balance(caller)
		newBal := payer
		if to != caller {
			newBal = balance(to)
			newBal.Add(newBal, op.amounts[i])
			scratch[caller], scratch[to] = payer.Sub(payer, op.amounts[i]), newBal
		}
		f = append(f, m.recipientFails(op.asset, to, newBal)...)
	}
	if len(f) > 0 {
		return f
	}
	for i, to := range op.tos {
		m.move(op.asset, caller, to, op.amounts[i], true, day) // the payer's outflow counts once, the total
		k := payKey{op.asset, to, caller, op.ref}
		p, r := m.payment(k)
		m.paid[k] = [2]*big.Int{p.Add(p, op.amounts[i]), r}
	}
	if total.Sign() > 0 {
		m.addOutflow(op.asset, caller, total, day)
	}
	return nil
}

// applyOffer is apply for the exchange: an open offer's amountOut is escrow
// of its assetOut; accepting pays both legs, cancelling returns the escrow
// to the maker whatever its limits.
func (m *propModel) applyOffer(op pOp, caller common.Address, day uint64) []string {
	var f []string
	if op.kind == "offer" {
		if op.asset == op.assetIn {
			f = append(f, fSameAsset)
		}
		if op.amount.Sign() <= 0 || op.amountIn.Sign() <= 0 {
			f = append(f, fMustBePositive)
		}
		switch {
		case chain.IsSystemAddress(op.to):
			f = append(f, fSystemCP)
		case op.to == caller:
			f = append(f, fCounterpartyIs)
		}
		if op.expiry < m.nowSec {
			f = append(f, fExpiryPast)
		}
		f = append(f, m.senderFails(op.asset, caller, op.amount, day)...)
		b := m.balOf(op.asset, caller)
		if b.Cmp(op.amount) < 0 {
			f = append(f, fBalance)
		}
		if len(f) == 0 {
			m.addOutflow(op.asset, caller, op.amount, day)
			m.setBal(op.asset, caller, b.Sub(b, op.amount))
			m.escrow[op.asset].Add(m.escrow[op.asset], op.amount)
			m.offers = append(m.offers, &mOffer{maker: caller, counterparty: op.to, out: op.asset, in: op.assetIn,
				amountOut: new(big.Int).Set(op.amount), amountIn: new(big.Int).Set(op.amountIn), expiry: op.expiry, status: state.OfferOpen})
		}
		return f
	}
	if op.offer < 1 || op.offer > uint64(len(m.offers)) {
		return []string{fNoOffer}
	}
	o := m.offers[op.offer-1]
	switch o.status {
	case state.OfferAccepted:
		return []string{fAccepted}
	case state.OfferCancelled:
		return []string{fCancelled}
	}
	if op.kind == "cancel" {
		if caller != o.maker && m.nowSec <= o.expiry {
			return []string{fNotMaker}
		}
		m.escrow[o.out].Sub(m.escrow[o.out], o.amountOut)
		b := m.balOf(o.out, o.maker)
		m.setBal(o.out, o.maker, b.Add(b, o.amountOut))
		if maxBal, _, _ := m.limits(o.maker, o.out); maxBal != nil && b.Cmp(maxBal) > 0 {
			m.overMax[o.out][o.maker] = true // a cancel returns the money whatever the limits
			m.excusals++
		}
		o.status = state.OfferCancelled
		return nil
	}
	if caller != o.counterparty {
		f = append(f, fNotCounterparty)
	}
	if m.nowSec > o.expiry {
		f = append(f, fExpired)
	}
	f = append(f, m.moveFails(o.in, caller, o.maker, o.amountIn, false, day)...)
	nb := m.balOf(o.out, caller)
	nb.Add(nb, o.amountOut)
	if f = append(f, m.recipientFails(o.out, caller, nb)...); len(f) > 0 {
		return f
	}
	m.move(o.in, caller, o.maker, o.amountIn, false, day)
	m.escrow[o.out].Sub(m.escrow[o.out], o.amountOut)
	m.setBal(o.out, caller, nb)
	o.status = state.OfferAccepted
	return nil
}

// boundaries names the limits a transfer-like op would reach exactly.
func (m *propModel) boundaries(op pOp, day uint64) []string {
	var from common.Address
	switch op.kind {
	case "value", "transfer", "pay", "refund", "withdraw":
		from = who(op.caller)
	case "transferFrom":
		from = op.from
	default:
		return nil
	}
	var at []string
	_, maxTx, maxDaily := m.limits(from, op.asset)
	if maxTx != nil && op.amount.Cmp(maxTx) == 0 {
		at = append(at, "the per-transfer limit")
	}
	if out := m.out(op.asset, from, day); maxDaily != nil && out.Add(out, op.amount).Cmp(maxDaily) == 0 {
		at = append(at, "the daily limit")
	}
	if op.kind != "withdraw" && op.to != from {
		nb := m.balOf(op.asset, op.to)
		if maxBal, _, _ := m.limits(op.to, op.asset); maxBal != nil && nb.Add(nb, op.amount).Cmp(maxBal) == 0 {
			at = append(at, "the maximum balance")
		}
	}
	return at
}

// propRun drives the random operations and checks the chain against the model.
type propRun struct {
	t       *testing.T
	seed    uint64
	rng     *rand.Rand
	h       *opHarness
	m       *propModel
	rich    []uint32
	fresh   []uint32
	users   []uint32 // rich and fresh
	ids     map[common.Address]uint32
	refN    int
	tried   [][32]byte // every bank reference a mint used, successful or not
	payKeys []payKey
	allows  []allowKey
	orders  [][32]byte
	logBal  [2]map[common.Address]*big.Int // balances rebuilt from Transfer logs and values
	sent    int
	blocks  int
	stats   map[string]int
}

// propCapCNY caps bank A's CNY issuance in the property test's genesis.
var propCapCNY = cny(propCapUnits)

const propCapUnits = 300_000

func newPropRun(t *testing.T, seed uint64) *propRun {
	g := genesis.Dev()
	g.Assets[assetCNY].IssuanceCaps = []genesis.IssuanceCap{{Bank: who(idBankA), Cap: genesis.Amount{Int: propCapCNY}}}
	p := &propRun{
		t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		h: newOpHarnessOn(t, g), m: newPropModel(g), ids: map[common.Address]uint32{}, stats: map[string]int{},
		orders: [][32]byte{ref("order-a"), ref("order-b"), ref("order-c")},
	}
	for i := uint32(0); i < 4; i++ {
		p.rich = append(p.rich, i)
	}
	for i := uint32(0); i < propFreshCount; i++ {
		p.fresh = append(p.fresh, propFresh+i)
	}
	p.users = append(slices.Clone(p.rich), p.fresh...)
	for _, i := range append(slices.Clone(p.users), idBankA, idBankB, idCompliance) {
		p.ids[who(i)] = i
	}
	for a := range 2 {
		p.logBal[a] = map[common.Address]*big.Int{}
		for addr, v := range p.m.bal[a] {
			p.logBal[a][addr] = new(big.Int).Set(v)
		}
	}
	return p
}

func (p *propRun) fatalf(format string, args ...any) {
	p.t.Helper()
	p.t.Fatalf("seed %d, block %d: %s", p.seed, p.h.db.Tip().Head.Number, fmt.Sprintf(format, args...))
}

// setup raises the fresh accounts' tiers (some stay at 0) and funds them by
// mints and transfers.
func (p *propRun) setup() {
	var ops []pOp
	for i, id := range p.fresh {
		if tier := propInitialTier(i); tier > 0 {
			ops = append(ops, pOp{kind: "setTier", caller: idCompliance, to: who(id), tier: tier})
		}
	}
	p.run(ops, 0)

	ops = nil
	for _, id := range p.fresh {
		for asset := range uint32(2) {
			bank := uint32(idBankB)
			if asset == assetCNY && p.rng.IntN(2) == 0 {
				bank = idBankA
			}
			to := who(id)
			room := p.room(asset, to)
			half := new(big.Int).Rsh(room, 1)
			ops = append(ops, pOp{kind: "mint", caller: bank, asset: asset, to: to, amount: p.randBelow(half), ref: p.newRef()})
			ops = append(ops, pOp{kind: "transfer", caller: p.rich[p.rng.IntN(len(p.rich))], asset: asset, to: to, amount: p.randBelow(new(big.Int).Rsh(room, 2))})
		}
	}
	p.run(ops, 0)
}

// room is what a may still receive of asset under its tier (a large amount
// when unlimited).
func (p *propRun) room(asset uint32, a common.Address) *big.Int {
	maxBal, _, _ := p.m.limits(a, asset)
	if maxBal == nil {
		return new(big.Int).Mul(big.NewInt(2_000_000), unitOf(asset))
	}
	r := new(big.Int).Sub(maxBal, p.m.balOf(asset, a))
	if r.Sign() < 0 {
		r.SetInt64(0)
	}
	return r
}

func unitOf(asset uint32) *big.Int {
	if asset == assetHKD {
		return big.NewInt(100)
	}
	return new(big.Int).Set(weiPerCNY)
}

// randBelow returns a random amount in [1, n] (1 when n < 1).
func (p *propRun) randBelow(n *big.Int) *big.Int {
	if n.Sign() <= 0 {
		return big.NewInt(1)
	}
	if n.IsInt64() {
		return big.NewInt(p.rng.Int64N(n.Int64()) + 1)
	}
	// A random fraction of n, in steps of 2^-30.
	f := new(big.Int).Mul(n, big.NewInt(p.rng.Int64N(1<<30)+1))
	if f.Rsh(f, 30).Sign() == 0 {
		f.SetInt64(1)
	}
	return f
}

func (p *propRun) newRef() [32]byte {
	p.refN++
	r := ref(fmt.Sprintf("bankref-%d", p.refN))
	p.tried = append(p.tried, r)
	return r
}

func (p *propRun) pick(ids []uint32) uint32 { return ids[p.rng.IntN(len(ids))] }

// user picks an account, fresh ones more often.
func (p *propRun) user() uint32 {
	if p.rng.IntN(5) == 0 {
		return p.pick(p.rich)
	}
	return p.pick(p.fresh)
}

// sender picks who sends asset: often an account that has already sent
// some today, so that daily limits fill up and get hit.
func (p *propRun) sender(asset uint32, day uint64) uint32 {
	if p.rng.IntN(5) < 2 {
		var hot []uint32
		for _, id := range p.fresh {
			if a := who(id); !p.m.frozen[a] && p.m.out(asset, a, day).Sign() > 0 {
				hot = append(hot, id)
			}
		}
		if len(hot) > 0 {
			return p.pick(hot)
		}
	}
	return p.user()
}

// recipient picks where money goes: almost always a user, rarely a bank,
// the compliance authority or a system address.
func (p *propRun) recipient() common.Address {
	switch p.rng.IntN(100) {
	case 0:
		return chain.AssetAddress(uint32(p.rng.IntN(2)))
	case 1:
		return who(idBankA)
	case 2:
		return who(idCompliance)
	}
	return who(p.user())
}

// amount picks an amount that is often exactly at, or one unit over, a
// boundary: the sender's per-transfer limit, what is left of its daily
// limit, its balance, the recipient's room under its maximum balance.
func (p *propRun) amount(asset uint32, from, to common.Address, forced bool, day uint64) *big.Int {
	if p.rng.IntN(50) == 0 {
		return new(big.Int)
	}
	unit := unitOf(asset)
	c := []*big.Int{
		p.randBelow(new(big.Int).Mul(unit, big.NewInt(100))),
		p.randBelow(new(big.Int).Mul(unit, big.NewInt(5000))),
	}
	both := func(v *big.Int) {
		if v != nil && v.Sign() > 0 {
			c = append(c, new(big.Int).Set(v), plus(v, 1))
		}
	}
	if !forced {
		_, maxTx, maxDaily := p.m.limits(from, asset)
		both(maxTx)
		if maxDaily != nil {
			left := new(big.Int).Sub(maxDaily, p.m.out(asset, from, day))
			both(left)
			if maxTx != nil && left.Sign() > 0 {
				// As much as may go in one transfer: fills the day up.
				c = append(c, bigMin(maxTx, left), bigMin(maxTx, left))
			}
		}
	}
	if b := p.m.balOf(asset, from); b.Cmp(new(big.Int).Mul(unit, big.NewInt(10_000_000))) < 0 {
		both(b)
	}
	if maxBal, _, _ := p.m.limits(to, asset); maxBal != nil && to != (common.Address{}) {
		both(new(big.Int).Sub(maxBal, p.m.balOf(asset, to)))
	}
	return c[p.rng.IntN(len(c))]
}

func bigMin(a, b *big.Int) *big.Int {
	if a.Cmp(b) < 0 {
		return new(big.Int).Set(a)
	}
	return new(big.Int).Set(b)
}

// bankFor picks the caller of a bank operation on asset: mostly one of
// its issuers, sometimes a bank that is not, or a holder.
func (p *propRun) bankFor(asset uint32) uint32 {
	switch r := p.rng.IntN(20); {
	case r == 0:
		return p.user()
	case asset == assetHKD && r == 1:
		return idBankA // not an issuer of HKD
	case asset == assetHKD || r%2 == 0:
		return idBankB
	}
	return idBankA
}

// randomOp draws one operation.
func (p *propRun) randomOp(day uint64) pOp {
	asset := uint32(p.rng.IntN(2))
	reason := "checked"
	if p.rng.IntN(20) == 0 {
		reason = ""
	}
	kinds := []struct {
		kind   string
		weight int
	}{
		{"value", 14}, {"transfer", 14}, {"pay", 8}, {"refund", 6}, {"approve", 5}, {"transferFrom", 6},
		{"mint", 10}, {"withdraw", 8}, {"settle", 6}, {"refundW", 5}, {"force", 4},
		{"claim", 6}, {"returnW", 3}, {"reverse", 3},
		{"setTier", 3}, {"freeze", 2}, {"unfreeze", 4},
		{"batch", 6}, {"offer", 7}, {"accept", 6}, {"cancel", 3},
	}
	total := 0
	for _, k := range kinds {
		total += k.weight
	}
	n := p.rng.IntN(total)
	kind := ""
	for _, k := range kinds {
		if n < k.weight {
			kind = k.kind
			break
		}
		n -= k.weight
	}
	op := pOp{kind: kind, asset: asset, reason: reason}
	switch kind {
	case "value", "transfer", "pay":
		if kind == "value" {
			op.asset = assetCNY
		}
		op.caller = p.sender(op.asset, day)
		op.to = p.recipient()
		op.amount = p.amount(op.asset, who(op.caller), op.to, false, day)
		op.ref = p.orders[p.rng.IntN(len(p.orders))]
	case "refund":
		if len(p.payKeys) > 0 && p.rng.IntN(5) > 0 {
			k := p.payKeys[p.rng.IntN(len(p.payKeys))]
			op.asset, op.caller, op.to, op.ref = k.asset, p.ids[k.merchant], k.payer, k.ref
			paid, refunded := p.m.payment(k)
			left := paid.Sub(paid, refunded)
			switch p.rng.IntN(3) {
			case 0:
				op.amount = left
			case 1:
				op.amount = plus(left, 1)
			default:
				op.amount = p.randBelow(left)
			}
		} else {
			op.caller, op.to = p.user(), who(p.user())
			op.ref = p.orders[p.rng.IntN(len(p.orders))]
			op.amount = p.amount(op.asset, who(op.caller), op.to, false, day)
		}
	case "approve":
		op.caller, op.to = p.user(), who(p.user())
		op.amount = p.amount(op.asset, who(op.caller), op.to, false, day)
		if p.rng.IntN(2) == 0 {
			op.amount = new(big.Int).Mul(op.amount, big.NewInt(3))
		}
	case "transferFrom":
		if len(p.allows) > 0 && p.rng.IntN(5) > 0 {
			k := p.allows[p.rng.IntN(len(p.allows))]
			op.asset, op.caller, op.from = k.asset, p.ids[k.spender], k.owner
			op.to = p.recipient()
			a := p.m.allowance(k)
			switch p.rng.IntN(3) {
			case 0:
				op.amount = a
			case 1:
				op.amount = plus(a, 1)
			default:
				op.amount = p.amount(op.asset, op.from, op.to, false, day)
			}
		} else {
			op.caller, op.from, op.to = p.user(), who(p.user()), p.recipient()
			op.amount = p.amount(op.asset, op.from, op.to, false, day)
		}
	case "mint":
		switch r := p.rng.IntN(20); {
		case r == 0:
			op.caller = p.user()
		case r == 1:
			op.caller = idCompliance
		case r <= 3:
			op.caller, op.asset = idBankA, assetHKD // not an issuer of HKD
		case op.asset == assetHKD || r%2 == 0:
			op.caller = idBankB
		default:
			op.caller = idBankA
		}
		op.to = p.recipient()
		op.amount = p.amount(op.asset, who(op.caller), op.to, true, day)
		if len(p.tried) > 0 && p.rng.IntN(6) == 0 {
			op.ref = p.tried[p.rng.IntN(len(p.tried))] // a replay, unless that mint failed
		} else {
			op.ref = p.newRef()
		}
	case "withdraw":
		op.caller = p.sender(op.asset, day)
		op.amount = p.amount(op.asset, who(op.caller), common.Address{}, false, day)
		if op.asset == assetCNY && p.rng.IntN(8) > 0 {
			// Mostly whole cents (CNY's minor unit), sometimes not.
			op.amount.Sub(op.amount, new(big.Int).Mod(op.amount, cent))
		}
		op.ref = ref("payout")
	case "settle", "refundW":
		switch r := p.rng.IntN(20); {
		case r == 0:
			op.caller = p.user()
		case r == 1:
			op.caller, op.asset = idBankA, assetHKD
		case op.asset == assetHKD || r%2 == 0:
			op.caller = idBankB
		default:
			op.caller = idBankA
		}
		var pending, other []uint64
		for i, w := range p.m.wd {
			if w.asset == op.asset && w.status == state.WithdrawalPending {
				pending = append(pending, uint64(i+1))
			} else {
				other = append(other, uint64(i+1)) // closed, or of the other asset
			}
		}
		switch r := p.rng.IntN(10); {
		case r < 6 && len(pending) > 0:
			op.wid = pending[p.rng.IntN(len(pending))]
		case r < 9 && len(other) > 0:
			op.wid = other[p.rng.IntN(len(other))]
		default:
			op.wid = uint64(len(p.m.wd)) + 1 + uint64(p.rng.IntN(3)) // unknown
		}
		if w := p.m.withdrawalOf(op.asset, op.wid); w != nil && w.bank != (common.Address{}) && p.rng.IntN(3) > 0 {
			op.caller = p.ids[w.bank] // mostly the bank that claimed it
		}
	case "claim", "returnW":
		op.caller = p.bankFor(op.asset)
		want := state.WithdrawalPending
		if kind == "returnW" {
			want = state.WithdrawalSettled
		}
		var match, other []uint64
		for i, w := range p.m.wd {
			if w.asset == op.asset && (w.status == want || kind == "returnW" && w.status == state.WithdrawalReturned) {
				match = append(match, uint64(i+1))
			} else {
				other = append(other, uint64(i+1))
			}
		}
		switch r := p.rng.IntN(10); {
		case r < 7 && len(match) > 0:
			op.wid = match[p.rng.IntN(len(match))]
		case r < 9 && len(other) > 0:
			op.wid = other[p.rng.IntN(len(other))]
		default:
			op.wid = uint64(len(p.m.wd)) + 1 + uint64(p.rng.IntN(3))
		}
		op.ref = ref(fmt.Sprintf("order-%d", op.wid))
		if p.rng.IntN(6) == 0 {
			op.ref = ref("order-other") // a second bridge's order
		}
		if w := p.m.withdrawalOf(op.asset, op.wid); w != nil && w.bank != (common.Address{}) && p.rng.IntN(3) > 0 {
			op.caller = p.ids[w.bank]
		}
	case "reverse":
		op.caller = p.bankFor(op.asset)
		if len(p.tried) > 0 && p.rng.IntN(8) > 0 {
			op.ref = p.tried[p.rng.IntN(len(p.tried))]
			if mt := p.m.mints[op.ref]; mt != nil && p.rng.IntN(6) > 0 {
				op.asset, op.caller = mt.asset, p.ids[mt.bank]
				if mt.asset == assetCNY && p.rng.IntN(4) == 0 {
					op.caller = idBankA + idBankB - op.caller // the other issuer of CNY
				}
			}
		} else {
			op.ref = p.newRef()
		}
	case "force":
		op.caller = idCompliance
		if p.rng.IntN(8) == 0 {
			op.caller = p.user()
		}
		op.from, op.to = who(p.user()), p.recipient()
		op.amount = p.amount(op.asset, op.from, op.to, true, day)
	case "setTier", "freeze", "unfreeze":
		op.caller = idCompliance
		if p.rng.IntN(10) == 0 {
			op.caller = p.pick([]uint32{p.user(), idBankA})
		}
		acct := p.pick(p.fresh)
		if p.rng.IntN(8) == 0 {
			acct = p.pick(append(slices.Clone(p.rich), idBankA, idBankB))
		}
		op.to = who(acct)
		switch kind {
		case "setTier":
			op.tier = uint8(p.rng.IntN(len(p.m.g.Tiers) + 1)) // the last one does not exist
		case "unfreeze":
			var frozen []common.Address
			for a := range p.m.frozen {
				frozen = append(frozen, a)
			}
			if len(frozen) > 0 && p.rng.IntN(5) > 0 {
				slices.SortFunc(frozen, func(a, b common.Address) int { return bytes.Compare(a[:], b[:]) })
				op.to = frozen[p.rng.IntN(len(frozen))]
			}
		}
	case "batch":
		op.caller = p.sender(op.asset, day)
		n := 1 + p.rng.IntN(4)
		switch p.rng.IntN(60) {
		case 0:
			n = 0
		case 1:
			n = chain.MaxBatchTransfer + 1
		}
		op.tos, op.amounts = []common.Address{}, []*big.Int{}
		for range n {
			to := p.recipient()
			a := p.amount(op.asset, who(op.caller), to, false, day)
			switch p.rng.IntN(3) {
			case 0:
				a.Div(a, big.NewInt(int64(n))) // legs at a boundary together
			case 1:
				a = p.randBelow(new(big.Int).Mul(unitOf(op.asset), big.NewInt(50))) // a small bill
			}
			op.tos, op.amounts = append(op.tos, to), append(op.amounts, a)
		}
		if n > 1 && p.rng.IntN(40) == 0 {
			op.amounts = op.amounts[:n-1]
		}
		op.ref = p.orders[p.rng.IntN(len(p.orders))]
	case "offer":
		op.assetIn = 1 - op.asset
		if p.rng.IntN(30) == 0 {
			op.assetIn = op.asset
		}
		op.caller = p.sender(op.asset, day)
		op.to = who(p.user())
		for range 3 { // mostly a counterparty that may send
			if a := op.to; p.m.tier[a] >= 1 && !p.m.frozen[a] {
				break
			}
			op.to = who(p.user())
		}
		if p.rng.IntN(30) == 0 {
			op.to = chain.ExchangeAddress
		}
		op.amount = p.amount(op.asset, who(op.caller), common.Address{}, false, day)
		// Often at the counterparty's boundaries when it pays the maker.
		op.amountIn = p.amount(op.assetIn, op.to, who(op.caller), false, day)
		if p.rng.IntN(2) == 0 {
			op.amountIn = p.randBelow(new(big.Int).Mul(unitOf(op.assetIn), big.NewInt(100)))
		}
		// Blocks are minutes to hours apart: most offers outlive a few
		// blocks, some expire before they are accepted.
		op.expiry = p.m.nowSec + p.rng.Uint64N(24*3600)
		switch p.rng.IntN(20) {
		case 0:
			op.expiry = p.m.nowSec - 1
		case 1, 2, 3:
			op.expiry = p.m.nowSec + p.rng.Uint64N(3600)
		}
	case "accept", "cancel":
		var live, expired, closed []uint64
		for i, o := range p.m.offers {
			switch {
			case o.status != state.OfferOpen:
				closed = append(closed, uint64(i+1))
			case p.m.nowSec <= o.expiry:
				live = append(live, uint64(i+1))
			default:
				expired = append(expired, uint64(i+1))
			}
		}
		if kind == "cancel" {
			live, expired = expired, live // mostly expired offers: leave live ones to be accepted
		}
		switch r := p.rng.IntN(10); {
		case r < 7 && len(live) > 0:
			op.offer = live[p.rng.IntN(len(live))]
		case r < 8 && len(expired) > 0:
			op.offer = expired[p.rng.IntN(len(expired))]
		case r < 9 && len(closed) > 0:
			op.offer = closed[p.rng.IntN(len(closed))]
		default:
			op.offer = uint64(len(p.m.offers)) + uint64(p.rng.IntN(3)) // unknown, or 0
			if op.offer > 0 {
				op.offer++
			}
		}
		op.caller = p.user()
		if op.offer >= 1 && op.offer <= uint64(len(p.m.offers)) && p.rng.IntN(8) > 0 {
			o := p.m.offers[op.offer-1]
			if kind == "accept" {
				op.caller = p.ids[o.counterparty]
			} else {
				op.caller = p.ids[o.maker]
			}
		}
	}
	return op
}

// randomBlock draws n operations and applies them in one block at a later
// time: usually minutes to hours later, sometimes exactly at or one
// millisecond before the next UTC midnight.
func (p *propRun) randomBlock(n int) {
	const day = 86_400_000
	head := p.h.db.Tip().Head.TimeMs
	next := head + 60_000 + p.rng.Uint64N(4*3600_000)
	switch p.rng.IntN(10) {
	case 0:
		next = (head/day + 1) * day
	case 1:
		next = (head/day+1)*day - 1
	}
	at := max(next, head+1) - p.h.t0
	d := p.h.blockTime(at) / day
	// Draw against a copy of the model so that amounts near boundaries see
	// the effects of earlier operations in the block.
	ops := make([]pOp, 0, n)
	orig := p.cloneModel()
	p.m.nowSec = p.h.blockTime(at) / 1000
	for range n {
		op := p.randomOp(d)
		ops = append(ops, op)
		p.m.apply(op, d)
	}
	p.m = orig
	p.run(ops, at)
}

// cloneModel returns the current model and replaces it with a deep copy,
// so that drawing a block can run ahead on the copy.
func (p *propRun) cloneModel() *propModel {
	m := p.m
	c := &propModel{g: m.g, tier: maps.Clone(m.tier), frozen: maps.Clone(m.frozen), allow: map[allowKey]*big.Int{},
		paid: map[payKey][2]*big.Int{}, refs: maps.Clone(m.refs), nonce: maps.Clone(m.nonce), excusals: m.excusals,
		mints: map[[32]byte]*mMint{}, issued: map[issKey][2]*big.Int{}}
	for k, v := range m.mints {
		cv := *v
		cv.amount = new(big.Int).Set(v.amount)
		c.mints[k] = &cv
	}
	for k, v := range m.issued {
		c.issued[k] = [2]*big.Int{new(big.Int).Set(v[0]), new(big.Int).Set(v[1])}
	}
	for a := range 2 {
		c.bal[a] = map[common.Address]*big.Int{}
		for k, v := range m.bal[a] {
			c.bal[a][k] = new(big.Int).Set(v)
		}
		c.outflow[a] = map[common.Address]dayAmount{}
		for k, v := range m.outflow[a] {
			c.outflow[a][k] = dayAmount{v.day, new(big.Int).Set(v.amount)}
		}
		c.overMax[a], c.overDay[a] = maps.Clone(m.overMax[a]), maps.Clone(m.overDay[a])
		c.minted[a], c.burned[a], c.escrow[a] = new(big.Int).Set(m.minted[a]), new(big.Int).Set(m.burned[a]), new(big.Int).Set(m.escrow[a])
	}
	for k, v := range m.allow {
		c.allow[k] = new(big.Int).Set(v)
	}
	for k, v := range m.paid {
		c.paid[k] = [2]*big.Int{new(big.Int).Set(v[0]), new(big.Int).Set(v[1])}
	}
	for _, w := range m.wd {
		cw := *w
		cw.amount = new(big.Int).Set(w.amount)
		c.wd = append(c.wd, &cw)
	}
	for _, o := range m.offers {
		co := *o
		co.amountOut, co.amountIn = new(big.Int).Set(o.amountOut), new(big.Int).Set(o.amountIn)
		c.offers = append(c.offers, &co)
	}
	c.nowSec = m.nowSec
	p.m = c
	return m
}

// run applies ops in one block at at (ms after genesis; 0: a second after
// the head) and checks every transaction and the whole state against the model.
func (p *propRun) run(ops []pOp, at uint64) {
	p.t.Helper()
	steps := make([]opStep, len(ops))
	for i, op := range ops {
		steps[i] = op.step()
	}
	res := p.h.block(at, steps...)
	p.blocks++
	day := res[0].blk.Day()
	p.m.nowSec = res[0].blk.TimeMs / 1000
	for i, op := range ops {
		edges := p.m.boundaries(op, day)
		want := p.m.apply(op, day)
		r := res[i]
		switch {
		case len(want) == 0 && !r.ok():
			p.fatalf("tx %d (%s): reverted with %q, the model expects success", i, steps[i], r.reason)
		case len(want) > 0 && r.ok():
			p.fatalf("tx %d (%s): succeeded, the model expects failure for %q", i, steps[i], want)
		case len(want) > 0 && !slices.ContainsFunc(want, func(k string) bool { return strings.Contains(r.reason, k) }):
			p.fatalf("tx %d (%s): reverted with %q, the model expects one of %q", i, steps[i], r.reason, want)
		}
		p.sent++
		if r.ok() {
			p.stats["ok "+op.kind]++
			for _, b := range edges {
				p.stats["ok exactly at "+b]++
			}
			p.trackSuccess(op, r)
		} else {
			for _, k := range want {
				if strings.Contains(r.reason, k) {
					p.stats["fail "+k]++
				}
			}
		}
	}
	p.checkState(day)
}

// trackSuccess remembers payments and allowances for later refunds and
// transferFroms, and applies the transaction's Transfer logs (and its value)
// to the balances a wallet would rebuild from them.
func (p *propRun) trackSuccess(op pOp, r txResult) {
	switch op.kind {
	case "pay":
		k := payKey{op.asset, op.to, who(op.caller), op.ref}
		if !slices.Contains(p.payKeys, k) {
			p.payKeys = append(p.payKeys, k)
		}
	case "batch":
		for _, to := range op.tos {
			if k := (payKey{op.asset, to, who(op.caller), op.ref}); !slices.Contains(p.payKeys, k) {
				p.payKeys = append(p.payKeys, k)
			}
		}
	case "approve":
		k := allowKey{op.asset, who(op.caller), op.to}
		if !slices.Contains(p.allows, k) {
			p.allows = append(p.allows, k)
		}
	case "value":
		p.logMove(assetCNY, r.from, *r.tx.To(), r.tx.Value())
	}
	transfer := chain.AssetABI.Events["Transfer"]
	for _, l := range r.receipt.Logs {
		if len(l.Topics) != 3 || l.Topics[0] != transfer.ID {
			continue
		}
		asset, ok := chain.AssetID(l.Address)
		if !ok {
			p.fatalf("Transfer log from %s", l.Address)
		}
		from, to := common.BytesToAddress(l.Topics[1][:]), common.BytesToAddress(l.Topics[2][:])
		v, err := transfer.Inputs.NonIndexed().Unpack(l.Data)
		if err != nil {
			p.fatalf("Transfer log data: %v", err)
		}
		p.logMove(asset, from, to, v[0].(*big.Int))
	}
}

// logMove applies a transfer to the log-rebuilt balances: from the zero
// address is a mint, to it a burn (of the facade's escrow).
func (p *propRun) logMove(asset uint32, from, to common.Address, v *big.Int) {
	get := func(a common.Address) *big.Int {
		if p.logBal[asset][a] == nil {
			p.logBal[asset][a] = new(big.Int)
		}
		return p.logBal[asset][a]
	}
	if from != (common.Address{}) {
		get(from).Sub(get(from), v)
	}
	if to != (common.Address{}) {
		get(to).Add(get(to), v)
	}
}

// checkState compares the applied state with the model after a block.
func (p *propRun) checkState(day uint64) {
	p.t.Helper()
	db := p.h.db
	view := state.NewOverlay(db)
	if err := db.CheckConservation(); err != nil {
		p.fatalf("%v", err)
	}
	for a := range uint32(2) {
		sym := p.m.g.Assets[a].Symbol
		// The model is conserved too, and the chain's supply is the model's.
		sum := new(big.Int).Set(p.m.escrow[a])
		for _, v := range p.m.bal[a] {
			sum.Add(sum, v)
		}
		if want := new(big.Int).Sub(p.m.minted[a], p.m.burned[a]); sum.Cmp(want) != 0 {
			p.fatalf("model %s: balances + escrow %s != minted − burned %s", sym, sum, want)
		}
		s, err := db.Supply(a)
		if err != nil {
			p.fatalf("%v", err)
		}
		if s.Minted.Cmp(p.m.minted[a]) != 0 || s.Burned.Cmp(p.m.burned[a]) != 0 || s.Escrow.Cmp(p.m.escrow[a]) != 0 {
			p.fatalf("%s supply minted %s burned %s escrow %s, model %s %s %s", sym, s.Minted, s.Burned, s.Escrow, p.m.minted[a], p.m.burned[a], p.m.escrow[a])
		}
		// The facade's Transfer logs account for the escrow.
		if lb := p.logBal[a][chain.AssetAddress(a)]; (lb == nil && s.Escrow.Sign() != 0) || (lb != nil && lb.Cmp(s.Escrow) != 0) {
			p.fatalf("%s escrow %s, Transfer logs give the facade %v", sym, s.Escrow, lb)
		}
	}
	// Every balance on the chain is the model's, and the other way round.
	seen := [2]map[common.Address]bool{{}, {}}
	for k, v := range p.balances() {
		seen[k.asset][k.who] = true
		if want := p.m.balOf(k.asset, k.who); v.Cmp(want) != 0 {
			p.fatalf("balance of %s in %s is %s, model %s", nameOf(k.who), p.m.g.Assets[k.asset].Symbol, v, want)
		}
		if lb := p.logBal[k.asset][k.who]; lb == nil || lb.Cmp(v) != 0 {
			p.fatalf("balance of %s in %s is %s, Transfer logs give %v", nameOf(k.who), p.m.g.Assets[k.asset].Symbol, v, lb)
		}
	}
	for a := range uint32(2) {
		for addr, v := range p.m.bal[a] {
			if !seen[a][addr] {
				p.fatalf("model holds %s for %s in %s, the chain nothing", v, nameOf(addr), p.m.g.Assets[a].Symbol)
			}
		}
		for addr, v := range p.logBal[a] {
			if !seen[a][addr] && v.Sign() != 0 && addr != chain.AssetAddress(a) {
				p.fatalf("Transfer logs give %s %s in %s, the chain nothing", nameOf(addr), v, p.m.g.Assets[a].Symbol)
			}
		}
	}
	// Accounts: nonce, tier, freeze, today's outflow, and the limits.
	for addr, id := range p.ids {
		n, err := db.Nonce(addr)
		if err != nil {
			p.fatalf("%v", err)
		}
		if n != p.m.nonce[addr] || n != p.h.nonces[addr] {
			p.fatalf("nonce of %s (%d) is %d, model %d", nameOf(addr), id, n, p.m.nonce[addr])
		}
		acc, err := db.Account(addr)
		if err != nil {
			p.fatalf("%v", err)
		}
		if acc.Tier != p.m.tier[addr] || acc.Frozen != p.m.frozen[addr] {
			p.fatalf("account %s is tier %d frozen %v, model tier %d frozen %v", nameOf(addr), acc.Tier, acc.Frozen, p.m.tier[addr], p.m.frozen[addr])
		}
		for a := range uint32(2) {
			out, err := view.Outflow(a, addr, day)
			if err != nil {
				p.fatalf("%v", err)
			}
			if want := p.m.out(a, addr, day); out.Cmp(want) != 0 {
				p.fatalf("outflow of %s in %s today is %s, model %s", nameOf(addr), p.m.g.Assets[a].Symbol, out, want)
			}
			maxBal, _, maxDaily := p.m.limits(addr, a)
			bal, err := db.Balance(a, addr)
			if err != nil {
				p.fatalf("%v", err)
			}
			if maxBal != nil && bal.Cmp(maxBal) > 0 && !p.m.overMax[a][addr] {
				p.fatalf("%s holds %s of %s, over tier %d's maximum %s, and no refund or tier change put it there", nameOf(addr), bal, p.m.g.Assets[a].Symbol, acc.Tier, maxBal)
			}
			if maxBal == nil || bal.Cmp(maxBal) <= 0 {
				delete(p.m.overMax[a], addr) // back under its maximum: the excuse is spent
			}
			if maxDaily != nil && out.Cmp(maxDaily) > 0 && p.m.overDay[a][addr] != day+1 {
				p.fatalf("%s sent %s of %s today, over tier %d's daily limit %s, and no tier change explains it", nameOf(addr), out, p.m.g.Assets[a].Symbol, acc.Tier, maxDaily)
			}
		}
	}
	// Withdrawals, bank references, allowances and payments.
	for i, w := range p.m.wd {
		got, ok, err := db.Withdrawal(uint64(i + 1))
		if err != nil || !ok || got.Asset != w.asset || got.Holder != w.holder || got.Amount.Cmp(w.amount) != 0 || got.Status != w.status ||
			got.Bank != w.bank || got.OrderID != w.order {
			p.fatalf("withdrawal %d is %+v (found %v, %v), model %+v", i+1, got, ok, err, *w)
		}
	}
	if _, ok, _ := db.Withdrawal(uint64(len(p.m.wd) + 1)); ok {
		p.fatalf("withdrawal %d exists, the model has %d", len(p.m.wd)+1, len(p.m.wd))
	}
	for i, o := range p.m.offers {
		got, ok, err := view.Offer(uint64(i + 1))
		if err != nil || !ok || got.Maker != o.maker || got.Counterparty != o.counterparty || got.AssetOut != o.out || got.AssetIn != o.in ||
			got.AmountOut.Cmp(o.amountOut) != 0 || got.AmountIn.Cmp(o.amountIn) != 0 || got.Expiry != o.expiry || got.Status != o.status {
			p.fatalf("offer %d is %+v (found %v, %v), model %+v", i+1, got, ok, err, *o)
		}
	}
	if _, ok, _ := view.Offer(uint64(len(p.m.offers) + 1)); ok {
		p.fatalf("offer %d exists, the model has %d", len(p.m.offers)+1, len(p.m.offers))
	}
	for _, r := range p.tried {
		used, err := db.BankRefUsed(r)
		if err != nil || used != p.m.refs[r] {
			p.fatalf("bank reference %s used %v (%v), model %v", fmtVal(r), used, err, p.m.refs[r])
		}
		if mt := p.m.mints[r]; mt != nil {
			got, _, err := db.MintRecord(r)
			if err != nil || got.Asset != mt.asset || got.Bank != mt.bank || got.Holder != mt.holder || got.Amount.Cmp(mt.amount) != 0 || got.Reversed != mt.reversed {
				p.fatalf("mint record %s is %+v (%v), model %+v", fmtVal(r), got, err, *mt)
			}
		}
	}
	for asset := range uint32(2) {
		for _, bank := range []common.Address{who(idBankA), who(idBankB)} {
			got, err := db.Issuance(asset, bank)
			mi, bu := p.m.issuance(asset, bank)
			if err != nil || got.Minted.Cmp(mi) != 0 || got.Burned.Cmp(bu) != 0 {
				p.fatalf("issuance of %s in asset %d is %+v (%v), model %s/%s", nameOf(bank), asset, got, err, mi, bu)
			}
		}
	}
	for _, k := range p.allows {
		got, err := view.Allowance(k.asset, k.owner, k.spender)
		if err != nil || got.Cmp(p.m.allowance(k)) != 0 {
			p.fatalf("allowance %s→%s is %s (%v), model %s", nameOf(k.owner), nameOf(k.spender), got, err, p.m.allowance(k))
		}
	}
	for _, k := range p.payKeys {
		got, err := view.Payment(k.asset, k.merchant, k.ref, k.payer)
		paid, refunded := p.m.payment(k)
		if err != nil || got.Paid.Cmp(paid) != 0 || got.Refunded.Cmp(refunded) != 0 {
			p.fatalf("payment %s→%s %s is %+v (%v), model %s/%s", nameOf(k.payer), nameOf(k.merchant), fmtVal(k.ref), got, err, paid, refunded)
		}
	}
}

// balances reads every balance key of the applied state.
func (p *propRun) balances() map[balKey]*big.Int {
	d := p.h.db
	d.mu.RLock()
	defer d.mu.RUnlock()
	it, err := d.pdb.NewIter(&pebble.IterOptions{LowerBound: prefixBalance, UpperBound: upperBound(prefixBalance)})
	if err != nil {
		p.fatalf("%v", err)
	}
	out := map[balKey]*big.Int{}
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()[len(prefixBalance):]
		if len(k) != 24 {
			p.fatalf("balance key %x", it.Key())
		}
		out[balKey{uint32(k[0])<<24 | uint32(k[1])<<16 | uint32(k[2])<<8 | uint32(k[3]), common.BytesToAddress(k[4:])}] = new(big.Int).SetBytes(it.Value())
	}
	if err := it.Close(); err != nil {
		p.fatalf("%v", err)
	}
	return out
}

// report logs what the run exercised and fails if a kind of operation never
// succeeded or an important check never refused one: the generator must
// keep reaching both sides of every boundary.
func (p *propRun) report() {
	keys := make([]string, 0, len(p.stats))
	for k := range p.stats {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %-32s %d", k, p.stats[k])
	}
	g := p.m.g
	days := (p.h.db.Tip().Head.TimeMs - g.TimestampMs) / 86_400_000
	p.t.Logf("%d transactions in %d blocks over %d UTC days, %d limit excusals (refunds over a maximum, lowered tiers):%s", p.sent, p.blocks, days, p.m.excusals, b.String())
	var missing []string
	for _, kind := range []string{"value", "transfer", "pay", "refund", "approve", "transferFrom", "mint", "withdraw", "settle", "refundW", "force", "setTier", "freeze", "unfreeze",
		"batch", "offer", "accept", "cancel", "claim", "returnW", "reverse"} {
		if p.stats["ok "+kind] == 0 {
			missing = append(missing, "ok "+kind)
		}
	}
	for _, f := range []string{fFrozen, fTier0, fPerTransfer, fDaily, fBalance, fMaxBalance, fNotBank, fBankRef, fAllowance, fRefundLeft, fSettled, fRefunded, fAuthority, fNoTier, fReason,
		fExpired, fAccepted, fCancelled, fNotCounterparty, fNotMaker, fNoOffer,
		fMinor, fCap, fNotClaimed, fClaimedBy, fAlreadyClaimed, fReturned, fNotMinted, fMintedBy, fReversed, fCannotReverse} {
		if p.stats["fail "+f] == 0 {
			missing = append(missing, "fail "+f)
		}
	}
	for _, b := range []string{"the per-transfer limit", "the daily limit", "the maximum balance"} {
		if p.stats["ok exactly at "+b] == 0 {
			missing = append(missing, "ok exactly at "+b)
		}
	}
	if p.stats["fail no CNY withdrawal"]+p.stats["fail no HKD withdrawal"] == 0 {
		missing = append(missing, "fail no withdrawal")
	}
	if p.m.excusals == 0 {
		missing = append(missing, "a refund over a maximum or a lowered tier")
	}
	if len(missing) > 0 && p.sent >= 1000 {
		p.t.Errorf("seed %d: %d transactions never exercised %q", p.seed, p.sent, missing)
	}
}
