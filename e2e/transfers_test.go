package e2e

import (
	"context"
	"crypto/ecdsa"
	"fmt"
	"math/big"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
)

const (
	transferSenders    = 10  // dev accounts 0..9
	transfersPerSender = 200 // 2,000 transfers in all
	transferRecipients = 50
)

// transferValue is the value of sender s's j-th transfer: distinct for every
// transfer, and small.
func transferValue(s, j int) *big.Int { return bigU(uint64(s)*1_000_000 + uint64(j) + 1) }

// newTransfer returns an unsigned transfer; kind selects legacy (0),
// EIP-1559 (1) or EIP-2930 (2). Gas price 0: Tally has no fees.
func newTransfer(kind int, chainID *big.Int, nonce uint64, to common.Address, value *big.Int) *types.Transaction {
	switch kind % 3 {
	case 0:
		return types.NewTx(&types.LegacyTx{Nonce: nonce, GasPrice: new(big.Int), Gas: 21000, To: &to, Value: value})
	case 1:
		return types.NewTx(&types.DynamicFeeTx{ChainID: chainID, Nonce: nonce, GasTipCap: new(big.Int), GasFeeCap: new(big.Int), Gas: 21000, To: &to, Value: value})
	default:
		return types.NewTx(&types.AccessListTx{ChainID: chainID, Nonce: nonce, GasPrice: new(big.Int), Gas: 21000, To: &to, Value: value})
	}
}

func signTx(t *testing.T, tx *types.Transaction, chainID *big.Int, key *ecdsa.PrivateKey) *types.Transaction {
	t.Helper()
	signed, err := types.SignTx(tx, types.LatestSignerForChainID(chainID), key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return signed
}

// accountState is what the test expects of an account.
type accountState struct {
	balance *big.Int
	nonce   uint64
}

// checkAccounts compares balances and nonces (latest state) with want.
func checkAccounts(ctx context.Context, t *testing.T, ec *ethclient.Client, want map[common.Address]accountState, when string) {
	t.Helper()
	bad := 0
	for a, w := range want {
		bal, err := ec.BalanceAt(ctx, a, nil)
		if err != nil {
			t.Fatalf("%s: eth_getBalance(%s): %v", when, a, err)
		}
		nonce, err := ec.NonceAt(ctx, a, nil)
		if err != nil {
			t.Fatalf("%s: eth_getTransactionCount(%s): %v", when, a, err)
		}
		if bal.Cmp(w.balance) != 0 || nonce != w.nonce {
			bad++
			if bad <= 10 {
				t.Errorf("%s: account %s: balance %s nonce %d, want balance %s nonce %d", when, a, bal, nonce, w.balance, w.nonce)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%s: %d of %d accounts differ from the expected state", when, bad, len(want))
	}
}

// verifyChain fetches every block from 0 to head with ethclient (which
// recomputes each header hash from the JSON fields and checks the
// transaction list against the header) and checks that the recomputed hash
// equals the node's, that parents link, and that the transaction root
// commits to the transactions received.
func verifyChain(ctx context.Context, t *testing.T, ec *ethclient.Client, head uint64) []blockInfo {
	t.Helper()
	infos := make([]blockInfo, 0, head+1)
	for h := uint64(0); h <= head; h++ {
		blk, err := ec.BlockByNumber(ctx, bigU(h))
		if err != nil {
			t.Fatalf("ethclient BlockByNumber(%d): %v", h, err)
		}
		hdr, err := ec.HeaderByNumber(ctx, bigU(h))
		if err != nil {
			t.Fatalf("ethclient HeaderByNumber(%d): %v", h, err)
		}
		raw := rawBlock(ctx, t, ec, h)
		switch {
		case blk.NumberU64() != h:
			t.Fatalf("block %d: number %d", h, blk.NumberU64())
		case blk.Hash() != raw.Hash:
			t.Fatalf("block %d: recomputed hash %s != node's hash %s", h, blk.Hash(), raw.Hash)
		case hdr.Hash() != raw.Hash:
			t.Fatalf("block %d: HeaderByNumber hash %s != node's hash %s", h, hdr.Hash(), raw.Hash)
		case blk.Root() != raw.StateRoot || hdr.Root != raw.StateRoot:
			t.Fatalf("block %d: state root %s / %s != JSON stateRoot %s", h, blk.Root(), hdr.Root, raw.StateRoot)
		case h > 0 && blk.ParentHash() != infos[h-1].Hash:
			t.Fatalf("block %d: parent hash %s != hash of block %d %s", h, blk.ParentHash(), h-1, infos[h-1].Hash)
		case chain.TxRoot(blk.Transactions()) != blk.TxHash():
			t.Fatalf("block %d: transactionsRoot %s does not commit to its %d transactions (root %s)", h, blk.TxHash(), len(blk.Transactions()), chain.TxRoot(blk.Transactions()))
		case len(blk.Transactions()) != len(raw.TxHashes):
			t.Fatalf("block %d: %d full transactions, %d hashes", h, len(blk.Transactions()), len(raw.TxHashes))
		}
		for i, tx := range blk.Transactions() {
			if tx.Hash() != raw.TxHashes[i] {
				t.Fatalf("block %d tx %d: hash %s, node lists %s", h, i, tx.Hash(), raw.TxHashes[i])
			}
		}
		infos = append(infos, raw)
	}
	return infos
}

// comparePrefix checks that every height of old has the same hash and state
// root in cur.
func comparePrefix(t *testing.T, old, cur []blockInfo, when string) {
	t.Helper()
	if len(cur) < len(old) {
		t.Fatalf("%s: head %d is below the old head %d", when, len(cur)-1, len(old)-1)
	}
	for h := range old {
		if old[h].Hash != cur[h].Hash || old[h].StateRoot != cur[h].StateRoot {
			t.Fatalf("%s: block %d changed: hash %s root %s, was hash %s root %s", when, h, cur[h].Hash, cur[h].StateRoot, old[h].Hash, old[h].StateRoot)
		}
	}
}

func TestTransfersSurviveKill(t *testing.T) {
	skipShort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	datadir := filepath.Join(t.TempDir(), "data")

	n := startNode(t, datadir)
	ec := n.client()
	n.waitLeader(readyTimeout)
	id, err := ec.ChainID(ctx)
	if err != nil {
		t.Fatalf("eth_chainId: %v", err)
	}
	if id.Cmp(big.NewInt(devChainID)) != 0 {
		t.Fatalf("chain id %v, want %d", id, devChainID)
	}
	chainID := big.NewInt(devChainID)

	// Fresh recipients: keys generated now, so no one has ever used them.
	recipients := make([]common.Address, transferRecipients)
	for i := range recipients {
		k, err := ethcrypto.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		recipients[i] = ethcrypto.PubkeyToAddress(k.PublicKey)
	}

	// Sign everything up front so submission measures the node alone.
	want := make(map[common.Address]accountState)
	for _, r := range recipients {
		want[r] = accountState{balance: new(big.Int)}
	}
	checkAccounts(ctx, t, ec, want, "recipients before") // all fresh: zero
	keys := make([]*ecdsa.PrivateKey, transferSenders)
	txs := make([][]*types.Transaction, transferSenders)
	for s := range transferSenders {
		keys[s] = devKey(t, uint32(s))
		from := ethcrypto.PubkeyToAddress(keys[s].PublicKey)
		nonce, err := ec.PendingNonceAt(ctx, from)
		if err != nil {
			t.Fatalf("eth_getTransactionCount(%s, pending): %v", from, err)
		}
		if nonce != 0 {
			t.Fatalf("dev account %d: pending nonce %d on a fresh chain", s, nonce)
		}
		sent := new(big.Int)
		for j := range transfersPerSender {
			to := recipients[(s*transfersPerSender+j)%transferRecipients]
			v := transferValue(s, j)
			tx := signTx(t, newTransfer(j, chainID, nonce+uint64(j), to, v), chainID, keys[s])
			txs[s] = append(txs[s], tx)
			want[to].balance.Add(want[to].balance, v)
			sent.Add(sent, v)
		}
		want[from] = accountState{balance: new(big.Int).Sub(genesis.DevBalance, sent), nonce: transfersPerSender}
	}
	for s := transferSenders; s < genesis.DevAccounts; s++ { // untouched dev accounts
		want[ethcrypto.PubkeyToAddress(devKey(t, uint32(s)).PublicKey)] = accountState{balance: new(big.Int).Set(genesis.DevBalance)}
	}

	// Submit: one goroutine per sender, sequential nonces; a poller per
	// sender collects its receipts in nonce order meanwhile.
	total := transferSenders * transfersPerSender
	receipts := make([][]*types.Receipt, transferSenders)
	submitErrs := make([]error, transferSenders)
	receiptErrs := make([]error, transferSenders)
	lastReceipt := make([]time.Duration, transferSenders)
	var submitWG, receiptWG sync.WaitGroup
	start := time.Now()
	for s := range transferSenders {
		submitWG.Add(1)
		go func() {
			defer submitWG.Done()
			for j, tx := range txs[s] {
				if err := ec.SendTransaction(ctx, tx); err != nil {
					submitErrs[s] = fmt.Errorf("sender %d transfer %d (nonce %d, type %d): %w", s, j, tx.Nonce(), tx.Type(), err)
					return
				}
			}
		}()
		receiptWG.Add(1)
		go func() {
			defer receiptWG.Done()
			for _, tx := range txs[s] {
				r, err := waitReceipt(ctx, ec, tx.Hash(), 60*time.Second)
				if err != nil {
					receiptErrs[s] = fmt.Errorf("sender %d nonce %d: %w", s, tx.Nonce(), err)
					return
				}
				receipts[s] = append(receipts[s], r)
			}
			lastReceipt[s] = time.Since(start)
		}()
	}
	submitWG.Wait()
	submitDur := time.Since(start)
	for _, err := range submitErrs {
		if err != nil {
			cancel() // stop the pollers
			receiptWG.Wait()
			t.Fatalf("submit: %v", err)
		}
	}
	receiptWG.Wait()
	for _, err := range receiptErrs {
		if err != nil {
			t.Fatalf("receipts: %v", err)
		}
	}
	var toLast time.Duration
	for _, d := range lastReceipt {
		toLast = max(toLast, d)
	}
	t.Logf("%d transfers from %d senders: submitted in %v (%.0f/s), last receipt after %v: %.0f transfers/s end to end",
		total, transferSenders, submitDur.Round(time.Millisecond), float64(total)/submitDur.Seconds(),
		toLast.Round(time.Millisecond), float64(total)/toLast.Seconds())

	// Every receipt: success, in a block.
	type location struct {
		block uint64
		hash  common.Hash
		index uint
	}
	where := make(map[common.Hash]location, total)
	blocksUsed := make(map[uint64]bool)
	for s := range transferSenders {
		for j, r := range receipts[s] {
			tx := txs[s][j]
			switch {
			case r.TxHash != tx.Hash():
				t.Fatalf("receipt for %s names tx %s", tx.Hash(), r.TxHash)
			case r.Status != types.ReceiptStatusSuccessful:
				t.Fatalf("sender %d nonce %d: receipt status %d, want 1", s, tx.Nonce(), r.Status)
			case r.BlockNumber == nil || r.BlockNumber.Sign() <= 0 || r.BlockHash == (common.Hash{}):
				t.Fatalf("sender %d nonce %d: receipt without a block (number %v, hash %s)", s, tx.Nonce(), r.BlockNumber, r.BlockHash)
			}
			where[tx.Hash()] = location{block: r.BlockNumber.Uint64(), hash: r.BlockHash, index: r.TransactionIndex}
			blocksUsed[r.BlockNumber.Uint64()] = true
		}
	}
	t.Logf("the %d transfers landed in %d blocks", total, len(blocksUsed))

	checkAccounts(ctx, t, ec, want, "after the transfers")

	// The whole chain, block by block, through ethclient.
	verifyStart := time.Now()
	head := headNumber(ctx, t, ec)
	chainBefore := verifyChain(ctx, t, ec, head)
	inBlocks := 0
	for h, b := range chainBefore {
		for i, txh := range b.TxHashes {
			loc, ok := where[txh]
			if !ok {
				t.Fatalf("block %d holds tx %s that the test never sent", h, txh)
			}
			if loc.block != uint64(h) || loc.hash != b.Hash || loc.index != uint(i) {
				t.Fatalf("tx %s is in block %d (%s) at index %d, its receipt says block %d (%s) index %d", txh, h, b.Hash, i, loc.block, loc.hash, loc.index)
			}
			inBlocks++
		}
	}
	if inBlocks != total {
		t.Fatalf("the chain holds %d transactions, want exactly %d", inBlocks, total)
	}
	t.Logf("verified blocks 0..%d (hash recomputed by ethclient, parent links, tx roots) in %v", head, time.Since(verifyStart).Round(time.Millisecond))

	// SIGKILL, then restart on the same data dir.
	n.kill()
	n = startNode(t, datadir)
	ec = n.client()
	opened, openedHash, _ := n.openedHead()
	if opened < head {
		t.Fatalf("after SIGKILL the state opened at height %d (%s), below the receipted head %d", opened, openedHash, head)
	}
	newHead := headNumber(ctx, t, ec)
	if newHead < head {
		t.Fatalf("after SIGKILL eth_blockNumber is %d, below the old head %d", newHead, head)
	}
	t.Logf("after SIGKILL: state opened at height %d, eth_blockNumber %d, old head %d", opened, newHead, head)
	chainAfter := verifyChain(ctx, t, ec, newHead)
	comparePrefix(t, chainBefore, chainAfter, "after SIGKILL")
	if chainAfter[opened].Hash != openedHash {
		t.Fatalf("after SIGKILL: opened head %d hash %s, chain has %s", opened, openedHash, chainAfter[opened].Hash)
	}
	for s := range transferSenders {
		for _, tx := range txs[s] {
			r, err := ec.TransactionReceipt(ctx, tx.Hash())
			if err != nil {
				t.Fatalf("after SIGKILL: receipt of sender %d nonce %d (%s): %v", s, tx.Nonce(), tx.Hash(), err)
			}
			loc := where[tx.Hash()]
			if r.Status != types.ReceiptStatusSuccessful || r.BlockNumber.Uint64() != loc.block || r.BlockHash != loc.hash || r.TransactionIndex != loc.index {
				t.Fatalf("after SIGKILL: receipt of %s: status %d block %v (%s) index %d, was status 1 block %d (%s) index %d",
					tx.Hash(), r.Status, r.BlockNumber, r.BlockHash, r.TransactionIndex, loc.block, loc.hash, loc.index)
			}
		}
	}
	checkAccounts(ctx, t, ec, want, "after SIGKILL and restart")

	// The node still works: one more transfer is receipted.
	fresh, err := ethcrypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	to := ethcrypto.PubkeyToAddress(fresh.PublicKey)
	from0 := ethcrypto.PubkeyToAddress(keys[0].PublicKey)
	nonce, err := ec.PendingNonceAt(ctx, from0)
	if err != nil {
		t.Fatalf("pending nonce after restart: %v", err)
	}
	if nonce != transfersPerSender {
		t.Fatalf("pending nonce of dev account 0 after restart: %d, want %d", nonce, transfersPerSender)
	}
	extra := signTx(t, newTransfer(1, chainID, nonce, to, big.NewInt(7)), chainID, keys[0])
	sendStart := time.Now()
	if err := ec.SendTransaction(ctx, extra); err != nil {
		t.Fatalf("transfer after restart: %v", err)
	}
	r, err := waitReceipt(ctx, ec, extra.Hash(), 30*time.Second)
	if err != nil {
		t.Fatalf("transfer after restart: %v", err)
	}
	if r.Status != types.ReceiptStatusSuccessful || r.BlockNumber == nil || r.BlockNumber.Uint64() <= head {
		t.Fatalf("transfer after restart: status %d in block %v (old head %d)", r.Status, r.BlockNumber, head)
	}
	t.Logf("transfer after restart receipted in %v, block %d", time.Since(sendStart).Round(time.Millisecond), r.BlockNumber)
	want[to] = accountState{balance: big.NewInt(7)}
	want[from0] = accountState{balance: new(big.Int).Sub(want[from0].balance, big.NewInt(7)), nonce: transfersPerSender + 1}
	checkAccounts(ctx, t, ec, want, "after the transfer after restart")

	// A clean stop (SIGTERM) and a restart resume at the same head.
	stopHead := headNumber(ctx, t, ec)
	stopInfo := rawBlock(ctx, t, ec, stopHead)
	n.stop()
	n = startNode(t, datadir)
	ec = n.client()
	opened, openedHash, openedRoot := n.openedHead()
	if opened < stopHead {
		t.Fatalf("after SIGTERM the state opened at height %d, below the head %d seen before the stop", opened, stopHead)
	}
	t.Logf("after SIGTERM: head before the stop >= %d, state opened at height %d", stopHead, opened)
	if got := rawBlock(ctx, t, ec, stopHead); got.Hash != stopInfo.Hash || got.StateRoot != stopInfo.StateRoot {
		t.Fatalf("after SIGTERM: block %d is %s (root %s), was %s (root %s)", stopHead, got.Hash, got.StateRoot, stopInfo.Hash, stopInfo.StateRoot)
	}
	if got := rawBlock(ctx, t, ec, opened); got.Hash != openedHash || got.StateRoot != openedRoot {
		t.Fatalf("after SIGTERM: opened head %d %s (root %s), chain has %s (root %s)", opened, openedHash, openedRoot, got.Hash, got.StateRoot)
	}
	finalChain := verifyChain(ctx, t, ec, headNumber(ctx, t, ec))
	comparePrefix(t, chainAfter, finalChain, "after SIGTERM")
	if r2, err := ec.TransactionReceipt(ctx, extra.Hash()); err != nil || r2.BlockHash != r.BlockHash || r2.Status != types.ReceiptStatusSuccessful {
		t.Fatalf("after SIGTERM: receipt of the transfer after restart: %v, %+v", err, r2)
	}
	checkAccounts(ctx, t, ec, want, "after SIGTERM and restart")
}
