package wallet

import (
	"context"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/audit"
	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/wallet/wallettest"
)

// TestAgainstNode runs the client against a real tallyd dev node.
func TestAgainstNode(t *testing.T) {
	node := wallettest.StartDevNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := Dial(ctx, node.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	id, err := c.ChainID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if id.Int64() != genesis.DevChainID {
		t.Fatalf("chain id %v, want %d", id, genesis.DevChainID)
	}

	t.Run("CertificateAndProof", func(t *testing.T) {
		tx, err := c.Transfer(ctx, devKey(t, 0), freshAddress(t), big.NewInt(7))
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.WaitReceipt(ctx, tx.Hash())
		if err != nil {
			t.Fatal(err)
		}
		var cert *Certificate
		var proof *chain.TxProof
		deadline := time.Now().Add(15 * time.Second)
		for cert == nil || proof == nil {
			if time.Now().After(deadline) {
				t.Fatalf("block %v not certified within 15 s (certificate %v, proof error %v)", r.BlockNumber, cert, err)
			}
			time.Sleep(100 * time.Millisecond)
			if cert == nil {
				if cert, err = c.Certificate(ctx, r.BlockNumber.Uint64()); err != nil {
					t.Fatal(err)
				}
			}
			if proof == nil {
				proof, err = c.Proof(ctx, tx.Hash()) // "not certified yet" until a later block carries the certificate
			}
		}
		if cert.Hash != r.BlockHash || cert.Quorum != 1 || len(cert.Signatures) != 1 {
			t.Fatalf("certificate %+v for block %s", cert, r.BlockHash)
		}
		res, err := audit.VerifyProof(proof, genesis.Dev())
		if err != nil {
			t.Fatalf("proof from the node does not verify offline: %v", err)
		}
		if res.TxHash != tx.Hash() {
			t.Fatalf("proof is of tx %s, want %s", res.TxHash, tx.Hash())
		}
		if _, err := c.Certificate(ctx, 1<<40); err == nil {
			t.Fatal("certificate of a block above the head: no error")
		}
	})

	t.Run("BankEdge", func(t *testing.T) { testBankEdge(ctx, t, c) })

	t.Run("Transfer", func(t *testing.T) {
		for _, legacy := range []bool{false, true} {
			from := devKey(t, 0)
			to := freshAddress(t)
			value, _ := ParseAmount("1.5", NativeDecimals)
			fromBefore, err := c.Balance(ctx, from.Address())
			if err != nil {
				t.Fatal(err)
			}
			if fromBefore.Sign() == 0 {
				t.Fatalf("dev account 0 has no funds")
			}
			send := c.Transfer
			if legacy {
				send = c.TransferLegacy
			}
			tx, err := send(ctx, from, to, value)
			if err != nil {
				t.Fatal(err)
			}
			r, err := c.WaitReceipt(ctx, tx.Hash())
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != types.ReceiptStatusSuccessful {
				t.Fatalf("legacy=%v: status %d", legacy, r.Status)
			}
			if r.GasUsed != chain.GasPerTransfer || r.BlockNumber.Sign() <= 0 || r.TxHash != tx.Hash() {
				t.Fatalf("receipt gasUsed %d block %v hash %s", r.GasUsed, r.BlockNumber, r.TxHash)
			}
			fromAfter, err := c.Balance(ctx, from.Address())
			if err != nil {
				t.Fatal(err)
			}
			toAfter, err := c.Balance(ctx, to)
			if err != nil {
				t.Fatal(err)
			}
			if d := new(big.Int).Sub(fromBefore, fromAfter); d.Cmp(value) != 0 {
				t.Errorf("sender balance fell by %v, want exactly %v (no fees)", d, value)
			}
			if toAfter.Cmp(value) != 0 {
				t.Errorf("recipient balance %v, want %v", toAfter, value)
			}

			got, pending, err := c.TransactionByHash(ctx, tx.Hash())
			if err != nil {
				t.Fatal(err)
			}
			if pending || got.Hash() != tx.Hash() {
				t.Fatalf("TransactionByHash: pending=%v hash %s", pending, got.Hash())
			}
			b, err := c.BlockByNumber(ctx, r.BlockNumber)
			if err != nil {
				t.Fatal(err)
			}
			if b.Hash() != r.BlockHash || b.Transaction(tx.Hash()) == nil {
				t.Fatalf("block %v: hash %s (receipt says %s), tx included %v", r.BlockNumber, b.Hash(), r.BlockHash, b.Transaction(tx.Hash()) != nil)
			}
		}
	})

	t.Run("SendRawBatch", func(t *testing.T) {
		const n = 50
		from := devKey(t, 3)
		to := freshAddress(t)
		value := big.NewInt(1_000_000_007)
		nonce, err := c.PendingNonce(ctx, from.Address())
		if err != nil {
			t.Fatal(err)
		}
		raws := make([][]byte, n)
		want := make([]common.Hash, n)
		for i := range raws {
			tx, err := SignTransfer(from, id, nonce+uint64(i), to, value, true)
			if err != nil {
				t.Fatal(err)
			}
			if raws[i], err = tx.MarshalBinary(); err != nil {
				t.Fatal(err)
			}
			want[i] = tx.Hash()
		}
		hashes, errs, err := c.SendRawBatch(ctx, raws)
		if err != nil {
			t.Fatal(err)
		}
		for i := range raws {
			if errs[i] != nil {
				t.Fatalf("item %d: %v", i, errs[i])
			}
			if hashes[i] != want[i] {
				t.Fatalf("item %d: hash %s, want %s", i, hashes[i], want[i])
			}
		}
		for i, h := range hashes {
			r, err := c.WaitReceipt(ctx, h)
			if err != nil {
				t.Fatalf("item %d: %v", i, err)
			}
			if r.Status != types.ReceiptStatusSuccessful {
				t.Fatalf("item %d: status %d", i, r.Status)
			}
		}
		bal, err := c.Balance(ctx, to)
		if err != nil {
			t.Fatal(err)
		}
		if want := new(big.Int).Mul(value, big.NewInt(n)); bal.Cmp(want) != 0 {
			t.Fatalf("recipient balance %v, want %v", bal, want)
		}
		if next, err := c.PendingNonce(ctx, from.Address()); err != nil || next != nonce+n {
			t.Fatalf("pending nonce %d (%v), want %d", next, err, nonce+n)
		}

		// Per-item errors: a replayed transaction and garbage, next to a good one.
		good, err := SignTransfer(from, id, nonce+n, to, value, false)
		if err != nil {
			t.Fatal(err)
		}
		goodRaw, _ := good.MarshalBinary()
		hashes, errs, err = c.SendRawBatch(ctx, [][]byte{raws[0], {0x01, 0x02}, goodRaw})
		if err != nil {
			t.Fatal(err)
		}
		if errs[0] == nil || errs[1] == nil {
			t.Fatalf("replayed and garbage items accepted: %v", errs)
		}
		if errs[2] != nil || hashes[2] != good.Hash() {
			t.Fatalf("good item: %v, hash %s", errs[2], hashes[2])
		}
		if _, err := c.WaitReceipt(ctx, good.Hash()); err != nil {
			t.Fatal(err)
		}
		if h, e, err := c.SendRawBatch(ctx, nil); h != nil || e != nil || err != nil {
			t.Fatalf("empty batch: %v %v %v", h, e, err)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		unknown := common.HexToHash("0x1234")
		if _, _, err := c.TransactionByHash(ctx, unknown); !errors.Is(err, ErrNotFound) {
			t.Fatalf("TransactionByHash(unknown): %v, want ErrNotFound", err)
		}
		if _, err := c.Receipt(ctx, unknown); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Receipt(unknown): %v, want ErrNotFound", err)
		}
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		if _, err := c.WaitReceipt(short, unknown); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitReceipt(unknown): %v, want deadline exceeded", err)
		}
		if _, err := c.BlockByNumber(ctx, big.NewInt(1<<40)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("BlockByNumber(future): %v, want ErrNotFound", err)
		}
		latest, err := c.BlockByNumber(ctx, nil)
		if err != nil || latest.NumberU64() == 0 {
			t.Fatalf("latest block: %v, %v", latest, err)
		}
	})

	t.Run("Failover", func(t *testing.T) { testFailover(ctx, t, node.URL) })

	t.Run("Refused", func(t *testing.T) {
		// An unfunded account's transfer is refused at admission.
		k, err := crypto.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Transfer(ctx, k, freshAddress(t), big.NewInt(1)); err == nil {
			t.Fatal("transfer from an unfunded account was admitted")
		}
	})
}

func devKey(t *testing.T, i uint32) *crypto.PrivateKey {
	t.Helper()
	k, err := genesis.DevKey(i)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func freshAddress(t *testing.T) common.Address {
	t.Helper()
	k, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k.Address()
}
