package genesis

import (
	"fmt"
	"math/big"
)

// Risk are the preventive risk rules the ledger enforces during execution
// (DESIGN.md decisions 12 and 14): velocity caps per tier and asset, some
// of which suspend the sender when they fire. They live in the rules, so
// governance changes them and the audit replays them. The watch list is
// not here: the compliance authority manages it in the state.
type Risk struct {
	// Velocity are the velocity caps, each named; at most MaxVelocityRules.
	Velocity []VelocityRule `json:"velocity,omitempty"`
}

// Velocity windows: a rolling hour and a rolling day of block time, as
// DESIGN.md decision 14 defines them (5-minute and 1-hour buckets).
const (
	WindowHour = "1h"
	WindowDay  = "24h"
)

// Bounds on the risk rules.
const (
	MaxVelocityRules = 64
	// MaxSuspendSeconds bounds a rule's automatic suspension: 30 days.
	MaxSuspendSeconds = 30 * 86_400
	// MaxRuleName bounds a rule's name (it appears in every reason).
	MaxRuleName = 32
)

// VelocityRule caps what an account of Tier may send of Asset in a rolling
// Window: how many outgoing transfers, and how much in total. A transfer
// that would go over a cap is refused with a reason naming the rule and
// its numbers; with SuspendSeconds set, the sender is also suspended (a
// temporary freeze) for that long.
type VelocityRule struct {
	// Name identifies the rule in reasons and suspensions: 1..32
	// characters a-z, 0-9 and '-', unique among the rules.
	Name string `json:"name"`
	// Tier is the KYC tier of the senders the rule applies to.
	Tier uint8 `json:"tier"`
	// Asset is the symbol of the asset it counts.
	Asset string `json:"asset"`
	// Window is WindowHour ("1h") or WindowDay ("24h").
	Window string `json:"window"`
	// MaxTransfers caps the number of outgoing transfers in the window;
	// 0 is no cap on the count.
	MaxTransfers uint64 `json:"maxTransfers,omitempty"`
	// MaxAmount caps the total sent in the window, in base units; absent
	// is no cap on the amount. A rule caps at least one of the two.
	MaxAmount *Amount `json:"maxAmount,omitempty"`
	// SuspendSeconds, when not 0, suspends the sender for that long (of
	// block time) when the rule refuses a transfer; at most
	// MaxSuspendSeconds.
	SuspendSeconds uint64 `json:"suspendSeconds,omitempty"`
}

// WindowMs is the rule's window in milliseconds.
func (v VelocityRule) WindowMs() uint64 {
	if v.Window == WindowDay {
		return 86_400_000
	}
	return 3_600_000
}

// VelocityRules returns the velocity rules (none when r has no risk rules).
func (r *Rules) VelocityRules() []VelocityRule {
	if r.Risk == nil {
		return nil
	}
	return r.Risk.Velocity
}

// ValidRuleName reports whether s may name a risk rule.
func ValidRuleName(s string) bool {
	if len(s) == 0 || len(s) > MaxRuleName {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// validateRisk checks the risk rules against the rest of r; errors name
// the field.
func (r *Rules) validateRisk() error {
	if r.Risk == nil {
		return nil
	}
	if len(r.Risk.Velocity) == 0 {
		return invalid("risk: an empty risk section must be left out (it would encode differently from none)")
	}
	if len(r.Risk.Velocity) > MaxVelocityRules {
		return invalid("risk.velocity: at most %d rules, have %d", MaxVelocityRules, len(r.Risk.Velocity))
	}
	names := map[string]bool{}
	for i, v := range r.Risk.Velocity {
		f := fmt.Sprintf("risk.velocity[%d]", i)
		switch {
		case !ValidRuleName(v.Name):
			return invalid("%s.name %q must be 1..%d characters a-z, 0-9 or '-'", f, v.Name, MaxRuleName)
		case names[v.Name]:
			return invalid("%s.name %q is used twice", f, v.Name)
		case int(v.Tier) >= len(r.Tiers):
			return invalid("%s.tier %d: only tiers 0..%d exist", f, v.Tier, len(r.Tiers)-1)
		case v.Window != WindowHour && v.Window != WindowDay:
			return invalid("%s.window %q must be %q or %q", f, v.Window, WindowHour, WindowDay)
		case v.MaxTransfers == 0 && v.MaxAmount == nil:
			return invalid("%s caps nothing: set maxTransfers, maxAmount or both", f)
		case v.MaxAmount != nil && (v.MaxAmount.Int == nil || v.MaxAmount.BitLen() > 255):
			return invalid("%s.maxAmount must be below 2^255", f)
		case v.SuspendSeconds > MaxSuspendSeconds:
			return invalid("%s.suspendSeconds %d is over %d (30 days)", f, v.SuspendSeconds, MaxSuspendSeconds)
		}
		if _, ok := r.AssetID(v.Asset); !ok {
			return invalid("%s.asset: unknown asset %q", f, v.Asset)
		}
		names[v.Name] = true
	}
	return nil
}

// SetVelocityRule adds v, or replaces the rule of the same name, keeping
// the rules in the order they were first added.
func (r *Rules) SetVelocityRule(v VelocityRule) {
	if v.MaxAmount != nil {
		v.MaxAmount = &Amount{Int: new(big.Int).Set(v.MaxAmount.Int)}
	}
	if r.Risk == nil {
		r.Risk = &Risk{}
	}
	for i := range r.Risk.Velocity {
		if r.Risk.Velocity[i].Name == v.Name {
			r.Risk.Velocity[i] = v
			return
		}
	}
	r.Risk.Velocity = append(r.Risk.Velocity, v)
}

// RemoveVelocityRule removes the rule named name; it reports whether there
// was one. Removing the last rule removes the risk section.
func (r *Rules) RemoveVelocityRule(name string) bool {
	if r.Risk == nil {
		return false
	}
	for i := range r.Risk.Velocity {
		if r.Risk.Velocity[i].Name == name {
			r.Risk.Velocity = append(r.Risk.Velocity[:i], r.Risk.Velocity[i+1:]...)
			if len(r.Risk.Velocity) == 0 {
				r.Risk = nil
			}
			return true
		}
	}
	return false
}
