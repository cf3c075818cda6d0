package chain

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
)

// TestPublishedABIs checks the abi/ folder as clients see it: only JSON
// arrays, one per contract, each loading in go-ethereum's abi.JSON, and
// identical to what the node embeds and executes.
func TestPublishedABIs(t *testing.T) {
	entries, err := os.ReadDir("../abi")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"Asset.json": true, "Compliance.json": true, "Governance.json": true, "Exchange.json": true, "Confirmations.json": true, "Disputes.json": true, "Multicall3.json": true}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".json") {
			t.Errorf("abi/ holds %s: only <Contract>.json files belong there", name)
			continue
		}
		data, err := os.ReadFile(filepath.Join("../abi", name))
		if err != nil {
			t.Fatal(err)
		}
		var arr []map[string]any
		if err := json.Unmarshal(data, &arr); err != nil {
			t.Errorf("abi/%s is not a JSON array: %v", name, err)
		}
		if _, err := abi.JSON(strings.NewReader(string(data))); err != nil {
			t.Errorf("abi/%s does not load in abi.JSON: %v", name, err)
		}
		embedded, err := ABIJSON(strings.TrimSuffix(name, ".json"))
		if err != nil || string(embedded) != string(data) {
			t.Errorf("abi/%s differs from the embedded copy (%v)", name, err)
		}
		delete(want, name)
	}
	for name := range want {
		t.Errorf("abi/%s is missing", name)
	}
	// The ERC-20 surface wallets rely on, with the standard selectors.
	for sig, sel := range map[string]string{
		"transfer": "a9059cbb", "balanceOf": "70a08231", "approve": "095ea7b3", "transferFrom": "23b872dd",
		"allowance": "dd62ed3e", "totalSupply": "18160ddd", "decimals": "313ce567", "symbol": "95d89b41", "name": "06fdde03",
	} {
		m, ok := AssetABI.Methods[sig]
		if !ok || common.Bytes2Hex(m.ID) != sel {
			t.Errorf("Asset.%s: selector %x, want %s", sig, m.ID, sel)
		}
	}
	if id := AssetABI.Events["Transfer"].ID; id != common.HexToHash("0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef") {
		t.Errorf("Transfer event id %s is not ERC-20's", id)
	}
}

func TestSystemAddresses(t *testing.T) {
	for _, id := range []uint32{0, 1, 255, MaxAssetID} {
		a := AssetAddress(id)
		got, ok := AssetID(a)
		if !ok || got != id || !IsSystemAddress(a) {
			t.Errorf("asset %d: address %s maps back to %d, %v", id, a, got, ok)
		}
	}
	if AssetAddress(1) != common.HexToAddress("0x0000000000000000000000000000000000001001") {
		t.Errorf("HKD facade moved: %s", AssetAddress(1))
	}
	for _, a := range []common.Address{{}, common.HexToAddress("0x0000000000000000000000000000000000000fff"), common.HexToAddress("0x0100000000000000000000000000000000001000"), common.HexToAddress("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266")} {
		if _, ok := AssetID(a); ok || IsSystemAddress(a) {
			t.Errorf("%s taken for a system address", a)
		}
	}
	if !IsSystemAddress(ComplianceAddress) {
		t.Error("compliance is not a system address")
	}
}

func TestEncodeRevert(t *testing.T) {
	reason := "bank reference 0x01 has already minted"
	data := EncodeRevert(reason)
	if common.Bytes2Hex(data[:4]) != "08c379a0" {
		t.Fatalf("selector %x, want Error(string)'s 08c379a0", data[:4])
	}
	got, err := abi.UnpackRevert(data)
	if err != nil || got != reason {
		t.Fatalf("UnpackRevert: %q, %v", got, err)
	}
}
