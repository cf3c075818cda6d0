package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/rpc"
	"github.com/tally-ledger/tally/rpc/schema"
	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/store"
)

// testnetBase finds a base port whose libp2p ports (TCP and UDP) are free
// for n nodes (JSON-RPC and admin ports are chosen by the kernel).
func testnetBase(t testing.TB, n int) int {
	t.Helper()
	for range 50 {
		base := 20000 + rand.IntN(30000)
		free := true
		for i := range n {
			port := base + testnetP2POffset + i
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				free = false
				break
			}
			ln.Close()
			pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				free = false
				break
			}
			pc.Close()
		}
		if free {
			return base
		}
	}
	t.Fatal("no free ports")
	return 0
}

// startTestnet starts an n-node cluster of real nodes over libp2p on
// 127.0.0.1 (the `tally testnet` layout) and waits for a leader.
func startTestnet(t testing.TB, n int) []*Node {
	t.Helper()
	return startTestnetLogging(t, n, func(int) io.Writer { return io.Discard })
}

// startTestnetLogging is startTestnet with node i's log (text, at Info, as
// tallyd's default) written to logs(i).
func startTestnetLogging(t testing.TB, n int, logs func(i int) io.Writer) []*Node {
	t.Helper()
	specs, err := WriteTestnet(t.TempDir(), n, testnetBase(t, n))
	if err != nil {
		t.Fatal(err)
	}
	// The validators start together, as an operator starts a new chain's:
	// each starts Raft only once enough of the others answer
	// (docs/cluster.md, "A lost data directory"), bounded here.
	nodes := make([]*Node, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, spec := range specs {
		cfg, err := LoadConfig(spec.Config)
		if err != nil {
			t.Fatal(err)
		}
		cfg.HTTP.Port, cfg.Admin.Port = 0, 0
		cfg.Raft.NoSync = true
		cfg.Raft.HeartbeatTimeout = Duration(500 * time.Millisecond)
		cfg.Raft.ElectionTimeout = Duration(500 * time.Millisecond)
		cfg.Raft.LeaderLeaseTimeout = Duration(250 * time.Millisecond)
		cfg.Raft.PeerCheckTimeout = Duration(30 * time.Second)
		cfg.Builder.Heartbeat = Duration(200 * time.Millisecond)
		cfg.Votes.ResendInterval = Duration(200 * time.Millisecond)
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[i], errs[i] = New(cfg, slog.New(slog.NewTextHandler(logs(i), nil)).With("node", i))
		}()
	}
	wg.Wait()
	for i, nd := range nodes {
		if nd != nil {
			t.Cleanup(func() { nd.Close() })
		}
		if errs[i] != nil {
			t.Fatalf("node %d: %v", i, errs[i])
		}
	}
	leaderOf(t, nodes)
	return nodes
}

// leaderOf waits for one of nodes to lead and returns its index.
func leaderOf(t testing.TB, nodes []*Node) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for i, n := range nodes {
			if n != nil && n.engine.LeaderReady() {
				return i
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no leader")
	return -1
}

// sendTransfers sends count transfers from dev account from through n and
// waits for the last receipt.
func sendTransfers(t *testing.T, n *Node, from uint32, count int) {
	t.Helper()
	ec, _ := dial(t, n)
	ctx := context.Background()
	key, _ := genesis.DevKey(from)
	id := big.NewInt(genesis.DevChainID)
	nonce, err := ec.PendingNonceAt(ctx, key.Address())
	if err != nil {
		t.Fatal(err)
	}
	to := common.HexToAddress("0x00000000000000000000000000000000000c0ffe")
	var last *types.Transaction
	for i := range count {
		tx, _ := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, Nonce: nonce + uint64(i), To: &to, Value: big.NewInt(1), Gas: 21000}), id, key)
		if err := ec.SendTransaction(ctx, tx); err != nil {
			t.Fatal(err)
		}
		last = tx
		time.Sleep(5 * time.Millisecond) // spread them over several blocks
	}
	if r := waitReceipt(t, ec, last.Hash()); r.Status != 1 {
		t.Fatal("transfer failed")
	}
}

func certificateOf(t *testing.T, n *Node, height uint64) *schema.Certificate {
	t.Helper()
	_, rc := dial(t, n)
	var c *schema.Certificate
	if err := rc.Call(&c, "tally_getCertificate", hexutil.Uint64(height)); err != nil {
		t.Fatalf("tally_getCertificate(%d): %v", height, err)
	}
	return c
}

// checkCertified waits until every height in [from, to] has a certificate
// on n, and checks each as an outsider would: signatures by a quorum of the
// validators, for the hash n applied.
func checkCertified(t *testing.T, n *Node, from, to uint64, validators []common.Address) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for h := from; h <= to; h++ {
		c := certificateOf(t, n, h)
		for c == nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			c = certificateOf(t, n, h)
		}
		if c == nil {
			last, _, _ := n.db.LastCertified()
			t.Fatalf("block %d never certified (last certified %d)", h, last)
		}
		b, err := n.db.BlockByNumber(h)
		if err != nil {
			t.Fatal(err)
		}
		if uint64(c.Height) != h || c.Hash != b.Hash() || c.Validators != 3 || c.Quorum != 2 || len(c.Signers) < 2 ||
			len(c.Signers) != len(c.Signatures) || uint64(c.Block) <= h {
			t.Fatalf("certificate of block %d: %+v (block hash %s)", h, c, b.Hash())
		}
		cert := &chain.Certificate{Height: h, Hash: c.Hash, Next: c.Next}
		for _, s := range c.Signatures {
			cert.Sigs = append(cert.Sigs, s)
		}
		if err := chain.VerifyCertificate(cert, genesis.DevChainID, validators); err != nil {
			t.Fatalf("certificate of block %d does not verify offline: %v", h, err)
		}
		signers, _ := cert.Signers(genesis.DevChainID)
		for i, s := range signers {
			if s.Hex() != c.Signers[i] {
				t.Fatalf("certificate of block %d: signer %d is %s, served %s", h, i, s.Hex(), c.Signers[i])
			}
		}
	}
}

// TestClusterCertifies: three nodes over libp2p certify nearly every block
// (each certificate signed by at least two of three validators), and keep
// certifying after the leader stops.
func TestClusterCertifies(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	nodes := startTestnet(t, 3)
	validators := nodes[0].db.Validators()
	leader := leaderOf(t, nodes)
	follower := (leader + 1) % 3
	sendTransfers(t, nodes[follower], 0, 30)
	head, _ := nodes[follower].db.Head()
	checkCertified(t, nodes[follower], 1, head.Number, validators)
	// Every node serves the same certificates.
	other := certificateOf(t, nodes[leader], head.Number)
	if mine := certificateOf(t, nodes[follower], head.Number); other == nil || other.Hash != mine.Hash || other.Block != mine.Block {
		t.Fatalf("nodes disagree on the certificate of block %d: %+v, %+v", head.Number, other, mine)
	}

	// The leader stops; the other two elect a leader and go on certifying.
	nodes[leader].Close()
	rest := []*Node{}
	for i, n := range nodes {
		if i != leader {
			rest = append(rest, n)
		}
	}
	newLeader := rest[leaderOf(t, rest)]
	sendTransfers(t, rest[0], 1, 20)
	head2, _ := newLeader.db.Head()
	if head2.Number <= head.Number {
		t.Fatal("no blocks under the new leader")
	}
	for _, n := range rest {
		checkCertified(t, n, head.Number+1, head2.Number, validators)
	}
	m := metricOf(t, newLeader)
	t.Logf("new leader: %v votes kept, %v refused, certificate lag %v, last certified %v of head %d",
		m("tally_votes_received_total"), m("tally_votes_refused_total"), m("tally_certificate_lag"), m("tally_last_certified_height"), head2.Number)
	if lag := m("tally_certificate_lag"); lag < 0 || lag > 10 {
		t.Fatalf("certificate lag %v", lag)
	}
	if m("tally_votes_received_total") < float64(head2.Number-head.Number) {
		t.Fatal("the new leader counted fewer votes than blocks it certified")
	}
}

// metricOf returns a reader of n's unlabelled metrics.
func metricOf(t *testing.T, n *Node) func(name string) float64 {
	text := metricsOf(t, n)
	return func(name string) float64 {
		for _, line := range strings.Split(text, "\n") {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				var f float64
				fmt.Sscan(v, &f)
				return f
			}
		}
		t.Fatalf("no metric %s", name)
		return 0
	}
}

func metricsOf(t *testing.T, n *Node) string {
	t.Helper()
	resp, err := http.Get("http://" + n.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestHaltOnDivergedCertificate: a block carrying a quorum certificate for
// a block hash this node did not apply halts it: role "halted", every
// eth_* call answers "node halted", tally_nodeInfo and
// tally_getCertificate keep answering, and the halt metric is 1. The halt
// is kept across a restart: the node comes back halted, answering as before,
// until tallyd --clear-halt removes the record.
func TestHaltOnDivergedCertificate(t *testing.T) {
	dir := t.TempDir()
	n := startDevNode(t, dir)
	ec, rc := dial(t, n)
	// The dev chain certifies its own blocks (one validator: a quorum of 1).
	deadline := time.Now().Add(15 * time.Second)
	for head, _ := n.db.Head(); head.Number < 1; head, _ = n.db.Head() {
		time.Sleep(20 * time.Millisecond)
	}
	for c := certificateOf(t, n, 1); c == nil; c = certificateOf(t, n, 1) {
		if time.Now().After(deadline) {
			t.Fatal("block 1 never certified")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if c := certificateOf(t, n, 1); c.Validators != 1 || c.Quorum != 1 || len(c.Signers) != 1 || c.Signers[0] != n.Address().Hex() {
		t.Fatalf("dev certificate %+v", c)
	}
	var none *schema.Certificate
	if err := rc.Call(&none, "tally_getCertificate", hexutil.Uint64(1<<40)); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("certificate above the head: %v", err)
	}

	// Propose, through Raft, a block certifying another block 1.
	key, _ := genesis.DevKey(genesis.DevValidatorIndex)
	next, err := n.db.ValidatorsAt(2)
	if err != nil {
		t.Fatal(err)
	}
	hash, nextHash := common.Hash{0xde, 0xad}, chain.ValidatorSetHash(next)
	v, err := chain.SignVote(genesis.DevChainID, 1, hash, nextHash, key)
	if err != nil {
		t.Fatal(err)
	}
	wrong := chain.NewCertificate(1, hash, nextHash, map[common.Address][]byte{key.Address(): v.Sig})
	tip := n.db.Tip()
	built, err := state.Build(n.db, tip.Parent(), nil, nil, []*chain.Certificate{wrong}, uint64(time.Now().UnixMilli()), key, genesis.DevChainID)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := built.Block.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.engine.Raft.Apply(enc, 5*time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for n.Info().Role != "halted" {
		if time.Now().After(deadline) {
			t.Fatal("node did not halt")
		}
		time.Sleep(20 * time.Millisecond)
	}

	isHalted := func(err error) bool {
		var re gethrpc.Error
		return errors.As(err, &re) && re.ErrorCode() == rpc.CodeHalted && strings.HasPrefix(err.Error(), "node halted")
	}
	if _, err := ec.BlockNumber(context.Background()); !isHalted(err) {
		t.Fatalf("eth_blockNumber: %v", err)
	}
	from, _ := genesis.DevKey(0)
	id := big.NewInt(genesis.DevChainID)
	to := common.Address{1}
	tx, _ := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, Nonce: 0, To: &to, Value: big.NewInt(1), Gas: 21000}), id, from)
	if err := ec.SendTransaction(context.Background(), tx); !isHalted(err) {
		t.Fatalf("eth_sendRawTransaction: %v", err)
	}
	var info NodeInfo
	if err := rc.Call(&info, "tally_nodeInfo"); err != nil {
		t.Fatalf("tally_nodeInfo on a halted node: %v", err)
	}
	if info.Role != "halted" || !strings.Contains(info.Halted, "diverged") {
		t.Fatalf("node info %+v", info)
	}
	if c := certificateOf(t, n, 1); c == nil || c.Hash == hash {
		t.Fatalf("certificate of block 1 after the halt: %+v", c)
	}
	if m := metricsOf(t, n); !strings.Contains(m, "\ntally_node_halted 1\n") {
		t.Fatal("tally_node_halted is not 1")
	}
	head, _ := n.db.Head()

	// Restart on the same data dir: halted from the first moment, with the
	// stored reason; reads for operators and auditors still answer.
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Dev, cfg.DataDir, cfg.HTTP.Port, cfg.Admin.Port = true, dir, 0, freePort(t)
	cfg.Raft.HeartbeatTimeout = Duration(200 * time.Millisecond)
	cfg.Raft.ElectionTimeout = Duration(200 * time.Millisecond)
	cfg.Raft.LeaderLeaseTimeout = Duration(100 * time.Millisecond)
	if n, err = New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ec, rc = dial(t, n)
	if info := n.Info(); info.Role != "halted" || !strings.Contains(info.Halted, "diverged") {
		t.Fatalf("after restart: node info %+v", info)
	}
	// The admin API answers: Raft status, and a checkpoint (which carries
	// the halt record, so a node seeded from it would be halted too).
	token, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := gethrpc.DialOptions(t.Context(), "http://"+n.admin.ln.Addr().String(), gethrpc.WithHeaders(http.Header{"Authorization": {"Bearer " + strings.TrimSpace(string(token))}}))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var st RaftStatus
	if err := admin.Call(&st, "admin_raftStatus"); err != nil || st.State == "" {
		t.Fatalf("admin_raftStatus on a halted node: %+v, %v", st, err)
	}
	var cp Checkpoint
	if err := admin.Call(&cp, "admin_checkpoint", filepath.Join(t.TempDir(), "cp")); err != nil {
		t.Fatalf("admin_checkpoint on a halted node: %v", err)
	}
	cpdb, err := store.Open(cp.Dir, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := cpdb.HaltRecord(); err != nil || rec == nil || !strings.Contains(rec.Reason, "diverged") {
		t.Fatalf("checkpoint's halt record: %+v, %v", rec, err)
	}
	cpdb.Close()
	if _, err := ec.BlockNumber(context.Background()); !isHalted(err) {
		t.Fatalf("eth_blockNumber after restart: %v", err)
	}
	if err := rc.Call(&info, "tally_nodeInfo"); err != nil || info.Role != "halted" {
		t.Fatalf("tally_nodeInfo after restart: %+v, %v", info, err)
	}
	var raws []rpc.RawBlock
	if err := rc.Call(&raws, "tally_getRawBlocks", hexutil.Uint64(0), hexutil.Uint64(head.Number+1)); err != nil || uint64(len(raws)) != head.Number+1 {
		t.Fatalf("tally_getRawBlocks after restart: %d blocks, %v", len(raws), err)
	}
	if m := metricsOf(t, n); !strings.Contains(m, "\ntally_node_halted 1\n") {
		t.Fatal("tally_node_halted is not 1 after restart")
	}
	// A halted leader proposes nothing, not even the heartbeat block that
	// an idle leader proposes every second: its Raft log does not grow.
	for deadline := time.Now().Add(10 * time.Second); !n.engine.IsLeader(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("restarted node never led")
		}
	}
	if err := n.engine.Raft.Barrier(5 * time.Second).Error(); err != nil { // the new leader's own entries are in
		t.Fatal(err)
	}
	last := n.engine.Raft.LastIndex()
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if now := n.engine.Raft.LastIndex(); now != last || n.engine.LeaderReady() {
			t.Fatalf("halted leader proposes: raft last index %d → %d, ready %v", last, now, n.engine.LeaderReady())
		}
	}
	if after, _ := n.db.Head(); after != head {
		t.Fatalf("head moved on a halted node: %+v → %+v", head, after)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	rec, err := ClearHalt(dir)
	if err != nil || rec == nil || !strings.Contains(rec.Reason, "diverged") || rec.Height != head.Number {
		t.Fatalf("clear halt: %+v, %v", rec, err)
	}
	if rec, err := ClearHalt(dir); err != nil || rec != nil {
		t.Fatalf("second clear: %+v, %v", rec, err)
	}
}
