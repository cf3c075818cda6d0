package genesis

// Payments are the times of the payment-trust operations the ledger runs
// (docs/payments.md): how long a payment held for a second confirmation
// waits before it returns to its sender, how long a change of an
// account's confirmation settings that its confirmation key did not
// approve waits before it takes effect, and how long a merchant has to
// answer a dispute before the issuing bank may decide it. A zero field
// means its default.
type Payments struct {
	HoldSeconds            uint64 `json:"holdSeconds,omitempty"`
	KeyChangeDelaySeconds  uint64 `json:"keyChangeDelaySeconds,omitempty"`
	DisputeResponseSeconds uint64 `json:"disputeResponseSeconds,omitempty"`
}

// Defaults and bounds of the payment-trust times.
const (
	DefaultHoldSeconds            = 86_400     // a day to confirm
	DefaultKeyChangeDelaySeconds  = 172_800    // two days to notice a stolen key
	DefaultDisputeResponseSeconds = 7 * 86_400 // a week for the merchant
	MinHoldSeconds                = 60
	MaxPaymentSeconds             = 90 * 86_400
	MaxDisputeWindowSeconds       = 400 * 86_400
)

func orDefault(v, def uint64) uint64 {
	if v == 0 {
		return def
	}
	return v
}

// Hold is how long, in seconds, a payment waits for its confirmation.
func (r *Rules) Hold() uint64 {
	if r.Payments == nil {
		return DefaultHoldSeconds
	}
	return orDefault(r.Payments.HoldSeconds, DefaultHoldSeconds)
}

// KeyChangeDelay is how long, in seconds, a change of confirmation settings
// the confirmation key did not approve waits before it takes effect.
func (r *Rules) KeyChangeDelay() uint64 {
	if r.Payments == nil {
		return DefaultKeyChangeDelaySeconds
	}
	return orDefault(r.Payments.KeyChangeDelaySeconds, DefaultKeyChangeDelaySeconds)
}

// DisputeResponse is how long, in seconds, a merchant has to refund or
// contest a dispute before the issuing bank may decide it unanswered.
func (r *Rules) DisputeResponse() uint64 {
	if r.Payments == nil {
		return DefaultDisputeResponseSeconds
	}
	return orDefault(r.Payments.DisputeResponseSeconds, DefaultDisputeResponseSeconds)
}

// validatePayments checks the payment-trust times and the assets' dispute
// windows; errors name the field.
func (r *Rules) validatePayments() error {
	for i, a := range r.Assets {
		if a.DisputeWindowSeconds > MaxDisputeWindowSeconds {
			return invalid("assets[%d].disputeWindowSeconds %d is over %d", i, a.DisputeWindowSeconds, MaxDisputeWindowSeconds)
		}
	}
	p := r.Payments
	if p == nil {
		return nil
	}
	for _, f := range []struct {
		name string
		v    uint64
	}{{"holdSeconds", p.HoldSeconds}, {"keyChangeDelaySeconds", p.KeyChangeDelaySeconds}, {"disputeResponseSeconds", p.DisputeResponseSeconds}} {
		if f.v > MaxPaymentSeconds {
			return invalid("payments.%s %d is over %d", f.name, f.v, MaxPaymentSeconds)
		}
	}
	if p.HoldSeconds != 0 && p.HoldSeconds < MinHoldSeconds {
		return invalid("payments.holdSeconds %d is under %d", p.HoldSeconds, MinHoldSeconds)
	}
	return nil
}
