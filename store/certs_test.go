package store

import (
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/state"
)

// certEnv is a state DB on the dev genesis with three validators whose
// keys the test holds (sorted by address) and a fourth key that is not one.
type certEnv struct {
	*env
	vals     []*crypto.PrivateKey
	outsider *crypto.PrivateKey
	govNonce map[int]uint64
}

func newCertEnv(t *testing.T) *certEnv {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), chainID: big.NewInt(genesis.DevChainID), opts: Options{NoSync: true}}
	ce := &certEnv{env: e, govNonce: map[int]uint64{}}
	for range 4 {
		k, err := crypto.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		ce.vals = append(ce.vals, k)
	}
	ce.outsider, ce.vals = ce.vals[3], ce.vals[:3]
	slices.SortFunc(ce.vals, func(a, b *crypto.PrivateKey) int { return a.Address().Cmp(b.Address()) })
	g := genesis.Dev()
	g.Validators = nil
	for i, k := range ce.vals {
		g.Validators = append(g.Validators, genesis.Validator{Name: fmt.Sprint("v", i), PublicKey: ethcrypto.CompressPubkey(&k.ECDSA().PublicKey)})
	}
	e.val = ce.vals[0]
	e.senders = chain.NewSenderCache(chain.NewSigner(e.chainID), 1024)
	e.open()
	if err := e.db.InitGenesis(g); err != nil {
		t.Fatal(err)
	}
	return ce
}

// block builds a block on the applied head carrying certs and txs.
func (ce *certEnv) block(certs []*chain.Certificate, txs ...*types.Transaction) *chain.Block {
	ce.t.Helper()
	froms, _ := ce.senders.Senders(txs)
	tip := ce.db.Tip()
	b, err := state.Build(ce.db, tip.Parent(), txs, froms, certs, tip.Head.TimeMs+1000, ce.val, genesis.DevChainID)
	if err != nil {
		ce.t.Fatal(err)
	}
	return b.Block
}

func (ce *certEnv) mustApply(b *chain.Block) {
	ce.t.Helper()
	if _, err := ce.apply(b); err != nil {
		ce.t.Fatal(err)
	}
}

// cert is the certificate of block n signed by keys, with the chain's
// block hash and next set.
func (ce *certEnv) cert(n uint64, keys ...*crypto.PrivateKey) *chain.Certificate {
	ce.t.Helper()
	b, err := ce.db.BlockByNumber(n)
	if err != nil {
		ce.t.Fatal(err)
	}
	next, err := ce.db.ValidatorsAt(n + 1)
	if err != nil {
		ce.t.Fatal(err)
	}
	return signCert(ce.t, n, b.Hash(), chain.ValidatorSetHash(next), keys...)
}

func signCert(t testing.TB, n uint64, hash, next common.Hash, keys ...*crypto.PrivateKey) *chain.Certificate {
	t.Helper()
	sigs := map[common.Address][]byte{}
	for _, k := range keys {
		v, err := chain.SignVote(genesis.DevChainID, n, hash, next, k)
		if err != nil {
			t.Fatal(err)
		}
		sigs[k.Address()] = v.Sig
	}
	return chain.NewCertificate(n, hash, next, sigs)
}

// snapshot is what a refused block must leave unchanged.
func (ce *certEnv) snapshot() string {
	head, _ := ce.db.Head()
	last, ok, _ := ce.db.LastCertified()
	return fmt.Sprintf("%d %s %d %v", head.Number, head.Hash, last, ok)
}

func TestCertificatesInBlocks(t *testing.T) {
	ce := newCertEnv(t)
	v := ce.vals
	for range 4 {
		ce.mustApply(ce.block(nil))
	}
	// A block carrying valid certificates for blocks 1 and 2 (a quorum,
	// and all three) is applied; Certificate serves them.
	c1, c2 := ce.cert(1, v[0], v[1]), ce.cert(2, v[0], v[1], v[2])
	ce.mustApply(ce.block([]*chain.Certificate{c1, c2}))
	for _, c := range []*chain.Certificate{c1, c2} {
		got, err := ce.db.Certificate(c.Height)
		if err != nil || got.Block != 5 || got.Hash != c.Hash || len(got.Sigs) != len(c.Sigs) {
			t.Fatalf("Certificate(%d) = %+v, %v", c.Height, got, err)
		}
	}
	if _, err := ce.db.Certificate(3); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Certificate(3) = %v, want ErrNotFound", err)
	}
	if last, ok, _ := ce.db.LastCertified(); !ok || last != 2 {
		t.Fatalf("LastCertified = %d %v", last, ok)
	}

	outOfOrder := ce.cert(3, v[0], v[1])
	outOfOrder.Sigs[0], outOfOrder.Sigs[1] = outOfOrder.Sigs[1], outOfOrder.Sigs[0]
	head, _ := ce.db.Head()
	for _, tc := range []struct {
		name   string
		reason string
		block  func() *chain.Block
	}{
		{"too few signatures", "lacks a quorum", func() *chain.Block { return ce.block([]*chain.Certificate{ce.cert(3, v[0])}) }},
		{"a non-validator signer", "non-validator", func() *chain.Block { return ce.block([]*chain.Certificate{ce.cert(3, v[0], ce.outsider)}) }},
		{"signatures out of order", "increasing signer order", func() *chain.Block { return ce.block([]*chain.Certificate{outOfOrder}) }},
		{"wrong next", "next validator set", func() *chain.Block {
			b, _ := ce.db.BlockByNumber(3)
			return ce.block([]*chain.Certificate{signCert(t, 3, b.Hash(), common.Hash{1}, v[0], v[1])})
		}},
		{"a height not below the block", "for block 6 in block 6", func() *chain.Block {
			// Block 6 carrying a certificate for block 6 (itself) cannot be
			// signed before it exists: sign any hash, the height is refused first.
			return ce.block([]*chain.Certificate{signCert(t, head.Number+1, common.Hash{2}, common.Hash{3}, v[0], v[1])})
		}},
		{"a height already certified", "already certified", func() *chain.Block { return ce.block([]*chain.Certificate{ce.cert(1, v[0], v[1])}) }},
		{"heights not increasing", "not after", func() *chain.Block {
			return ce.block([]*chain.Certificate{ce.cert(4, v[0], v[1]), ce.cert(3, v[0], v[1])})
		}},
		{"cert root not matching", "certificate root", func() *chain.Block {
			b := ce.block([]*chain.Certificate{ce.cert(3, v[0], v[1])})
			b.Certs = append(b.Certs, ce.cert(4, v[0], v[1])) // the header commits to one
			return b
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := ce.snapshot()
			_, err := ce.apply(tc.block())
			if !errors.Is(err, ErrBlockRejected) {
				t.Fatalf("err %v, want ErrBlockRejected", err)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("err %v, want the reason %q", err, tc.reason)
			}
			if after := ce.snapshot(); after != before {
				t.Fatalf("state changed: %s → %s", before, after)
			}
		})
	}
	// The refused certificates are fine once well formed.
	ce.mustApply(ce.block([]*chain.Certificate{ce.cert(3, v[1], v[2])}))
	if ok, _ := ce.db.Certified(3); !ok {
		t.Fatal("block 3 not certified")
	}
}

func TestCertificateHalts(t *testing.T) {
	ce := newCertEnv(t)
	v := ce.vals
	for range 3 {
		ce.mustApply(ce.block(nil))
	}
	// A quorum certified another block at height 2: this node diverged.
	b2, _ := ce.db.BlockByNumber(2)
	next, _ := ce.db.ValidatorsAt(3)
	wrong := signCert(t, 2, common.Hash{0xde, 0xad}, chain.ValidatorSetHash(next), v[0], v[2])
	before := ce.snapshot()
	if _, err := ce.apply(ce.block([]*chain.Certificate{wrong})); !errors.Is(err, state.ErrDiverged) {
		t.Fatalf("certificate for another block 2 (applied %s): %v, want ErrDiverged", b2.Hash(), err)
	}
	if ce.snapshot() != before {
		t.Fatal("a halting block changed the state")
	}
	// A block skipped for a bad parent that carries a quorum certificate
	// for a block above the head: the others applied a block this node
	// skipped.
	head, _ := ce.db.Head()
	above := signCert(t, head.Number+1, common.Hash{0xbe, 0xef}, chain.ValidatorSetHash(next), v[0], v[1])
	tip := ce.db.Tip()
	par := tip.Parent()
	par.Number++ // builds block head+2 on a parent this node does not have
	par.Hash = common.Hash{0x99}
	built, err := state.Build(ce.db, par, nil, nil, []*chain.Certificate{above}, tip.Head.TimeMs+1000, ce.val, genesis.DevChainID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ce.apply(built.Block); !errors.Is(err, state.ErrBehind) {
		t.Fatalf("skipped block certifying block %d above the head: %v, want ErrBehind", head.Number+1, err)
	}
	// The same skipped block with a certificate lacking a quorum is only skipped.
	weak := signCert(t, head.Number+1, common.Hash{0xbe, 0xef}, chain.ValidatorSetHash(next), v[0])
	built, err = state.Build(ce.db, par, nil, nil, []*chain.Certificate{weak}, tip.Head.TimeMs+1000, ce.val, genesis.DevChainID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ce.apply(built.Block); !errors.Is(err, ErrBlockRejected) {
		t.Fatalf("skipped block with a weak certificate: %v, want ErrBlockRejected", err)
	}
}

// TestCertificateValidatorChange: governance adds the outsider as a
// validator; ValidatorsAt follows from the effective height, the
// certificate of the block before it names the new set as Next, and
// certificates after it need a quorum of four.
func TestCertificateValidatorChange(t *testing.T) {
	ce := newCertEnv(t)
	v := ce.vals
	gov := func(i int, method string, args ...any) *types.Transaction {
		k, err := genesis.DevKey(uint32(genesis.DevGovernanceIndex + i))
		if err != nil {
			t.Fatal(err)
		}
		data, err := chain.GovernanceABI.Pack(method, args...)
		if err != nil {
			t.Fatal(err)
		}
		to := chain.GovernanceAddress
		tx, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: ce.chainID, Nonce: ce.govNonce[i], To: &to, Gas: chain.GasPerSystemCall, Data: data}), ce.chainID, k)
		if err != nil {
			t.Fatal(err)
		}
		ce.govNonce[i]++
		return tx
	}
	pub := ethcrypto.CompressPubkey(&ce.outsider.ECDSA().PublicKey)
	ce.mustApply(ce.block(nil, gov(0, "proposeAddValidator", "v3", pub)))
	ce.mustApply(ce.block(nil, gov(1, "vote", big.NewInt(1), true)))
	approved, _ := ce.db.Head()
	var effective uint64
	for n := approved.Number; n < approved.Number+20 && effective == 0; n++ {
		ce.mustApply(ce.block(nil))
		set, err := ce.db.ValidatorsAt(n + 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(set) == 4 {
			effective = n + 1
		}
	}
	if effective == 0 {
		t.Fatal("the addition never took effect")
	}
	old, _ := ce.db.ValidatorsAt(effective - 1)
	now, _ := ce.db.ValidatorsAt(effective)
	if len(old) != 3 || len(now) != 4 || !slices.Contains(now, ce.outsider.Address()) {
		t.Fatalf("sets around %d: %v, %v", effective, old, now)
	}
	heights, sets, err := ce.db.ValidatorSetChanges(effective + 5)
	if err != nil || len(heights) != 1 || heights[0] != effective || len(sets[0]) != 4 {
		t.Fatalf("ValidatorSetChanges: %v %v %v", heights, sets, err)
	}
	for head, _ := ce.db.Head(); head.Number < effective+1; head, _ = ce.db.Head() {
		ce.mustApply(ce.block(nil))
	}
	// The last block of the old set: Next names the new set.
	last := ce.cert(effective-1, v[0], v[1])
	if last.Next != chain.ValidatorSetHash(now) {
		t.Fatal("Next of the last block under the old set is not the new set")
	}
	// Under the new set, two of four is no quorum; three is.
	before := ce.snapshot()
	if _, err := ce.apply(ce.block([]*chain.Certificate{last, ce.cert(effective, v[0], v[1])})); !errors.Is(err, ErrBlockRejected) {
		t.Fatalf("2 of 4: %v", err)
	}
	if ce.snapshot() != before {
		t.Fatal("state changed")
	}
	ce.mustApply(ce.block([]*chain.Certificate{last, ce.cert(effective, v[0], v[1], ce.outsider)}))
	for _, n := range []uint64{effective - 1, effective} {
		if ok, _ := ce.db.Certified(n); !ok {
			t.Fatalf("block %d not certified", n)
		}
	}
}
