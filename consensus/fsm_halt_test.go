package consensus

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"math/big"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rlp"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/state"
)

// TestFSMPanicHaltsAndStaysHalted: a panic deep inside execution (the
// state's own invariant check, "escrow below zero", reached because the
// supply record on disk was damaged under a pending withdrawal) halts the
// FSM with the alarm, the panic value and its stack instead of crashing
// the process. The halt is stored: reopened on the same data dir, the FSM
// starts halted and does not apply (nor panic on) the entry again, and
// refuses snapshots. Clearing the record lets it try the entry again.
func TestFSMPanicHaltsAndStaysHalted(t *testing.T) {
	dir := t.TempDir()
	id := big.NewInt(genesis.DevChainID)
	val, _ := genesis.DevKey(genesis.DevValidatorIndex)
	holder, _ := genesis.DevKey(0)
	bank, _ := genesis.DevKey(genesis.DevBankAIndex)
	senders := chain.NewSenderCache(chain.NewSigner(id), 1024)
	open := func() *state.DB {
		db, err := state.Open(dir, state.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
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
	build := func(db *state.DB, tip state.Parent, tx *types.Transaction, from common.Address) *state.Built {
		b, err := state.Build(db, tip, []*types.Transaction{tx}, []common.Address{from}, nil, tip.TimeMs+1, val, genesis.DevChainID)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	// Block 1 (raft index 1): a withdrawal of 1 CNY goes into escrow. Block
	// 2, built on it, refunds it (the bank's cancellation).
	db := open()
	if err := db.InitGenesis(genesis.Dev()); err != nil {
		t.Fatal(err)
	}
	fsm := NewFSM(db, senders, testLogger(t), nil, nil)
	amount := big.NewInt(1e18)
	b1 := build(db, db.Tip().Parent(), call(holder, "requestWithdrawal", amount, [32]byte{1}), holder.Address())
	enc1, _ := b1.Block.Encode()
	if a, ok := fsm.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: enc1}).(*state.Applied); !ok || a.Receipts[0].Status != types.ReceiptStatusSuccessful {
		t.Fatal("withdrawal block not applied, or the withdrawal failed")
	}
	b2 := build(db, db.Tip().Parent(), call(bank, "refundWithdrawal", big.NewInt(1), "cancelled by the bank"), bank.Address())
	enc2, _ := b2.Block.Encode()
	supply, err := db.Supply(state.NativeAsset)
	if err != nil || supply.Escrow.Cmp(amount) != 0 {
		t.Fatalf("escrow %v, %v", supply.Escrow, err)
	}
	head1, _ := db.Head()
	db.Close()

	// The disk loses the escrow (written through Pebble, as a bad disk
	// or a bad migration would).
	pdb, err := pebble.Open(dir, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	supply.Escrow = new(big.Int)
	v, _ := rlp.EncodeToBytes(&supply)
	if err := pdb.Set(binary.BigEndian.AppendUint32([]byte("ss"), state.NativeAsset), v, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	pdb.Close()

	// Applying block 2 panics inside closeWithdrawal: the FSM halts.
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	db = open()
	fsm = NewFSM(db, senders, logger, nil, nil)
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
