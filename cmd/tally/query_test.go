package main

import (
	"context"
	"encoding/json"
	"errors"
	"math/big"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/internal/chaintest"
	"github.com/tally-ledger/tally/rpc"
	"github.com/tally-ledger/tally/rpc/rpctest"
	"github.com/tally-ledger/tally/wallet"
)

// reasonService answers tally_getTransactionReason as a test sets it.
type reasonService struct {
	answer func() (any, error)
}

func (s *reasonService) GetTransactionReason(common.Hash) (any, error) { return s.answer() }

// TestTxReason: tally tx reads the reason of a failed transaction from
// tally_getTransactionReason as a string (or null when the node has none),
// tolerates a node without the method (older nodes: no reason line), and
// reports any other failure of the call.
func TestTxReason(t *testing.T) {
	hash := common.HexToHash("0x01")
	tests := []struct {
		name    string
		serve   bool // register the method at all
		answer  func() (any, error)
		want    string
		wantErr string
	}{
		{"a reason", true, func() (any, error) { s := "balance over the limit of tier 0"; return &s, nil }, "balance over the limit of tier 0", ""},
		{"no reason kept", true, func() (any, error) { return nil, nil }, "", ""},
		{"an object with a reason", true, func() (any, error) { return map[string]string{"reason": "frozen"}, nil }, "frozen", ""},
		{"a node before reasons", false, nil, "", ""},
		{"a failing node", true, func() (any, error) { return nil, errors.New("node halted") }, "", "node halted"},
		{"a strange answer", true, func() (any, error) { return 42, nil }, "", "unexpected answer 42"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := gethrpc.NewServer()
			defer srv.Stop()
			if tc.serve {
				if err := srv.RegisterName("tally", &reasonService{answer: tc.answer}); err != nil {
					t.Fatal(err)
				}
			}
			ts := httptest.NewServer(srv)
			defer ts.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			client, err := wallet.Dial(ctx, ts.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			got, err := txReason(ctx, client, hash)
			if got != tc.want || (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("txReason: %q, %v; want %q, error containing %q", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// pendingBackend serves one transaction as pending (admitted, in no block).
type pendingBackend struct {
	*rpctest.Backend
	tx   *types.Transaction
	from common.Address
}

func (b *pendingBackend) PendingTx(h common.Hash) (*types.Transaction, common.Address, bool) {
	if h == b.tx.Hash() {
		return b.tx, b.from, true
	}
	return nil, common.Address{}, false
}

// TestTxPending: a transaction admitted but not yet in a block reads as
// pending, decoded, with no block, receipt or events.
func TestTxPending(t *testing.T) {
	c := chaintest.New(t)
	tx := c.Asset(0, 1, "transferWithReference", chaintest.Addr(1), big.NewInt(1250), [32]byte{'O', 'R', 'D', 'E', 'R', '-', '7'})
	ts := rpctest.Serve(t, &pendingBackend{rpctest.NewBackend(c.DB, c.Senders), tx, chaintest.Addr(0)}, rpc.DefaultLimits)
	r := tally(t, "", "tx", tx.Hash().Hex(), "--rpc", ts.URL)
	for _, want := range []string{"status:    pending\n", "operation: transferWithReference (HKD)\n", "  amount:  12.50 HKD\n", "  ref:     ORDER-7\n"} {
		if r.code != exitOK || !strings.Contains(r.stdout, want) {
			t.Fatalf("tx of a pending transaction lacks %q: %+v", want, r)
		}
	}
	if strings.Contains(r.stdout, "block:") || strings.Contains(r.stdout, "events:") {
		t.Fatalf("a pending transaction shows a block or events:\n%s", r.stdout)
	}
	r = tally(t, "", "tx", tx.Hash().Hex(), "--rpc", ts.URL, "--json")
	var doc txJSON
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || r.code != exitOK {
		t.Fatalf("tx --json: %v %+v", err, r)
	}
	if doc.Status != "pending" || doc.BlockNumber != nil || doc.BlockHash != nil || doc.Index != nil || len(doc.Events) != 0 || doc.Call.Operation != "transferWithReference" {
		t.Fatalf("tx --json of a pending transaction: %+v", doc)
	}
	if !strings.Contains(r.stdout, `"blockNumber": null`) || !strings.Contains(r.stdout, `"events": []`) {
		t.Fatalf("tx --json of a pending transaction: want blockNumber null and events []:\n%s", r.stdout)
	}
}
