package state

import (
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
)

// genesisChain is the dev genesis held in memory, with no storage: the
// pure transition (Build, Transition) runs on its state, which is the
// genesis block's overlay. Package store's tests run the same functions on
// Pebble.
type genesisChain struct {
	t       testing.TB
	block   *chain.Block
	state   *Overlay
	parent  Parent
	val     *crypto.PrivateKey
	keys    []*crypto.PrivateKey
	chainID *big.Int
	senders *chain.SenderCache
}

func newGenesisChain(t testing.TB) *genesisChain {
	t.Helper()
	g := genesis.Dev()
	b, o, err := GenesisBlock(g)
	if err != nil {
		t.Fatal(err)
	}
	hist := chain.NewHistory()
	hist.Append(b.Hash())
	c := &genesisChain{t: t, block: b, state: o, chainID: g.ChainIDBig(),
		parent: Parent{Hash: b.Hash(), Root: b.Header.Root, Number: 0, TimeMs: g.TimestampMs, History: hist}}
	if c.val, err = genesis.DevKey(genesis.DevValidatorIndex); err != nil {
		t.Fatal(err)
	}
	for i := uint32(0); i < genesis.DevAccounts; i++ {
		k, err := genesis.DevKey(i)
		if err != nil {
			t.Fatal(err)
		}
		c.keys = append(c.keys, k)
	}
	c.senders = chain.NewSenderCache(chain.NewSigner(c.chainID), 64)
	return c
}

func (c *genesisChain) transfer(from int, nonce uint64, to common.Address, value int64) *types.Transaction {
	c.t.Helper()
	tx, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: c.chainID, Nonce: nonce, To: &to, Value: big.NewInt(value), Gas: 21000}), c.chainID, c.keys[from])
	if err != nil {
		c.t.Fatal(err)
	}
	return tx
}

// ChainView of the genesis alone: block 1 is the next.
func (c *genesisChain) HeadNumber() uint64 { return 0 }
func (c *genesisChain) ValidatorsAt(uint64) ([]common.Address, error) {
	return genesis.Dev().ValidatorAddresses(), nil
}
func (c *genesisChain) HashAt(n uint64) (common.Hash, bool, error) {
	return c.block.Hash(), n == 0, nil
}
func (c *genesisChain) Certified(uint64) (bool, error) { return false, nil }

// build builds block 1 of txs with Build.
func (c *genesisChain) build(txs ...*types.Transaction) (*Built, error) {
	c.t.Helper()
	froms, errs := c.senders.Senders(txs)
	for _, err := range errs {
		if err != nil {
			c.t.Fatal(err)
		}
	}
	return Build(c.state, c.parent, txs, froms, nil, c.parent.TimeMs+1000, c.val, c.chainID.Uint64())
}

// transition runs the state transition of b on the genesis state.
func (c *genesisChain) transition(b *chain.Block) (*Result, []Violation, error) {
	return Transition(Prepare(b, c.chainID.Uint64(), c.senders.Senders), c.parent, c, c.state, c.chainID.Uint64())
}

// TestTransitionOnGenesis: the pure transition accepts the block Build
// made, gives the header's root, and rejects a block whose root was
// altered, naming the rule, with no storage anywhere.
func TestTransitionOnGenesis(t *testing.T) {
	c := newGenesisChain(t)
	to := common.Address{0x42}
	built, err := c.build(c.transfer(0, 0, to, 7), c.transfer(1, 0, to, 5))
	if err != nil {
		t.Fatal(err)
	}
	res, vs, err := c.transition(built.Block)
	if err != nil || len(vs) > 0 {
		t.Fatalf("transition: %v %v", vs, err)
	}
	if got := res.Writes.Root(c.parent.Root); got != built.Block.Header.Root {
		t.Fatalf("root %s, header %s", got, built.Block.Header.Root)
	}
	if bal, _ := res.Writes.Balance(NativeAsset, to); bal.Int64() != 12 {
		t.Fatalf("balance %s, want 12", bal)
	}
	h := types.CopyHeader(built.Block.Header)
	h.Root = common.Hash{1}
	if err := chain.Seal(h, c.chainID.Uint64(), c.val); err != nil {
		t.Fatal(err)
	}
	_, vs, err = c.transition(chain.NewBlock(h, built.Block.Txs))
	if err != nil || len(vs) == 0 || vs[0].Rule != RuleStateRoot {
		t.Fatalf("altered root: violations %v, err %v; want %s", vs, err, RuleStateRoot)
	}
}
