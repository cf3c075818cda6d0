package rpc

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/internal/chaintest"
)

// TestGetProof asks a real server for proofs: a certified transaction's
// proof is served in canonical form, a transaction in the uncertified head is
// CodeUnavailable (retry), an unknown one an error.
func TestGetProof(t *testing.T) {
	c := chaintest.New(t)
	s := c.Populate()
	newest := c.Apply(c.Transfers(1)...)
	rc := serveRaw(t, c.DB, c.Senders)

	for _, h := range []common.Hash{s.Transfer, s.After} {
		var raw json.RawMessage
		if err := rc.Call(&raw, "tally_getProof", h); err != nil {
			t.Fatal(err)
		}
		p, err := chain.DecodeTxProof(raw)
		if err != nil {
			t.Fatalf("proof of %s as sent: %v", h, err)
		}
		// (audit imports rpc: audit's and cmd/tally's tests verify proofs
		// served; here the bytes must be the state's proof, canonical.)
		want, err := c.DB.TxProof(h)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := want.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(raw, enc) {
			t.Fatalf("proof of %s as sent differs from the state's", h)
		}
		if tx, err := chain.DecodeTx(p.Tx); err != nil || tx.Hash() != h {
			t.Fatalf("proof of %s carries tx %v (%v)", h, tx, err)
		}
	}
	var raw json.RawMessage
	err := rc.Call(&raw, "tally_getProof", newest.Block.Txs[0].Hash())
	wantFilterErr(t, "uncertified", err, CodeUnavailable, "not certified yet, retry")
	err = rc.Call(&raw, "tally_getProof", common.Hash{1})
	wantFilterErr(t, "unknown", err, CodeServerError, "not found")
	err = rc.Call(&raw, "tally_getProof", "0x12")
	wantFilterErr(t, "bad hash", err, CodeInvalidParams, "")
}
