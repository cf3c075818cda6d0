package store

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/state"
)

func TestReplaceWithCheckpoint(t *testing.T) {
	a := newEnv(t)
	for i := uint64(0); i < 4; i++ {
		if _, err := a.apply(a.build(a.transfer(0, i, common.Address{7}, 3)).Block); err != nil {
			t.Fatal(err)
		}
	}
	ckpt := filepath.Join(t.TempDir(), "ckpt")
	if err := a.db.Checkpoint(ckpt); err != nil {
		t.Fatal(err)
	}
	b := newEnv(t)
	src := b.dir + ".restore"
	if err := os.Rename(ckpt, src); err != nil {
		t.Fatal(err)
	}
	if err := b.db.ReplaceWith(src); err != nil {
		t.Fatal(err)
	}
	ha, _ := a.db.Head()
	hb, _ := b.db.Head()
	if ha != hb {
		t.Fatalf("head after replace %+v, want %+v", hb, ha)
	}
	if bal, _ := b.db.Balance(state.NativeAsset, common.Address{7}); bal.Int64() != 12 {
		t.Fatalf("balance %s after replace", bal)
	}
	if _, err := os.Stat(b.dir + ".old"); !os.IsNotExist(err) {
		t.Fatal("old data left behind")
	}
	// The next block applies on the replaced state.
	b.raftIdx = hb.RaftIndex
	if _, err := b.apply(a.build(a.transfer(0, 4, common.Address{7}, 3)).Block); err != nil {
		t.Fatalf("apply after replace: %v", err)
	}
}

func TestReplaceRefusesOtherGenesis(t *testing.T) {
	b := newEnv(t)
	g := genesis.Dev()
	g.ChainID = 99
	otherDir := t.TempDir()
	other, err := Open(otherDir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.InitGenesis(g); err != nil {
		t.Fatal(err)
	}
	ckpt := b.dir + ".restore"
	if err := other.Checkpoint(ckpt); err != nil {
		t.Fatal(err)
	}
	other.Close()
	if err := b.db.ReplaceWith(ckpt); !errors.Is(err, ErrGenesisMismatch) {
		t.Fatalf("replace with another chain's snapshot: %v", err)
	}
}

func TestOpenRecoversInterruptedReplace(t *testing.T) {
	e := newEnv(t)
	want, _ := e.db.Head()
	e.db.Close()
	// A crash after moving the data aside and before moving the new in.
	if err := os.Rename(e.dir, e.dir+".old"); err != nil {
		t.Fatal(err)
	}
	e.open()
	if got, _ := e.db.Head(); got != want {
		t.Fatalf("head %+v after recovery, want %+v", got, want)
	}
}
