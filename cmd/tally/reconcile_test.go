package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally/bridge"
	"github.com/tally-ledger/tally/bridge/iso20022"
	"github.com/tally-ledger/tally/wallet/wallettest"
)

// statementXML writes a camt.053 of the omnibus account with the given
// entries and balances opening 0, closing the sum of the credits.
func statementXML(t *testing.T, closing string, entries ...iso20022.Entry) string {
	t.Helper()
	now := time.Now().UTC()
	bal := func(typ, amt string) iso20022.Balance {
		return iso20022.Balance{Type: typ, Amount: amt, Currency: "HKD", Credit: true, Date: now.Format(time.DateOnly)}
	}
	st := &iso20022.Statement{MsgID: "STMT-CLI-1", Created: now, Accounts: []iso20022.AccountStatement{{
		ID: "STMT-CLI-1", Account: iso20022.Account{Other: "OMNI-1"},
		Balances: []iso20022.Balance{bal(iso20022.BalanceOpeningBooked, "0"), bal(iso20022.BalanceClosingBooked, closing)},
		Entries:  entries}}}
	var buf bytes.Buffer
	if err := iso20022.WriteCamt053(&buf, st); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// TestBridgeReconcileCommand checks the command's output and exit codes
// against a fresh dev node, on which bank B has minted nothing: an empty
// statement is clean (0), a credit never minted is a break (1), a
// statement that cannot be read is 2.
func TestBridgeReconcileCommand(t *testing.T) {
	node := wallettest.StartDevNode(t)
	cfgPath, _ := bridgeFiles(t, node.URL, "127.0.0.1:0", "")

	clean := writeFile(t, "clean.xml", statementXML(t, "0"))
	r := tally(t, "", "bridge", "reconcile", "--config", cfgPath, "--statement", clean)
	if r.code != exitOK || !strings.Contains(r.stdout, "no breaks") {
		t.Fatalf("clean statement: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	ghost := writeFile(t, "ghost.xml", statementXML(t, "5.00", iso20022.Entry{Ref: "CLI-GHOST-1", Amount: "5.00", Currency: "HKD",
		Credit: true, Status: iso20022.EntryBooked}))
	r = tally(t, "", "bridge", "reconcile", "--config", cfgPath, "--statement", ghost)
	// The ghost credit explains the whole difference in the totals: one
	// break, no total-mismatch besides it.
	if r.code != exitFailure || !strings.Contains(r.stdout, bridge.BreakDepositNotMinted) || !strings.Contains(r.stdout, "CLI-GHOST-1") ||
		strings.Contains(r.stdout, bridge.BreakTotalMismatch) {
		t.Fatalf("ghost credit: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = tally(t, "", "bridge", "reconcile", "--config", cfgPath, "--statement", ghost, "--json")
	var rep bridge.ReconcileReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != exitFailure || len(rep.Breaks) != 1 ||
		rep.Breaks[0].Kind != bridge.BreakDepositNotMinted || rep.Breaks[0].Ref != "CLI-GHOST-1" {
		t.Fatalf("--json: exit %d, %v\n%s", r.code, err, r.stdout)
	}

	for name, content := range map[string]string{
		"malformed":     "<Document xmlns=",
		"wrong version": strings.ReplaceAll(statementXML(t, "0"), "camt.053.001.08", "camt.053.001.02"),
		"not camt.053":  `<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"/>`,
	} {
		r := tally(t, "", "bridge", "reconcile", "--config", cfgPath, "--statement", writeFile(t, "bad.xml", content))
		if r.code != exitUsage || !strings.Contains(r.stderr, "statement") {
			t.Errorf("%s statement: exit %d, want 2\n%s", name, r.code, r.stderr)
		}
	}
	if r := tally(t, "", "bridge", "reconcile", "--config", cfgPath); r.code != exitUsage {
		t.Errorf("no --statement: exit %d, want 2", r.code)
	}
}
