package node

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/ethclient"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/consensus"
	"github.com/tally-ledger/tally/genesis"
)

// startDevNode starts a dev node in dir; edit, if given, changes its
// config first.
func startDevNode(t testing.TB, dir string, edit ...func(*Config)) *Node {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Dev = true
	cfg.DataDir = dir
	cfg.HTTP.Port = 0
	cfg.Raft.HeartbeatTimeout = Duration(200 * time.Millisecond)
	cfg.Raft.ElectionTimeout = Duration(200 * time.Millisecond)
	cfg.Raft.LeaderLeaseTimeout = Duration(100 * time.Millisecond)
	for _, e := range edit {
		e(&cfg)
	}
	n, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for !n.engine.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("dev node never became leader")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return n
}

func dial(t testing.TB, n *Node) (*ethclient.Client, *gethrpc.Client) {
	t.Helper()
	rc, err := gethrpc.Dial("http://" + n.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Close)
	return ethclient.NewClient(rc), rc
}

func waitReceipt(t *testing.T, ec *ethclient.Client, h common.Hash) *types.Receipt {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		r, err := ec.TransactionReceipt(ctx, h)
		if err == nil {
			return r
		}
		if ctx.Err() != nil {
			t.Fatalf("no receipt for %s: %v", h, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestNodeServesWallets(t *testing.T) {
	n := startDevNode(t, t.TempDir())
	ec, rc := dial(t, n)
	ctx := context.Background()
	id, err := ec.ChainID(ctx)
	if err != nil || id.Int64() != 1337 {
		t.Fatalf("chain id %v %v", id, err)
	}
	key, _ := genesis.DevKey(0)
	to := common.HexToAddress("0x1234000000000000000000000000000000005678")
	nonce, err := ec.PendingNonceAt(ctx, key.Address())
	if err != nil {
		t.Fatal(err)
	}
	tx, _ := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, Nonce: nonce, To: &to, Value: big.NewInt(1e18), Gas: 21000}), id, key)
	if err := ec.SendTransaction(ctx, tx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := waitReceipt(t, ec, tx.Hash())
	t.Logf("lone transfer receipted in %v", time.Since(start))
	if r.Status != 1 || r.GasUsed != 21000 {
		t.Fatalf("receipt %+v", r)
	}
	blk, err := ec.BlockByNumber(ctx, r.BlockNumber) // ethclient recomputes the hash
	if err != nil {
		t.Fatal(err)
	}
	if blk.Hash() != r.BlockHash || len(blk.Transactions()) != 1 {
		t.Fatalf("block %s, receipt says %s", blk.Hash(), r.BlockHash)
	}
	if bal, _ := ec.BalanceAt(ctx, to, nil); bal.Cmp(big.NewInt(1e18)) != 0 {
		t.Fatalf("balance %s", bal)
	}
	gotTx, pending, err := ec.TransactionByHash(ctx, tx.Hash())
	if err != nil || pending || gotTx.Hash() != tx.Hash() {
		t.Fatalf("tx by hash: %v %v", pending, err)
	}

	// Raw JSON fields ethers.js v6 requires.
	var receipt map[string]any
	if err := rc.Call(&receipt, "eth_getTransactionReceipt", tx.Hash()); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"from", "to", "status", "type", "cumulativeGasUsed", "effectiveGasPrice", "logsBloom", "logs"} {
		if receipt[f] == nil {
			t.Errorf("receipt lacks %s", f)
		}
	}
	if v, ok := receipt["contractAddress"]; !ok || v != nil {
		t.Errorf("contractAddress %v, want null", v)
	}
	var block map[string]any
	if err := rc.Call(&block, "eth_getBlockByNumber", "finalized", true); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"mixHash", "nonce", "uncles", "sha3Uncles", "logsBloom", "difficulty", "totalDifficulty", "gasLimit", "baseFeePerGas", "size"} {
		if _, ok := block[f]; !ok {
			t.Errorf("block lacks %s", f)
		}
	}
	var txObj map[string]any
	if err := rc.Call(&txObj, "eth_getTransactionByHash", tx.Hash()); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"chainId", "type", "yParity", "accessList", "from", "blockHash"} {
		if txObj[f] == nil {
			t.Errorf("transaction lacks %s", f)
		}
	}
	for _, tag := range []string{"safe", "pending", "latest", "earliest"} {
		var b map[string]any
		if err := rc.Call(&b, "eth_getBlockByNumber", tag, false); err != nil || b == nil {
			t.Errorf("tag %s: %v", tag, err)
		}
	}
	var future map[string]any
	if err := rc.Call(&future, "eth_getBlockByNumber", "0xffffff", false); err != nil || future != nil {
		t.Errorf("future block: %v %v, want null", future, err)
	}
	gas, err := ec.EstimateGas(ctx, ethereumCall(key.Address(), to, big.NewInt(1)))
	if err != nil || gas != 21000 {
		t.Fatalf("estimate %d %v", gas, err)
	}
	if _, err := ec.FeeHistory(ctx, 4, nil, []float64{25, 75}); err != nil {
		t.Fatal(err)
	}
	if tip, err := ec.SuggestGasTipCap(ctx); err != nil || tip.Sign() != 0 {
		t.Fatalf("tip %v %v", tip, err)
	}
	if code, err := ec.CodeAt(ctx, to, nil); err != nil || len(code) != 0 {
		t.Fatalf("code %x %v", code, err)
	}
	if sync, err := ec.SyncProgress(ctx); err != nil || sync != nil {
		t.Fatalf("syncing %v %v", sync, err)
	}
}

func TestMetricsAndHealth(t *testing.T) {
	n := startDevNode(t, t.TempDir())
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + n.HTTPAddr() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			var h map[string]any
			if err := json.Unmarshal(body, &h); err != nil || h["status"] != "ok" {
				t.Fatalf("healthz %s", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("healthz never ok: %s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := http.Get("http://" + n.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{"tally_block_height", "tally_txs_applied_total", "tally_mempool_size", "tally_block_commit_seconds", "tally_raft_state"} {
		if !strings.Contains(string(body), m) {
			t.Errorf("metrics lack %s", m)
		}
	}
}

func TestRestartResumes(t *testing.T) {
	dir := t.TempDir()
	n := startDevNode(t, dir)
	ec, _ := dial(t, n)
	ctx := context.Background()
	key, _ := genesis.DevKey(1)
	id := big.NewInt(1337)
	var last common.Hash
	for i := uint64(0); i < 5; i++ {
		to := common.Address{byte(i + 1)}
		tx, _ := chain.SignTx(types.NewTx(&types.LegacyTx{Nonce: i, To: &to, Value: big.NewInt(1), Gas: 21000, GasPrice: new(big.Int)}), id, key)
		if err := ec.SendTransaction(ctx, tx); err != nil {
			t.Fatal(err)
		}
		last = tx.Hash()
	}
	r := waitReceipt(t, ec, last)
	head, _ := n.db.Head()
	n.Close()
	n2 := startDevNode(t, dir)
	// Votes live in memory: the restarted node votes again for the blocks
	// it applied before, so they are certified too.
	deadline := time.Now().Add(10 * time.Second)
	for h := uint64(1); h <= head.Number; h++ {
		for ok, _ := n2.db.Certified(h); !ok; ok, _ = n2.db.Certified(h) {
			if time.Now().After(deadline) {
				t.Fatalf("block %d (of %d applied before the restart) never certified", h, head.Number)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	ec2, _ := dial(t, n2)
	r2, err := ec2.TransactionReceipt(ctx, last)
	if err != nil || r2.BlockHash != r.BlockHash {
		t.Fatalf("receipt after restart: %v", err)
	}
	if nonce, _ := ec2.NonceAt(ctx, key.Address(), nil); nonce != 5 {
		t.Fatalf("nonce %d after restart", nonce)
	}
	if _, err := os.Stat(filepath.Join(dir, "nodekey")); err != nil {
		t.Fatal("node key not kept in the data dir")
	}
}

func ethereumCall(from, to common.Address, value *big.Int) ethereum.CallMsg {
	return ethereum.CallMsg{From: from, To: &to, Value: value}
}

func TestNewHeadsOverWebSocket(t *testing.T) {
	n := startDevNode(t, t.TempDir())
	ec, err := ethclient.Dial("ws://" + n.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer ec.Close()
	heads := make(chan *types.Header, 4)
	sub, err := ec.SubscribeNewHead(context.Background(), heads)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	key, _ := genesis.DevKey(2)
	id := big.NewInt(1337)
	to := common.Address{0x77}
	tx, _ := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, To: &to, Value: big.NewInt(5), Gas: 21000}), id, key)
	if err := ec.SendTransaction(context.Background(), tx); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case h := <-heads:
			b, err := ec.BlockByHash(context.Background(), h.Hash())
			if err != nil {
				t.Fatalf("head %s from the subscription is not a block: %v", h.Hash(), err)
			}
			for _, btx := range b.Transactions() {
				if btx.Hash() == tx.Hash() {
					return // the transfer's block arrived as a new head
				}
			}
		case err := <-sub.Err():
			t.Fatal(err)
		case <-deadline:
			t.Fatal("no head with the transfer")
		}
	}
}

// TestRestartRefusesLostRaftDir: a node restarted with its raft/
// directory gone (wiped, or a replaced disk) but its state/ kept must not
// start: it forgot its votes and could vote twice in a term. It refuses,
// naming the directory and the way out (consensus.ErrRaftStateLost).
func TestRestartRefusesLostRaftDir(t *testing.T) {
	dir := t.TempDir()
	n := startDevNode(t, dir)
	deadline := time.Now().Add(10 * time.Second)
	for head, _ := n.db.Head(); head.RaftIndex == 0; head, _ = n.db.Head() {
		if time.Now().After(deadline) {
			t.Fatal("no block applied")
		}
		time.Sleep(10 * time.Millisecond)
	}
	n.Close()
	raftDir := filepath.Join(dir, "raft")
	if err := os.RemoveAll(raftDir); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Dev, cfg.DataDir, cfg.HTTP.Port = true, dir, 0
	n2, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		n2.Close()
		t.Fatal("a node whose raft/ directory was lost started")
	}
	if !errors.Is(err, consensus.ErrRaftStateLost) || !strings.Contains(err.Error(), raftDir) {
		t.Fatalf("start without raft/: %v, want consensus.ErrRaftStateLost naming %s", err, raftDir)
	}
}
