package main

import (
	"encoding/json"
	"math/big"
	"slices"
	"testing"

	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/internal/chaintest"
	"github.com/tally-ledger/tally/rpc"
	"github.com/tally-ledger/tally/rpc/rpctest"
)

// TestHistoryAssetPaging: 'tally history --asset' pages through a history
// longer than the node's largest page (500) where the asset's entries are
// far apart: it reads on across the node's pages, keeps only the asset's
// entries (a failed call of the facade included: it moved nothing), and
// its cursor continues right after the last entry shown, so the pages
// together are exactly the asset's entries, newest first, each once.
func TestHistoryAssetPaging(t *testing.T) {
	c := chaintest.New(t)
	sender, to := uint32(0), chaintest.Addr(1)
	// Oldest first: h1 (0.01 HKD) and h2 (more HKD than the sender has:
	// status 0) in one block, 600 transfers of CNY, h3 (0.02 HKD).
	h1, h2 := c.Asset(sender, 1, "transfer", to, big.NewInt(1)), c.Asset(sender, 1, "transfer", to, new(big.Int).Exp(big.NewInt(10), big.NewInt(20), nil))
	if st := chaintest.Status(c.Apply(h1, h2)); st[0] != 1 || st[1] != 0 {
		t.Fatalf("statuses %v, want [1 0]", st)
	}
	var cny []string // newest first
	for b := 0; b < 3; b++ {
		txs := make([]*types.Transaction, 200)
		for i := range txs {
			txs[i] = c.Tx(sender, to, big.NewInt(1), nil)
		}
		c.Apply(txs...)
		for _, tx := range txs {
			cny = append([]string{tx.Hash().Hex()}, cny...)
		}
	}
	h3 := c.Asset(sender, 1, "transfer", to, big.NewInt(2))
	c.Apply(h3)
	ts := rpctest.Serve(t, rpctest.NewBackend(c.DB, c.Senders), rpc.DefaultLimits)
	addr := chaintest.Addr(sender).Hex()

	// pages runs 'tally history' from the first page to the last and
	// returns the pages' transaction hashes and statuses.
	pages := func(limit string, extra ...string) (hashes [][]string, statuses []string) {
		t.Helper()
		var cursor []string
		for range 10 {
			args := append(append([]string{"history", addr, "--limit", limit, "--json", "--rpc", ts.URL}, extra...), cursor...)
			r := tally(t, "", args...)
			if r.code != exitOK {
				t.Fatalf("history %v: %+v", args, r)
			}
			var doc historyJSON
			if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
				t.Fatalf("history --json: %v\n%s", err, r.stdout)
			}
			var page []string
			for _, it := range doc.Items {
				page = append(page, it.TxHash.Hex())
				statuses = append(statuses, it.Status)
			}
			hashes = append(hashes, page)
			if doc.NextCursor == nil {
				return hashes, statuses
			}
			cursor = []string{"--cursor", doc.NextCursor.String()}
		}
		t.Fatal("more than 10 pages")
		return nil, nil
	}

	got, statuses := pages("2", "--asset", "HKD")
	want := [][]string{{h3.Hash().Hex(), h2.Hash().Hex()}, {h1.Hash().Hex()}}
	if !slices.EqualFunc(got, want, slices.Equal) || !slices.Equal(statuses, []string{"success", "failed", "success"}) {
		t.Fatalf("HKD pages %v (%v), want %v (success, failed, success)", got, statuses, want)
	}
	// 600 CNY entries in pages of 500: the first ends one entry into the
	// node's second page; the last has the 100 left.
	got, _ = pages("500", "--asset", "CNY")
	if len(got) != 2 || !slices.Equal(got[0], cny[:500]) || !slices.Equal(got[1], cny[500:]) {
		t.Fatalf("CNY pages: %d pages, want the 600 CNY transfers in pages of 500 and 100", len(got))
	}
	// The asset's oldest entry is the history's oldest: one page, no cursor.
	got, _ = pages("3", "--asset", "HKD")
	if len(got) != 1 || len(got[0]) != 3 {
		t.Fatalf("HKD in one page of 3: %v", got)
	}
	// Without --asset, a page is the node's page.
	got, _ = pages("250")
	var all []string
	for _, p := range got {
		all = append(all, p...)
	}
	wantAll := append(append([]string{h3.Hash().Hex()}, cny...), h2.Hash().Hex(), h1.Hash().Hex())
	if len(got) != 3 || !slices.Equal(all, wantAll) {
		t.Fatalf("every entry: %d pages, %d entries; want 3 pages of the 603 entries newest first", len(got), len(all))
	}
}
