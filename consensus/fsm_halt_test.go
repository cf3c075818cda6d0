package consensus

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rlp"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/mempool"
	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/store"
)

// TestFSMPanicHaltsAndStaysHalted: a panic deep inside execution (the
// state's own invariant check, "escrow below zero", reached because the
// supply record on disk was damaged under a pending withdrawal:
// newDamagedEscrow) halts the
// FSM with the alarm, the panic value and its stack instead of crashing
// the process. The halt is stored: reopened on the same data dir, the FSM
// starts halted and does not apply (nor panic on) the entry again, and
// refuses snapshots. Clearing the record lets it try the entry again.
// damagedEscrow is a data dir (closed) whose head, block 1 at raft index
// 1, holds a pending withdrawal whose escrow the disk then lost (written
// through Pebble, as a bad disk or a bad migration would), and the bank's
// refund of it: as a block built before the damage (encoded), and as the
// transaction alone. Executing the refund panics inside closeWithdrawal
// ("escrow below zero").
type damagedEscrow struct {
	dir     string
	refund  *types.Transaction
	block2  []byte
	head1   store.Head
	senders *chain.SenderCache
}

func newDamagedEscrow(t *testing.T) *damagedEscrow {
	t.Helper()
	d := &damagedEscrow{dir: t.TempDir()}
	id := big.NewInt(genesis.DevChainID)
	val, _ := genesis.DevKey(genesis.DevValidatorIndex)
	holder, _ := genesis.DevKey(0)
	bank, _ := genesis.DevKey(genesis.DevBankAIndex)
	d.senders = chain.NewSenderCache(chain.NewSigner(id), 1024)
	call := func(key *crypto.PrivateKey, method string, args ...any) *types.Transaction {
		data, err := chain.AssetABI.Pack(method, args...)
		if err != nil {
			t.Fatal(err)
		}
		to := chain.AssetAddress(state.NativeAsset)
		tx, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, Nonce: 0, To: &to, Gas: chain.GasPerSystemCall, Data: data}), id, key)
		if err != nil {
			t.Fatal(err)
		}
		return tx
	}
	build := func(db *store.DB, tip state.Parent, tx *types.Transaction, from common.Address) *state.Built {
		b, err := state.Build(db, tip, []*types.Transaction{tx}, []common.Address{from}, nil, tip.TimeMs+1, val, genesis.DevChainID)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	db := d.open(t)
	if err := db.InitGenesis(genesis.Dev()); err != nil {
		t.Fatal(err)
	}
	amount := big.NewInt(1e18)
	b1 := build(db, db.Tip().Parent(), call(holder, "requestWithdrawal", amount, [32]byte{1}), holder.Address())
	a, err := db.ApplyBlock(b1.Block, 1, d.senders)
	if err != nil || a.Receipts[0].Status != types.ReceiptStatusSuccessful {
		t.Fatalf("withdrawal block not applied, or the withdrawal failed: %v", err)
	}
	d.refund = call(bank, "refundWithdrawal", big.NewInt(1), "cancelled by the bank")
	b2 := build(db, db.Tip().Parent(), d.refund, bank.Address())
	d.block2, _ = b2.Block.Encode()
	supply, err := db.Supply(state.NativeAsset)
	if err != nil || supply.Escrow.Cmp(amount) != 0 {
		t.Fatalf("escrow %v, %v", supply.Escrow, err)
	}
	d.head1, _ = db.Head()
	db.Close()

	pdb, err := pebble.Open(d.dir, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	supply.Escrow = new(big.Int)
	v, _ := rlp.EncodeToBytes(&supply)
	if err := pdb.Set(binary.BigEndian.AppendUint32([]byte("ss"), state.NativeAsset), v, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	pdb.Close()
	return d
}

func (d *damagedEscrow) open(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(d.dir, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestFSMPanicHaltsAndStaysHalted(t *testing.T) {
	d := newDamagedEscrow(t)
	senders, head1, enc2 := d.senders, d.head1, d.block2
	open := func() *store.DB { return d.open(t) }

	// Applying block 2 panics inside closeWithdrawal: the FSM halts.
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	db := open()
	fsm := NewFSM(db, senders, logger, nil, nil)
	if err := fsm.Halted(); err != nil {
		t.Fatalf("halted before anything went wrong: %v", err)
	}
	entry := &raft.Log{Index: 2, Type: raft.LogCommand, Data: enc2}
	res := fsm.Apply(entry)
	herr, ok := res.(error)
	if !ok || !errors.Is(herr, ErrHalted) || !strings.Contains(herr.Error(), "escrow below zero") {
		t.Fatalf("apply: %v, want a halt naming the panic", res)
	}
	if fsm.Halted() == nil {
		t.Fatal("FSM not halted after a panic")
	}
	if head, _ := db.Head(); head != head1 {
		t.Fatalf("head moved: %+v → %+v", head1, head)
	}
	out := logs.String()
	for _, want := range []string{"ALARM: node halted", "alarm=node_halted", "escrow below zero", "closeWithdrawal"} {
		if !strings.Contains(out, want) {
			t.Fatalf("log lacks %q:\n%s", want, out)
		}
	}
	rec, err := db.HaltRecord()
	if err != nil || rec == nil {
		t.Fatalf("halt record %v, %v", rec, err)
	}
	if rec.Entry != 2 || rec.Height != 1 || rec.RaftIndex != 1 || !strings.Contains(rec.Reason, "escrow below zero") || !strings.Contains(rec.Stack, "closeWithdrawal") {
		t.Fatalf("halt record %+v", rec)
	}
	if _, err := fsm.Snapshot(); !errors.Is(err, ErrHalted) {
		t.Fatalf("snapshot of a halted FSM: %v", err)
	}
	db.Close()

	// Restart on the same data dir: halted from the start; the same entry
	// (Raft delivers it again) is neither applied nor run.
	logs = &syncBuffer{}
	db = open()
	fsm = NewFSM(db, senders, slog.New(slog.NewTextHandler(logs, nil)), nil, nil)
	if err := fsm.Halted(); !errors.Is(err, ErrHalted) || !strings.Contains(err.Error(), "escrow below zero") {
		t.Fatalf("after restart: halted %v", err)
	}
	if !strings.Contains(logs.String(), "ALARM: node halted") {
		t.Fatalf("no alarm at restart:\n%s", logs.String())
	}
	if res := fsm.Apply(entry); !errors.Is(res.(error), ErrHalted) {
		t.Fatalf("apply after restart: %v", res)
	}
	if n := strings.Count(logs.String(), "ALARM"); n != 1 {
		t.Fatalf("%d alarms after the restart (the entry ran again?):\n%s", n, logs.String())
	}
	if head, _ := db.Head(); head != head1 {
		t.Fatalf("head moved after restart: %+v", head)
	}
	if _, err := fsm.Snapshot(); err == nil {
		t.Fatal("snapshot of a restarted halted FSM")
	}

	// The operator clears the record: the node tries the entry again (and,
	// the damage being still there, halts again).
	if cleared, err := db.ClearHalt(); err != nil || cleared == nil || cleared.Entry != 2 {
		t.Fatalf("clear: %+v, %v", cleared, err)
	}
	fsm = NewFSM(db, senders, testLogger(t), nil, nil)
	if err := fsm.Halted(); err != nil {
		t.Fatalf("halted after clearing: %v", err)
	}
	if res := fsm.Apply(entry); !errors.Is(res.(error), ErrHalted) || !strings.Contains(res.(error).Error(), "panic") {
		t.Fatalf("apply after clearing: %v", res)
	}
	db.Close()
}

// TestBuilderPanicHalts: the leader executes a block before anyone applies
// it, so a transaction whose execution panics reaches the builder first.
// The panic is caught there too: the builder reports it as a broken
// invariant (the engine halts the FSM with it, value and stack), stops,
// and proposes nothing; the process does not crash.
func TestBuilderPanicHalts(t *testing.T) {
	d := newDamagedEscrow(t)
	db := d.open(t)
	defer db.Close()
	pool := mempool.New(mempool.DefaultConfig, db, d.senders)
	if _, err := pool.Add(d.refund); err != nil {
		t.Fatal(err)
	}
	val, _ := genesis.DevKey(genesis.DevValidatorIndex)
	p := &countingProposer{}
	b := NewBuilder(DefaultBuilderConfig, db, pool, p, val, testLogger(t), nil)
	logs := &syncBuffer{}
	fsm := NewFSM(db, d.senders, slog.New(slog.NewTextHandler(logs, nil)), nil, nil)
	var broken error
	b.onBroken = func(err error) { broken = err; fsm.Halt(err) }
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b.Run(ctx) // returns at once on the broken invariant
	if ctx.Err() != nil {
		t.Fatal("the builder kept running after the panic")
	}
	var pe *PanicError
	if !errors.As(broken, &pe) || !strings.Contains(pe.Error(), "escrow below zero") || !strings.Contains(pe.Stack, "closeWithdrawal") {
		t.Fatalf("reported %v", broken)
	}
	if p.n.Load() != 0 {
		t.Fatalf("%d proposals after the panic", p.n.Load())
	}
	if err := fsm.Halted(); !errors.Is(err, ErrHalted) {
		t.Fatalf("FSM not halted: %v", err)
	}
	if rec, err := db.HaltRecord(); err != nil || rec == nil || !strings.Contains(rec.Stack, "closeWithdrawal") {
		t.Fatalf("halt record %+v, %v", rec, err)
	}
	if out := logs.String(); !strings.Contains(out, "ALARM: node halted") || !strings.Contains(out, "building block 2") {
		t.Fatalf("log:\n%s", out)
	}
}
