package store

import (
	"math/big"
	"slices"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/state"
)

// Governance members of the dev genesis (threshold 2 of 3, activation delay 3).
const (
	idGov1 = genesis.DevGovernanceIndex
	idGov2 = genesis.DevGovernanceIndex + 1
	idGov3 = genesis.DevGovernanceIndex + 2
	// idNewValidator is a fresh key proposed as a validator.
	idNewValidator = 1001
	// idNewAuthority is a fresh key proposed as compliance authority.
	idNewAuthority = 201
	// idNewBankKey is bank B's rotated key.
	idNewBankKey = 102
)

func govTx(from uint32, method string, args ...any) opStep {
	return systemTx(&chain.GovernanceABI, chain.GovernanceAddress, from, method, args...)
}

func txVote(from uint32, id int64, approve bool) opStep {
	return govTx(from, "vote", big.NewInt(id), approve)
}

func compressed(i uint32) []byte { return ethcrypto.CompressPubkey(&keyOf(i).ECDSA().PublicKey) }

// txVelocityRule proposes a velocity rule (maxUint256 as maxAmount: no cap on the amount).
func txVelocityRule(from uint32, name string, tier uint8, asset uint32, window string, maxTransfers uint64, maxAmount *big.Int, suspend uint64) opStep {
	return govTx(from, "proposeSetVelocityRule", name, tier, chain.AssetAddress(asset), window, maxTransfers, maxAmount, suspend)
}

// topHKDCapped probes the velocity rule "top-hkd" (10 HKD per rolling
// hour at tier 3): alice's eth_call of an 11 HKD transfer is refused by
// it exactly when want.
func topHKDCapped(want bool) func(h *opHarness) bool {
	return func(h *opHarness) bool {
		data, _ := chain.AssetABI.Pack("transfer", who(idBob), hkd(11))
		_, _, err := state.Call(h.db, h.db.HeadContext(), who(idAlice), chain.AssetAddress(assetHKD), nil, data)
		capped := err != nil && err.Error() == "velocity top-hkd: 11.00 HKD sent in 1h, limit 10.00 HKD"
		return capped == want
	}
}

// proposalView returns (status, approvals, rejections, effective height).
func (h *opHarness) proposalView(id int64) (uint8, int64, int64, uint64) {
	v := h.view(&chain.GovernanceABI, chain.GovernanceAddress, "proposal", big.NewInt(id))
	return v[2].(uint8), v[3].(*big.Int).Int64(), v[4].(*big.Int).Int64(), v[5].(uint64)
}

// govCase is one kind of change: its proposal, and probes of the rule it
// changes that must answer "before" until the effective height and "after"
// from it on.
type govCase struct {
	name     string
	setup    []opStep
	proposal opStep
	// effect reports whether the change is in force, from the head state.
	effect func(h *opHarness) bool
}

func govCases() []govCase {
	canMint := func(bank, asset uint32, order string) func(h *opHarness) bool {
		return func(h *opHarness) bool {
			data, _ := chain.AssetABI.Pack("mint", who(idAlice), big.NewInt(1), ref(order))
			_, _, err := state.Call(h.db, h.db.HeadContext(), who(bank), chain.AssetAddress(asset), nil, data)
			return err == nil
		}
	}
	return []govCase{
		{name: "add validator", proposal: govTx(idGov1, "proposeAddValidator", "bank-c", compressed(idNewValidator)),
			effect: func(h *opHarness) bool { return h.db.IsValidator(who(idNewValidator)) }},
		{name: "remove validator",
			setup: []opStep{govTx(idGov1, "proposeAddValidator", "bank-c", compressed(idNewValidator)), txVote(idGov2, 1, true)},
			// proposal 2, after the addition took effect
			proposal: govTx(idGov1, "proposeRemoveValidator", who(idNewValidator)),
			effect:   func(h *opHarness) bool { return !h.db.IsValidator(who(idNewValidator)) }},
		{name: "add bank", proposal: govTx(idGov1, "proposeAddBank", chain.AssetAddress(assetHKD), who(idBankA)),
			effect: canMint(idBankA, assetHKD, "probe-add")},
		{name: "remove bank", proposal: govTx(idGov1, "proposeRemoveBank", chain.AssetAddress(assetCNY), who(idBankA)),
			effect: func(h *opHarness) bool { return !canMint(idBankA, assetCNY, "probe-rm")(h) }},
		{name: "rotate bank key", proposal: govTx(idGov1, "proposeRotateBankKey", chain.AssetAddress(assetHKD), who(idBankB), who(idNewBankKey)),
			effect: func(h *opHarness) bool {
				return !canMint(idBankB, assetHKD, "probe-rot")(h) && canMint(idNewBankKey, assetHKD, "probe-rot")(h)
			}},
		{name: "add asset", proposal: govTx(idGov1, "proposeAddAsset", "USD", "US Dollar", uint8(2), []common.Address{who(idBankB)}),
			effect: canMint(idBankB, 2, "probe-usd")},
		{name: "pause asset", proposal: govTx(idGov1, "proposeSetAssetPaused", chain.AssetAddress(assetHKD), true),
			effect: func(h *opHarness) bool {
				data, _ := chain.AssetABI.Pack("transfer", who(idBob), big.NewInt(1))
				_, _, err := state.Call(h.db, h.db.HeadContext(), who(idAlice), chain.AssetAddress(assetHKD), nil, data)
				return err != nil && strings.Contains(err.Error(), "asset HKD is paused")
			}},
		{name: "tier limits", proposal: govTx(idGov1, "proposeSetTierLimits", uint8(3), chain.AssetAddress(assetHKD), hkd(1000), hkd(10), maxUint256),
			effect: func(h *opHarness) bool {
				data, _ := chain.AssetABI.Pack("transfer", who(idBob), hkd(11))
				_, _, err := state.Call(h.db, h.db.HeadContext(), who(idAlice), chain.AssetAddress(assetHKD), nil, data)
				return err != nil && strings.Contains(err.Error(), "per-transfer limit")
			}},
		{name: "issuance cap", proposal: govTx(idGov1, "proposeSetIssuanceCap", chain.AssetAddress(assetHKD), who(idBankB), hkd(5)),
			effect: func(h *opHarness) bool {
				data, _ := chain.AssetABI.Pack("mint", who(idAlice), hkd(6), ref("probe-cap"))
				_, _, err := state.Call(h.db, h.db.HeadContext(), who(idBankB), chain.AssetAddress(assetHKD), nil, data)
				return err != nil && strings.Contains(err.Error(), "over its cap 500")
			}},
		{name: "velocity rule", proposal: txVelocityRule(idGov1, "top-hkd", 3, assetHKD, "1h", 0, hkd(10), 0),
			effect: topHKDCapped(true)},
		{name: "remove velocity rule",
			setup:    []opStep{txVelocityRule(idGov1, "top-hkd", 3, assetHKD, "1h", 0, hkd(10), 0), txVote(idGov2, 1, true)},
			proposal: govTx(idGov1, "proposeRemoveVelocityRule", "top-hkd"),
			effect:   topHKDCapped(false)},
		{name: "replace compliance", proposal: govTx(idGov1, "proposeSetCompliance", who(idNewAuthority)),
			effect: func(h *opHarness) bool {
				return h.view(&chain.ComplianceABI, chain.ComplianceAddress, "authority")[0].(common.Address) == who(idNewAuthority)
			}},
		{name: "change governance", proposal: govTx(idGov1, "proposeSetGovernance", []common.Address{who(idGov1), who(idGov2)}, big.NewInt(1)),
			effect: func(h *opHarness) bool {
				m := h.view(&chain.GovernanceABI, chain.GovernanceAddress, "members")[0].([]common.Address)
				return len(m) == 2 && !slices.Contains(m, who(idGov3))
			}},
	}
}

// TestGovernanceChanges runs every kind of change through the same life:
// proposed (one approval, below the threshold: no effect), a non-member's
// vote refused, a replayed vote refused, approved at the threshold (effect
// recorded ActivationDelay blocks ahead), still no effect in the blocks
// before that height, in force from it on, and the proposal executed.
func TestGovernanceChanges(t *testing.T) {
	for _, c := range govCases() {
		t.Run(c.name, func(t *testing.T) {
			h := newOpHarness(t)
			delay := genesis.Dev().Governance.ActivationDelay
			var id int64 = 1
			if len(c.setup) > 0 {
				h.mustBlock(0, c.setup...)
				for range delay {
					h.mustBlock(0)
				}
				id = 2
			}
			if c.effect(h) {
				t.Fatal("change in force before it was proposed")
			}
			res := h.mustBlock(0, c.proposal)
			if got := new(big.Int).SetBytes(res[0].output).Int64(); got != id {
				t.Fatalf("proposal id %d, want %d", got, id)
			}
			if st, ap, rj, _ := h.proposalView(id); st != state.ProposalPending || ap != 1 || rj != 0 {
				t.Fatalf("after proposing: status %d, %d approvals, %d rejections", st, ap, rj)
			}
			h.mustBlock(0,
				txVote(idAlice, id, true).failing("is not a governance member"),
				txVote(idGov1, id, true).failing("has already voted"),
			)
			for range delay + 1 {
				h.mustBlock(0)
			}
			if c.effect(h) {
				t.Fatal("change in force below the threshold")
			}
			res = h.mustBlock(0, txVote(idGov2, id, true))
			approvedAt := res[0].blk.Number
			st, ap, _, eff := h.proposalView(id)
			if st != state.ProposalApproved || ap != 2 || eff != approvedAt+delay {
				t.Fatalf("after the threshold: status %d, %d approvals, effective %d (approved at %d, delay %d)", st, ap, eff, approvedAt, delay)
			}
			h.mustBlock(0, txVote(idGov3, id, true).failing("is no longer open"))
			for h.db.Tip().Head.Number < eff-1 {
				if c.effect(h) {
					t.Fatalf("change in force at height %d, before its effective height %d", h.db.Tip().Head.Number, eff)
				}
				h.mustBlock(0)
			}
			// The state after block eff-1 is the one block eff runs on.
			if !c.effect(h) {
				t.Fatalf("change not in force for block %d", eff)
			}
			if st, _, _, _ := h.proposalView(id); st != state.ProposalExecuted {
				t.Fatalf("status %d after taking effect, want executed", st)
			}
			rules, err := h.db.RulesAt(eff)
			if err != nil {
				t.Fatal(err)
			}
			before, err := h.db.RulesAt(eff - 1)
			if err != nil {
				t.Fatal(err)
			}
			ruleChange := c.name != "add validator" && c.name != "remove validator"
			if ruleChange == (string(rules.Encode()) == string(before.Encode())) {
				t.Fatalf("rules history at %d vs %d: changed %v, want %v", eff, eff-1, !ruleChange, ruleChange)
			}
		})
	}
}

// TestGovernanceRejection: once the threshold can no longer be reached the
// proposal is rejected and never takes effect.
func TestGovernanceRejection(t *testing.T) {
	h := newOpHarness(t)
	h.mustBlock(0, govTx(idGov1, "proposeSetCompliance", who(idNewAuthority)))
	h.mustBlock(0, txVote(idGov2, 1, false))
	if st, _, rj, _ := h.proposalView(1); st != state.ProposalPending || rj != 1 {
		t.Fatalf("one rejection of three members: status %d, %d rejections", st, rj)
	}
	h.mustBlock(0, txVote(idGov3, 1, false))
	if st, _, rj, _ := h.proposalView(1); st != state.ProposalRejected || rj != 2 {
		t.Fatalf("two rejections: status %d, %d rejections", st, rj)
	}
	h.mustBlock(0, txVote(idGov1, 1, true).failing("is no longer open"))
	for range 5 {
		h.mustBlock(0)
	}
	if a := h.view(&chain.ComplianceABI, chain.ComplianceAddress, "authority")[0].(common.Address); a == who(idNewAuthority) {
		t.Fatal("a rejected change took effect")
	}
}

// TestGovernanceRefusals: proposals that could never apply, and calls by
// non-members, revert at once and change nothing but the nonce.
func TestGovernanceRefusals(t *testing.T) {
	h := newOpHarness(t)
	val := who(genesis.DevValidatorIndex)
	h.mustBlock(0,
		govTx(idAlice, "proposeSetCompliance", who(idNewAuthority)).failing("is not a governance member"),
		govTx(idGov1, "proposeRemoveValidator", val).failing("the last validator cannot be removed"),
		govTx(idGov1, "proposeRemoveValidator", who(idAlice)).failing("is not a validator"),
		govTx(idGov1, "proposeAddValidator", "x", []byte{2, 3}).failing("33-byte"),
		govTx(idGov1, "proposeAddBank", chain.AssetAddress(assetHKD), who(idBankB)).failing("already issues HKD"),
		govTx(idGov1, "proposeAddBank", chain.AssetAddress(9), who(idBankB)).failing("no asset at"),
		govTx(idGov1, "proposeAddAsset", "HKD", "again", uint8(2), []common.Address{}).failing("used twice"),
		govTx(idGov1, "proposeSetTierLimits", uint8(9), chain.AssetAddress(assetHKD), hkd(1), hkd(1), hkd(1)).failing("tier 9 does not exist"),
		govTx(idGov1, "proposeSetGovernance", []common.Address{who(idGov1)}, big.NewInt(2)).failing("governance.threshold"),
		govTx(idGov1, "proposeSetAssetPaused", chain.AssetAddress(assetHKD), false).failing("already running"),
		govTx(idGov1, "proposeSetIssuanceCap", chain.AssetAddress(assetHKD), who(idBankA), hkd(1)).failing(who(idBankA).Hex()+" is not an issuing bank of HKD"),
		govTx(idGov1, "proposeSetIssuanceCap", chain.AssetAddress(9), who(idBankB), hkd(1)).failing("no asset at"),
		txVote(idGov1, 7, true).failing("no proposal 7"),
		txVelocityRule(idGov1, "Top", 3, assetHKD, "1h", 1, maxUint256, 0).failing(`rule name "Top" must be 1..32 characters a-z, 0-9 or '-'`),
		txVelocityRule(idGov1, "top", 9, assetHKD, "1h", 1, maxUint256, 0).failing("risk.velocity[0].tier 9: only tiers 0..3 exist"),
		txVelocityRule(idGov1, "top", 3, 9, "1h", 1, maxUint256, 0).failing("no asset at"),
		txVelocityRule(idGov1, "top", 3, assetHKD, "2h", 1, maxUint256, 0).failing(`risk.velocity[0].window "2h" must be "1h" or "24h"`),
		txVelocityRule(idGov1, "top", 3, assetHKD, "1h", 0, maxUint256, 0).failing("risk.velocity[0] caps nothing"),
		txVelocityRule(idGov1, "top", 3, assetHKD, "1h", 1, maxUint256, genesis.MaxSuspendSeconds+1).failing("risk.velocity[0].suspendSeconds 2592001 is over 2592000"),
		govTx(idGov1, "proposeRemoveVelocityRule", "top").failing("there is no velocity rule top"),
	)
	if n := h.view(&chain.GovernanceABI, chain.GovernanceAddress, "validators")[0].([]common.Address); len(n) != 1 || n[0] != val {
		t.Fatalf("validators %v", n)
	}
}

// TestGovernanceFailedAtHeight: a change that applied when approved but no
// longer does at its height (its bank was removed meanwhile) is marked
// failed and changes nothing.
func TestGovernanceFailedAtHeight(t *testing.T) {
	h := newOpHarness(t)
	h.mustBlock(0,
		govTx(idGov1, "proposeRemoveBank", chain.AssetAddress(assetHKD), who(idBankB)),
		govTx(idGov1, "proposeRotateBankKey", chain.AssetAddress(assetHKD), who(idBankB), who(idNewBankKey)),
	)
	h.mustBlock(0, txVote(idGov2, 1, true), txVote(idGov2, 2, true))
	for range 4 {
		h.mustBlock(0)
	}
	if st, _, _, _ := h.proposalView(1); st != state.ProposalExecuted {
		t.Fatalf("removal: status %d", st)
	}
	if st, _, _, _ := h.proposalView(2); st != state.ProposalFailed {
		t.Fatalf("rotation of a removed bank: status %d, want failed", st)
	}
	if banks := h.assetView(assetHKD, "isIssuer", who(idNewBankKey)); banks[0].(bool) {
		t.Fatal("the failed rotation took effect")
	}
}
