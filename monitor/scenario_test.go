package monitor

import (
	"flag"
	"fmt"
	"math/big"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/internal/chaintest"
	"github.com/tally-ledger/tally/monitor/scenario"
)

// Key indexes of the scenario's parties: merchants are the dev genesis's
// funded accounts; people and fresh accounts are keys of their own.
const (
	personKey = 3000
	freshKey  = 6000
)

func partyKey(p scenario.Party) uint32 {
	switch p.Kind {
	case scenario.Merchant:
		return uint32(p.Index)
	case scenario.Person:
		return personKey + uint32(p.Index)
	}
	return freshKey + uint32(p.Index)
}

// cents is an amount of CNY cents in base units.
func cents(c int64) *big.Int {
	return new(big.Int).Mul(big.NewInt(c), new(big.Int).Exp(big.NewInt(10), big.NewInt(16), nil))
}

// scenarioResult is what a scenario run found.
type scenarioResult struct {
	people, days, payments, normal, blocks int
	caught, planted                        int
	missed                                 []string
	falseByRule                            map[string]int
	falseAlerts                            int
	judge                                  time.Duration
}

// runScenario plays a generated plan as real blocks and judges them.
func runScenario(t *testing.T, p scenario.Params) *scenarioResult {
	t.Helper()
	cfg := testConfig(t)
	th := scenario.Thresholds{Structuring: 5_000_000, NewPayee: 2_000_000, RapidMin: 1_000_000, Dormant: 90 * 24 * time.Hour,
		Senders: cfg.Rules.ManySenders.Senders, Failures: cfg.Rules.FailedBurst.Count, FreshLimit: 100_000}
	plan := scenario.Generate(p, th, Rules)
	c := chaintest.New(t)
	c.SkipCerts = true
	// Setup, before the monitor's first block: the people get KYC tier
	// "full" and 300,000 CNY each from a merchant.
	var setup []*types.Transaction
	for i := range p.People {
		setup = append(setup, c.Call(genesis.DevComplianceIndex, chain.ComplianceAddress, &chain.ComplianceABI, "setKycTier",
			chaintest.Addr(personKey+uint32(i)), uint8(genesis.DevTierFull), "kyc"))
	}
	c.Apply(setup...)
	setup = nil
	for i := range p.People {
		setup = append(setup, c.Tx(uint32(i%p.Merchants), chaintest.Addr(personKey+uint32(i)), cny(300_000), nil))
	}
	c.Apply(setup...)
	cfg.Follow.StartBlock = c.DB.Tip().Head.Number + 1
	// The plan, in blocks: each holds the payments within a minute of its
	// first one, at that one's time.
	start := c.DB.Tip().Head.TimeMs + 60_000
	plantOf := map[common.Hash]int{}
	res := &scenarioResult{people: p.People, days: p.Days, payments: len(plan.Payments), planted: len(plan.Planted), falseByRule: map[string]int{}}
	for i := 0; i < len(plan.Payments); {
		first := plan.Payments[i].At
		var txs []*types.Transaction
		for ; i < len(plan.Payments) && plan.Payments[i].At-first < time.Minute; i++ {
			pay := plan.Payments[i]
			tx := c.Tx(partyKey(pay.From), chaintest.Addr(partyKey(pay.To)), cents(pay.Cents), nil)
			txs = append(txs, tx)
			if pay.Plant >= 0 {
				plantOf[tx.Hash()] = pay.Plant
			} else {
				res.normal++
			}
		}
		at := start + uint64(first.Milliseconds())
		if next := c.DB.Tip().Head.TimeMs + 1000; at > next {
			c.Advance(time.Duration(at-next) * time.Millisecond)
		}
		applied := c.Apply(txs...)
		res.blocks++
		for k, r := range applied.Receipts {
			if want := failing(plan, txs[k]); (r.Status == types.ReceiptStatusFailed) != want {
				t.Fatalf("block %d tx %d: status %d, the plan wants it to fail: %v", applied.Block.Number(), k, r.Status, want)
			}
		}
	}
	m := openOn(t, c, cfg)
	began := time.Now()
	catchUp(t, m)
	res.judge = time.Since(began)
	as := allAlerts(t, m)
	// Caught: an alert of the pattern's rule for its account lists one
	// of its transactions.
	for idx, pl := range plan.Planted {
		acct := chaintest.Addr(partyKey(pl.Account))
		ok := false
		for _, a := range as {
			if a.Rule != pl.Rule || a.Account != acct {
				continue
			}
			for _, h := range a.Txs {
				if k, in := plantOf[h]; in && k == idx {
					ok = true
				}
			}
		}
		if ok {
			res.caught++
		} else {
			res.missed = append(res.missed, fmt.Sprintf("%s on %s", pl.Rule, acct))
		}
	}
	// False: an alert none of whose transactions was planted.
	for _, a := range as {
		planted := false
		for _, h := range a.Txs {
			_, in := plantOf[h]
			planted = planted || in
		}
		if !planted {
			res.falseAlerts++
			res.falseByRule[a.Rule]++
			t.Logf("alert on normal traffic: %s", a.Detail)
		}
	}
	return res
}

// failing reports whether the plan wants tx to fail.
func failing(plan *scenario.Plan, tx *types.Transaction) bool {
	// Only payments to Fresh accounts beyond their limit fail; a Fresh
	// account's key index is at least freshKey.
	to := *tx.To()
	for k := range plan.Fresh {
		if chaintest.Addr(freshKey+uint32(k)) == to {
			return tx.Value().Cmp(cny(1000)) > 0
		}
	}
	return false
}

// TestScenario: in seeded, realistic traffic (people paying merchants
// and each other at their own sizes and rates, salaries, rent, mistakes
// that fail) with three patterns of each rule planted, every planted
// pattern is caught by its rule, and the normal traffic raises few
// alerts: at most one per 200 normal payments (its big purchases are the
// large-amount rule's to flag, and a reviewer's to dismiss). The figures go to
// docs/benchmarks.md ("Risk monitor").
func TestScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a few thousand blocks; skipped with -short")
	}
	for seed := uint64(1); seed <= uint64(*scenarioSeeds); seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { scenarioSeed(t, seed) })
	}
}

// scenarioSeeds is how many seeds TestScenario runs (docs/benchmarks.md
// reports 5: go test -run TestScenario -v ./monitor -scenario.seeds 5).
var scenarioSeeds = flag.Int("scenario.seeds", 1, "seeds TestScenario runs (1, 2, ...)")

func scenarioSeed(t *testing.T, seed uint64) {
	res := runScenario(t, scenario.Params{Seed: seed, People: 50, Merchants: 12, Days: 110, Plants: 3, Warmup: 8 * 24 * time.Hour})
	rules := make([]string, 0, len(res.falseByRule))
	for r, n := range res.falseByRule {
		rules = append(rules, fmt.Sprintf("%s %d", r, n))
	}
	sort.Strings(rules)
	t.Logf("seed %d: %d people, %d days, %d payments (%d normal) in %d blocks; planted %d, caught %d; alerts on normal traffic: %d (%.3f%% of normal payments; %s); judged in %v (%.0f blocks/s, %.0f payments/s)",
		seed, res.people, res.days, res.payments, res.normal, res.blocks, res.planted, res.caught, res.falseAlerts,
		100*float64(res.falseAlerts)/float64(res.normal), strings.Join(rules, ", "), res.judge.Round(time.Millisecond),
		float64(res.blocks)/res.judge.Seconds(), float64(res.payments)/res.judge.Seconds())
	if len(res.missed) > 0 {
		t.Errorf("planted patterns missed: %q", res.missed)
	}
	if res.falseAlerts*200 > res.normal {
		t.Errorf("%d alerts on %d normal payments: more than 1 in 200", res.falseAlerts, res.normal)
	}
}
