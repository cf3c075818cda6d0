package monitor

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/internal/chaintest"
)

// unfunded is a dev key index with no genesis allocation: a new account
// at tier 0 (it may hold at most 1000 CNY).
const unfunded = 500

// TestRules: each rule fires on the pattern it names, built as real
// blocks (signed transactions applied by state and store as a node does),
// and stays quiet on the same pattern just below its limit. Every alert
// raised is listed: no rule fires on another's case. The monitor runs
// with the default rules (docs/monitor.md).
func TestRules(t *testing.T) {
	day := 24 * time.Hour
	for _, c := range []struct {
		name string
		// build appends blocks to the chain.
		build func(c *chaintest.Chain)
		// want are the alerts, "rule account", with the detail's words.
		want   []string
		detail string
	}{
		{"large amount", func(c *chaintest.Chain) {
			for range 5 {
				c.Apply(c.Tx(0, addr(1), cny(100), nil))
			}
			c.Apply(c.Tx(0, addr(1), cny(5000), nil))
		}, []string{RuleLargeAmount + " " + addr(0).Hex()}, "5000.00 CNY is 50.0x the account's mean payment of 100.00 CNY over 5 payments and above its largest, 100.00 CNY (threshold 10x, at least 1000.00 CNY)"},
		{"large amount, too little history", func(c *chaintest.Chain) {
			for range 4 {
				c.Apply(c.Tx(0, addr(1), cny(100), nil))
			}
			c.Apply(c.Tx(0, addr(1), cny(5000), nil))
		}, nil, ""},
		{"large amount, paid as much before", func(c *chaintest.Chain) {
			c.Apply(c.Tx(0, addr(1), cny(5000), nil)) // the rent
			for range 12 {
				c.Apply(c.Tx(0, addr(1), cny(100), nil))
			}
			c.Apply(c.Tx(0, addr(1), cny(5000), nil)) // 10.5x the mean, the rent again
		}, nil, ""},
		{"structuring", func(c *chaintest.Chain) {
			c.Apply(c.Tx(2, addr(3), cny(100), nil))
			for _, v := range []int64{48000, 49990, 45000} {
				c.Advance(time.Hour)
				c.Apply(c.Tx(2, addr(3), cny(v), nil))
			}
		}, []string{RuleStructuring + " " + addr(2).Hex()}, "3 payments of 45000.00 CNY to 49990.00 CNY (total 142990.00 CNY) in 24h0m0s, each within 10% below the threshold 50000.00 CNY, limit 3"},
		{"structuring, spread out", func(c *chaintest.Chain) {
			c.Apply(c.Tx(2, addr(3), cny(100), nil))
			for _, v := range []int64{48000, 49990, 45000} {
				c.Advance(13 * time.Hour)
				c.Apply(c.Tx(2, addr(3), cny(v), nil))
			}
		}, nil, ""},
		{"rapid in and out", func(c *chaintest.Chain) {
			c.Apply(c.Tx(5, addr(4), cny(15000), nil))
			c.Advance(30 * time.Minute)
			c.Apply(c.Tx(4, addr(6), cny(14000), nil))
		}, []string{RuleRapidInOut + " " + addr(4).Hex()}, "received 15000.00 CNY and sent out 14000.00 CNY (93%) within 1h0m0s (ratio 0.9, at least 10000.00 CNY received)"},
		{"rapid in and out, slower", func(c *chaintest.Chain) {
			c.Apply(c.Tx(5, addr(4), cny(15000), nil))
			c.Advance(2 * time.Hour)
			c.Apply(c.Tx(4, addr(6), cny(14000), nil))
		}, nil, ""},
		{"new payee", func(c *chaintest.Chain) {
			c.Apply(c.Tx(7, addr(8), cny(25000), nil))
		}, []string{RuleNewPayee + " " + addr(7).Hex()}, "25000.00 CNY to " + addr(8).Hex() + ", never paid before (at least 20000.00 CNY)"},
		{"new payee, paid before", func(c *chaintest.Chain) {
			c.Apply(c.Tx(7, addr(8), cny(10), nil))
			c.Apply(c.Tx(7, addr(8), cny(25000), nil))
		}, nil, ""},
		{"dormant", func(c *chaintest.Chain) {
			c.Apply(c.Tx(9, addr(10), cny(100), nil))
			c.Advance(91 * day)
			c.Apply(c.Tx(9, addr(10), cny(2000), nil))
		}, []string{RuleDormant + " " + addr(9).Hex()}, "pays 2000.00 CNY after 91d without a payment"},
		{"dormant, not long enough", func(c *chaintest.Chain) {
			c.Apply(c.Tx(9, addr(10), cny(100), nil))
			c.Advance(89 * day)
			c.Apply(c.Tx(9, addr(10), cny(2000), nil))
		}, nil, ""},
		{"many senders", func(c *chaintest.Chain) {
			for i := range uint32(10) {
				c.Apply(c.Tx(i, chaintest.Addr(unfunded), cny(10), nil))
			}
		}, []string{RuleManySenders + " " + chaintest.Addr(unfunded).Hex()}, "10 distinct senders in 24h0m0s to an account first seen 9s ago, limit 10"},
		{"many senders, fewer", func(c *chaintest.Chain) {
			for i := range uint32(9) {
				c.Apply(c.Tx(i, chaintest.Addr(unfunded), cny(10), nil))
			}
			c.Apply(c.Tx(0, chaintest.Addr(unfunded), cny(10), nil))
		}, nil, ""},
		{"failed burst", func(c *chaintest.Chain) {
			for range 5 {
				c.Apply(c.Tx(11, chaintest.Addr(unfunded), cny(2000), nil)) // over a tier-0 account's balance limit
			}
		}, []string{RuleFailedBurst + " " + addr(11).Hex()}, "5 failed transactions in 10m0s, limit 5"},
		{"failed burst, fewer", func(c *chaintest.Chain) {
			for range 4 {
				c.Apply(c.Tx(11, chaintest.Addr(unfunded), cny(2000), nil))
			}
		}, nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			ch := chaintest.New(t)
			c.build(ch)
			m := openOn(t, ch, testConfig(t))
			catchUp(t, m)
			as := allAlerts(t, m)
			if got := ruleAccounts(as); !slices.Equal(got, c.want) {
				for _, a := range as {
					t.Logf("alert %d: %s", a.ID, a.Detail)
				}
				t.Fatalf("alerts %q, want %q", got, c.want)
			}
			if c.detail != "" && !strings.Contains(as[0].Detail, c.detail) {
				t.Errorf("detail %q, want it to contain %q", as[0].Detail, c.detail)
			}
			for _, a := range as {
				if len(a.Txs) == 0 || a.Txs[len(a.Txs)-1] == (common.Hash{}) || a.Severity == "" || a.ID == 0 {
					t.Errorf("alert %+v: want an id, a severity and the transactions that made it fire", a)
				}
			}
		})
	}
}
