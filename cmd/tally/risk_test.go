package main

import (
	"fmt"
	"math/big"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/wallet/wallettest"
)

// TestAccountShowsRisk drives the preventive risk rules on a real dev
// node with the CLI: governance adds a velocity rule on the dev accounts'
// tier, the second transfer in the hour is refused with the rule and its
// numbers and suspends the sender, the compliance authority lists an
// address; 'tally account' shows the counters, the suspension and the
// watch list entry, as text and JSON.
func TestAccountShowsRisk(t *testing.T) {
	setup(t)
	node := wallettest.StartDevNode(t)
	rpc := []string{"--rpc", node.URL}
	mn := writeFile(t, "mnemonic", crypto.TestMnemonic)
	addr := func(i uint32) string {
		a, err := genesis.DevAddress(i)
		if err != nil {
			t.Fatal(err)
		}
		return a.Hex()
	}
	must := func(args ...string) result {
		t.Helper()
		r := tally(t, "", append(args, rpc...)...)
		if r.code != exitOK {
			t.Fatalf("tally %s: %+v", strings.Join(args, " "), r)
		}
		return r
	}
	for _, i := range []uint32{0, genesis.DevComplianceIndex, genesis.DevGovernanceIndex, genesis.DevGovernanceIndex + 1} {
		if r := tally(t, "", "wallet", "import", "--mnemonic-file", mn, "--index", fmt.Sprint(i)); r.code != exitOK {
			t.Fatalf("import %d: %+v", i, r)
		}
	}
	noCap := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1)).String()
	must("op", "--from", addr(genesis.DevGovernanceIndex), "--governance", "proposeSetVelocityRule",
		"top-cny", fmt.Sprint(genesis.DevTierInstitutional), chain.AssetAddress(0).Hex(), "1h", "1", noCap, "600")
	must("op", "--from", addr(genesis.DevGovernanceIndex+1), "--governance", "vote", "1", "true")
	payer, payee := addr0, addr(7)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(must("account", payer).stdout, "velocity top-cny (CNY, 1h): 0 of 1 transfers\n") {
		if time.Now().After(deadline) {
			t.Fatal("the velocity rule is not in force 30 s after its approval (activation delay 3 blocks)")
		}
		time.Sleep(200 * time.Millisecond)
	}
	must("send", "--from", payer, "--to", payee, "--value", "1")
	if out := must("account", payer).stdout; !strings.Contains(out, "velocity top-cny (CNY, 1h): 1 of 1 transfers\n") {
		t.Fatalf("account after one transfer:\n%s", out)
	}
	r := tally(t, "", append([]string{"send", "--from", payer, "--to", payee, "--value", "1", "--force"}, rpc...)...)
	if r.code != exitFailure || !strings.Contains(r.stderr, "velocity top-cny: 2 transfers in 1h, limit 1; "+payer+" suspended until ") {
		t.Fatalf("second transfer in the hour: %+v", r)
	}
	out := must("account", payer).stdout
	if !regexp.MustCompile(`(?m)^suspended until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \(since block \d+\): risk:top-cny:2 transfers in 1h, limit 1$`).MatchString(out) {
		t.Fatalf("account of the suspended payer:\n%s", out)
	}
	// Suspended: it can neither send nor receive.
	r = tally(t, "", append([]string{"send", "--from", addr0, "--to", payee, "--value", "0"}, rpc...)...)
	if r.code == exitOK || !strings.Contains(r.stderr, "is suspended until") {
		t.Fatalf("send by the suspended payer: %+v", r)
	}

	must("op", "--from", addr(genesis.DevComplianceIndex), "--compliance", "watch", payee, "sanctions list hit")
	if out := must("account", payee).stdout; !regexp.MustCompile(`(?m)^on the watch list \(since block \d+\): sanctions list hit$`).MatchString(out) {
		t.Fatalf("account of the listed payee:\n%s", out)
	}
	js := must("account", payee, "--json").stdout
	if !regexp.MustCompile(`"watchList": \{\s*"reason": "sanctions list hit",\s*"block": \d+\s*\}`).MatchString(js) || strings.Contains(js, `"suspension"`) {
		t.Fatalf("account --json of the listed payee:\n%s", js)
	}
	js = must("account", payer, "--json").stdout
	if !strings.Contains(js, `"rule": "top-cny"`) || !strings.Contains(js, `"reason": "risk:top-cny:2 transfers in 1h, limit 1"`) || !strings.Contains(js, `"maxAmount": null`) {
		t.Fatalf("account --json of the suspended payer:\n%s", js)
	}
}
