package txdecode

import (
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/rpc/schema"
)

// FromSchema returns the assets tally_assets lists.
func FromSchema(list []schema.Asset) Assets {
	out := make(Assets, len(list))
	for _, a := range list {
		out[a.ID] = Asset{ID: a.ID, Symbol: a.Symbol, Decimals: a.Decimals, MinorUnits: a.MinorUnits, Known: true}
	}
	return out
}

// FromGenesis returns the assets of a genesis file or of the rules in
// force (state.Rules embeds genesis.Rules): asset i has id i.
func FromGenesis(list []genesis.Asset) Assets {
	out := make(Assets, len(list))
	for i, a := range list {
		out[uint32(i)] = Asset{ID: uint32(i), Symbol: a.Symbol, Decimals: a.Decimals, MinorUnits: a.Minor(), Known: true}
	}
	return out
}
