package state

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
)

// Revert is why an operation failed. The transaction is included with
// status 0 and changes nothing but its sender's nonce; eth_call and
// eth_estimateGas return it as go-ethereum does (code 3, Error(string)).
type Revert struct {
	Reason string
	// Shortfall is set when the sender's balance did not cover a move:
	// eth_call and eth_estimateGas word a plain transfer's as go-ethereum's
	// insufficient funds error, which client libraries classify.
	Shortfall *Shortfall
	// suspend is a suspension the refusal imposes on its sender (a
	// velocity rule with suspendSeconds): ExecuteTx records it with the
	// nonce, since the operation's own writes are discarded.
	suspend *suspension
}

// Shortfall is what an account had and what a move needed of one asset.
type Shortfall struct {
	Account    common.Address
	Have, Want *big.Int
}

func (r *Revert) Error() string { return r.Reason }

func revertf(format string, args ...any) error {
	return &Revert{Reason: fmt.Sprintf(format, args...)}
}

// IsRevert returns the revert in err's chain, if any.
func IsRevert(err error) (*Revert, bool) {
	var r *Revert
	ok := errors.As(err, &r)
	return r, ok
}

// BlockContext is what execution knows of the block it runs in; it never
// reads the clock (DESIGN.md decision 5).
type BlockContext struct {
	Number uint64
	TimeMs uint64
}

// Day is the UTC day of the block time, the unit of daily limits.
func (b BlockContext) Day() uint64 { return b.TimeMs / 86_400_000 }

// units renders an amount of asset as people read it in a reason
// ("1000.00 CNY"): exact, in the asset's units (genesis.Asset.Format), so a
// reason names the amounts a wallet showed its user. An asset the rules do
// not know (no operation gets that far) shows its base units.
func (x *exec) units(asset uint32, v *big.Int) string {
	if !x.rules.HasAsset(asset) {
		return v.String() + " base units of asset " + fmt.Sprint(asset)
	}
	return x.rules.Assets[asset].Format(v)
}

// MaxReason bounds the reason strings operations record in logs.
const MaxReason = 256

// exec runs one operation of one sender on an overlay and collects its logs.
// A Revert leaves writes in the overlay: callers run operations on a child
// overlay they discard on failure.
type exec struct {
	o     *Overlay
	rules *Rules
	blk   BlockContext
	from  common.Address
	logs  []*types.Log
	// anonymous is a call without a sender (eth_call or eth_estimateGas
	// without from, run as the zero address, which no key can sign for):
	// the sender's own rules (KYC tier, freeze, limits) are not checked,
	// since there is no one to check them for; balances, the recipient's
	// rules and an operation's roles still are.
	anonymous bool
	// noHold runs a transfer, payment or withdrawal without holding it for
	// a confirmation (confirm.go): the check of an operation about to be
	// held, and the run of a confirmed one.
	noHold bool
}

// senderRulesOff reports whether from's rules as a sender are not
// checked: it is the caller of an anonymous call.
func (x *exec) senderRulesOff(from common.Address) bool { return x.anonymous && from == x.from }

func (x *exec) log(contract common.Address, ev abi.Event, topics []common.Hash, data ...any) {
	enc, err := ev.Inputs.NonIndexed().Pack(data...)
	if err != nil {
		panic(fmt.Sprintf("pack %s log: %v", ev.Name, err)) // arguments are built here with the right types
	}
	x.logs = append(x.logs, &types.Log{Address: contract, Topics: append([]common.Hash{ev.ID}, topics...), Data: enc})
}

func addrTopic(a common.Address) common.Hash { return common.BytesToHash(a[:]) }

func numTopic(n uint64) common.Hash { return common.BigToHash(new(big.Int).SetUint64(n)) }

// checkSender checks that from may send amount of asset now (one
// transfer) and returns what its success records: the day's outflow and
// the velocity counters (nil when nothing is recorded).
func (x *exec) checkSender(asset uint32, from common.Address, amount *big.Int) (*charge, error) {
	if x.senderRulesOff(from) {
		return nil, nil
	}
	acc, err := x.o.Account(from)
	if err != nil {
		return nil, err
	}
	if err := x.checkNotFrozen(from, acc); err != nil {
		return nil, err
	}
	if err := x.checkNotListed(from, acc); err != nil {
		return nil, err
	}
	if acc.Tier < 1 {
		return nil, revertf("account %s is not KYC-verified: tier 0 may only receive", from)
	}
	l := x.rules.limitsOf(acc.Tier, asset)
	if l.maxTransfer != nil && amount.Cmp(l.maxTransfer) > 0 {
		return nil, revertf("amount %s is over the per-transfer limit %s of tier %d", x.units(asset, amount), x.units(asset, l.maxTransfer), acc.Tier)
	}
	c := &charge{asset: asset, from: from}
	// Outflow is tracked only under a daily limit: an unlimited account
	// (the top tier that load tools use) pays no read or write for it.
	if l.maxDaily != nil {
		out, err := x.o.Outflow(asset, from, x.blk.Day())
		if err != nil {
			return nil, err
		}
		out.Add(out, amount)
		if out.Cmp(l.maxDaily) > 0 {
			left := new(big.Int).Sub(l.maxDaily, out)
			left.Add(left, amount)
			return nil, revertf("amount %s is over the daily outflow limit %s of tier %d: %s left today (UTC)", x.units(asset, amount), x.units(asset, l.maxDaily), acc.Tier, x.units(asset, left))
		}
		c.outflow = out
	}
	if c.velocity, err = x.checkVelocity(acc, asset, from, 1, amount); err != nil {
		return nil, err
	}
	if c.outflow == nil && c.velocity == nil {
		return nil, nil
	}
	return c, nil
}

// checkRecipient checks that to may receive and hold newBalance of asset.
func (x *exec) checkRecipient(asset uint32, to common.Address, newBalance *big.Int) error {
	if to == (common.Address{}) {
		return revertf("transfer to the zero address")
	}
	if chain.IsSystemAddress(to) {
		return revertf("transfer to system address %s", to)
	}
	acc, err := x.o.Account(to)
	if err != nil {
		return err
	}
	if err := x.checkNotFrozen(to, acc); err != nil {
		return err
	}
	if err := x.checkNotListed(to, acc); err != nil {
		return err
	}
	l := x.rules.limitsOf(acc.Tier, asset)
	if l.maxBalance != nil && newBalance.Cmp(l.maxBalance) > 0 {
		return revertf("balance of %s would be %s, over the maximum %s of tier %d", to, x.units(asset, newBalance), x.units(asset, l.maxBalance), acc.Tier)
	}
	return nil
}

// move transfers amount of asset from → to after every check: the sender's
// freeze, tier and limits (unless forced), its balance, and the recipient's
// freeze and maximum balance. Nothing is written unless every check passes.
func (x *exec) move(asset uint32, from, to common.Address, amount *big.Int, forced bool) error {
	var c *charge
	if !forced {
		var err error
		if c, err = x.checkSender(asset, from, amount); err != nil {
			return err
		}
	}
	fromBal, err := x.o.Balance(asset, from)
	if err != nil {
		return err
	}
	if fromBal.Cmp(amount) < 0 {
		return &Revert{Reason: fmt.Sprintf("insufficient balance: %s has %s, needs %s", from, x.units(asset, fromBal), x.units(asset, amount)),
			Shortfall: &Shortfall{Account: from, Have: fromBal, Want: amount}}
	}
	toBal := new(big.Int).Set(fromBal)
	if from != to {
		if toBal, err = x.o.Balance(asset, to); err != nil {
			return err
		}
	}
	toBal.Add(toBal, amount)
	if from == to {
		toBal.Sub(toBal, amount)
	}
	if err := x.checkRecipient(asset, to, toBal); err != nil {
		return err
	}
	x.commit(c, amount)
	if from != to {
		x.o.SetBalance(asset, from, fromBal.Sub(fromBal, amount))
		x.o.SetBalance(asset, to, toBal)
	}
	return nil
}

// checkNotPaused refuses operations on an asset governance has paused.
func (x *exec) checkNotPaused(id uint32) error {
	if x.rules.Assets[id].Paused {
		return revertf("asset %s is paused", x.rules.Assets[id].Symbol)
	}
	return nil
}

// transferLog emits ERC-20 Transfer on asset's facade.
func (x *exec) transferLog(asset uint32, from, to common.Address, amount *big.Int) {
	x.log(chain.AssetAddress(asset), chain.AssetABI.Events["Transfer"], []common.Hash{addrTopic(from), addrTopic(to)}, amount)
}

func reasonArg(reason string) error {
	if reason == "" {
		return revertf("a reason is required")
	}
	if len(reason) > MaxReason {
		return revertf("reason is longer than %d bytes", MaxReason)
	}
	return nil
}

func positive(amount *big.Int) error {
	if amount.Sign() <= 0 {
		return revertf("amount must be positive")
	}
	return nil
}

// decodeCall finds the method of a calldata and decodes its arguments.
// Calldata must be exactly the canonical encoding, so one operation has
// one encoding.
func decodeCall(a *abi.ABI, data []byte) (*abi.Method, []any, error) {
	if len(data) < 4 {
		return nil, nil, revertf("calldata has no 4-byte selector")
	}
	m, err := a.MethodById(data[:4])
	if err != nil {
		return nil, nil, revertf("unknown operation selector %#x", data[:4])
	}
	args, err := m.Inputs.Unpack(data[4:])
	if err != nil {
		return nil, nil, revertf("malformed calldata for %s: %v", m.Sig, err)
	}
	again, err := m.Inputs.Pack(args...)
	if err != nil || !bytes.Equal(again, data[4:]) {
		return nil, nil, revertf("malformed calldata for %s: not the canonical ABI encoding", m.Sig)
	}
	return m, args, nil
}

// contract is a system contract: its ABI and the handler of its operations.
type contract struct {
	abi *abi.ABI
	run func(x *exec, method string, args []any) ([]any, error)
}

// withdrawalOutcome are the operations a paused asset still runs: the
// outcomes of withdrawals already requested, which a bank has decided
// off the chain.
var withdrawalOutcome = map[string]bool{
	"claimWithdrawal": true, "settleWithdrawal": true, "refundWithdrawal": true, "returnWithdrawal": true,
}

// contractAt returns the system contract at to under rules.
func contractAt(rules *Rules, to common.Address) (contract, bool) {
	switch to {
	case chain.ComplianceAddress:
		return contract{&chain.ComplianceABI, (*exec).compliance}, true
	case chain.GovernanceAddress:
		return contract{&chain.GovernanceABI, (*exec).governance}, true
	case chain.ExchangeAddress:
		return contract{&chain.ExchangeABI, (*exec).exchange}, true
	case chain.ConfirmationsAddress:
		return contract{&chain.ConfirmationsABI, (*exec).confirmations}, true
	case chain.DisputesAddress:
		return contract{&chain.DisputesABI, (*exec).disputes}, true
	}
	if id, ok := chain.AssetID(to); ok && rules.HasAsset(id) {
		return contract{&chain.AssetABI, func(x *exec, method string, args []any) ([]any, error) {
			if m := chain.AssetABI.Methods[method]; !m.IsConstant() && !withdrawalOutcome[method] {
				if err := x.checkNotPaused(id); err != nil {
					return nil, err
				}
			}
			return x.asset(id, method, args)
		}}, true
	}
	return contract{}, false
}

// CheckCall validates a system call's target and calldata as admission
// does: the address is a system contract that exists under rules, and the
// calldata names one of its operations with canonically encoded arguments.
// The returned error is a *Revert.
func CheckCall(rules *Rules, to common.Address, data []byte) error {
	if len(data) > chain.MaxCalldata {
		return revertf("calldata of %d bytes is over the %d-byte limit", len(data), chain.MaxCalldata)
	}
	c, ok := contractAt(rules, to)
	if !ok {
		return revertf("no system contract at %s", to)
	}
	_, _, err := decodeCall(c.abi, data)
	return err
}

// systemCall runs the operation data encodes on the system contract at to
// and returns its ABI-encoded outputs.
func (x *exec) systemCall(to common.Address, data []byte) ([]byte, error) {
	if len(data) > chain.MaxCalldata {
		return nil, revertf("calldata of %d bytes is over the %d-byte limit", len(data), chain.MaxCalldata)
	}
	c, ok := contractAt(x.rules, to)
	if !ok {
		return nil, revertf("no system contract at %s", to)
	}
	m, args, err := decodeCall(c.abi, data)
	if err != nil {
		return nil, err
	}
	out, err := c.run(x, m.Name, args)
	if err != nil {
		return nil, err
	}
	return m.Outputs.Pack(out...)
}
