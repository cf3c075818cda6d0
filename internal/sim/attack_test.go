package sim

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/rpc"
)

// clientsAlone is the clients and attackers of a simulated cluster of
// three nodes and seed 1, with its genesis, without the cluster.
func clientsAlone(t *testing.T) (*genesis.Genesis, *clients) {
	t.Helper()
	g, err := simGenesis(3)
	if err != nil {
		t.Fatal(err)
	}
	c, err := newClients(&Sim{g: g, cfg: Config{Seed: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return g, c
}

// TestAttackersSendWhatGoEthereumRefuses checks the attackers' making
// against go-ethereum's own code, without a cluster: each invalid
// transaction is refused by go-ethereum (its decoder, or the sender
// recovery of its London signer with the chain's id, whose errors its
// pool answers as "invalid sender", or its RPC's refusal of a legacy
// transaction without a chain id), and the node's checks
// (chain.DecodeTx, chain.Sender, rpc.ClientError) refuse it with the
// refusal the simulator expects.
func TestAttackersSendWhatGoEthereumRefuses(t *testing.T) {
	g, c := clientsAlone(t)
	signer := chain.NewSigner(g.ChainIDBig())
	for _, f := range []Fault{FaultMalformed, FaultOversized, FaultWrongChain, FaultBadSignature, FaultTxType} {
		for range 64 {
			raw, want := c.atk.invalid(f)
			tx := new(types.Transaction)
			gerr := tx.UnmarshalBinary(raw)
			if gerr == nil && f != FaultOversized {
				_, gerr = types.Sender(signer, tx)
			}
			if gerr == nil && !tx.Protected() {
				// go-ethereum's RPC (ethapi.SubmitTransaction), unless
				// run with --rpc.allow-unprotected-txs.
				gerr = errors.New("only replay-protected (EIP-155) transactions allowed over RPC")
			}
			if gerr == nil && f == FaultOversized && tx.Size() > chain.MaxTxSize {
				gerr = chain.ErrTxTooLarge
			}
			if gerr == nil {
				t.Errorf("%s: go-ethereum takes %x", f, raw)
				continue
			}
			ntx, err := chain.DecodeTx(raw)
			if err == nil {
				_, err = chain.Sender(signer, ntx)
			}
			if err == nil {
				t.Errorf("%s: the node's checks take %x (go-ethereum: %v)", f, raw, gerr)
				continue
			}
			if werr := want.check(rpc.ClientError(err)); werr != nil {
				t.Errorf("%s: %v", f, werr)
			}
		}
	}
}

// TestRefusalCheck shows what the attackers' refusal check rejects: an
// unavailability, other words, another code.
func TestRefusalCheck(t *testing.T) {
	want := refusal{code: rpc.CodeServerError, words: []string{"invalid sender"}}
	for _, tc := range []struct {
		err error
		ok  bool
	}{
		{&rpc.Error{Code: rpc.CodeServerError, Msg: "invalid sender: invalid transaction signature"}, true},
		{&rpc.Error{Code: rpc.CodeInvalidParams, Msg: "invalid sender: invalid transaction signature"}, false},
		{&rpc.Error{Code: rpc.CodeServerError, Msg: "insufficient funds for gas * price + value"}, false},
		{&rpc.Error{Code: rpc.CodeServerError, Msg: "no leader to forward to: invalid sender"}, false},
		{errConnRefused, false},
	} {
		if err := want.check(tc.err); (err == nil) != tc.ok {
			t.Errorf("%v: check says %v, want ok %v", tc.err, err, tc.ok)
		}
	}
}

// TestConflictingIsAnotherTransaction draws a conflicting transfer with
// the very recipient and amount of the transfer it conflicts with (the
// attackers' stream replayed from the same state): signing being
// deterministic, that would be the transfer itself, which a node rightly
// answers "already known" (seeds 369 and 83). conflicting must send
// another transaction for the same nonce.
func TestConflictingIsAnotherTransaction(t *testing.T) {
	g, c := clientsAlone(t)
	for i := range 16 {
		src := rand.NewPCG(uint64(i), 7)
		c.atk.rng = rand.New(src)
		a := c.accts[i%len(c.accts)]
		at := *src
		tx := c.atk.transfer(a, g.ChainIDBig(), false)
		*src = at // the same draws again: the same recipient and amount
		got := c.atk.conflicting(a, tx)
		if got.Hash() == tx.Hash() {
			t.Fatalf("draw %d: conflicting sent the transfer itself (%s)", i, tx.Hash())
		}
		if got.Nonce() != tx.Nonce() || *got.To() != *tx.To() {
			t.Errorf("draw %d: conflicting sent nonce %d to %s, want nonce %d to %s", i, got.Nonce(), got.To(), tx.Nonce(), tx.To())
		}
		// A draw of another amount is sent as drawn.
		if other := c.atk.conflicting(a, tx); other.Hash() == tx.Hash() || other.Nonce() != tx.Nonce() {
			t.Errorf("draw %d: a second conflicting transfer %s (nonce %d)", i, other.Hash(), other.Nonce())
		}
	}
}
