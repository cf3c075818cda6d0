package main

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

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
