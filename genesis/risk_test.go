package genesis

import (
	"errors"
	"strings"
	"testing"
)

// TestRiskRules: a genesis with risk rules parses and round-trips; every
// malformed rule is refused naming its field; the dev genesis, which has
// none, encodes without a risk section (its hash is unchanged).
func TestRiskRules(t *testing.T) {
	valid := string(DevJSON())
	if strings.Contains(valid, `"risk"`) {
		t.Fatal("the dev genesis has a risk section")
	}
	with := func(rules string) string {
		return strings.Replace(valid, `"validators": [`, `"risk": {"velocity": [`+rules+`]}, "validators": [`, 1)
	}
	const ok = `{"name": "basic-hour", "tier": 1, "asset": "CNY", "window": "1h", "maxTransfers": 30, "maxAmount": "5000", "suspendSeconds": 3600}`
	g, err := Parse([]byte(with(ok + `, {"name": "basic-day", "tier": 1, "asset": "HKD", "window": "24h", "maxAmount": "100"}`)))
	if err != nil {
		t.Fatal(err)
	}
	vs := g.VelocityRules()
	if len(vs) != 2 || vs[0].MaxTransfers != 30 || vs[0].MaxAmount.Int64() != 5000 || vs[0].SuspendSeconds != 3600 || vs[1].WindowMs() != 86_400_000 || vs[0].WindowMs() != 3_600_000 {
		t.Fatalf("parsed %+v", vs)
	}
	again, err := ParseRules(g.Rules.Encode())
	if err != nil || string(again.Encode()) != string(g.Rules.Encode()) {
		t.Fatalf("rules do not round-trip: %v", err)
	}
	if g.Hash() == Dev().Hash() {
		t.Fatal("risk rules do not change the genesis hash")
	}
	cases := map[string]struct{ json, want string }{
		"empty section":   {strings.Replace(valid, `"validators": [`, `"risk": {}, "validators": [`, 1), "an empty risk section must be left out"},
		"bad name":        {with(strings.Replace(ok, "basic-hour", "Basic hour", 1)), `risk.velocity[0].name "Basic hour" must be 1..32 characters`},
		"long name":       {with(strings.Replace(ok, "basic-hour", strings.Repeat("a", 33), 1)), "risk.velocity[0].name"},
		"duplicate name":  {with(ok + "," + ok), `risk.velocity[1].name "basic-hour" is used twice`},
		"no such tier":    {with(strings.Replace(ok, `"tier": 1`, `"tier": 4`, 1)), "risk.velocity[0].tier 4: only tiers 0..3 exist"},
		"no such asset":   {with(strings.Replace(ok, `"CNY"`, `"USD"`, 1)), `risk.velocity[0].asset: unknown asset "USD"`},
		"bad window":      {with(strings.Replace(ok, `"1h"`, `"60m"`, 1)), `risk.velocity[0].window "60m" must be "1h" or "24h"`},
		"caps nothing":    {with(`{"name": "x", "tier": 1, "asset": "CNY", "window": "1h"}`), "risk.velocity[0] caps nothing"},
		"long suspension": {with(strings.Replace(ok, `3600}`, `2592001}`, 1)), "risk.velocity[0].suspendSeconds 2592001 is over 2592000"},
		"amount not text": {with(strings.Replace(ok, `"5000"`, `5000`, 1)), "decimal string"},
		"unknown field":   {with(strings.Replace(ok, `"tier"`, `"severity": 1, "tier"`, 1)), "unknown field"},
		"too many":        {with(strings.TrimSuffix(strings.Repeat(`{"name": "r", "tier": 1, "asset": "CNY", "window": "1h", "maxTransfers": 1},`, MaxVelocityRules+1), ",")), "risk.velocity: at most 64 rules, have 65"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(c.json))
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q, want ErrInvalid mentioning %q", err, c.want)
			}
		})
	}
}

// TestSetAndRemoveVelocityRule: set replaces a rule of the same name in
// place, remove drops it, and removing the last leaves no risk section.
func TestSetAndRemoveVelocityRule(t *testing.T) {
	r := Dev().Rules.Clone()
	r.SetVelocityRule(VelocityRule{Name: "a", Tier: 1, Asset: "CNY", Window: WindowHour, MaxTransfers: 1})
	r.SetVelocityRule(VelocityRule{Name: "b", Tier: 1, Asset: "CNY", Window: WindowHour, MaxTransfers: 2})
	r.SetVelocityRule(VelocityRule{Name: "a", Tier: 2, Asset: "HKD", Window: WindowDay, MaxTransfers: 3})
	if vs := r.VelocityRules(); len(vs) != 2 || vs[0].Name != "a" || vs[0].Tier != 2 || vs[1].Name != "b" {
		t.Fatalf("after set: %+v", vs)
	}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	if r.RemoveVelocityRule("c") || !r.RemoveVelocityRule("a") || !r.RemoveVelocityRule("b") {
		t.Fatal("remove reported wrongly")
	}
	if r.Risk != nil || string(r.Encode()) != string(Dev().Rules.Encode()) {
		t.Fatalf("rules after removing every rule differ from none: %s", r.Encode())
	}
}
