package audit_test

import (
	"errors"
	"fmt"
	"math/big"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/rlp"

	"github.com/tally-ledger/tally/audit"
	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/internal/chaintest"
	"github.com/tally-ledger/tally/store"
)

// provenChain is a populated chain with the encoded proofs of some of its
// transactions, and the genesis an outsider is given.
type provenChain struct {
	c      *chaintest.Chain
	s      chaintest.Scenario
	g      *genesis.Genesis
	proofs map[common.Hash][]byte
	headTx common.Hash // a tx in the certified head itself (T == H)
}

func newProvenChain(t *testing.T) *provenChain {
	t.Helper()
	c := chaintest.New(t)
	s := c.Populate()
	last := c.Apply(c.Transfers(3)...)
	c.Apply() // certifies last: the certified head is the tx's own block
	pc := &provenChain{c: c, s: s, proofs: map[common.Hash][]byte{}, headTx: last.Block.Txs[2].Hash()}
	for _, h := range []common.Hash{s.Transfer, s.Payment, s.MintA, s.Settled, s.Failed, s.Approval, s.After, pc.headTx} {
		p, err := c.DB.TxProof(h)
		if err != nil {
			t.Fatalf("proof of %s: %v", h, err)
		}
		enc, err := p.Encode()
		if err != nil {
			t.Fatal(err)
		}
		pc.proofs[h] = enc
	}
	// Verify with only the genesis file: the node's data dir is closed.
	c.Close()
	g, err := genesis.Parse(c.GenesisJSON)
	if err != nil {
		t.Fatal(err)
	}
	pc.g = g
	return pc
}

func decodeVerify(enc []byte, g *genesis.Genesis) (*audit.ProofResult, error) {
	p, err := chain.DecodeTxProof(enc)
	if err != nil {
		return nil, err
	}
	return audit.VerifyProof(p, g)
}

// TestVerifyProof: proofs of every kind of transaction verify offline with
// only the genesis, before and after the validator change, with the head
// above the block or the block itself, and report what they prove.
func TestVerifyProof(t *testing.T) {
	pc := newProvenChain(t)
	tests := []struct {
		name   string
		tx     common.Hash
		status uint64
		sameHd bool
	}{
		{"transfer before the validator change", pc.s.Transfer, 1, false},
		{"payment with reference", pc.s.Payment, 1, false},
		{"mint", pc.s.MintA, 1, false},
		{"settled withdrawal", pc.s.Settled, 1, false},
		{"status 0", pc.s.Failed, 0, false},
		{"governance vote", pc.s.Approval, 1, false},
		{"transfer after the validator change", pc.s.After, 1, false},
		{"tx in the certified head", pc.headTx, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := decodeVerify(pc.proofs[tt.tx], pc.g)
			if err != nil {
				t.Fatal(err)
			}
			if res.TxHash != tt.tx || res.Status != tt.status || res.ValidatorChanges != 1 || res.Validators != 4 {
				t.Fatalf("result %+v", res)
			}
			if (res.Head == res.BlockNumber) != tt.sameHd || res.Head < res.BlockNumber {
				t.Fatalf("head %d, block %d", res.Head, res.BlockNumber)
			}
			if res.Sender == (common.Address{}) || res.Signers < chain.Quorum(res.Validators) {
				t.Fatalf("result %+v", res)
			}
		})
	}
	t.Run("another genesis", func(t *testing.T) {
		other := *pc.g
		other.TimestampMs++
		if _, err := decodeVerify(pc.proofs[pc.s.After], &other); !errors.Is(err, audit.ErrProofGenesis) {
			t.Fatalf("got %v, want ErrProofGenesis", err)
		}
		other = *pc.g
		other.ChainID++
		if _, err := decodeVerify(pc.proofs[pc.s.After], &other); !errors.Is(err, audit.ErrProofChain) {
			t.Fatalf("got %v, want ErrProofChain", err)
		}
	})
}

// nextHexDigit maps a lowercase hex digit to the next one (f to 0).
func nextHexDigit(c byte) (byte, bool) {
	const digits = "0123456789abcdef"
	for i := 0; i < len(digits); i++ {
		if digits[i] == c {
			return digits[(i+1)%len(digits)], true
		}
	}
	return 0, false
}

// TestProofEveryByte alters every byte of encoded proofs, two ways (xor
// 0x01, and a hex digit turned into the next one, any other byte xor
// 0x02), and checks that each altered file fails to decode or to verify.
func TestProofEveryByte(t *testing.T) {
	pc := newProvenChain(t)
	v, err := audit.NewProofVerifier(pc.g)
	if err != nil {
		t.Fatal(err)
	}
	for _, tx := range []common.Hash{pc.s.After, pc.headTx} {
		enc := pc.proofs[tx]
		if _, err := decodeVerify(enc, pc.g); err != nil {
			t.Fatal(err)
		}
		var decodeFail, verifyFail atomic.Int64
		var wg sync.WaitGroup
		var mu sync.Mutex
		var failures []string
		workers := runtime.GOMAXPROCS(0)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				buf := make([]byte, len(enc))
				for i := w; i < len(enc); i += workers {
					second, ok := nextHexDigit(enc[i])
					if !ok {
						second = enc[i] ^ 0x02
					}
					for _, b := range []byte{enc[i] ^ 0x01, second} {
						copy(buf, enc)
						buf[i] = b
						p, err := chain.DecodeTxProof(buf)
						if err != nil {
							decodeFail.Add(1)
							continue
						}
						if _, err := v.Verify(p); err != nil {
							if !errors.Is(err, audit.ErrProofInvalid) {
								mu.Lock()
								failures = append(failures, fmt.Sprintf("byte %d: error not ErrProofInvalid: %v", i, err))
								mu.Unlock()
							}
							verifyFail.Add(1)
							continue
						}
						mu.Lock()
						failures = append(failures, fmt.Sprintf("byte %d: %q", i, buf[max(0, i-40):min(len(buf), i+40)]))
						mu.Unlock()
					}
				}
			}(w)
		}
		wg.Wait()
		for _, f := range failures {
			t.Errorf("proof of %s: an altered byte still verifies or fails oddly: ...%s...", tx, f)
		}
		t.Logf("proof of %s: %d bytes, %d alterations refused by the decoder, %d by the verifier", tx, len(enc), decodeFail.Load(), verifyFail.Load())
		if verifyFail.Load() == 0 || decodeFail.Load() == 0 {
			t.Fatal("every alteration failed at one stage: the test does not reach both")
		}
	}
}

// TestProofValidatorChange: a proof across the validator change verifies
// only with its change entry, intact.
func TestProofValidatorChange(t *testing.T) {
	pc := newProvenChain(t)
	for _, tx := range []common.Hash{pc.s.Transfer, pc.s.After} {
		base, err := chain.DecodeTxProof(pc.proofs[tx])
		if err != nil {
			t.Fatal(err)
		}
		if len(base.ValidatorChanges) != 1 {
			t.Fatalf("%d changes", len(base.ValidatorChanges))
		}
		tests := []struct {
			name   string
			change func(p *chain.TxProof)
			want   error
		}{
			{"removed", func(p *chain.TxProof) { p.ValidatorChanges = p.ValidatorChanges[:0] }, audit.ErrProofCertificate},
			{"signature altered", func(p *chain.TxProof) { p.ValidatorChanges[0].Certificate.Sigs[0][10] ^= 1 }, audit.ErrProofValidators},
			{"signature dropped below quorum", func(p *chain.TxProof) {
				p.ValidatorChanges[0].Certificate.Sigs = p.ValidatorChanges[0].Certificate.Sigs[:1]
			}, audit.ErrProofValidators},
			{"certificate of another block", func(p *chain.TxProof) { p.ValidatorChanges[0].Certificate = p.Certificate }, audit.ErrProofValidators},
			{"height moved", func(p *chain.TxProof) { p.ValidatorChanges[0].Height++ }, audit.ErrProofValidators},
			{"validator dropped", func(p *chain.TxProof) {
				p.ValidatorChanges[0].Validators = p.ValidatorChanges[0].Validators[1:]
			}, audit.ErrProofValidators},
			{"duplicated", func(p *chain.TxProof) {
				p.ValidatorChanges = append(p.ValidatorChanges, p.ValidatorChanges[0])
			}, audit.ErrProofValidators},
			{"head certificate below quorum", func(p *chain.TxProof) { p.Certificate.Sigs = p.Certificate.Sigs[:2] }, audit.ErrProofCertificate},
			{"chaining certificate removed", func(p *chain.TxProof) { p.ValidatorChanges[0].Before = nil }, audit.ErrProofValidators},
			{"chaining certificate of another block", func(p *chain.TxProof) { p.ValidatorChanges[0].Before = p.ValidatorChanges[0].Certificate }, audit.ErrProofValidators},
			{"chaining certificate signature altered", func(p *chain.TxProof) { p.ValidatorChanges[0].Before.Sigs[1][5] ^= 1 }, audit.ErrProofValidators},
			{"chaining certificate below quorum", func(p *chain.TxProof) {
				p.ValidatorChanges[0].Before.Sigs = p.ValidatorChanges[0].Before.Sigs[:1]
			}, audit.ErrProofValidators},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				p, err := chain.DecodeTxProof(pc.proofs[tx]) // a fresh copy
				if err != nil {
					t.Fatal(err)
				}
				tt.change(p)
				if _, err := audit.VerifyProof(p, pc.g); !errors.Is(err, tt.want) || !errors.Is(err, audit.ErrProofInvalid) {
					t.Fatalf("got %v, want %v", err, tt.want)
				}
			})
		}
	}
}

// TestProofSkippedBlock: a block the chain skipped (a rival at an applied
// height, sealed by a validator) cannot be proven: not with a certificate
// from fewer than a quorum, and not against the real certified head.
func TestProofSkippedBlock(t *testing.T) {
	c := chaintest.New(t)
	c.Apply(c.Transfers(4)...)
	c.Apply()
	// Signed outside c.Tx, so that the chain's own nonce count ignores it.
	nonce, err := c.DB.Nonce(chaintest.Addr(0))
	if err != nil {
		t.Fatal(err)
	}
	to := chaintest.Addr(21)
	rivalTx, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: c.ChainID, Nonce: nonce, To: &to, Value: big.NewInt(7), Gas: 21000}), c.ChainID, chaintest.Key(0))
	if err != nil {
		t.Fatal(err)
	}
	rival := c.Build(c.Certificates(), rivalTx)
	n := rival.Block.Number()

	// The rival applied on a copy of the data dir (the deposed leader's
	// view), certified there by one validator only.
	c.Close()
	forkDir := chaintest.CopyDir(t, c.Dir)
	db, err := store.Open(c.Dir, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	c.DB = db
	fork, err := store.Open(forkDir, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fork.Close()
	if _, err := fork.ApplyBlock(rival.Block, 1_000_000, c.Senders); err != nil {
		t.Fatal(err)
	}

	// The chain took another block at that height, and went on.
	c.Apply(c.Transfers(2)...)
	c.Apply(c.Transfers(1)...)
	c.Apply()
	real, err := c.DB.BlockByNumber(n)
	if err != nil {
		t.Fatal(err)
	}
	if real.Hash() == rival.Block.Hash() {
		t.Fatal("the rival is the applied block")
	}
	realProof, err := c.DB.TxProof(real.Txs[0].Hash())
	if err != nil {
		t.Fatal(err)
	}
	g := c.Genesis

	// The rival's proof, built from the fork as TxProof would.
	rcpts, err := fork.Receipts(rival.Block)
	if err != nil {
		t.Fatal(err)
	}
	leaves, err := chain.ReceiptLeaves(rcpts)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := rivalTx.MarshalBinary()
	txPath, _ := chain.MerkleProof(chain.TxLeaves(rival.Block.Txs), 0)
	rcptPath, _ := chain.MerkleProof(leaves, 0)
	headerRLP := encodeHeader(t, rival.Block.Header)
	genesisPath, err := fork.HistoryProof(0, n)
	if err != nil {
		t.Fatal(err)
	}
	vals, _ := c.DB.ValidatorsAt(n)
	forged := func(signers int) *chain.Certificate {
		votes := map[common.Address][]byte{}
		for _, v := range vals[:signers] {
			vote, err := chain.SignVote(g.ChainID, n, rival.Block.Hash(), chain.ValidatorSetHash(vals), c.Validator(v))
			if err != nil {
				t.Fatal(err)
			}
			votes[v] = vote.Sig
		}
		return chain.NewCertificate(n, rival.Block.Hash(), chain.ValidatorSetHash(vals), votes)
	}
	p := &chain.TxProof{
		Version: chain.ProofVersion, ChainID: g.ChainID, GenesisHash: realProof.GenesisHash,
		Tx: raw, Receipt: leaves[0], TxPath: txPath, ReceiptPath: rcptPath,
		Header: headerRLP, Head: headerRLP, HistoryPath: []common.Hash{}, GenesisPath: genesisPath,
		Certificate: forged(chain.Quorum(len(vals)) - 1), ValidatorChanges: []chain.ValidatorSetChange{},
	}
	if _, err := audit.VerifyProof(p, g); !errors.Is(err, audit.ErrProofCertificate) || !errors.Is(err, chain.ErrCertQuorum) {
		t.Fatalf("rival with a sub-quorum certificate: %v", err)
	}
	// Against the real certified head: the rival is not in its history.
	p.Head, p.Certificate, p.GenesisPath = realProof.Head, realProof.Certificate, realProof.GenesisPath
	p.HistoryPath = realProof.HistoryPath
	if _, err := audit.VerifyProof(p, g); !errors.Is(err, audit.ErrProofHistory) {
		t.Fatalf("rival against the real head: %v", err)
	}
	// The check that fails is the certificate: with a quorum colluding the
	// rival would pass (the trust assumption), which this test makes sure
	// is what the sub-quorum case is refused on.
	p.Head, p.HistoryPath, p.GenesisPath, p.Certificate = headerRLP, []common.Hash{}, genesisPath, forged(len(vals))
	if _, err := audit.VerifyProof(p, g); err != nil {
		t.Fatalf("rival with a full quorum (outside the trust assumption): %v", err)
	}
}

func encodeHeader(t *testing.T, h *types.Header) []byte {
	t.Helper()
	b, err := rlp.EncodeToBytes(h)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestProofDroppedValidatorChange: on a chain whose validators go {A,B,C}
// → {A,B} → {A,B,D}, a proof of a transaction from before both changes
// carries both; with the middle one left out (so the verifier would judge
// the second change's certificate, signed by A and B, against {A,B,C},
// where A and B are a quorum too) it no longer verifies.
func TestProofDroppedValidatorChange(t *testing.T) {
	c := chaintest.New(t)
	gov := func(member uint32, method string, args ...any) *types.Transaction {
		return c.Call(member, chain.GovernanceAddress, &chain.GovernanceABI, method, args...)
	}
	passAndWait := func(id int64, proposal *types.Transaction, effective func() bool) {
		c.Apply(proposal)
		c.Apply(gov(chaintest.Gov2, "vote", big.NewInt(id), true))
		for i := 0; !effective(); i++ {
			if i > 10 {
				t.Fatalf("proposal %d not in effect", id)
			}
			c.Apply()
		}
	}
	tx := c.Tx(0, chaintest.Addr(5), big.NewInt(1), nil)
	c.Apply(tx)
	C, D := chaintest.Addr(chaintest.GenesisValidators[2]), chaintest.Addr(chaintest.AddedValidator)
	passAndWait(1, gov(chaintest.Gov1, "proposeRemoveValidator", C), func() bool { return !c.DB.IsValidator(C) })
	c.Apply()
	pub := ethcrypto.CompressPubkey(&chaintest.Key(chaintest.AddedValidator).ECDSA().PublicKey)
	passAndWait(2, gov(chaintest.Gov1, "proposeAddValidator", "bank-d", pub), func() bool { return c.DB.IsValidator(D) })
	c.Apply()
	c.Apply()

	p, err := c.DB.TxProof(tx.Hash())
	if err != nil {
		t.Fatal(err)
	}
	if len(p.ValidatorChanges) != 2 || len(p.ValidatorChanges[0].Validators) != 2 || len(p.ValidatorChanges[1].Validators) != 3 {
		t.Fatalf("changes %+v", p.ValidatorChanges)
	}
	res, err := audit.VerifyProof(p, c.Genesis)
	if err != nil || res.ValidatorChanges != 2 {
		t.Fatalf("whole proof: %+v, %v", res, err)
	}
	enc, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		drop int
		want error
	}{
		{"the middle change", 0, audit.ErrProofValidators},
		{"the last change", 1, audit.ErrProofCertificate},
	} {
		t.Run(tt.name, func(t *testing.T) {
			q, err := chain.DecodeTxProof(enc)
			if err != nil {
				t.Fatal(err)
			}
			q.ValidatorChanges = append(q.ValidatorChanges[:tt.drop], q.ValidatorChanges[tt.drop+1:]...)
			_, err = audit.VerifyProof(q, c.Genesis)
			if !errors.Is(err, audit.ErrProofInvalid) || !errors.Is(err, tt.want) || !strings.Contains(err.Error(), "a validator change missing?") {
				t.Fatalf("without %s: %v, want %v naming a missing change", tt.name, err, tt.want)
			}
		})
	}
	// Changes 0 and 1 of the proof chain: each Before names the set in
	// force before its change.
	for i, ch := range p.ValidatorChanges {
		prev := chaintest.Genesis(t).ValidatorAddresses()
		if i > 0 {
			prev = p.ValidatorChanges[i-1].Validators
		}
		if ch.Before == nil || ch.Before.Height != ch.Height-2 || ch.Before.Next != chain.ValidatorSetHash(prev) {
			t.Fatalf("change %d: before %+v", i, ch.Before)
		}
	}
}
