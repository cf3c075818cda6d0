package state

import (
	"bytes"
	"fmt"
	"math/big"
	"sync/atomic"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/genesis"
)

// Rules are the consortium rules in force (genesis.Rules, as the state
// holds them under keyRules), compiled for execution: bank sets and limits
// per asset id. Read-only once built; safe for concurrent use.
type Rules struct {
	*genesis.Rules
	raw    []byte
	banks  []map[common.Address]bool // [asset]
	limits [][]limits                // [tier][asset]
	// velocity are the velocity rules by [tier][asset] (risk.go); nil
	// when there are none.
	velocity [][][]genesis.VelocityRule
}

// limits are one tier's limits of one asset; nil is unlimited.
type limits struct {
	maxBalance, maxTransfer, maxDaily *big.Int
}

// CompileRules compiles validated genesis rules.
func CompileRules(gr *genesis.Rules) (*Rules, error) {
	if err := gr.Validate(); err != nil {
		return nil, err
	}
	return compileRules(gr.Encode())
}

func compileRules(raw []byte) (*Rules, error) {
	gr, err := genesis.ParseRules(raw)
	if err != nil {
		return nil, err
	}
	r := &Rules{Rules: gr, raw: raw}
	for _, a := range gr.Assets {
		set := make(map[common.Address]bool, len(a.Banks))
		for _, b := range a.Banks {
			set[b] = true
		}
		r.banks = append(r.banks, set)
	}
	for _, t := range gr.Tiers {
		row := make([]limits, len(gr.Assets))
		for id, a := range gr.Assets {
			l := t.Limits[a.Symbol]
			row[id] = limits{maxBalance: l.MaxBalance.Big(), maxTransfer: l.MaxTransfer.Big(), maxDaily: l.MaxDailyOutflow.Big()}
		}
		r.limits = append(r.limits, row)
	}
	r.velocity = compileVelocity(gr)
	return r, nil
}

// lastRules caches the last compiled rules: they change only by governance,
// and every block, build and eth_call loads them.
var lastRules atomic.Pointer[Rules]

// LoadRules reads the rules in force from r.
func LoadRules(r Reader) (*Rules, error) {
	raw, err := r.Get(keyRules)
	if err != nil {
		return nil, fmt.Errorf("read rules: %w", err)
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("read rules: %w", ErrNoGenesis)
	}
	if c := lastRules.Load(); c != nil && bytes.Equal(c.raw, raw) {
		return c, nil
	}
	c, err := compileRules(raw)
	if err != nil {
		return nil, fmt.Errorf("stored rules: %w", err) // only valid rules are ever written
	}
	lastRules.Store(c)
	return c, nil
}

// HasAsset reports whether asset id exists.
func (r *Rules) HasAsset(id uint32) bool { return int(id) < len(r.Assets) }

// IsBank reports whether a may issue asset id.
func (r *Rules) IsBank(id uint32, a common.Address) bool { return r.banks[id][a] }

// limitsOf returns the limits of tier for asset id; a tier beyond the
// rules (after governance removed it) has the top tier's limits.
func (r *Rules) limitsOf(tier uint8, id uint32) limits {
	if int(tier) >= len(r.limits) {
		tier = r.TopTier()
	}
	return r.limits[tier][id]
}
