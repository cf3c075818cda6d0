package monitor

import (
	"fmt"
	"math/big"
	"slices"
	"sort"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/txdecode"
)

// Profile is what the monitor remembers of one account: the mean of its
// payments per asset, when it last paid, and its recent payments,
// receipts and failures (the windowed rules' input, pruned to the longest
// window and to rules.max-events).
type Profile struct {
	// FirstSeen is the block time (ms) the monitor first saw the account
	// receive or send.
	FirstSeen uint64 `json:"firstSeen"`
	// LastOut is the block time (ms) of its latest outgoing transfer.
	LastOut uint64               `json:"lastOut,omitempty"`
	Stats   map[uint32]*OutStats `json:"stats,omitempty"`
	Out     []Event              `json:"out,omitempty"`
	In      []Event              `json:"in,omitempty"`
	Fails   []Event              `json:"fails,omitempty"`
}

// OutStats is the running mean of an account's outgoing amounts in one
// asset (base units, as a float: the rule compares ratios) and the
// largest of them.
type OutStats struct {
	N    uint64   `json:"n"`
	Mean float64  `json:"mean"`
	Max  *big.Int `json:"max"`
}

// Event is one recent transfer (or failure) of an account.
type Event struct {
	At     uint64         `json:"at"`
	Tx     common.Hash    `json:"tx"`
	Asset  uint32         `json:"asset,omitempty"`
	Amount *big.Int       `json:"amount,omitempty"`
	Party  common.Address `json:"party,omitzero"`
}

// firing is a rule that fired on one transfer, before it becomes (or
// joins) an alert.
type firing struct {
	rule     string
	severity Severity
	account  common.Address
	asset    string
	detail   string
	numbers  map[string]string
	txs      []common.Hash
}

// engine judges blocks: the rules with their thresholds in base units.
type engine struct {
	cfg    RulesConfig
	assets txdecode.Assets
	// Per asset id, in base units; an asset without an entry is not
	// judged by the rule.
	largeMin, structThr, rapidMin, payeeMin, dormantMin map[uint32]*big.Int
}

func newEngine(cfg RulesConfig, assets txdecode.Assets) (*engine, error) {
	e := &engine{cfg: cfg, assets: assets}
	var err error
	for _, t := range []struct {
		key string
		as  Amounts
		dst *map[uint32]*big.Int
	}{
		{"rules.large-amount.min-amount", cfg.LargeAmount.MinAmount, &e.largeMin},
		{"rules.structuring.threshold", cfg.Structuring.Threshold, &e.structThr},
		{"rules.rapid-in-out.min-amount", cfg.RapidInOut.MinAmount, &e.rapidMin},
		{"rules.new-payee.min-amount", cfg.NewPayee.MinAmount, &e.payeeMin},
		{"rules.dormant.min-amount", cfg.Dormant.MinAmount, &e.dormantMin},
	} {
		if *t.dst, err = thresholds(t.key, t.as, assets); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// accounts is what the engine reads and writes while judging: the
// profiles and the payee pairs (the follower's batch).
type accounts interface {
	profile(a common.Address) (*Profile, error)
	// paid reports whether from paid to before, and records that it did.
	paid(from, to common.Address, at uint64) (bool, error)
}

// ordinary reports whether a is an account (not the zero address of a
// mint or burn, not a system address holding escrow).
func ordinary(a common.Address) bool {
	return a != (common.Address{}) && !chain.IsSystemAddress(a)
}

// judge runs every rule over one block's activity, in block order, and
// returns what fired. Each rule sees the profiles as they were before the
// transfer it judges.
func (e *engine) judge(acc accounts, act *Activity) ([]firing, error) {
	var out []firing
	for i := range act.Transfers {
		t := &act.Transfers[i]
		fs, err := e.transfer(acc, act.TimeMs, t)
		if err != nil {
			return nil, fmt.Errorf("block %d tx %s: %w", act.Number, t.Tx, err)
		}
		out = append(out, fs...)
	}
	for i := range act.Failures {
		f := &act.Failures[i]
		fs, err := e.failure(acc, act.TimeMs, f)
		if err != nil {
			return nil, fmt.Errorf("block %d tx %s: %w", act.Number, f.Tx, err)
		}
		out = append(out, fs...)
	}
	return out, nil
}

func (e *engine) transfer(acc accounts, now uint64, t *Transfer) ([]firing, error) {
	var out []firing
	asset := e.assets.Of(t.Asset)
	if ordinary(t.From) {
		p, err := acc.profile(t.From)
		if err != nil {
			return nil, err
		}
		if p.FirstSeen == 0 {
			p.FirstSeen = now
		}
		payment := ordinary(t.To)
		if f := e.largeAmount(p, t, asset); f != nil {
			out = append(out, *f)
		}
		if f := e.structuring(p, now, t, asset); f != nil {
			out = append(out, *f)
		}
		if f := e.rapidInOut(p, now, t, asset); f != nil {
			out = append(out, *f)
		}
		if payment && e.cfg.NewPayee.Enabled {
			known, err := acc.paid(t.From, t.To, now)
			if err != nil {
				return nil, err
			}
			if f := e.newPayee(known, t, asset); f != nil {
				out = append(out, *f)
			}
		}
		if f := e.dormant(p, now, t, asset); f != nil {
			out = append(out, *f)
		}
		// Remember the transfer.
		st := p.Stats[t.Asset]
		if st == nil {
			if p.Stats == nil {
				p.Stats = map[uint32]*OutStats{}
			}
			st = &OutStats{}
			p.Stats[t.Asset] = st
		}
		st.N++
		st.Mean += (toFloat(t.Amount) - st.Mean) / float64(st.N)
		if st.Max == nil || t.Amount.Cmp(st.Max) > 0 {
			st.Max = t.Amount
		}
		p.LastOut = now
		p.Out = e.keep(append(p.Out, Event{At: now, Tx: t.Tx, Asset: t.Asset, Amount: t.Amount, Party: t.To}), now, e.outWindow())
	}
	if ordinary(t.To) {
		p, err := acc.profile(t.To)
		if err != nil {
			return nil, err
		}
		if p.FirstSeen == 0 {
			p.FirstSeen = now
		}
		p.In = e.keep(append(p.In, Event{At: now, Tx: t.Tx, Asset: t.Asset, Amount: t.Amount, Party: t.From}), now, e.inWindow())
		if ordinary(t.From) {
			if f := e.manySenders(p, now, t.To); f != nil {
				out = append(out, *f)
			}
		}
	}
	return out, nil
}

func (e *engine) failure(acc accounts, now uint64, f *Failure) ([]firing, error) {
	if !ordinary(f.From) {
		return nil, nil
	}
	p, err := acc.profile(f.From)
	if err != nil {
		return nil, err
	}
	if p.FirstSeen == 0 {
		p.FirstSeen = now
	}
	p.Fails = e.keep(append(p.Fails, Event{At: now, Tx: f.Tx}), now, e.cfg.FailedBurst.Window.D())
	r := e.cfg.FailedBurst
	if !r.Enabled {
		return nil, nil
	}
	in := within(p.Fails, now, r.Window.D())
	if len(in) < r.Count {
		return nil, nil
	}
	return []firing{{rule: RuleFailedBurst, severity: SeverityLow, account: f.From,
		detail:  fmt.Sprintf("%s: %d failed transactions in %v, limit %d (latest: %s)", RuleFailedBurst, len(in), r.Window.D(), r.Count, orNone(f.Reason)),
		numbers: map[string]string{"failures": fmt.Sprint(len(in)), "window": r.Window.D().String(), "limit": fmt.Sprint(r.Count)},
		txs:     txsOf(in)}}, nil
}

func (e *engine) largeAmount(p *Profile, t *Transfer, a txdecode.Asset) *firing {
	r := e.cfg.LargeAmount
	min, ok := e.largeMin[t.Asset]
	st := p.Stats[t.Asset]
	if !r.Enabled || !ok || st == nil || st.N < uint64(r.MinHistory) || t.Amount.Cmp(min) < 0 {
		return nil
	}
	amt := toFloat(t.Amount)
	// An amount the account paid before (its rent) is not unusual for it.
	if st.Mean <= 0 || amt < r.Multiplier*st.Mean || st.Max != nil && t.Amount.Cmp(st.Max) <= 0 {
		return nil
	}
	ratio := amt / st.Mean
	sev := SeverityMedium
	if ratio >= 3*r.Multiplier {
		sev = SeverityHigh
	}
	mean := roundMinor(fromFloat(st.Mean), a)
	return &firing{rule: RuleLargeAmount, severity: sev, account: t.From, asset: a.Symbol,
		detail: fmt.Sprintf("%s: %s is %.1fx the account's mean payment of %s over %d payments and above its largest, %s (threshold %gx, at least %s)",
			RuleLargeAmount, txdecode.FormatAmount(t.Amount, a), ratio, txdecode.FormatAmount(mean, a), st.N, txdecode.FormatAmount(st.Max, a),
			r.Multiplier, txdecode.FormatAmount(min, a)),
		numbers: map[string]string{"amount": t.Amount.String(), "mean": mean.String(), "largest": st.Max.String(), "payments": fmt.Sprint(st.N),
			"ratio": fmt.Sprintf("%.2f", ratio), "multiplier": fmt.Sprint(r.Multiplier)},
		txs: []common.Hash{t.Tx}}
}

func (e *engine) structuring(p *Profile, now uint64, t *Transfer, a txdecode.Asset) *firing {
	r := e.cfg.Structuring
	thr, ok := e.structThr[t.Asset]
	if !r.Enabled || !ok {
		return nil
	}
	lo := below(thr, r.Margin)
	near := func(v *big.Int) bool { return v.Cmp(lo) >= 0 && v.Cmp(thr) < 0 }
	if !near(t.Amount) {
		return nil
	}
	evs := []Event{}
	for _, ev := range within(p.Out, now, r.Window.D()) {
		if ev.Asset == t.Asset && near(ev.Amount) {
			evs = append(evs, ev)
		}
	}
	evs = append(evs, Event{At: now, Tx: t.Tx, Asset: t.Asset, Amount: t.Amount})
	if len(evs) < r.Count {
		return nil
	}
	smallest, largest, total := evs[0].Amount, evs[0].Amount, new(big.Int)
	for _, ev := range evs {
		if ev.Amount.Cmp(smallest) < 0 {
			smallest = ev.Amount
		}
		if ev.Amount.Cmp(largest) > 0 {
			largest = ev.Amount
		}
		total.Add(total, ev.Amount)
	}
	return &firing{rule: RuleStructuring, severity: SeverityHigh, account: t.From, asset: a.Symbol,
		detail: fmt.Sprintf("%s: %d payments of %s to %s (total %s) in %v, each within %g%% below the threshold %s, limit %d",
			RuleStructuring, len(evs), txdecode.FormatAmount(smallest, a), txdecode.FormatAmount(largest, a), txdecode.FormatAmount(total, a),
			r.Window.D(), r.Margin*100, txdecode.FormatAmount(thr, a), r.Count),
		numbers: map[string]string{"payments": fmt.Sprint(len(evs)), "total": total.String(), "threshold": thr.String(),
			"margin": fmt.Sprint(r.Margin), "window": r.Window.D().String(), "limit": fmt.Sprint(r.Count)},
		txs: txsOf(evs)}
}

func (e *engine) rapidInOut(p *Profile, now uint64, t *Transfer, a txdecode.Asset) *firing {
	r := e.cfg.RapidInOut
	min, ok := e.rapidMin[t.Asset]
	if !r.Enabled || !ok {
		return nil
	}
	ins, outs := within(p.In, now, r.Window.D()), within(p.Out, now, r.Window.D())
	in, out := new(big.Int), new(big.Int).Set(t.Amount)
	for _, ev := range ins {
		if ev.Asset == t.Asset {
			in.Add(in, ev.Amount)
		}
	}
	if in.Sign() == 0 || in.Cmp(min) < 0 {
		return nil
	}
	for _, ev := range outs {
		if ev.Asset == t.Asset {
			out.Add(out, ev.Amount)
		}
	}
	if out.Cmp(below(in, 1-r.Ratio)) < 0 {
		return nil
	}
	// It fires: the transactions, in time order.
	var evs []Event
	for _, ev := range append(append([]Event{}, ins...), outs...) {
		if ev.Asset == t.Asset {
			evs = append(evs, ev)
		}
	}
	evs = append(evs, Event{At: now, Tx: t.Tx})
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].At < evs[j].At })
	return &firing{rule: RuleRapidInOut, severity: SeverityHigh, account: t.From, asset: a.Symbol,
		detail: fmt.Sprintf("%s: received %s and sent out %s (%.0f%%) within %v (ratio %g, at least %s received)",
			RuleRapidInOut, txdecode.FormatAmount(in, a), txdecode.FormatAmount(out, a), 100*toFloat(out)/toFloat(in), r.Window.D(), r.Ratio, txdecode.FormatAmount(min, a)),
		numbers: map[string]string{"in": in.String(), "out": out.String(), "window": r.Window.D().String(), "ratio": fmt.Sprint(r.Ratio)},
		txs:     txsOf(evs)}
}

func (e *engine) newPayee(known bool, t *Transfer, a txdecode.Asset) *firing {
	min, ok := e.payeeMin[t.Asset]
	if known || !ok || t.Amount.Cmp(min) < 0 {
		return nil
	}
	return &firing{rule: RuleNewPayee, severity: SeverityMedium, account: t.From, asset: a.Symbol,
		detail:  fmt.Sprintf("%s: %s to %s, never paid before (at least %s)", RuleNewPayee, txdecode.FormatAmount(t.Amount, a), t.To.Hex(), txdecode.FormatAmount(min, a)),
		numbers: map[string]string{"amount": t.Amount.String(), "payee": t.To.Hex(), "min": min.String()},
		txs:     []common.Hash{t.Tx}}
}

func (e *engine) dormant(p *Profile, now uint64, t *Transfer, a txdecode.Asset) *firing {
	r := e.cfg.Dormant
	min, ok := e.dormantMin[t.Asset]
	if !r.Enabled || !ok || p.LastOut == 0 || t.Amount.Cmp(min) < 0 || now-p.LastOut < uint64(r.After.D().Milliseconds()) {
		return nil
	}
	idle := time.Duration(now-p.LastOut) * time.Millisecond
	return &firing{rule: RuleDormant, severity: SeverityMedium, account: t.From, asset: a.Symbol,
		detail: fmt.Sprintf("%s: pays %s after %s without a payment (since %s; dormant after %s)", RuleDormant, txdecode.FormatAmount(t.Amount, a),
			days(idle), time.UnixMilli(int64(p.LastOut)).UTC().Format(time.RFC3339), days(r.After.D())),
		numbers: map[string]string{"amount": t.Amount.String(), "idle": idle.String(), "after": r.After.D().String()},
		txs:     []common.Hash{t.Tx}}
}

func (e *engine) manySenders(p *Profile, now uint64, to common.Address) *firing {
	r := e.cfg.ManySenders
	if !r.Enabled || now-p.FirstSeen >= uint64(r.NewAccount.D().Milliseconds()) {
		return nil
	}
	ins := within(p.In, now, r.Window.D())
	if len(ins) < r.Senders {
		return nil
	}
	// Count distinct senders without allocating: most accounts have a few.
	var senders []common.Address
	for _, ev := range ins {
		if ordinary(ev.Party) && !slices.Contains(senders, ev.Party) {
			senders = append(senders, ev.Party)
		}
	}
	if len(senders) < r.Senders {
		return nil
	}
	var evs []Event
	for _, ev := range ins {
		if ordinary(ev.Party) {
			evs = append(evs, ev)
		}
	}
	age := time.Duration(now-p.FirstSeen) * time.Millisecond
	return &firing{rule: RuleManySenders, severity: SeverityMedium, account: to,
		detail:  fmt.Sprintf("%s: %d distinct senders in %v to an account first seen %v ago, limit %d", RuleManySenders, len(senders), r.Window.D(), age.Round(time.Second), r.Senders),
		numbers: map[string]string{"senders": fmt.Sprint(len(senders)), "window": r.Window.D().String(), "age": age.String(), "limit": fmt.Sprint(r.Senders)},
		txs:     txsOf(evs)}
}

// outWindow and inWindow are how long payments and receipts are kept.
func (e *engine) outWindow() time.Duration {
	return max(e.cfg.Structuring.Window.D(), e.cfg.RapidInOut.Window.D())
}
func (e *engine) inWindow() time.Duration {
	return max(e.cfg.RapidInOut.Window.D(), e.cfg.ManySenders.Window.D())
}

// keep drops the events older than w before now, and the oldest beyond
// rules.max-events.
func (e *engine) keep(evs []Event, now uint64, w time.Duration) []Event {
	evs = within(evs, now, w)
	if n := len(evs) - e.cfg.MaxEvents; n > 0 {
		evs = evs[n:]
	}
	return evs
}

// within returns the events of the window (now-w, now] (events are in
// time order).
func within(evs []Event, now uint64, w time.Duration) []Event {
	ms := uint64(w.Milliseconds())
	i := 0
	for i < len(evs) && now >= ms && evs[i].At <= now-ms {
		i++
	}
	return evs[i:]
}

func txsOf(evs []Event) []common.Hash {
	out := make([]common.Hash, 0, len(evs))
	seen := map[common.Hash]bool{}
	for _, ev := range evs {
		if !seen[ev.Tx] {
			seen[ev.Tx] = true
			out = append(out, ev.Tx)
		}
	}
	return out
}

// below returns v x (1 - fraction), rounded down, computed in millionths.
func below(v *big.Int, fraction float64) *big.Int {
	keep := int64((1 - fraction) * 1e6)
	out := new(big.Int).Mul(v, big.NewInt(keep))
	return out.Quo(out, big.NewInt(1e6))
}

func toFloat(v *big.Int) float64 {
	f, _ := new(big.Float).SetInt(v).Float64()
	return f
}

func fromFloat(f float64) *big.Int {
	v, _ := big.NewFloat(f).Int(nil)
	return v
}

// roundMinor rounds v (base units) to the asset's minor units (a mean
// shown as 155.61 CNY, not 155.610310077519396864).
func roundMinor(v *big.Int, a txdecode.Asset) *big.Int {
	if a.Decimals <= a.MinorUnits {
		return v
	}
	unit := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(a.Decimals-a.MinorUnits)), nil)
	half := new(big.Int).Rsh(unit, 1)
	out := new(big.Int).Add(v, half)
	out.Quo(out, unit)
	return out.Mul(out, unit)
}

func days(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	}
	return d.Round(time.Second).String()
}

func orNone(s string) string {
	if s == "" {
		return "no reason kept"
	}
	return s
}
