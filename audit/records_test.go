package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/rlp"

	"github.com/tally-ledger/tally/audit"
	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/internal/chaintest"
	"github.com/tally-ledger/tally/store"
)

func pebbleGet(t *testing.T, db *pebble.DB, k []byte) []byte {
	t.Helper()
	v, closer, err := db.Get(k)
	if err != nil {
		t.Fatalf("get %q: %v", k, err)
	}
	defer closer.Close()
	return bytes.Clone(v)
}

func pebbleSet(t *testing.T, db *pebble.DB, k, v []byte) {
	t.Helper()
	if err := db.Set(k, v, nil); err != nil {
		t.Fatal(err)
	}
}

// editHead rewrites the data dir's head record.
func editHead(t *testing.T, db *pebble.DB, edit func(h *store.Head)) {
	t.Helper()
	var h store.Head
	if err := rlp.DecodeBytes(pebbleGet(t, db, []byte("mhead")), &h); err != nil {
		t.Fatal(err)
	}
	edit(&h)
	v, err := rlp.EncodeToBytes(&h)
	if err != nil {
		t.Fatal(err)
	}
	pebbleSet(t, db, []byte("mhead"), v)
}

// TestDataDirRecords: a copy of a real chain whose blocks are intact but
// whose own records (what tallyd trusts when it opens the dir, or serves
// from it) were altered no longer audits OK: each alteration fails with
// its named check. Altered in each case through the Pebble API, as a
// damaged disk or a hand edit would.
func TestDataDirRecords(t *testing.T) {
	ac := newChain(t)
	head := ac.c.DB.Tip().Head.Number
	hashes := make([]common.Hash, head+1)
	for n := range hashes {
		b, err := ac.c.DB.BlockByNumber(uint64(n))
		if err != nil {
			t.Fatal(err)
		}
		hashes[n] = b.Hash()
	}
	txBlock, err := ac.c.DB.BlockByNumber(3)
	if err != nil || len(txBlock.Txs) < 2 {
		t.Fatalf("block 3: %v", err)
	}
	certified, carrier := uint64(0), uint64(0)
	for n := uint64(2); n <= head && carrier == 0; n++ {
		b, _ := ac.c.DB.BlockByNumber(n)
		if len(b.Certs) > 0 {
			certified, carrier = b.Certs[0].Height, n
		}
	}
	ac.c.Close()

	tests := []struct {
		name   string
		edit   func(t *testing.T, db *pebble.DB)
		check  string
		height uint64
	}{
		{"head hash", func(t *testing.T, db *pebble.DB) {
			editHead(t, db, func(h *store.Head) { h.Hash[0] ^= 1 })
		}, audit.CheckHeadRecord, head},
		{"head time", func(t *testing.T, db *pebble.DB) {
			editHead(t, db, func(h *store.Head) { h.TimeMs += 5000 })
		}, audit.CheckHeadRecord, head},
		{"head raft index", func(t *testing.T, db *pebble.DB) {
			editHead(t, db, func(h *store.Head) { h.RaftIndex = 1 })
		}, audit.CheckHeadRecord, head},
		{"head state root", func(t *testing.T, db *pebble.DB) {
			editHead(t, db, func(h *store.Head) { h.StateRoot[3] ^= 1 })
		}, audit.CheckFinalState, head},
		{"history record", func(t *testing.T, db *pebble.DB) {
			hist := chain.NewHistory()
			for n, h := range hashes {
				if n == 4 {
					h[0] ^= 1
				}
				hist.Append(h)
			}
			v, err := hist.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			pebbleSet(t, db, []byte("mhistory"), v)
		}, audit.CheckHistoryRecord, head},
		{"history node altered", func(t *testing.T, db *pebble.DB) {
			k := append([]byte{'M', 1}, numKey(0, 2)[1:]...) // level 1, index 2: blocks 4 and 5
			v := pebbleGet(t, db, k)
			v[7] ^= 1
			pebbleSet(t, db, k, v)
		}, audit.CheckHistoryNodes, head},
		{"history node deleted", func(t *testing.T, db *pebble.DB) {
			if err := db.Delete(append([]byte{'M', 0}, numKey(0, 6)[1:]...), nil); err != nil {
				t.Fatal(err)
			}
		}, audit.CheckHistoryNodes, head},
		{"stored genesis", func(t *testing.T, db *pebble.DB) {
			pebbleSet(t, db, []byte("mgenesis"), genesis.Dev().Canonical())
		}, audit.CheckGenesisRecord, 0},
		{"block hash index", func(t *testing.T, db *pebble.DB) {
			pebbleSet(t, db, append([]byte{'H'}, hashes[5][:]...), numKey(0, 6)[1:])
		}, audit.CheckHashIndex, 5},
		{"tx index", func(t *testing.T, db *pebble.DB) {
			h := txBlock.Txs[1].Hash()
			pebbleSet(t, db, append([]byte{'T'}, h[:]...), append(numKey(0, 3)[1:], 0, 0, 0, 0))
		}, audit.CheckTxIndex, 3},
		{"certificate index moved", func(t *testing.T, db *pebble.DB) {
			pebbleSet(t, db, numKey('C', certified), numKey(0, carrier+1)[1:])
		}, audit.CheckCertIndex, certified},
		{"certificate index entry deleted", func(t *testing.T, db *pebble.DB) {
			if err := db.Delete(numKey('C', certified), nil); err != nil {
				t.Fatal(err)
			}
		}, audit.CheckCertIndex, certified},
		{"certificate index entry invented", func(t *testing.T, db *pebble.DB) {
			pebbleSet(t, db, numKey('C', head), numKey(0, head)[1:])
		}, audit.CheckCertIndex, head},
		{"validator set history", func(t *testing.T, db *pebble.DB) {
			k := append([]byte("sL"), numKey(0, ac.s.ValidatorFrom)[1:]...)
			v := pebbleGet(t, db, k)
			var set []common.Address
			if err := rlp.DecodeBytes(v, &set); err != nil {
				t.Fatal(err)
			}
			v, _ = rlp.EncodeToBytes(set[:len(set)-1])
			pebbleSet(t, db, k, v)
		}, audit.CheckFinalState, head},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cp := tamper(t, ac.c.Dir, func(db *pebble.DB) { tc.edit(t, db) })
			rep := runDir(t, ac.g, cp, nil)
			if rep.OK || !rep.Failed(tc.check, tc.height) {
				js, _ := json.MarshalIndent(rep.Failures, "", " ")
				t.Fatalf("want %s at %d; failures:\n%s", tc.check, tc.height, js)
			}
		})
	}

	// A halted node's data dir: tallyd would start halted on it.
	cp := tamper(t, ac.c.Dir, func(*pebble.DB) {})
	db, err := store.Open(cp, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.RecordHalt(store.HaltRecord{Height: head, RaftIndex: head, Entry: head + 1, Reason: "panic applying raft index 99: boom"}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	rep := runDir(t, ac.g, cp, nil)
	if rep.OK || !rep.Failed(audit.CheckHaltRecord, head) {
		t.Fatalf("halted data dir: %+v", rep.Failures)
	}

	// The stored genesis is what tallyd checks at start: the altered one
	// is refused there too.
	cp = tamper(t, ac.c.Dir, func(db *pebble.DB) { pebbleSet(t, db, []byte("mgenesis"), genesis.Dev().Canonical()) })
	db, err = store.Open(cp, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.InitGenesis(ac.g); !errors.Is(err, store.ErrGenesisMismatch) {
		t.Fatalf("node start on the altered genesis: %v", err)
	}
}

// TestCheckpointHeadRecord: a --checkpoint whose head record is not its
// own head block is refused (exit 2), naming the mismatch.
func TestCheckpointHeadRecord(t *testing.T) {
	c := chaintest.New(t)
	c.Apply(c.Transfers(3)...)
	c.Apply(c.Transfers(2)...)
	cp := t.TempDir() + "/checkpoint"
	if err := c.DB.Checkpoint(cp); err != nil {
		t.Fatal(err)
	}
	from := c.DB.Tip().Head.Number + 1
	c.Apply(c.Transfers(2)...)
	c.Apply()
	c.Close()
	bad := tamper(t, cp, func(db *pebble.DB) { editHead(t, db, func(h *store.Head) { h.TimeMs-- }) })
	for _, tc := range []struct {
		dir  string
		want string
	}{{cp, ""}, {bad, "is not its block"}} {
		src, err := audit.OpenDataDir(c.Dir)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := audit.Run(context.Background(), audit.Config{Genesis: c.Genesis, Source: src, From: from, Checkpoint: tc.dir, ScratchDir: t.TempDir()})
		src.Close()
		if tc.want == "" {
			if err != nil || !rep.OK {
				t.Fatalf("intact checkpoint: %v %+v", err, rep)
			}
			continue
		}
		if !errors.Is(err, audit.ErrSource) || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("checkpoint with an altered head record: %v", err)
		}
	}
}
