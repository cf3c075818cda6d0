package chaintest

import (
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/store"
)

// Key indexes (m/44'/60'/0'/0/i of the test mnemonic) of the validators:
// the genesis ones, then the one Populate adds through governance.
var (
	GenesisValidators = []uint32{1000, 1002, 1003}
	AddedValidator    = uint32(1004)
)

// Chain is a chain under construction on a real data dir. Not safe for
// concurrent use.
type Chain struct {
	T       testing.TB
	Genesis *genesis.Genesis
	// GenesisJSON is the genesis file an auditor is given.
	GenesisJSON []byte
	// Dir is the data dir (store.Open); DB is open on it until Close.
	Dir     string
	DB      *store.DB
	ChainID *big.Int
	Senders *chain.SenderCache

	keys    map[common.Address]*crypto.PrivateKey
	nonces  map[common.Address]uint64
	raftIdx uint64
	// SkipCerts makes Apply carry no certificates (a test adds its own).
	SkipCerts bool
	// gap is added once to the next block's time (Advance).
	gap uint64
}

// Advance makes the next block's time d later than the usual one second
// after its parent, for tests of rules over block time (windows, days).
func (c *Chain) Advance(d time.Duration) { c.gap += uint64(d.Milliseconds()) }

// Key returns the dev key of index i (accounts, banks, compliance,
// governance and validators of genesis.Dev, plus the validators above).
func Key(i uint32) *crypto.PrivateKey {
	if k, ok := keyCache.Load(i); ok {
		return k.(*crypto.PrivateKey)
	}
	k, err := genesis.DevKey(i) // a seed derivation per call: cache
	if err != nil {
		panic(err) // the mnemonic is a constant
	}
	keyCache.Store(i, k)
	return k
}

var keyCache sync.Map // uint32 → *crypto.PrivateKey

// Addr returns the address of dev key i.
func Addr(i uint32) common.Address { return Key(i).Address() }

// Genesis returns the dev genesis with the validators GenesisValidators.
func Genesis(t testing.TB) *genesis.Genesis {
	g, err := genesis.BuildDev()
	if err != nil {
		t.Fatal(err)
	}
	g.Validators = nil
	for n, i := range GenesisValidators {
		g.Validators = append(g.Validators, genesis.Validator{
			Name:      []string{"bank-a", "bank-b", "bank-c"}[n],
			PublicKey: ethcrypto.CompressPubkey(&Key(i).ECDSA().PublicKey),
		})
	}
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	return g
}

// New initialises a chain from Genesis(t) in a fresh data dir. The DB is
// closed at the end of the test.
func New(t testing.TB) *Chain {
	t.Helper()
	return NewOn(t, Genesis(t))
}

// NewOn is New on genesis g, which has GenesisValidators' keys (Genesis(t)
// with changed rules, say).
func NewOn(t testing.TB, g *genesis.Genesis) *Chain {
	t.Helper()
	c := &Chain{
		T: t, Genesis: g, GenesisJSON: g.Indent(), Dir: filepath.Join(t.TempDir(), "data"),
		ChainID: g.ChainIDBig(), keys: map[common.Address]*crypto.PrivateKey{}, nonces: map[common.Address]uint64{},
	}
	c.Senders = chain.NewSenderCache(chain.NewSigner(c.ChainID), 4096)
	for _, i := range append(append([]uint32{}, GenesisValidators...), AddedValidator) {
		c.keys[Addr(i)] = Key(i)
	}
	db, err := store.Open(c.Dir, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	c.DB = db
	t.Cleanup(func() { c.DB.Close() })
	if err := db.InitGenesis(g); err != nil {
		t.Fatal(err)
	}
	return c
}

// Close closes the DB so the data dir can be copied or opened read-only.
func (c *Chain) Close() {
	if err := c.DB.Close(); err != nil {
		c.T.Fatal(err)
	}
}

// Tx signs a transaction from dev key i with its next nonce.
func (c *Chain) Tx(from uint32, to common.Address, value *big.Int, data []byte) *types.Transaction {
	c.T.Helper()
	k := Key(from)
	n, ok := c.nonces[k.Address()]
	if !ok {
		var err error
		if n, err = c.DB.Nonce(k.Address()); err != nil {
			c.T.Fatal(err)
		}
	}
	c.nonces[k.Address()] = n + 1
	gas := uint64(21000)
	if len(data) > 0 {
		gas = chain.GasPerSystemCall
	}
	tx, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: c.ChainID, Nonce: n, To: &to, Value: value, Gas: gas, Data: data}), c.ChainID, k)
	if err != nil {
		c.T.Fatal(err)
	}
	return tx
}

// Call signs a system call from dev key i.
func (c *Chain) Call(from uint32, contract common.Address, a *abi.ABI, method string, args ...any) *types.Transaction {
	c.T.Helper()
	data, err := a.Pack(method, args...)
	if err != nil {
		c.T.Fatalf("pack %s: %v", method, err)
	}
	return c.Tx(from, contract, new(big.Int), data)
}

// Asset signs a call to asset id's facade.
func (c *Chain) Asset(from, id uint32, method string, args ...any) *types.Transaction {
	return c.Call(from, chain.AssetAddress(id), &chain.AssetABI, method, args...)
}

// Validator returns the key of a validator address (genesis or added).
func (c *Chain) Validator(a common.Address) *crypto.PrivateKey { return c.keys[a] }

// Certificates returns certificates, signed by every validator of their
// height, for the applied blocks not yet certified (at most
// chain.MaxCertsPerBlock, oldest first).
func (c *Chain) Certificates() []*chain.Certificate {
	c.T.Helper()
	head := c.DB.Tip().Head.Number
	var out []*chain.Certificate
	for h := uint64(1); h <= head && len(out) < chain.MaxCertsPerBlock; h++ {
		done, err := c.DB.Certified(h)
		if err != nil {
			c.T.Fatal(err)
		}
		if !done {
			out = append(out, c.Certify(h, 0))
		}
	}
	return out
}

// Certify returns a certificate for applied block h signed by the first
// n validators of its height (all of them when n is 0).
func (c *Chain) Certify(h uint64, n int) *chain.Certificate {
	c.T.Helper()
	b, err := c.DB.BlockByNumber(h)
	if err != nil {
		c.T.Fatal(err)
	}
	vals, err := c.DB.ValidatorsAt(h)
	if err != nil {
		c.T.Fatal(err)
	}
	next, err := c.DB.ValidatorsAt(h + 1)
	if err != nil {
		c.T.Fatal(err)
	}
	if n == 0 || n > len(vals) {
		n = len(vals)
	}
	nextHash := chain.ValidatorSetHash(next)
	votes := map[common.Address][]byte{}
	for _, v := range vals[:n] {
		vote, err := chain.SignVote(c.Genesis.ChainID, h, b.Hash(), nextHash, c.keys[v])
		if err != nil {
			c.T.Fatal(err)
		}
		votes[v] = vote.Sig
	}
	return chain.NewCertificate(h, b.Hash(), nextHash, votes)
}

// Build builds the next block of txs with the given certificates, sealed
// by the validator whose turn it is (round robin by height over the set in
// force), without applying it.
func (c *Chain) Build(certs []*chain.Certificate, txs ...*types.Transaction) *state.Built {
	c.T.Helper()
	froms, errs := c.Senders.Senders(txs)
	for i, err := range errs {
		if err != nil {
			c.T.Fatalf("tx %d: %v", i, err)
		}
	}
	tip := c.DB.Tip()
	vals := c.DB.Validators()
	proposer := c.keys[vals[int(tip.Head.Number+1)%len(vals)]]
	built, err := state.Build(c.DB, tip.Parent(), txs, froms, certs, tip.Head.TimeMs+1000+c.gap, proposer, c.Genesis.ChainID)
	c.gap = 0
	if err != nil {
		c.T.Fatal(err)
	}
	if len(built.Dropped) > 0 {
		c.T.Fatalf("block %d dropped tx %d: %v", tip.Head.Number+1, built.Dropped[0].Index, built.Dropped[0].Err)
	}
	return built
}

// ApplyBlock applies a block at the next Raft index.
func (c *Chain) ApplyBlock(b *chain.Block) (*store.Applied, error) {
	c.raftIdx++
	if h, ok := c.DB.Head(); ok && c.raftIdx <= h.RaftIndex {
		c.raftIdx = h.RaftIndex + 1
	}
	return c.DB.ApplyBlock(b, c.raftIdx, c.Senders)
}

// Apply builds and applies the next block of txs, carrying certificates
// for every earlier block not yet certified (unless SkipCerts), and
// returns it with its receipts.
func (c *Chain) Apply(txs ...*types.Transaction) *store.Applied {
	c.T.Helper()
	var certs []*chain.Certificate
	if !c.SkipCerts {
		certs = c.Certificates()
	}
	built := c.Build(certs, txs...)
	applied, err := c.ApplyBlock(built.Block)
	if err != nil {
		c.T.Fatalf("apply block %d: %v", built.Block.Number(), err)
	}
	return applied
}

// Status returns the status of each receipt.
func Status(a *store.Applied) []uint64 {
	out := make([]uint64, len(a.Receipts))
	for i, r := range a.Receipts {
		out[i] = r.Status
	}
	return out
}

// CopyDir copies a closed data dir into a new temp dir and returns it.
func CopyDir(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}
