package consensus

import (
	"io"
	"log/slog"
	"math/big"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/bench"
	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/store"
)

// applyBlockTxs is the size of the blocks the apply benchmarks use: what
// the leader builds under a full load of JSON-RPC batches (issue 17).
const applyBlockTxs = 360

// ceilingTxs is how many transactions the R measured beside each apply
// benchmark decodes and recovers (a quarter of a second or so).
const ceilingTxs = 5000

// ceiling is R (bench.Ceiling) measured right after a benchmark's timed
// loop, so the apply benchmarks report their rate as a ratio to the
// signature ceiling of the same moment (the machine's speed drifts, and
// other work shares its cores).
func ceiling(b *testing.B) float64 {
	r, err := bench.Ceiling(ceilingTxs, true)
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// applyBench is a state database with fsync on (as in a node) and its FSM.
type applyBench struct {
	b       *testing.B
	db      *store.DB
	fsm     *FSM
	senders *chain.SenderCache
	keys    []*crypto.PrivateKey
	nonces  []uint64
	val     *crypto.PrivateKey
	next    uint64 // recipients are fresh accounts, as in a real load
	index   uint64
}

func newApplyBench(b *testing.B) *applyBench {
	b.Helper()
	db, err := store.Open(b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	if err := db.InitGenesis(genesis.Dev()); err != nil {
		b.Fatal(err)
	}
	e := &applyBench{b: b, db: db, senders: chain.NewSenderCache(chain.NewSigner(big.NewInt(genesis.DevChainID)), 1<<16)}
	e.fsm = NewFSM(db, e.senders, slog.New(slog.NewTextHandler(io.Discard, nil)), nil, nil)
	for i := uint32(0); i < genesis.DevAccounts; i++ {
		k, err := genesis.DevKey(i)
		if err != nil {
			b.Fatal(err)
		}
		e.keys = append(e.keys, k)
	}
	e.nonces = make([]uint64, len(e.keys))
	if e.val, err = genesis.DevKey(genesis.DevValidatorIndex); err != nil {
		b.Fatal(err)
	}
	return e
}

// transfers signs n legacy transfers (what the load tool sends) from the
// dev accounts in turn to fresh accounts.
func (e *applyBench) transfers(n int) []*types.Transaction {
	id := big.NewInt(genesis.DevChainID)
	txs := make([]*types.Transaction, n)
	for i := range txs {
		k := i % len(e.keys)
		e.next++
		to := common.BigToAddress(new(big.Int).SetUint64(1<<40 + e.next))
		tx, err := chain.SignTx(types.NewTx(&types.LegacyTx{Nonce: e.nonces[k], To: &to, Value: big.NewInt(1), Gas: 21000, GasPrice: new(big.Int)}), id, e.keys[k])
		if err != nil {
			e.b.Fatal(err)
		}
		e.nonces[k]++
		txs[i] = tx
	}
	return txs
}

// build builds the next block of txs on the applied head, as the leader's
// builder does (senders from the cache: recovered at admission).
func (e *applyBench) build(txs []*types.Transaction) (*state.Built, []byte) {
	froms, errs := e.senders.Senders(txs)
	if errs != nil {
		e.b.Fatal(errs)
	}
	tip := e.db.Tip()
	built, err := state.Build(e.db, tip.Parent(), txs, froms, nil, tip.Head.TimeMs+1, e.val, genesis.DevChainID)
	if err != nil {
		e.b.Fatal(err)
	}
	if len(built.Dropped) > 0 {
		e.b.Fatalf("dropped: %v", built.Dropped[0].Err)
	}
	enc, err := built.Block.Encode()
	if err != nil {
		e.b.Fatal(err)
	}
	return built, enc
}

func (e *applyBench) apply(data []byte) {
	e.index++
	if _, ok := e.fsm.Apply(&raft.Log{Index: e.index, Type: raft.LogCommand, Data: data}).(*store.Applied); !ok {
		e.b.Fatalf("entry %d not applied", e.index)
	}
}

// cpuTime is the CPU time the process has used (all threads, user and
// system): on a machine shared with other work the wall clock of an
// apply (mostly its fsync) says more about the neighbours than about the
// code, the CPU it takes does not.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportApply reports the timed loop's rate (wall clock), the CPU time per
// transaction it took (cpu, measured by the caller around the loop), and
// R and the ratio to it measured right after.
func reportApply(b *testing.B, cpu time.Duration) {
	txs := float64(b.N * applyBlockTxs)
	rate := txs / b.Elapsed().Seconds()
	r := ceiling(b)
	b.ReportMetric(rate, "txs/s")
	b.ReportMetric(float64(cpu.Microseconds())/txs, "cpu-µs/tx")
	b.ReportMetric(r, "R")
	b.ReportMetric(rate/r, "xR")
}

// BenchmarkFSMApply measures FSM.Apply of a Raft entry holding a block of
// 360 legacy transfers to fresh accounts, fsync on, and reports the rate
// as a ratio to R measured in the same run:
//
//   - replica: a block this node did not build (a follower, or a leader
//     applying an earlier leader's block), senders cached at admission:
//     decode, verify, execute, commit.
//   - replica-cold: the same with no sender cached (a follower that never
//     saw the transactions): every signature is recovered on apply.
//   - own: the leader applying the block it built on that head, with the
//     execution its builder kept (ownBlocks): decode, verify, commit.
func BenchmarkFSMApply(b *testing.B) {
	replay := func(b *testing.B, warm bool) {
		src := newApplyBench(b)
		entries := make([][]byte, b.N)
		var all []*types.Transaction
		for i := range entries {
			txs := src.transfers(applyBlockTxs)
			_, entries[i] = src.build(txs)
			src.apply(entries[i])
			all = append(all, txs...)
		}
		dst := newApplyBench(b)
		if warm {
			if _, errs := dst.senders.Senders(all); errs != nil {
				b.Fatal(errs)
			}
		}
		// Nothing of the source may run in the timed loop (its
		// compactions, the garbage of signing).
		if err := src.db.Close(); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		b.ResetTimer()
		cpu := cpuTime(b)
		for _, enc := range entries {
			dst.apply(enc)
		}
		b.StopTimer()
		reportApply(b, cpuTime(b)-cpu)
	}
	b.Run("replica", func(b *testing.B) { replay(b, true) })
	b.Run("replica-cold", func(b *testing.B) { replay(b, false) })
	b.Run("own", func(b *testing.B) {
		e := newApplyBench(b)
		e.fsm.own = newOwnBlocks(DefaultBuilderConfig.MaxInflight)
		b.ResetTimer()
		var cpu time.Duration
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			parent := e.db.Tip().Head
			built, enc := e.build(e.transfers(applyBlockTxs))
			e.fsm.own.offer(&store.Executed{Hash: built.Block.Hash(), ParentHash: parent.Hash, ParentRoot: parent.StateRoot, Result: built.Result})
			start := cpuTime(b)
			b.StartTimer()
			e.apply(enc)
			b.StopTimer()
			cpu += cpuTime(b) - start
			b.StartTimer()
		}
		b.StopTimer()
		reportApply(b, cpu)
	})
}
