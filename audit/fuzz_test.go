package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/big"
	"slices"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/internal/chaintest"
	"github.com/tally-ledger/tally/rpc"
	"github.com/tally-ledger/tally/store"
)

// FuzzDecodeRawBlocks feeds arbitrary tally_getRawBlocks responses to the
// RPC source's decoding and the pipeline's per-block preparation (block
// and receipts decoding, sender recovery, seal): bad input is an error on
// the item, never a panic.
func FuzzDecodeRawBlocks(f *testing.F) {
	c := chaintest.New(f)
	c.Populate()
	raws, err := c.DB.RawBlocks(0, 8, 1<<20)
	if err != nil {
		f.Fatal(err)
	}
	var wire []rpc.RawBlock
	for _, r := range raws {
		blk, rcpts := hexutil.Bytes(r.Block), hexutil.Bytes(r.Receipts)
		wire = append(wire, rpc.RawBlock{Number: hexutil.Uint64(r.Number), Block: &blk, Receipts: &rcpts})
	}
	seed, _ := json.Marshal(wire)
	f.Add(seed)
	f.Add([]byte(`[{"number":"0x1","block":"0xc0","receipts":"0xc0"}]`))
	f.Add([]byte(`[{"number":"0x1","block":null,"receipts":null}]`))
	f.Add([]byte(`[{"number":"0xffffffffffffffff","block":"0xf8","receipts":"0x"}]`))
	signer := chain.NewSigner(big.NewInt(1337))
	f.Fuzz(func(t *testing.T, data []byte) {
		var got []rpc.RawBlock
		if json.Unmarshal(data, &got) != nil {
			return
		}
		for _, w := range got {
			it := &item{raw: w.Stored()}
			prepare(it, signer, 1337)
			if it.raw.Block != nil && it.decodeErr == nil {
				if it.b == nil || it.b.Number() != it.raw.Number || len(it.senders) != len(it.b.Txs) {
					t.Fatalf("decoded block %d inconsistent", it.raw.Number)
				}
				if it.rcptErr == nil && len(it.receipts) != len(it.b.Txs) {
					t.Fatalf("block %d: %d receipts for %d txs", it.raw.Number, len(it.receipts), len(it.b.Txs))
				}
			}
		}
	})
}

// memSource serves raw blocks from memory.
type memSource struct{ raws []store.RawBlock }

func (m *memSource) Describe() string { return "memory" }
func (m *memSource) StateDigest(context.Context) (store.StateDigest, error) {
	return store.StateDigest{Height: uint64(len(m.raws) - 1)}, nil
}
func (m *memSource) RawBlocks(_ context.Context, from uint64, count int) ([]store.RawBlock, error) {
	if from >= uint64(len(m.raws)) {
		return nil, nil
	}
	return m.raws[from:min(uint64(len(m.raws)), from+uint64(count))], nil
}
func (m *memSource) Close() error { return nil }

// FuzzCheckBlock runs the in-order checks and the replay on arbitrary
// blocks at height 1 and 2 of a real chain's genesis: a tampered or
// malicious block yields failures, never a panic or an error.
func FuzzCheckBlock(f *testing.F) {
	c := chaintest.New(f)
	c.Populate()
	raws, err := c.DB.RawBlocks(0, 4, 1<<20)
	if err != nil {
		f.Fatal(err)
	}
	for _, r := range raws[1:] {
		f.Add(r.Block, r.Receipts)
	}
	f.Add([]byte{0xc0}, []byte{0xc0})
	a := &auditor{g: c.Genesis, chainID: c.Genesis.ChainID, signer: chain.NewSigner(c.ChainID), rep: &Report{},
		seen:   map[failKey]bool{},
		minted: map[uint32]*big.Int{}, burned: map[uint32]*big.Int{}, max: DefaultMaxFailures}
	a.cfg.Source = &memSource{raws: raws[:1]}
	if ok, err := a.start(context.Background(), f.TempDir()); err != nil || !ok {
		f.Fatalf("start: %v %v", ok, err)
	}
	f.Cleanup(a.close)
	prevHash, prevRoot, prevTime := a.prevHash, a.prevRoot, a.prevTimeMs
	f.Fuzz(func(t *testing.T, block, receipts []byte) {
		// Every input is block 1 on whatever state earlier inputs left.
		a.prevHash, a.prevRoot, a.prevTimeMs = prevHash, prevRoot, prevTime
		a.hist, a.histPending = chain.NewHistory(), true
		a.index.truncate(1)
		it := &item{raw: store.RawBlock{Number: 1, Block: block, Receipts: receipts}}
		prepare(it, a.signer, a.chainID)
		if _, err := a.block(it); err != nil {
			t.Fatalf("check block: %v", err)
		}
	})
}

// FuzzVerifyProof reads arbitrary proof files as `tally verify-proof`
// does (the canonical JSON, one trailing newline allowed; decode, then
// verify against the genesis file alone). A file is refused as
// malformed, or fails verification with ErrProofInvalid and the kind of
// the failing check, or verifies; and a proof that verifies proves a
// transaction that is in the chain, in the block it names, under a head
// that is in the chain and certified by a quorum. The seeds are real
// proofs of every kind of transaction; a fuzzer cannot forge the
// signatures, so whatever it makes verify must still be the truth.
func FuzzVerifyProof(f *testing.F) {
	c := chaintest.New(f)
	s := c.Populate()
	last := c.Apply(c.Transfers(3)...)
	c.Apply() // certifies last: a proof whose head is the tx's own block
	for _, h := range []common.Hash{s.Transfer, s.Payment, s.MintA, s.Settled, s.Refunded, s.Failed, s.Approval, s.After, last.Block.Txs[2].Hash()} {
		p, err := c.DB.TxProof(h)
		if err != nil {
			f.Fatalf("proof of %s: %v", h, err)
		}
		enc, err := p.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
		f.Add(append(enc, '\n'))
	}
	f.Add([]byte(`{"version":1}`))
	// What the chain holds: every transaction's block, every block's hash.
	type place struct {
		number uint64
		hash   common.Hash
	}
	txs := map[common.Hash]place{}
	var blocks []common.Hash
	head, _ := c.DB.Head()
	for n := uint64(0); n <= head.Number; n++ {
		b, err := c.DB.BlockByNumber(n)
		if err != nil {
			f.Fatal(err)
		}
		blocks = append(blocks, b.Hash())
		for _, tx := range b.Txs {
			txs[tx.Hash()] = place{n, b.Hash()}
		}
	}
	g, err := genesis.Parse(c.GenesisJSON)
	if err != nil {
		f.Fatal(err)
	}
	v, err := NewProofVerifier(g)
	if err != nil {
		f.Fatal(err)
	}
	kinds := []error{ErrProofFormat, ErrProofChain, ErrProofGenesis, ErrProofValidators, ErrProofCertificate,
		ErrProofHistory, ErrProofHeader, ErrProofTx, ErrProofReceipt}
	f.Fuzz(func(t *testing.T, file []byte) {
		if len(file) > chain.MaxProofSize+1 {
			return // readProofFile refuses it before decoding
		}
		p, err := chain.DecodeTxProof(bytes.TrimSuffix(file, []byte{'\n'}))
		if err != nil {
			if !errors.Is(err, chain.ErrProofMalformed) {
				t.Fatalf("decode error is not ErrProofMalformed: %v", err)
			}
			return
		}
		res, err := v.Verify(p)
		if err != nil {
			if !errors.Is(err, ErrProofInvalid) || !slices.ContainsFunc(kinds, func(k error) bool { return errors.Is(err, k) }) {
				t.Fatalf("verify error without its kind: %v", err)
			}
			return
		}
		at, ok := txs[res.TxHash]
		if !ok || at.number != res.BlockNumber || at.hash != res.BlockHash {
			t.Fatalf("verified tx %s in block %d (%s): the chain has it at %+v (found %v)", res.TxHash, res.BlockNumber, res.BlockHash, at, ok)
		}
		if res.Head < res.BlockNumber || res.Head >= uint64(len(blocks)) || blocks[res.Head] != res.HeadHash {
			t.Fatalf("verified under head %d (%s), not a block of the chain above %d", res.Head, res.HeadHash, res.BlockNumber)
		}
		if res.Signers < chain.Quorum(res.Validators) {
			t.Fatalf("verified with %d signers of %d validators", res.Signers, res.Validators)
		}
	})
}
