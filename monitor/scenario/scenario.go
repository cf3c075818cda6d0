// Package scenario generates seeded payment traffic for testing the risk
// monitor's detective rules: a population of people and merchants paying
// as people do (salaries, rent, everyday purchases of each person's own
// size, now and then a big one, a few mistakes that fail), with abnormal patterns planted among
// them, each meant for one rule. It only plans: amounts in cents, times
// from the start, parties by index. A test turns the plan into real
// blocks and checks that every planted pattern is caught by its rule and
// how many alerts the normal traffic raises (monitor/scenario_test.go,
// docs/benchmarks.md).
package scenario

import (
	"math"
	"math/rand/v2"
	"sort"
	"time"
)

// Kind is who a party is.
type Kind int

// Party kinds.
const (
	// Person: an individual wallet (KYC'd, funded at the start).
	Person Kind = iota
	// Merchant: a shop or employer (pays salaries, is paid by people).
	Merchant
	// Fresh: an account that appears during the run (a mule's collection
	// account, a mistyped payee); it may hold little.
	Fresh
)

// Party is one account of the plan.
type Party struct {
	Kind  Kind
	Index int // among the parties of its kind
}

// Payment is one planned transaction.
type Payment struct {
	At       time.Duration // since the start
	From, To Party
	Cents    int64
	// Fails: the payment is meant to fail at execution (to a Fresh
	// account beyond what it may hold).
	Fails bool
	// Plant is the index in Plan.Planted of the pattern the payment
	// belongs to, or -1 for normal traffic.
	Plant int
}

// Planted is an abnormal pattern meant for one rule.
type Planted struct {
	Rule    string
	Account Party
}

// Params size the run.
type Params struct {
	Seed      uint64
	People    int
	Merchants int
	Days      int
	// Plants is how many patterns of each rule are planted.
	Plants int
	// Warmup is how long the merchants exist (each pays its first
	// salaries at the start) before everyday traffic begins.
	Warmup time.Duration
}

// Thresholds are the monitor's limits the planted patterns must cross (in
// cents): the structuring threshold, the large-payment sizes, the rapid
// pass-through amount, the new-payee amount.
type Thresholds struct {
	Structuring int64
	NewPayee    int64
	RapidMin    int64
	// Dormant is how long a dormant account stays quiet.
	Dormant time.Duration
	// Senders is how many distinct senders a collection account gets.
	Senders int
	// Failures is how many failures a burst has.
	Failures int
	// FreshLimit is the most a Fresh account may hold.
	FreshLimit int64
}

// Plan is a generated run.
type Plan struct {
	Params   Params
	Payments []Payment // in time order
	Planted  []Planted
	Fresh    int // Fresh accounts used
}

const day = 24 * time.Hour

// person's habits.
type habit struct {
	median   float64 // cents
	perDay   float64
	payees   []Party
	employer int
	salary   int64
	rent     int64
	landlord int
	// quiet marks a person planted as dormant: no payment in
	// [quietFrom, quietTo).
	quietFrom, quietTo time.Duration
	planted            bool
}

// Generate plans a run. The same Params give the same plan.
func Generate(p Params, th Thresholds, rules []string) *Plan {
	r := rand.New(rand.NewPCG(p.Seed, p.Seed^0x9e3779b97f4a7c15))
	plan := &Plan{Params: p}
	hs := make([]*habit, p.People)
	for i := range hs {
		h := &habit{
			median:   math.Exp(math.Log(2000) + r.Float64()*(math.Log(40000)-math.Log(2000))), // 20 to 400 CNY
			perDay:   0.3 + 1.7*r.Float64(),
			employer: r.IntN(p.Merchants),
			salary:   500000 + r.Int64N(400000), // 5000 to 9000 CNY
		}
		for range 2 + r.IntN(4) {
			h.payees = append(h.payees, Party{Merchant, r.IntN(p.Merchants)})
		}
		for range 1 + r.IntN(2) {
			if j := r.IntN(p.People); j != i {
				h.payees = append(h.payees, Party{Person, j})
			}
		}
		if r.IntN(3) == 0 {
			h.landlord = r.IntN(p.People)
			if h.landlord != i {
				h.rent = 150000 + r.Int64N(250000) // 1500 to 4000 CNY a month
			}
		}
		hs[i] = h
	}
	add := func(at time.Duration, from, to Party, cents int64, plant int) {
		plan.Payments = append(plan.Payments, Payment{At: at, From: from, To: to, Cents: cents, Plant: plant})
	}
	end := time.Duration(p.Days) * day
	// Pick the planted people first, each for one pattern.
	free := r.Perm(p.People)
	takePerson := func() int {
		i := free[0]
		free = free[1:]
		hs[i].planted = true
		return i
	}
	type plantFn func(idx int)
	plantAt := func() time.Duration {
		return p.Warmup + 8*day + time.Duration(r.Int64N(int64(end-p.Warmup-12*day)))
	}
	fresh := func() Party {
		plan.Fresh++
		return Party{Fresh, plan.Fresh - 1}
	}
	plants := map[string]plantFn{
		"large-amount": func(idx int) {
			i := takePerson()
			h := hs[i]
			// Larger than anything the person pays (rent included), once
			// it has a history to be large against.
			h.perDay = max(h.perDay, 1)
			amt := max(int64(h.median*40), 3*h.rent, 150000)
			add(max(plantAt(), p.Warmup+20*day), Party{Person, i}, h.payees[0], amt, idx)
		},
		"structuring": func(idx int) {
			i := takePerson()
			h := hs[i]
			at := plantAt()
			for k := range 3 {
				amt := th.Structuring - 1 - r.Int64N(th.Structuring/12)
				add(at+time.Duration(k)*2*time.Hour+time.Duration(r.Int64N(int64(time.Hour))), Party{Person, i}, h.payees[k%len(h.payees)], amt, idx)
			}
		},
		"rapid-in-out": func(idx int) {
			i := takePerson()
			h := hs[i]
			at := plantAt()
			in := th.RapidMin * 5
			add(at, Party{Merchant, h.employer}, Party{Person, i}, in, idx)
			add(at+20*time.Minute+time.Duration(r.Int64N(int64(20*time.Minute))), Party{Person, i}, h.payees[0], in-in/20, idx)
		},
		"new-payee": func(idx int) {
			i := takePerson()
			j := r.IntN(p.People)
			for j == i || contains(hs[i].payees, Party{Person, j}) || hs[i].landlord == j {
				j = r.IntN(p.People)
			}
			add(plantAt(), Party{Person, i}, Party{Person, j}, th.NewPayee+r.Int64N(th.NewPayee), idx)
		},
		"dormant": func(idx int) {
			i := takePerson()
			h := hs[i]
			from := p.Warmup + 2*day
			h.quietFrom, h.quietTo = from, from+th.Dormant+time.Duration(r.Int64N(int64(3*day)))
			add(from-time.Hour, Party{Person, i}, h.payees[0], int64(h.median), idx) // active before
			add(h.quietTo, Party{Person, i}, h.payees[0], max(int64(h.median*8), 150000), idx)
		},
		"many-senders": func(idx int) {
			f := fresh()
			at := plantAt()
			n := 0
			for _, j := range r.Perm(p.People) {
				if hs[j].planted || n == th.Senders+2 {
					continue // a planted person's own pattern stays as planted
				}
				n++
				add(at+time.Duration(r.Int64N(int64(6*time.Hour))), Party{Person, j}, f, 1000+r.Int64N(2000), idx)
			}
		},
		"failed-burst": func(idx int) {
			i := takePerson()
			f := fresh()
			at := plantAt()
			for k := range th.Failures + 1 {
				plan.Payments = append(plan.Payments, Payment{At: at + time.Duration(k)*30*time.Second, From: Party{Person, i}, To: f,
					Cents: th.FreshLimit * 2, Fails: true, Plant: idx})
			}
		},
	}
	for _, rule := range rules {
		fn, ok := plants[rule]
		if !ok {
			continue
		}
		for range p.Plants {
			idx := len(plan.Planted)
			plan.Planted = append(plan.Planted, Planted{Rule: rule})
			fn(idx)
			last := plan.Payments[len(plan.Payments)-1]
			acct := last.From
			if rule == "many-senders" {
				acct = last.To
			}
			plan.Planted[idx].Account = acct
		}
	}
	// Normal traffic: salaries and rent monthly, everyday payments.
	mistakes := 0
	for i, h := range hs {
		me := Party{Person, i}
		for m := time.Duration(0); m < end; m += 30 * day {
			add(m+time.Duration(r.Int64N(int64(time.Hour))), Party{Merchant, h.employer}, me, h.salary, -1)
			if h.rent > 0 && m+2*day < end && !h.quiet(m+2*day) {
				add(m+2*day+time.Duration(r.Int64N(int64(day))), me, Party{Person, h.landlord}, h.rent, -1)
			}
		}
		for t := p.Warmup; t < end; {
			t += time.Duration(r.ExpFloat64() / h.perDay * float64(day))
			if t >= end || h.quiet(t) {
				continue
			}
			cents := int64(h.median * math.Exp(0.5*r.NormFloat64()))
			if r.IntN(300) == 0 { // now and then a big purchase: a phone, a flight
				cents = int64(h.median * (10 + 20*r.Float64()))
			}
			cents = max(cents, 100)
			to := h.payees[r.IntN(len(h.payees))]
			if r.IntN(200) == 0 { // a mistake: to an account that cannot take it
				mistakes++
				f := fresh()
				plan.Payments = append(plan.Payments, Payment{At: t, From: me, To: f, Cents: th.FreshLimit * 2, Fails: true, Plant: -1})
				continue
			}
			add(t, me, to, cents, -1)
		}
	}
	sort.SliceStable(plan.Payments, func(i, j int) bool { return plan.Payments[i].At < plan.Payments[j].At })
	return plan
}

func (h *habit) quiet(t time.Duration) bool { return t >= h.quietFrom && t < h.quietTo }

func contains(ps []Party, p Party) bool {
	for _, x := range ps {
		if x == p {
			return true
		}
	}
	return false
}
