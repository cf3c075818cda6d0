package node

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"math/big"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	gethrpc "github.com/ethereum/go-ethereum/rpc"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/internal/diskfault"
	"github.com/tally-ledger/tally/mempool"
	"github.com/tally-ledger/tally/p2p"
	"github.com/tally-ledger/tally/rpc"
	"github.com/tally-ledger/tally/rpc/rpctest"
	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/store"
	"github.com/tally-ledger/tally/wallet"
)

// diskAdmission is an Admission (testAdmissionOn) whose state is a real
// Pebble database in t.TempDir(), every read of which reaches its
// sstables (the dev genesis flushed, a block cache of one byte), and
// fails with EIO while the returned flag is set: a disk failing reads,
// as Pebble's errorfs injects it for the cluster simulator's read-error
// fault and store.TestReadFailureIsNoRejection (the state store marks
// the failure state.ErrStorage). Its pool is bounded by poolCfg.
func diskAdmission(t *testing.T, tr p2p.BatchTransport, leader peer.ID, isLeader bool, isValidator func() bool, voters []peer.ID, poolCfg mempool.Config) (*Admission, *atomic.Bool) {
	t.Helper()
	failing := new(atomic.Bool)
	root := t.TempDir()
	dir := filepath.Join(root, "state")
	fs := diskfault.Inject(vfs.Default, func(op errorfs.Op) bool { return failing.Load() && diskfault.TableRead(dir, op) })
	db, err := store.Open(dir, store.Options{FS: fs, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.InitGenesis(genesis.Dev()); err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = store.Open(dir, store.Options{FS: fs, NoSync: true, CacheSize: 1}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return testAdmissionOn(t, tr, leader, isLeader, isValidator, voters, db, vfs.Default, filepath.Join(root, PoolJournalFile), poolCfg), failing
}

// devTransferOf is devTransfer signed by dev account k.
func devTransferOf(t *testing.T, k uint32, nonce uint64) *types.Transaction {
	t.Helper()
	key, err := genesis.DevKey(k)
	if err != nil {
		t.Fatal(err)
	}
	id := big.NewInt(genesis.DevChainID)
	to := common.Address{0x42}
	tx, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, Nonce: nonce, To: &to, Value: big.NewInt(1), Gas: 21000}), id, key)
	if err != nil {
		t.Fatal(err)
	}
	return tx
}

// blockOf builds a block of txs on a's applied head, as the leader
// proposes it; applyBlock applies it as a's FSM applies a committed block.
func blockOf(t *testing.T, a *Admission, txs ...*types.Transaction) *chain.Block {
	t.Helper()
	froms, errs := a.cfg.Senders.Senders(txs)
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	val, err := genesis.DevKey(genesis.DevValidatorIndex)
	if err != nil {
		t.Fatal(err)
	}
	tip := a.cfg.DB.Tip()
	built, err := state.Build(a.cfg.DB, tip.Parent(), txs, froms, nil, tip.Head.TimeMs+1000, val, genesis.DevChainID)
	if err != nil || len(built.Dropped) != 0 {
		t.Fatalf("build: %v, dropped %+v", err, built)
	}
	return built.Block
}

// followerNet is a follower's network (the validators'), which counts
// the replication rounds the follower sends, and on which, when block is
// set, the follower's FSM applies block (the leader's block holding the
// forwarded transaction, committed meanwhile) while the leader answers
// the forward: the follower's pool then finds its copy applied.
type followerNet struct {
	p2p.BatchTransport
	relays atomic.Int32
	a      *Admission
	block  *chain.Block
	once   sync.Once
	err    error
}

func (f *followerNet) RoundTrip(ctx context.Context, to peer.ID, proto protocol.ID, raws [][]byte) ([]string, error) {
	if proto == p2p.RelayProtocol {
		f.relays.Add(1)
	}
	v, err := f.BatchTransport.RoundTrip(ctx, to, proto, raws)
	if proto == p2p.ForwardProtocol && err == nil && f.block != nil {
		f.once.Do(func() {
			tip := f.a.cfg.DB.Tip()
			_, f.err = f.a.cfg.DB.ApplyBlock(f.block, tip.Head.Number+1, f.a.cfg.Senders)
		})
	}
	return v, err
}

// TestUnkeptCopyOfForward: a follower forwards its client's transaction,
// the leader (a real one) admits it, and the follower's own pool answers
// for its copy. The leader answered a voter at once, counting the
// voter's copy as the second; so a voter whose pool could not keep it
// (full; a read of its disk failed: state.ErrStorage) answers
// p2p.ErrNotReplicated's words, an unavailability on which a wallet asks
// another node, and it neither acknowledges the transaction the leader
// alone holds (cluster simulator, seed 284) nor sends a replication
// round, in which the leader's own "already known" counted as the
// second holder (seed 390). One its pool held already is replicated
// first (this node became leader while the batch waited, or a copy came
// before: the leader may be its only other holder); one it has applied
// meanwhile is durable here and answered at once. An
// observer's copy never counted: the leader had another voter hold it
// before answering, so the observer passes the leader's verdict on
// whatever its pool said. Single calls (Admission.Submit) and JSON-RPC
// batches (Admission.AdmitBatch) alike.
func TestUnkeptCopyOfForward(t *testing.T) {
	for _, c := range []struct {
		pool         string
		voter, other unkeptOutcome // a validator follower's outcome, an observer's
	}{
		{pool: "full", voter: unkeptOutcome{notReplicated: true, others: "no"}, other: unkeptOutcome{others: "yes"}},
		{pool: "read failure", voter: unkeptOutcome{notReplicated: true, others: "no"}, other: unkeptOutcome{others: "yes"}},
		// The leader's "already known" to this node's replication round
		// makes the second holder with this node's copy: whether v2 or v3
		// holds it too when the answer comes is a race.
		{pool: "already known", voter: unkeptOutcome{replicates: true, pooled: true}, other: unkeptOutcome{replicates: true, others: "yes", pooled: true}},
		{pool: "already applied", voter: unkeptOutcome{others: "no"}, other: unkeptOutcome{others: "yes"}},
		{pool: "kept", voter: unkeptOutcome{others: "no", pooled: true}, other: unkeptOutcome{others: "yes", pooled: true}},
	} {
		for _, voter := range []bool{true, false} {
			for _, batch := range []bool{false, true} {
				want, who := c.voter, "voter"
				if !voter {
					want, who = c.other, "observer"
				}
				t.Run(fmt.Sprintf("%s/%s/batch=%v", c.pool, who, batch), func(t *testing.T) {
					unkeptCopyCase(t, c.pool, voter, batch, want)
				})
			}
		}
	}
}

// unkeptOutcome is what TestUnkeptCopyOfForward expects of a case.
type unkeptOutcome struct {
	notReplicated bool   // answered with ErrNotReplicated's words, else admitted
	replicates    bool   // this node sent a replication round before answering
	others        string // "yes", "no": whether v2 or v3 (neither the leader nor this node) holds it when answered; "": either
	pooled        bool   // this node's pool holds it when answered
}

func unkeptCopyCase(t *testing.T, pool string, voter, batch bool, want unkeptOutcome) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	holds := map[peer.ID]map[string]bool{}
	self, leaderVoters := peer.ID("observer"), []peer.ID{"v2", "v3"}
	if voter {
		self, leaderVoters = "v1", []peer.ID{"v1", "v2", "v3"}
	}
	// One network for both nodes: the leader's relays and this node's
	// are recorded in holds under one lock.
	net := &validators{leader: "leader", from: self, holds: holds}
	leader := testAdmissionOf(t, net, "self", true, nil, leaderVoters)
	fwd := leader.Handler(string(p2p.ForwardProtocol))
	net.fwd = &fwd
	tr := &followerNet{BatchTransport: net}
	poolCfg := mempool.Config{MaxPerAccount: 16, MaxTotal: 1024}
	if pool == "full" {
		poolCfg.MaxTotal = 1
	}
	a, failing := diskAdmission(t, tr, "leader", false, func() bool { return voter }, []peer.ID{"leader", "v2", "v3"}, poolCfg)
	tx := devTransfer(t, 0)
	raw, _ := tx.MarshalBinary()
	switch pool {
	case "full": // another sender's transaction takes the pool's one place
		if _, err := a.cfg.Pool.AddRelayed(devTransferOf(t, 1, 0)); err != nil {
			t.Fatal(err)
		}
	case "read failure":
		failing.Store(true)
		defer failing.Store(false)
		if _, err := a.cfg.Pool.AddRelayed(devTransferOf(t, 1, 0)); !errors.Is(err, state.ErrStorage) {
			t.Fatalf("pool on a disk failing reads: %v, want state.ErrStorage", err)
		}
	case "already known": // an earlier attempt's copy
		if _, err := a.cfg.Pool.AddRelayed(tx); err != nil {
			t.Fatal(err)
		}
	case "already applied":
		tr.a, tr.block = a, blockOf(t, a, tx)
	}
	var err error
	if batch {
		err = a.AdmitBatch(ctx, []rpc.Admission{{Tx: tx, Raw: raw}})[0]
	} else {
		err = a.Submit(ctx, tx)
	}
	failing.Store(false)
	others := 0 // copies on validators other than the leader and this node
	net.mu.Lock()
	for _, v := range []peer.ID{"v2", "v3"} {
		if holds[v][string(raw)] {
			others++
		}
	}
	net.mu.Unlock()
	if tr.err != nil {
		t.Fatal(tr.err)
	}
	if _, _, ok := leader.cfg.Pool.Get(tx.Hash()); !ok {
		t.Fatal("the leader does not hold the transaction it admitted")
	}
	if want.notReplicated {
		if !errors.Is(err, p2p.ErrNotReplicated) {
			t.Fatalf("answered %v, want %q: the leader counted this voter's copy, which it could not keep", err, p2p.ErrNotReplicated)
		}
		if msg := rpc.ClientError(err).Error(); !strings.HasPrefix(msg, p2p.ErrNotReplicated.Error()) {
			t.Fatalf("the client is told %q, want it to start %q (wallet.Unavailable's words)", msg, p2p.ErrNotReplicated)
		}
	} else if err != nil {
		t.Fatalf("answered %v, want admitted", err)
	}
	if got := tr.relays.Load() > 0; got != want.replicates {
		t.Fatalf("this node sent a replication round: %v, want %v", got, want.replicates)
	}
	if want.others != "" {
		if got := others > 0; got != (want.others == "yes") {
			t.Fatalf("another voter than the leader holds it when answered: %v, want %s", got, want.others)
		}
	}
	if _, _, got := a.cfg.Pool.Get(tx.Hash()); got != want.pooled {
		t.Fatalf("this node's pool holds it: %v, want %v", got, want.pooled)
	}
}

// submitBackend serves a node's state (rpctest.Backend) and admits its
// clients' transactions through adm's Submit, as rpc.Server does for a
// backend that takes no batches (rpc.Backend.SubmitTx); batchBackend
// through adm's AdmitBatch, the server's admission pipeline as a node
// runs it (rpc.BatchAdmitter).
type submitBackend struct {
	*rpctest.Backend
	adm *Admission
}

func (b submitBackend) SubmitTx(ctx context.Context, tx *types.Transaction) error {
	return b.adm.Submit(ctx, tx)
}

type batchBackend struct{ submitBackend }

func (b batchBackend) AdmitBatch(ctx context.Context, batch []rpc.Admission) []error {
	return b.adm.AdmitBatch(ctx, batch)
}

// TestLeaderStorageFailureIs32603: a leader whose disk fails a read of
// the state gives no verdict on a transaction: nothing is wrong with the
// transaction, and every other node would judge it on its own disk. A
// follower that forwarded it answers its client as it answers its own
// storage's failures, JSON-RPC -32603 (rpc.CodeInternal, on which
// wallet.Unavailable and ethers ask another node), not as the refusal
// -32000 (cluster simulator, seed 434: an honest transfer answered as
// refused); so does the leader to its own client. Through go-ethereum's
// client and Tally's JSON-RPC server, single calls and batches, over
// both of the server's admission paths.
func TestLeaderStorageFailureIs32603(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	net := &validators{leader: "leader", from: "v1", holds: map[peer.ID]map[string]bool{}}
	leader, failing := diskAdmission(t, net, "self", true, nil, []peer.ID{"v1", "v2"}, mempool.Config{MaxPerAccount: 16, MaxTotal: 1024})
	fwd := leader.Handler(string(p2p.ForwardProtocol))
	net.fwd = &fwd
	follower := testAdmissionOf(t, net, "leader", false, nil, []peer.ID{"leader", "v2"})
	failing.Store(true)
	defer failing.Store(false)
	nonce := uint64(0)
	for _, node := range []struct {
		name string
		adm  *Admission
	}{{"follower", follower}, {"leader", leader}} {
		for _, b := range []struct {
			name    string
			backend rpc.Backend
		}{
			{"SubmitTx", submitBackend{rpctest.NewBackend(node.adm.cfg.DB, node.adm.cfg.Senders), node.adm}},
			{"AdmitBatch", batchBackend{submitBackend{rpctest.NewBackend(node.adm.cfg.DB, node.adm.cfg.Senders), node.adm}}},
		} {
			t.Run(node.name+"/"+b.name, func(t *testing.T) {
				c, err := gethrpc.DialContext(ctx, rpctest.Serve(t, b.backend, rpc.DefaultLimits).URL)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				var txs []*types.Transaction
				for range 3 {
					txs = append(txs, devTransferOf(t, 2, nonce))
					nonce++
				}
				raw0, _ := txs[0].MarshalBinary()
				var h common.Hash
				errs := []error{c.CallContext(ctx, &h, "eth_sendRawTransaction", hexutil.Bytes(raw0))}
				var calls []gethrpc.BatchElem
				for _, tx := range txs[1:] {
					raw, _ := tx.MarshalBinary()
					calls = append(calls, gethrpc.BatchElem{Method: "eth_sendRawTransaction", Args: []any{hexutil.Bytes(raw)}, Result: new(common.Hash)})
				}
				if err := c.BatchCallContext(ctx, calls); err != nil {
					t.Fatal(err)
				}
				for _, call := range calls {
					errs = append(errs, call.Error)
				}
				for i, err := range errs {
					var re gethrpc.Error
					if !errors.As(err, &re) || re.ErrorCode() != rpc.CodeInternal || !strings.HasPrefix(re.Error(), state.ErrStorage.Error()) {
						code := 0
						if re != nil {
							code = re.ErrorCode()
						}
						t.Fatalf("call %d on a leader failing reads: %d %v, want %d %q…", i, code, err, rpc.CodeInternal, state.ErrStorage)
					}
					if !wallet.Unavailable(err) {
						t.Fatalf("call %d: wallet.Unavailable(%v) = false: a wallet would not ask another node", i, err)
					}
				}
				for _, a := range []*Admission{leader, follower} {
					for _, tx := range txs {
						if _, _, ok := a.cfg.Pool.Get(tx.Hash()); ok {
							t.Fatal("a transaction the leader gave no verdict on is pooled")
						}
					}
				}
			})
		}
	}
}

// TestForwardedCopyRule: forwardedCopy over every answer the pool gives
// (mempool's Err* variables, read from its source so that an error
// added there must be decided here, wrapped as the pool wraps them; and
// a failed read of the state as the store words it), for a voter and
// for a node whose copy does not count. A copy kept, or applied here, is
// answered at once; one the pool had already is replicated first; any
// other refusal leaves the leader the only validator holding it, which
// a voter's client hears as ErrNotReplicated (the leader counted the
// voter's copy) and an observer's does not (the leader did not).
func TestForwardedCopyRule(t *testing.T) {
	type want struct{ voter, other copyNext }
	notKept := want{copyNotReplicated, copyAnswer}
	cases := []struct {
		name string
		kept error // the pool's own error; wrapped below as the pool wraps it
		want want
	}{
		{"ErrKnown", mempool.ErrKnown, want{copyReplicate, copyReplicate}},
		{"ErrAlreadyApplied", mempool.ErrAlreadyApplied, want{copyAnswer, copyAnswer}},
		{"ErrNonceTooLow", mempool.ErrNonceTooLow, notKept},
		{"ErrNonceGap", mempool.ErrNonceGap, notKept},
		{"ErrNonceTaken", mempool.ErrNonceTaken, notKept},
		{"ErrInsufficientFunds", mempool.ErrInsufficientFunds, notKept},
		{"ErrAccountFull", mempool.ErrAccountFull, notKept},
		{"ErrPoolFull", mempool.ErrPoolFull, notKept},
		{"ErrGasLimit", mempool.ErrGasLimit, notKept},
		{"ErrDataNotAllowed", mempool.ErrDataNotAllowed, notKept},
		{"ErrNotVerified", mempool.ErrNotVerified, notKept},
		{"ErrIntrinsicGas", mempool.ErrIntrinsicGas, notKept},
		{"ErrTipAboveFeeCap", mempool.ErrTipAboveFeeCap, notKept},
		{"ErrInvalidCall", mempool.ErrInvalidCall, notKept},
		{"ErrMissingNonce", mempool.ErrMissingNonce, notKept},
		{"ErrMulticallReadOnly", mempool.ErrMulticallReadOnly, notKept},
		{"ErrStorage", fmt.Errorf("%w: state db get 0a01: %w", state.ErrStorage, errorfs.ErrInjected), notKept},
		{"sender", chain.ErrBadSignature, notKept},
	}
	listed := map[string]bool{}
	for _, c := range cases {
		listed[c.name] = true
	}
	for _, name := range mempoolErrors(t) {
		if !listed[name] {
			t.Errorf("mempool.%s is not in this table: decide what a forwarding node answers when its pool refuses its copy with it", name)
		}
	}
	cases = append(cases, struct {
		name string
		kept error
		want want
	}{"kept", nil, want{copyAnswer, copyAnswer}})
	words := map[copyNext]string{copyAnswer: "copyAnswer", copyReplicate: "copyReplicate", copyNotReplicated: "copyNotReplicated"}
	for _, c := range cases {
		kept := c.kept
		if kept != nil {
			kept = fmt.Errorf("%w: 0x2a", kept)
		}
		for _, voter := range []bool{true, false} {
			w := c.want.other
			if voter {
				w = c.want.voter
			}
			next, err := forwardedCopy(kept, voter)
			if next != w {
				t.Errorf("%s, voter %v: %s, want %s", c.name, voter, words[next], words[w])
			}
			switch {
			case next != copyNotReplicated && err != nil:
				t.Errorf("%s, voter %v: %s with the answer %v", c.name, voter, words[next], err)
			case next == copyNotReplicated && (!errors.Is(err, p2p.ErrNotReplicated) || !strings.HasPrefix(rpc.ClientError(err).Error(), p2p.ErrNotReplicated.Error()) || !strings.Contains(err.Error(), kept.Error())):
				t.Errorf("%s, voter %v: answered %v, want %q… naming why the copy was not kept (%v)", c.name, voter, err, p2p.ErrNotReplicated, kept)
			}
		}
	}
}

// mempoolErrors lists the names of mempool's exported error variables
// (Err…), read from its source.
func mempoolErrors(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../mempool/*.go")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	fset := token.NewFileSet()
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, spec := range g.Specs {
				for _, id := range spec.(*ast.ValueSpec).Names {
					if strings.HasPrefix(id.Name, "Err") {
						names = append(names, id.Name)
					}
				}
			}
		}
	}
	if len(names) == 0 {
		t.Fatal("no Err… variables found in ../mempool")
	}
	return names
}

// TestUnkeptCopyInBatch: each element of a forwarded JSON-RPC batch gets
// the answer its own copy earns. A voter whose pool has room for one of
// the two transactions the leader admitted answers the first admitted
// (kept, and in its journal before the answer) and the second
// ErrNotReplicated (its copy was refused: the pool is full).
func TestUnkeptCopyInBatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	net := &validators{leader: "leader", from: "v1", holds: map[peer.ID]map[string]bool{}}
	leader := testAdmissionOf(t, net, "self", true, nil, []peer.ID{"v1", "v2"})
	fwd := leader.Handler(string(p2p.ForwardProtocol))
	net.fwd = &fwd
	a, _ := diskAdmission(t, net, "leader", false, nil, []peer.ID{"leader", "v2"}, mempool.Config{MaxPerAccount: 16, MaxTotal: 1})
	var batch []rpc.Admission
	for n := range uint64(2) {
		tx := devTransfer(t, n)
		raw, _ := tx.MarshalBinary()
		batch = append(batch, rpc.Admission{Tx: tx, Raw: raw})
	}
	errs := a.AdmitBatch(ctx, batch)
	if errs[0] != nil || !errors.Is(errs[1], p2p.ErrNotReplicated) || !strings.Contains(errs[1].Error(), mempool.ErrPoolFull.Error()) {
		t.Fatalf("answers %v, want [admitted, %q… %q]", errs, p2p.ErrNotReplicated, mempool.ErrPoolFull)
	}
	journal, err := readPoolJournal(vfs.Default, a.cfg.Journal)
	if err != nil {
		t.Fatal(err)
	}
	if len(journal) != 1 || string(journal[0]) != string(batch[0].Raw) {
		t.Fatalf("journal holds %d records, want the first transaction alone", len(journal))
	}
	for i, b := range batch {
		if _, _, ok := leader.cfg.Pool.Get(b.Tx.Hash()); !ok {
			t.Fatalf("the leader does not hold transaction %d", i)
		}
	}
}
