package state

import (
	"math/big"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/chain"
)

// compliance runs operation name of the compliance contract
// (abi/Compliance.json) with decoded args.
func (x *exec) compliance(name string, args []any) ([]any, error) {
	addr := func(i int) common.Address { return args[i].(common.Address) }
	switch name {
	case "authority":
		return []any{x.rules.Compliance}, nil
	case "kycTier":
		acc, err := x.o.Account(addr(0))
		return []any{acc.Tier}, err
	case "isFrozen": // frozen, or suspended at the block's time
		acc, err := x.o.Account(addr(0))
		if err != nil {
			return nil, err
		}
		stopped, err := x.o.Stopped(addr(0), acc, x.blk.TimeMs)
		return []any{stopped}, err
	case "watchEntry":
		e, listed, err := x.o.WatchEntry(addr(0))
		return []any{listed, e.Reason, e.Height}, err
	case "suspension":
		acc, err := x.o.Account(addr(0))
		if err != nil {
			return nil, err
		}
		s, active, err := x.o.activeSuspension(addr(0), acc, x.blk.TimeMs)
		if !active {
			s = Suspension{}
		}
		return []any{active, s.Reason, s.UntilMs}, err
	case "remainingDailyAllowance":
		id, ok := chain.AssetID(addr(1))
		if !ok || !x.rules.HasAsset(id) {
			return nil, revertf("no asset at %s", addr(1))
		}
		left, err := RemainingDaily(x.o, x.rules, x.blk, id, addr(0))
		if left == nil {
			left = maxUint256
		}
		return []any{left}, err
	}

	if x.from != x.rules.Compliance {
		return nil, revertf("only the compliance authority %s may call %s", x.rules.Compliance, name)
	}
	acc, err := x.o.Account(addr(0))
	if err != nil {
		return nil, err
	}
	topics := []common.Hash{addrTopic(addr(0)), addrTopic(x.from)}
	ev := chain.ComplianceABI.Events
	switch name {
	case "setKycTier":
		tier, reason := args[1].(uint8), args[2].(string)
		if err := reasonArg(reason); err != nil {
			return nil, err
		}
		if int(tier) >= len(x.rules.Tiers) {
			return nil, revertf("tier %d does not exist (tiers are 0..%d)", tier, x.rules.TopTier())
		}
		old := acc.Tier
		acc.Tier = tier
		x.o.SetAccount(addr(0), acc)
		x.log(chain.ComplianceAddress, ev["KycTierSet"], topics, old, tier, reason)
	case "freeze":
		reason := args[1].(string)
		if err := reasonArg(reason); err != nil {
			return nil, err
		}
		if acc.Frozen {
			return nil, revertf("account %s is already frozen", addr(0))
		}
		acc.Frozen = true
		x.o.SetAccount(addr(0), acc)
		x.log(chain.ComplianceAddress, ev["Frozen"], topics, reason)
	case "unfreeze":
		reason := args[1].(string)
		if err := reasonArg(reason); err != nil {
			return nil, err
		}
		if !acc.Frozen {
			return nil, revertf("account %s is not frozen", addr(0))
		}
		acc.Frozen = false
		x.o.SetAccount(addr(0), acc)
		x.log(chain.ComplianceAddress, ev["Unfrozen"], topics, reason)
	case "watch", "unwatch":
		if err := x.watch(addr(0), acc, args[1].(string), name == "watch"); err != nil {
			return nil, err
		}
		x.log(chain.ComplianceAddress, ev[map[string]string{"watch": "Watched", "unwatch": "Unwatched"}[name]], topics, args[1].(string))
	case "confirmSuspension", "liftSuspension":
		reason := args[1].(string)
		if err := reasonArg(reason); err != nil {
			return nil, err
		}
		s, active, err := x.o.activeSuspension(addr(0), acc, x.blk.TimeMs)
		if err != nil {
			return nil, err
		}
		if !active {
			return nil, revertf("account %s has no active suspension", addr(0))
		}
		x.o.clearSuspension(addr(0), acc)
		if name == "confirmSuspension" {
			// Confirmed, the suspension becomes a freeze until unfreeze.
			acc.Frozen, acc.Suspended = true, false
			x.o.SetAccount(addr(0), acc)
			x.log(chain.ComplianceAddress, ev["SuspensionConfirmed"], topics, s.Reason, reason)
		} else {
			x.log(chain.ComplianceAddress, ev["SuspensionLifted"], topics, s.Reason, reason)
		}
	default:
		return nil, revertf("operation %s is not implemented by compliance", name)
	}
	return []any{true}, nil
}

// RemainingDaily is what a may still send of asset id on blk's UTC day under
// its tier; nil means unlimited.
func RemainingDaily(o *Overlay, rules *Rules, blk BlockContext, id uint32, a common.Address) (*big.Int, error) {
	acc, err := o.Account(a)
	if err != nil {
		return nil, err
	}
	if acc.Tier < 1 {
		return new(big.Int), nil
	}
	if stopped, err := o.Stopped(a, acc, blk.TimeMs); err != nil || stopped {
		return new(big.Int), err
	}
	l := rules.limitsOf(acc.Tier, id)
	if l.maxDaily == nil {
		return nil, nil
	}
	out, err := o.Outflow(id, a, blk.Day())
	if err != nil {
		return nil, err
	}
	left := new(big.Int).Sub(l.maxDaily, out)
	if left.Sign() < 0 {
		left.SetInt64(0)
	}
	return left, nil
}
