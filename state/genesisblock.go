package state

import (
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
)

// GenesisBlock derives block 0 and its state writes from g. Its extra data
// carries g.Hash(), so it commits to the whole file.
func GenesisBlock(g *genesis.Genesis) (*chain.Block, *Overlay, error) {
	if err := g.Validate(); err != nil {
		return nil, nil, err
	}
	o := NewOverlay(emptyReader{})
	o.setValidatorList(g.ValidatorAddresses(), 0)
	for i, v := range g.Validators {
		a, err := v.Address()
		if err != nil {
			return nil, nil, err
		}
		name := v.Name
		if name == "" {
			name = fmt.Sprintf("validator-%d", i)
		}
		o.setValidator(ValidatorInfo{Address: a, Name: name, PublicKey: v.PublicKey})
	}
	o.Set(keyRules, g.Rules.Encode())
	o.Set(key(prefixRulesHistory, u64(0)), g.Rules.Encode())
	minted := make([]*big.Int, len(g.Assets))
	for i := range minted {
		minted[i] = new(big.Int)
	}
	for _, al := range g.Alloc {
		o.SetAccount(al.Address, Account{Tier: al.Tier})
		for sym, bal := range al.Balances {
			id, _ := g.AssetID(sym) // checked by Validate
			o.SetBalance(id, al.Address, new(big.Int).Set(bal.Int))
			minted[id].Add(minted[id], bal.Int)
		}
	}
	// Genesis allocations count as minted at height 0 (DESIGN.md decision 9).
	for id, m := range minted {
		o.SetSupply(uint32(id), Supply{Minted: m, Burned: new(big.Int), Escrow: new(big.Int)})
	}
	h := chain.NewGenesisHeader(g.TimestampMs, g.Hash())
	h.Root = o.Root(common.Hash{})
	return chain.NewBlock(h, nil), o, nil
}

type emptyReader struct{}

func (emptyReader) Get([]byte) ([]byte, error) { return nil, nil }
