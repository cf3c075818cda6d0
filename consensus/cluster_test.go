package consensus

import (
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/mempool"
	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/store"
)

// testCluster is n engines over raft's in-memory transport, each with its
// own state database, pool and key: the whole consensus path without a
// network.
type testCluster struct {
	t       *testing.T
	engines []*Engine
	dbs     []*store.DB
	pools   []*mempool.Pool
	keys    []*crypto.PrivateKey
}

func newTestCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	return newTestClusterWith(t, n, nil)
}

// newTestClusterWith is newTestCluster with each node's engine
// configuration passed through configure first.
func newTestClusterWith(t *testing.T, n int, configure func(i int, cfg *Config)) *testCluster {
	t.Helper()
	g := genesis.Dev()
	g.Validators = nil
	c := &testCluster{t: t}
	for i := 0; i < n; i++ {
		k, _ := crypto.GenerateKey()
		c.keys = append(c.keys, k)
		g.Validators = append(g.Validators, genesis.Validator{Name: fmt.Sprint(i), PublicKey: ethcrypto.CompressPubkey(&k.ECDSA().PublicKey)})
	}
	var servers []raft.Server
	trans := make([]*raft.InmemTransport, n)
	for i := range trans {
		addr := raft.ServerAddress(c.keys[i].Address().Hex())
		_, trans[i] = raft.NewInmemTransport(addr)
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(addr), Address: addr})
	}
	for i := range trans {
		for j := range trans {
			if i != j {
				trans[i].Connect(trans[j].LocalAddr(), trans[j])
			}
		}
	}
	for i := 0; i < n; i++ {
		db, err := store.Open(t.TempDir(), store.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.InitGenesis(g); err != nil {
			t.Fatal(err)
		}
		senders := chain.NewSenderCache(chain.NewSigner(g.ChainIDBig()), 1<<16)
		pool := mempool.New(mempool.DefaultConfig, db, senders)
		cfg := Config{
			Dir: t.TempDir(), LocalID: servers[i].ID, Transport: trans[i], Bootstrap: servers, Key: c.keys[i],
			Builder:          BuilderConfig{MaxBlockTxs: 500, MaxInflight: 2, BlockInterval: 5 * time.Millisecond, Heartbeat: 200 * time.Millisecond, ApplyTimeout: 5 * time.Second},
			HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond, LeaderLeaseTimeout: 150 * time.Millisecond,
			CommitTimeout: 5 * time.Millisecond, NoSync: true, Logger: testLogger(t),
		}
		if configure != nil {
			configure(i, &cfg)
		}
		e, err := Start(cfg, db, pool, senders)
		if err != nil {
			t.Fatal(err)
		}
		c.engines, c.dbs, c.pools = append(c.engines, e), append(c.dbs, db), append(c.pools, pool)
	}
	t.Cleanup(func() {
		for i, e := range c.engines {
			// Bounded: a Shutdown that hangs fails this test, naming
			// what waits, instead of the package's timeout (900 s in CI)
			// with no name.
			done := make(chan struct{})
			go func() { e.Shutdown(); close(done) }()
			select {
			case <-done:
				c.dbs[i].Close()
			case <-time.After(30 * time.Second):
				t.Errorf("Engine.Shutdown of node %d hangs; goroutines waiting:\n%s", i, strings.Join(waitingGoroutines(), "\n\n"))
			}
		}
	})
	return c
}

func (c *testCluster) leader() int {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for i, e := range c.engines {
			if e.IsLeader() {
				return i
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatal("no leader elected")
	return -1
}

// waitHeight waits until every node has applied height h.
func (c *testCluster) waitHeight(h uint64) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, db := range c.dbs {
		for {
			head, _ := db.Head()
			if head.Number >= h {
				break
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("height %d not reached (at %d)", h, head.Number)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// sameChain checks that every node has the same hash and state root at
// every height up to h.
func (c *testCluster) sameChain(h uint64) {
	c.t.Helper()
	for n := uint64(0); n <= h; n++ {
		ref, err := c.dbs[0].BlockByNumber(n)
		if err != nil {
			c.t.Fatal(err)
		}
		for i, db := range c.dbs[1:] {
			b, err := db.BlockByNumber(n)
			if err != nil || b.Hash() != ref.Hash() || b.Header.Root != ref.Header.Root {
				c.t.Fatalf("node %d differs at height %d: %v", i+1, n, err)
			}
		}
	}
}

// TestClusterAppliesIdentically: 300 transfers from five senders are
// applied on every node, in the same blocks with the same state roots, and
// leave no pool holding them.
//
// Each transaction goes to every node's pool, as the node's replication
// gives it to the followers, so the test does not depend on which node
// leads: on a loaded machine leadership can move (a 150 ms lease), and a
// pool that was no longer the leader's kept its transactions for ever.
// The pools are checked by polling: a node's pool lets go of a block's
// transactions just after the block is committed to its database
// (onApplied), so right after a database shows the last transaction its
// pool may still hold them ("leader pool still holds 0+130").
func TestClusterAppliesIdentically(t *testing.T) {
	c := newTestCluster(t, 3)
	c.leader()
	id := big.NewInt(genesis.DevChainID)
	var hashes []common.Hash
	for k := uint32(0); k < 5; k++ {
		key, _ := genesis.DevKey(k)
		for n := uint64(0); n < 60; n++ {
			to := common.Address{byte(k), byte(n)}
			tx, _ := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, Nonce: n, To: &to, Value: big.NewInt(1), Gas: 21000}), id, key)
			for i, p := range c.pools {
				if _, err := p.Add(tx); err != nil {
					// Refused only because this node applied it already.
					applied := errors.Is(err, mempool.ErrAlreadyApplied) || errors.Is(err, mempool.ErrNonceTooLow)
					if has, _ := c.dbs[i].HasTx(tx.Hash()); !has || !applied {
						t.Fatalf("node %d: add %s: %v", i, tx.Hash(), err)
					}
				}
			}
			hashes = append(hashes, tx.Hash())
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for i, db := range c.dbs {
		for _, h := range hashes {
			for {
				if has, _ := db.HasTx(h); has {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("transaction %s not applied on node %d", h, i)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	var top uint64
	for _, db := range c.dbs {
		if head, _ := db.Head(); head.Number > top {
			top = head.Number
		}
	}
	c.waitHeight(top)
	c.sameChain(top)
	for i, p := range c.pools {
		for {
			q, f := p.Stats()
			if q+f == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d's pool still holds %d queued and %d in flight", i, q, f)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestNonValidatorBlockSkippedEverywhere: a block sealed by a key that is
// not a validator, committed through Raft, is skipped by every node.
func TestNonValidatorBlockSkippedEverywhere(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	c.waitHeight(1) // a heartbeat block
	rogue, _ := crypto.GenerateKey()
	tip := c.dbs[l].Tip()
	built, err := state.Build(c.dbs[l], tip.Parent(), nil, nil, nil, tip.Head.TimeMs+1, rogue, genesis.DevChainID)
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := built.Block.Encode()
	fut := c.engines[l].Raft.Apply(enc, 5*time.Second)
	if err := fut.Error(); err != nil {
		t.Fatal(err)
	}
	resp, _ := fut.Response().(error)
	if !errors.Is(resp, store.ErrBlockRejected) {
		t.Fatalf("leader applied the rogue block: %v", fut.Response())
	}
	idx := fut.Index()
	for i, db := range c.dbs {
		deadline := time.Now().Add(10 * time.Second)
		for {
			head, _ := db.Head()
			if head.RaftIndex >= idx {
				if b, _ := db.BlockNumberByHash(built.Block.Hash()); b != 0 {
					t.Fatalf("node %d applied the rogue block", i)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d never reached raft index %d", i, idx)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// The chain goes on.
	head, _ := c.dbs[l].Head()
	c.waitHeight(head.Number + 1)
	c.sameChain(head.Number + 1)
}

// TestHaltedLeaderHandsOver: when the leader's FSM halts, it stops
// building and hands leadership to another voter, so the cluster goes on
// producing blocks without it; the halt is recorded in its data dir.
func TestHaltedLeaderHandsOver(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	c.waitHeight(1)
	c.engines[l].FSM.Halt(errors.New("injected for the test"))
	deadline := time.Now().Add(10 * time.Second)
	for c.engines[l].IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("the halted leader kept leadership")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopped, _ := c.dbs[l].Head()
	other := (l + 1) % 3
	for deadline = time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if head, _ := c.dbs[other].Head(); head.Number >= stopped.Number+3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the cluster made no progress after its leader halted")
		}
	}
	if head, _ := c.dbs[l].Head(); head.Number != stopped.Number {
		t.Fatalf("the halted node applied on: %d → %d", stopped.Number, head.Number)
	}
	if rec, err := c.dbs[l].HaltRecord(); err != nil || rec == nil || rec.Reason != "injected for the test" {
		t.Fatalf("halt record %+v, %v", rec, err)
	}
}
