package consensus

import (
	"bytes"
	"io"
	"math/big"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/store"
)

// TestFSMStoresEntryBytes: the block stored for an applied Raft entry is
// the entry's own bytes (the FSM does not encode the block again), and
// the stored block decodes to the applied one.
func TestFSMStoresEntryBytes(t *testing.T) {
	e := newFSMEnv(t)
	val, _ := genesis.DevKey(genesis.DevValidatorIndex)
	for i := 0; i < 3; i++ {
		data := e.block(val, 5)
		a, ok := e.apply(data).(*store.Applied)
		if !ok {
			t.Fatalf("block %d not applied", i+1)
		}
		if !bytes.Equal(a.Block.Raw(), data) {
			t.Fatalf("block %d: the applied block does not hold the entry's bytes", a.Block.Number())
		}
		raw, err := e.db.RawBlocks(a.Block.Number(), 1, 1)
		if err != nil || len(raw) != 1 {
			t.Fatalf("raw block %d: %v", a.Block.Number(), err)
		}
		if !bytes.Equal(raw[0].Block, data) {
			t.Fatalf("block %d: stored %d bytes that are not the entry (%d bytes)", a.Block.Number(), len(raw[0].Block), len(data))
		}
		got, err := e.db.BlockByNumber(a.Block.Number())
		if err != nil || got.Hash() != a.Block.Hash() {
			t.Fatalf("stored block %d: %v, %v", a.Block.Number(), got, err)
		}
		if got.Raw() != nil || got.Size() != len(data) {
			t.Fatalf("block %d: the decoded-block cache keeps the entry's %d bytes too (size %d)", a.Block.Number(), len(got.Raw()), got.Size())
		}
	}
}

// buildOwn builds a block of n transfers on the FSM's head as the
// leader's builder does, keeping its execution in own.
func (e *fsmEnv) buildOwn(own *ownBlocks, key *crypto.PrivateKey, n int, to common.Address) []byte {
	e.t.Helper()
	built, tip := e.build(key, n, to)
	own.offer(&store.Executed{Hash: built.Block.Hash(), ParentHash: tip.Head.Hash, ParentRoot: tip.Head.StateRoot, Result: built.Result})
	enc, _ := built.Block.Encode()
	return enc
}

// TestFSMReusesOwnExecution: the FSM applies a block this node built
// with the execution kept at build time, once; a block it did not build
// (or a second build of the height) is executed, and drops what was kept;
// so do a skipped entry and a restored snapshot.
func TestFSMReusesOwnExecution(t *testing.T) {
	e := newFSMEnv(t)
	e.fsm.own = newOwnBlocks(2)
	val, _ := genesis.DevKey(genesis.DevValidatorIndex)
	reused := func(data []byte) bool {
		t.Helper()
		a, ok := e.apply(data).(*store.Applied)
		if !ok {
			t.Fatal("block not applied")
		}
		return a.Reused
	}
	if !reused(e.buildOwn(e.fsm.own, val, 3, common.Address{0x42})) {
		t.Fatal("own block executed again")
	}
	if e.fsm.own.len() != 0 {
		t.Fatal("the execution is kept after its block was applied")
	}
	// Two builds of the next height: the one applied is reused, and the
	// other is gone with it (it can never apply now).
	a := e.buildOwn(e.fsm.own, val, 2, common.Address{0x43})
	e.buildOwn(e.fsm.own, val, 1, common.Address{0x44})
	if !reused(a) {
		t.Fatal("own block executed again")
	}
	// A block this node did not build is executed, and drops the rest.
	e.buildOwn(e.fsm.own, val, 2, common.Address{0x45})
	foreign := e.block(val, 2)
	if reused(foreign) {
		t.Fatal("a block built elsewhere was not executed")
	}
	if e.fsm.own.len() != 0 {
		t.Fatal("executions kept after another block was applied")
	}
	// A skipped entry drops them too.
	e.buildOwn(e.fsm.own, val, 1, common.Address{0x46})
	if _, ok := e.apply([]byte{0xc0}).(error); !ok {
		t.Fatal("garbage applied")
	}
	if e.fsm.own.len() != 0 {
		t.Fatal("executions kept after a skipped entry")
	}
	// The bound: the oldest goes first.
	for i := 0; i < 5; i++ {
		e.fsm.own.offer(&store.Executed{Hash: common.Hash{byte(i)}, Result: &state.Result{}})
	}
	if e.fsm.own.len() != 2 {
		t.Fatalf("%d executions kept, bound 2", e.fsm.own.len())
	}
	// A restore (even one that fails) drops them.
	e.fsm.Restore(io.NopCloser(bytes.NewReader(nil)))
	if e.fsm.own.len() != 0 {
		t.Fatal("executions kept across a restore")
	}
}

// TestClusterLeaderReusesOwnExecution: in a running cluster the leader
// applies the blocks it built without executing them again, the
// followers execute every block, and all end on the same chain.
func TestClusterLeaderReusesOwnExecution(t *testing.T) {
	const nodes = 3
	var reused, executed [nodes]atomic.Int64
	c := newTestClusterWith(t, nodes, func(i int, cfg *Config) {
		cfg.OnApplied = func(a *store.Applied) {
			if a.Reused {
				reused[i].Add(1)
			} else {
				executed[i].Add(1)
			}
		}
	})
	l := c.leader()
	id := big.NewInt(genesis.DevChainID)
	key, _ := genesis.DevKey(0)
	var last common.Hash
	for n := uint64(0); n < 40; n++ {
		to := common.Address{0x99, byte(n)}
		tx, _ := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, Nonce: n, To: &to, Value: big.NewInt(1), Gas: 21000}), id, key)
		if _, err := c.pools[l].Add(tx); err != nil {
			t.Fatal(err)
		}
		last = tx.Hash()
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if has, _ := c.dbs[l].HasTx(last); has {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("transactions not applied")
		}
		time.Sleep(10 * time.Millisecond)
	}
	head, _ := c.dbs[l].Head()
	c.waitHeight(head.Number)
	c.sameChain(head.Number)
	if !c.engines[l].IsLeader() {
		t.Skip("leadership moved during the test") // then blocks were built by two nodes
	}
	if reused[l].Load() == 0 {
		t.Fatalf("the leader executed all %d blocks it built again", executed[l].Load())
	}
	for i := range nodes {
		if i != l && reused[i].Load() != 0 {
			t.Fatalf("follower %d reused the execution of %d blocks it never built", i, reused[i].Load())
		}
	}
}
