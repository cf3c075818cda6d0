package audit_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/audit"
	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/internal/chaintest"
	"github.com/tally-ledger/tally/rpc"
	"github.com/tally-ledger/tally/rpc/rpctest"
	"github.com/tally-ledger/tally/store"
)

// serveRPC serves db on 127.0.0.1 and returns the URL.
func serveRPC(t *testing.T, db *store.DB) string {
	t.Helper()
	return rpctest.Serve(t, rpctest.NewBackend(db, nil), rpc.DefaultLimits).URL
}

// auditedChain is a populated chain closed on disk, with its scenario.
type auditedChain struct {
	c *chaintest.Chain
	s chaintest.Scenario
	g *genesis.Genesis
}

func newChain(t *testing.T) *auditedChain {
	t.Helper()
	c := chaintest.New(t)
	s := c.Populate()
	g, err := genesis.Parse(c.GenesisJSON)
	if err != nil {
		t.Fatal(err)
	}
	return &auditedChain{c: c, s: s, g: g}
}

func runDir(t *testing.T, g *genesis.Genesis, dir string, mod func(*audit.Config)) *audit.Report {
	t.Helper()
	src, err := audit.OpenDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	cfg := audit.Config{Genesis: g, Source: src, ScratchDir: t.TempDir()}
	if mod != nil {
		mod(&cfg)
	}
	rep, err := audit.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func reportJSON(t *testing.T, r *audit.Report) []byte {
	t.Helper()
	cp := *r
	cp.Source = ""
	var buf bytes.Buffer
	if err := cp.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestCleanChainRPCAndDataDir(t *testing.T) {
	ac := newChain(t)
	head := ac.c.DB.Tip().Head.Number

	// By RPC while the chain's DB is open.
	url := serveRPC(t, ac.c.DB)
	src, err := audit.DialRPC(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	byRPC, err := audit.Run(context.Background(), audit.Config{Genesis: ac.g, Source: src, ScratchDir: t.TempDir()})
	src.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !byRPC.OK {
		var buf bytes.Buffer
		byRPC.WriteSummary(&buf)
		t.Fatalf("clean chain by rpc:\n%s", buf.String())
	}

	// Over WebSocket too.
	ws, err := audit.DialRPC(context.Background(), "ws"+strings.TrimPrefix(url, "http"))
	if err != nil {
		t.Fatal(err)
	}
	byWS, err := audit.Run(context.Background(), audit.Config{Genesis: ac.g, Source: ws, ScratchDir: t.TempDir()})
	ws.Close()
	if err != nil || !byWS.OK {
		t.Fatalf("by websocket: %v %+v", err, byWS)
	}
	if a, b := reportJSON(t, byRPC), reportJSON(t, byWS); !bytes.Equal(a, b) {
		t.Fatalf("http and websocket reports differ:\n%s\n%s", a, b)
	}

	ac.c.Close()
	byDir := runDir(t, ac.g, ac.c.Dir, nil)
	if !byDir.OK {
		var buf bytes.Buffer
		byDir.WriteSummary(&buf)
		t.Fatalf("clean chain by data dir:\n%s", buf.String())
	}
	if byDir.To != head || byDir.Blocks != head || !byDir.FinalStateChecked || byDir.Txs == 0 || byDir.Certificates != head-1 {
		t.Fatalf("report: to %d blocks %d txs %d certs %d final %v; head %d", byDir.To, byDir.Blocks, byDir.Txs, byDir.Certificates, byDir.FinalStateChecked, head)
	}
	if len(byDir.Supply) != 2 {
		t.Fatalf("supply table: %+v", byDir.Supply)
	}
	for _, s := range byDir.Supply {
		if !s.OK || s.Minted == "0" {
			t.Fatalf("supply line %+v", s)
		}
	}
	if a, b := reportJSON(t, byRPC), reportJSON(t, byDir); !bytes.Equal(a, b) {
		t.Fatalf("reports differ:\nrpc:\n%s\ndatadir:\n%s", a, b)
	}
	// The summary says OK.
	var buf bytes.Buffer
	byDir.WriteSummary(&buf)
	if !bytes.Contains(buf.Bytes(), []byte("OK, every check holds")) {
		t.Fatalf("summary:\n%s", buf.String())
	}

	// Another genesis file: block 0 is not its block.
	other := runDir(t, genesis.Dev(), ac.c.Dir, nil)
	if other.OK || !other.Failed(audit.CheckGenesis, 0) || len(other.Failures) != 1 {
		t.Fatalf("other genesis: %+v", other.Failures)
	}
}

// Raw keys of the data dir (docs/architecture.md).
func numKey(prefix byte, n uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefix}, n)
}

// tamper copies the closed data dir and edits it through Pebble.
func tamper(t *testing.T, dir string, edit func(db *pebble.DB)) string {
	t.Helper()
	cp := chaintest.CopyDir(t, dir)
	db, err := pebble.Open(cp, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	edit(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return cp
}

// setReason writes the failure reason record of tx index of block n
// (store/keys.go: 'E' + number + index), which must be kept already if
// kept says so.
func setReason(t *testing.T, db *pebble.DB, n uint64, index int, reason string, kept bool) {
	t.Helper()
	k := binary.BigEndian.AppendUint32(numKey('E', n), uint32(index))
	_, closer, err := db.Get(k)
	if err == nil {
		closer.Close()
	}
	if (err == nil) != kept {
		t.Fatalf("block %d tx %d: reason kept: %v, want %v", n, index, err == nil, kept)
	}
	if err := db.Set(k, []byte(reason), nil); err != nil {
		t.Fatal(err)
	}
}

func getBlock(t *testing.T, db *pebble.DB, n uint64) (*chain.Block, []*types.Receipt) {
	t.Helper()
	v, closer, err := db.Get(numKey('B', n))
	if err != nil {
		t.Fatalf("block %d: %v", n, err)
	}
	b, err := chain.DecodeBlock(bytes.Clone(v))
	closer.Close()
	if err != nil {
		t.Fatal(err)
	}
	v, closer, err = db.Get(numKey('R', n))
	if err != nil {
		t.Fatalf("receipts %d: %v", n, err)
	}
	rs, err := chain.DecodeReceipts(bytes.Clone(v), b)
	closer.Close()
	if err != nil {
		t.Fatal(err)
	}
	return b, rs
}

func putBlock(t *testing.T, db *pebble.DB, b *chain.Block, rs []*types.Receipt) {
	t.Helper()
	enc, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set(numKey('B', b.Number()), enc, nil); err != nil {
		t.Fatal(err)
	}
	if rs != nil {
		renc, err := chain.EncodeReceipts(rs)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Set(numKey('R', b.Number()), renc, nil); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTampering(t *testing.T) {
	ac := newChain(t)
	head := ac.c.DB.Tip().Head.Number
	mintBlock := ac.s.MintBlock
	const transfers = 1 // block 1 holds a transfer, a token transfer and a payment
	refundBlock, refundIndex := location(t, ac.c.DB, ac.s.Refunded)
	settleBlock, settleIndex := location(t, ac.c.DB, ac.s.Settled)
	returnBlock, returnIndex := location(t, ac.c.DB, ac.s.Returned)
	reverseBlock, reverseIndex := location(t, ac.c.DB, ac.s.Reversed)
	failedBlock, failedIndex := location(t, ac.c.DB, ac.s.Failed)
	ac.c.Close()
	dir := ac.c.Dir
	outsider := chaintest.Key(0) // an account, never a validator

	tests := []struct {
		name   string
		edit   func(t *testing.T, db *pebble.DB)
		check  string
		height uint64
	}{
		{"tx altered", func(t *testing.T, db *pebble.DB) {
			b, rs := getBlock(t, db, transfers)
			tx := b.Txs[0]
			v, r, s := tx.RawSignatureValues()
			inner := &types.DynamicFeeTx{ChainID: tx.ChainId(), Nonce: tx.Nonce(), To: tx.To(), Value: new(big.Int).Add(tx.Value(), big.NewInt(1)),
				Gas: tx.Gas(), GasTipCap: tx.GasTipCap(), GasFeeCap: tx.GasFeeCap(), Data: tx.Data(), V: v, R: r, S: s}
			b.Txs[0] = types.NewTx(inner)
			putBlock(t, db, b, rs)
		}, audit.CheckTxRoot, transfers},
		{"txs swapped", func(t *testing.T, db *pebble.DB) {
			b, rs := getBlock(t, db, transfers)
			b.Txs[0], b.Txs[1] = b.Txs[1], b.Txs[0]
			putBlock(t, db, b, rs)
		}, audit.CheckTxRoot, transfers},
		{"balance edited", func(t *testing.T, db *pebble.DB) {
			k := append([]byte("sb"), 0, 0, 0, 0)
			k = append(k, chaintest.Addr(1).Bytes()...)
			if err := db.Set(k, big.NewInt(1).Bytes(), nil); err != nil {
				t.Fatal(err)
			}
		}, audit.CheckFinalState, head},
		{"block removed", func(t *testing.T, db *pebble.DB) {
			if err := db.Delete(numKey('B', 3), nil); err != nil {
				t.Fatal(err)
			}
		}, audit.CheckLink, 3},
		{"header re-signed by a non-validator", func(t *testing.T, db *pebble.DB) {
			b, rs := getBlock(t, db, 4)
			h := types.CopyHeader(b.Header)
			h.Coinbase = outsider.Address()
			h.Extra = h.Extra[:chain.ExtraLen-chain.SealLen]
			if err := chain.Seal(h, ac.g.ChainID, outsider); err != nil {
				t.Fatal(err)
			}
			nb := chain.NewBlock(h, b.Txs)
			nb.Certs = b.Certs
			putBlock(t, db, nb, rs)
		}, audit.CheckProposer, 4},
		{"mint replayed", func(t *testing.T, db *pebble.DB) {
			mb, mrs := getBlock(t, db, mintBlock)
			later := mintBlock + 3
			b, rs := getBlock(t, db, later)
			var prev uint64
			if len(rs) > 0 {
				prev = rs[len(rs)-1].CumulativeGasUsed
			}
			r := *mrs[0]
			r.CumulativeGasUsed = prev + chain.GasPerSystemCall
			b.Txs = append(b.Txs, mb.Txs[0])
			putBlock(t, db, b, append(rs, &r))
		}, audit.CheckBankRef, mintBlock + 3},
		{"receipt status changed", func(t *testing.T, db *pebble.DB) {
			b, rs := getBlock(t, db, transfers)
			rs[0].Status = types.ReceiptStatusFailed
			putBlock(t, db, b, rs)
		}, audit.CheckReceipt, transfers},
		{"receipt status changed (root)", func(t *testing.T, db *pebble.DB) {
			b, rs := getBlock(t, db, transfers)
			rs[0].Status = types.ReceiptStatusFailed
			putBlock(t, db, b, rs)
		}, audit.CheckReceiptsRoot, transfers},
		{"high-S signature", func(t *testing.T, db *pebble.DB) {
			b, rs := getBlock(t, db, transfers)
			tx := b.Txs[0]
			v, r, sv := tx.RawSignatureValues()
			n := new(big.Int).SetBytes(common.FromHex("0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"))
			inner := &types.DynamicFeeTx{ChainID: tx.ChainId(), Nonce: tx.Nonce(), To: tx.To(), Value: tx.Value(),
				Gas: tx.Gas(), GasTipCap: tx.GasTipCap(), GasFeeCap: tx.GasFeeCap(), Data: tx.Data(),
				V: new(big.Int).Xor(v, big.NewInt(1)), R: r, S: new(big.Int).Sub(n, sv)}
			b.Txs[0] = types.NewTx(inner)
			putBlock(t, db, b, rs)
		}, audit.CheckTxSignature, transfers},
		{"refund reason erased", func(t *testing.T, db *pebble.DB) {
			eraseReason(t, db, refundBlock, refundIndex, "WithdrawalRefunded")
		}, audit.CheckComplianceReason, refundBlock},
		{"settlement replayed", func(t *testing.T, db *pebble.DB) {
			appendTx(t, db, settleBlock, settleIndex, settleBlock+2)
		}, audit.CheckWithdrawal, settleBlock + 2},
		{"return replayed", func(t *testing.T, db *pebble.DB) {
			appendTx(t, db, returnBlock, returnIndex, returnBlock+2)
		}, audit.CheckWithdrawal, returnBlock + 2},
		{"reversal replayed", func(t *testing.T, db *pebble.DB) {
			appendTx(t, db, reverseBlock, reverseIndex, reverseBlock+2)
		}, audit.CheckBankRef, reverseBlock + 2},
		{"return reason erased", func(t *testing.T, db *pebble.DB) {
			eraseReason(t, db, returnBlock, returnIndex, "WithdrawalReturned")
		}, audit.CheckComplianceReason, returnBlock},
		{"failure reason altered", func(t *testing.T, db *pebble.DB) {
			setReason(t, db, failedBlock, failedIndex, "account 0x0000000000000000000000000000000000000001 is frozen", true)
		}, audit.CheckReceiptReason, failedBlock},
		{"failure reason kept for a success", func(t *testing.T, db *pebble.DB) {
			setReason(t, db, transfers, 0, "insufficient balance", false)
		}, audit.CheckReceiptReason, transfers},
		{"certificate without quorum", func(t *testing.T, db *pebble.DB) {
			b, rs := getBlock(t, db, 5)
			if len(b.Certs) == 0 {
				t.Fatal("block 5 carries no certificate")
			}
			b.Certs[0].Sigs = b.Certs[0].Sigs[:1]
			putBlock(t, db, b, rs)
		}, audit.CheckCertificateQuorum, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cp := tamper(t, dir, func(db *pebble.DB) { tc.edit(t, db) })
			rep := runDir(t, ac.g, cp, nil)
			var sum bytes.Buffer
			rep.WriteSummary(&sum)
			t.Log(sum.String())
			if rep.OK || !rep.Failed(tc.check, tc.height) {
				js, _ := json.MarshalIndent(rep.Failures, "", " ")
				t.Fatalf("want %s at %d; failures:\n%s", tc.check, tc.height, js)
			}
			// The same failures by RPC, over the tampered data dir.
			db, err := store.Open(cp, store.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			src, err := audit.DialRPC(context.Background(), serveRPC(t, db))
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			byRPC, err := audit.Run(context.Background(), audit.Config{Genesis: ac.g, Source: src, ScratchDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			if a, b := failureKeys(rep, audit.RecordChecks...), failureKeys(byRPC); a != b {
				t.Fatalf("by data dir:\n%s\nby rpc:\n%s", a, b)
			}
		})
	}
}

// eraseReason empties the reason of the event logged by transaction index
// of block height, in its stored receipt.
func eraseReason(t *testing.T, db *pebble.DB, height uint64, index int, event string) {
	t.Helper()
	b, rs := getBlock(t, db, height)
	ev := chain.AssetABI.Events[event]
	for _, l := range rs[index].Logs {
		if l.Topics[0] == ev.ID {
			data, err := ev.Inputs.NonIndexed().Pack(new(big.Int).SetBytes(l.Data[:32]), "")
			if err != nil {
				t.Fatal(err)
			}
			l.Data = data
		}
	}
	putBlock(t, db, b, rs)
}

// appendTx appends transaction index of block from, with its stored
// receipt, to block to: an operation replayed in a later block.
func appendTx(t *testing.T, db *pebble.DB, from uint64, index int, to uint64) {
	t.Helper()
	fb, frs := getBlock(t, db, from)
	b, rs := getBlock(t, db, to)
	r := *frs[index]
	r.CumulativeGasUsed = chain.GasPerSystemCall
	if len(rs) > 0 {
		r.CumulativeGasUsed += rs[len(rs)-1].CumulativeGasUsed
	}
	b.Txs = append(b.Txs, fb.Txs[index])
	putBlock(t, db, b, append(rs, &r))
}

// failureKeys lists (height, tx, check) of each failure, one a line,
// leaving out the checks named in except.
func failureKeys(r *audit.Report, except ...string) string {
	var b bytes.Buffer
	for _, f := range r.Failures {
		if slices.Contains(except, f.Check) {
			continue
		}
		tx := -1
		if f.TxIndex != nil {
			tx = *f.TxIndex
		}
		fmt.Fprintf(&b, "%d %d %s\n", f.Height, tx, f.Check)
	}
	return b.String()
}

func location(t *testing.T, db *store.DB, h common.Hash) (uint64, int) {
	t.Helper()
	n, i, err := db.TxLocation(h)
	if err != nil {
		t.Fatal(err)
	}
	return n, int(i)
}

// TestInputErrors: what cannot be read is an error wrapping ErrSource
// (exit 2), never a report.
func TestInputErrors(t *testing.T) {
	ac := newChain(t)
	if _, err := audit.OpenDataDir(ac.c.Dir); !errors.Is(err, audit.ErrSource) || !errors.Is(err, store.ErrInUse) {
		t.Fatalf("data dir held open: %v", err)
	}
	if _, err := audit.OpenDataDir(t.TempDir() + "/none"); !errors.Is(err, audit.ErrSource) {
		t.Fatalf("missing data dir: %v", err)
	}
	src, err := audit.DialRPC(context.Background(), "http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Run(context.Background(), audit.Config{Genesis: ac.g, Source: src}); !errors.Is(err, audit.ErrSource) {
		t.Fatalf("rpc down: %v", err)
	}
	ac.c.Close()
	for name, mod := range map[string]func(*audit.Config){
		"to above head":           func(c *audit.Config) { to := uint64(1 << 40); c.To = &to },
		"from without checkpoint": func(c *audit.Config) { c.From = 2 },
		"checkpoint without from": func(c *audit.Config) { c.Checkpoint = ac.c.Dir },
		"checkpoint at the wrong head": func(c *audit.Config) {
			c.From, c.Checkpoint = 3, ac.c.Dir
		},
	} {
		src, err := audit.OpenDataDir(ac.c.Dir)
		if err != nil {
			t.Fatal(err)
		}
		cfg := audit.Config{Genesis: ac.g, Source: src, ScratchDir: t.TempDir()}
		mod(&cfg)
		_, err = audit.Run(context.Background(), cfg)
		src.Close()
		if !errors.Is(err, audit.ErrSource) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestRange audits part of a chain: --to stops early without the final
// state; the report counts what was checked.
func TestRange(t *testing.T) {
	ac := newChain(t)
	ac.c.Close()
	to := uint64(5)
	rep := runDir(t, ac.g, ac.c.Dir, func(c *audit.Config) { c.To = &to })
	if !rep.OK || rep.To != 5 || rep.Blocks != 5 || rep.FinalStateChecked || rep.Certificates != 4 || rep.LastCertified == nil || *rep.LastCertified != 4 {
		t.Fatalf("range: %+v", rep)
	}
}

// TestFromCheckpoint audits from a checkpoint taken mid-chain: the same
// checks hold from there, and a failure after it is found.
func TestFromCheckpoint(t *testing.T) {
	c := chaintest.New(t)
	for range 3 {
		c.Apply(c.Transfers(5)...)
	}
	cp := t.TempDir() + "/checkpoint"
	if err := c.DB.Checkpoint(cp); err != nil {
		t.Fatal(err)
	}
	from := c.DB.Tip().Head.Number + 1
	c.Populate()
	head := c.DB.Tip().Head.Number
	c.Close()
	g, err := genesis.Parse(c.GenesisJSON)
	if err != nil {
		t.Fatal(err)
	}
	rep := runDir(t, g, c.Dir, func(cfg *audit.Config) { cfg.From, cfg.Checkpoint = from, cp })
	if !rep.OK || rep.From != from || rep.To != head || rep.Blocks != head-from+1 || !rep.FinalStateChecked || rep.Certificates != head-from+1 {
		js, _ := json.MarshalIndent(rep, "", " ")
		t.Fatalf("from checkpoint at %d:\n%s", from, js)
	}
	// A balance edited after the checkpoint is still found.
	bad := tamper(t, c.Dir, func(db *pebble.DB) {
		k := append([]byte("sb"), 0, 0, 0, 0)
		if err := db.Set(append(k, chaintest.Addr(2).Bytes()...), []byte{1}, nil); err != nil {
			t.Fatal(err)
		}
	})
	rep = runDir(t, g, bad, func(cfg *audit.Config) { cfg.From, cfg.Checkpoint = from, cp })
	if rep.OK || !rep.Failed(audit.CheckFinalState, head) {
		t.Fatalf("tampered after the checkpoint: %+v", rep.Failures)
	}
}
