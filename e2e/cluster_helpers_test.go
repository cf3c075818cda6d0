package e2e

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"math/big"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	gethrpc "github.com/ethereum/go-ethereum/rpc"
	"github.com/pelletier/go-toml/v2"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	tnode "github.com/tally-ledger/tally/node"
)

// Port layout of a testnet (node/testnet.go): node i serves JSON-RPC on
// base+i, libp2p on base+100+i (TCP and QUIC) and admin on base+200+i.
const (
	clusterP2POffset   = 100
	clusterAdminOffset = 200
	// clusterSlots is how many node slots a cluster test reserves: three
	// validators and one observer.
	clusterSlots = 4
	// rpcTimeout bounds one JSON-RPC call (a forwarded submission waits up
	// to 10 s for a leader inside the node).
	rpcTimeout = 20 * time.Second
)

// tcpFree and udpFree report whether a loopback port can be bound now.
func tcpFree(port int) bool {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

func udpFree(port int) bool {
	pc, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	pc.Close()
	return true
}

// pickBasePort returns a base port whose slots (JSON-RPC, libp2p TCP and
// UDP, admin) are all free. It draws from [20000, 32000), below Linux's
// ephemeral range (32768+), so outgoing connections do not take the ports
// between the check and the node's bind.
func pickBasePort(t *testing.T, slots int) int {
	t.Helper()
	for range 100 {
		base := 20000 + rand.IntN(12000-clusterAdminOffset-slots)
		ok := true
		for i := 0; i < slots && ok; i++ {
			ok = tcpFree(base+i) && tcpFree(base+clusterP2POffset+i) && udpFree(base+clusterP2POffset+i) && tcpFree(base+clusterAdminOffset+i)
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free base port found in 100 tries")
	return 0
}

// testCluster is a testnet of tallyd processes (plus, optionally, extra
// nodes such as an observer) started from their config files.
type testCluster struct {
	t       *testing.T
	dir     string
	base    int
	chainID *big.Int
	specs   []tnode.TestnetNode
	procs   []*node // the latest process of each node (nil before its first start)
	down    []bool  // stopped or killed on purpose
	runs    []int   // starts so far, per node
	rpcs    []*gethrpc.Client
	admins  []*gethrpc.Client // dialled at first use (the token file exists after the first start)
}

// startThree starts a cluster of three validators and waits for them to
// agree on a leader (30 s at most). It returns a context that bounds the
// test's calls to timeout (cancelled when the test ends), the cluster
// and the leader.
func startThree(t *testing.T, timeout time.Duration) (context.Context, *testCluster, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	c := newTestCluster(t, 3, nil)
	c.startAll()
	leader, _ := c.waitLeader(ctx, allThree, "", 30*time.Second)
	return ctx, c, leader
}

// newTestCluster writes an n-validator testnet into a temp dir on free
// ports; edit, if not nil, may change each node's config before any start.
// Nothing is started.
func newTestCluster(t *testing.T, n int, edit func(i int, cfg *tnode.Config)) *testCluster {
	t.Helper()
	dir := t.TempDir()
	base := pickBasePort(t, clusterSlots)
	specs, err := tnode.WriteTestnet(filepath.Join(dir, "testnet"), n, base)
	if err != nil {
		t.Fatalf("WriteTestnet: %v", err)
	}
	c := &testCluster{t: t, dir: dir, base: base, chainID: big.NewInt(devChainID)}
	for i, s := range specs {
		if edit != nil {
			cfg, err := tnode.LoadConfig(s.Config)
			if err != nil {
				t.Fatalf("node %d config: %v", i, err)
			}
			edit(i, &cfg)
			writeNodeConfig(t, s.Config, cfg)
		}
		c.addSpec(s)
	}
	t.Logf("testnet of %d validators in %s, base port %d", n, dir, base)
	return c
}

// addSpec registers a node (a validator of the testnet or an extra node).
func (c *testCluster) addSpec(s tnode.TestnetNode) int {
	c.t.Helper()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32, IdleConnTimeout: 30 * time.Second}, Timeout: rpcTimeout}
	rc, err := gethrpc.DialOptions(context.Background(), s.RPC, gethrpc.WithHTTPClient(hc))
	if err != nil {
		c.t.Fatalf("dial %s: %v", s.RPC, err)
	}
	c.t.Cleanup(rc.Close)
	c.specs = append(c.specs, s)
	c.procs = append(c.procs, nil)
	c.down = append(c.down, false)
	c.runs = append(c.runs, 0)
	c.rpcs = append(c.rpcs, rc)
	c.admins = append(c.admins, nil)
	return len(c.specs) - 1
}

// writeNodeConfig writes cfg as TOML, after checking it the way tallyd will.
func writeNodeConfig(t *testing.T, path string, cfg tnode.Config) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config %s: %v", path, err)
	}
	b, err := toml.Marshal(cfg)
	if err != nil {
		t.Fatalf("encode config: %v", err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := tnode.LoadConfig(path); err != nil {
		t.Fatalf("config %s does not load back: %v", path, err)
	}
}

// start runs node i (tallyd --config) and waits until it answers JSON-RPC.
func (c *testCluster) start(i int) *node {
	c.t.Helper()
	return c.ready(i, c.launch(i))
}

// launch runs node i (tallyd --config) without waiting for it.
func (c *testCluster) launch(i int) *node {
	c.t.Helper()
	if p := c.procs[i]; p != nil && !p.exited() {
		c.t.Fatalf("node %d is already running (pid %d)", i, p.cmd.Process.Pid)
	}
	c.runs[i]++
	logPath := filepath.Join(c.dir, fmt.Sprintf("node%d.run%d.log", i, c.runs[i]))
	n, err := launchConfigNode(c.t, c.specs[i], logPath, fmt.Sprintf("node%d run %d", i, c.runs[i]))
	if err != nil {
		c.t.Fatalf("node %d: %v", i, err)
	}
	c.procs[i] = n
	c.down[i] = false
	return n
}

// ready waits until node i, launched as n, answers JSON-RPC.
func (c *testCluster) ready(i int, n *node) *node {
	c.t.Helper()
	if err := n.ready(); err != nil {
		c.t.Fatalf("node %d: %v", i, err)
	}
	return n
}

// kill SIGKILLs node i.
func (c *testCluster) kill(i int) {
	c.t.Helper()
	c.down[i] = true
	c.procs[i].kill()
}

// stop SIGTERMs node i and waits for its clean exit.
func (c *testCluster) stop(i int) {
	c.t.Helper()
	c.down[i] = true
	c.procs[i].stop()
}

var panicRe = regexp.MustCompile(`(?m)^(panic|fatal error): .*\n(?:.*\n){0,12}`)

// crashes describes every node whose process exited without the test
// stopping it, with the panic from its log: "" when there is none.
func (c *testCluster) crashes() string {
	var out []string
	for i, p := range c.procs {
		if p == nil || c.down[i] || !p.exited() {
			continue
		}
		b, _ := os.ReadFile(p.logPath)
		what := tail(p.logPath, 5)
		if m := panicRe.Find(b); m != nil {
			what = string(m)
		}
		out = append(out, fmt.Sprintf("NODE %d (pid %d) CRASHED (%v):\n%s", i, p.cmd.Process.Pid, p.waitErr, what))
	}
	return strings.Join(out, "\n")
}

// fatal fails the test, naming any node that crashed.
func (c *testCluster) fatal(format string, args ...any) {
	c.t.Helper()
	if cr := c.crashes(); cr != "" {
		format += "\n%s"
		args = append(args, cr)
	}
	c.t.Fatalf(format, args...)
}

// startAll starts nodes 0..len-1 (the validators, when called first) at
// once, as an operator starts a new chain's validators: a genesis
// validator on an empty data directory starts Raft (and answers JSON-RPC)
// only once enough of the others answered (docs/cluster.md, "A lost data
// directory").
func (c *testCluster) startAll() {
	c.t.Helper()
	launched := make([]*node, len(c.specs))
	for i := range c.specs {
		launched[i] = c.launch(i)
	}
	for i, n := range launched {
		c.ready(i, n)
	}
}

// launchConfigNode starts tallyd --config spec.Config, logging to
// logPath, without waiting for it (node.ready).
func launchConfigNode(t *testing.T, spec tnode.TestnetNode, logPath, name string) (*node, error) {
	t.Helper()
	if tallydBin == "" {
		t.Fatal("tallyd was not built (TestMain)")
	}
	port, _ := strconv.Atoi(spec.RPC[strings.LastIndexByte(spec.RPC, ':')+1:])
	n := &node{t: t, datadir: filepath.Join(spec.Dir, "data"), logPath: logPath, port: port, url: spec.RPC, done: make(chan struct{}), name: name, launched: time.Now()}
	if err := n.launch(name, 40, "--config", spec.Config); err != nil {
		return nil, err
	}
	return n, nil
}

// ready waits until n, launched by launchConfigNode, answers JSON-RPC.
func (n *node) ready() error {
	if err := n.waitReady(readyTimeout); err != nil {
		return fmt.Errorf("%s: %w\n%s", n.name, err, tail(n.logPath, 30))
	}
	n.t.Logf("%s: pid %d answers on %s after %v", n.name, n.cmd.Process.Pid, n.url, time.Since(n.launched).Round(time.Millisecond))
	return nil
}

// log returns node i's log of its latest run.
func (c *testCluster) log(i int) string {
	c.t.Helper()
	b, err := os.ReadFile(c.procs[i].logPath)
	if err != nil {
		c.t.Fatalf("read log of node %d: %v", i, err)
	}
	return string(b)
}

// indexOf returns the node whose peer id is id, or -1.
func (c *testCluster) indexOf(id string) int {
	for i, s := range c.specs {
		if s.PeerID == id {
			return i
		}
	}
	return -1
}

// call makes one JSON-RPC call on node i, bounded by rpcTimeout.
func (c *testCluster) call(ctx context.Context, i int, result any, method string, args ...any) error {
	ctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	return c.rpcs[i].CallContext(ctx, result, method, args...)
}

// info is tally_nodeInfo on node i.
func (c *testCluster) info(ctx context.Context, i int) (tnode.NodeInfo, error) {
	var ni tnode.NodeInfo
	err := c.call(ctx, i, &ni, "tally_nodeInfo")
	return ni, err
}

// mustInfo is info, failing the test on error.
func (c *testCluster) mustInfo(ctx context.Context, i int) tnode.NodeInfo {
	c.t.Helper()
	ni, err := c.info(ctx, i)
	if err != nil {
		c.fatal("tally_nodeInfo on node %d: %v", i, err)
	}
	return ni
}

// height is eth_blockNumber on node i.
func (c *testCluster) height(ctx context.Context, i int) (uint64, error) {
	var h hexutil.Uint64
	err := c.call(ctx, i, &h, "eth_blockNumber")
	return uint64(h), err
}

func (c *testCluster) mustHeight(ctx context.Context, i int) uint64 {
	c.t.Helper()
	h, err := c.height(ctx, i)
	if err != nil {
		c.fatal("eth_blockNumber on node %d: %v", i, err)
	}
	return h
}

// admin makes an authenticated admin call on node i.
func (c *testCluster) admin(ctx context.Context, i int, result any, method string, args ...any) error {
	c.t.Helper()
	if c.admins[i] == nil {
		tok, err := os.ReadFile(c.specs[i].TokenFile)
		if err != nil {
			return fmt.Errorf("admin token of node %d: %w", i, err)
		}
		ac, err := gethrpc.DialOptions(context.Background(), c.specs[i].Admin,
			gethrpc.WithHeader("Authorization", "Bearer "+strings.TrimSpace(string(tok))),
			gethrpc.WithHTTPClient(&http.Client{Timeout: 60 * time.Second}))
		if err != nil {
			return err
		}
		c.t.Cleanup(ac.Close)
		c.admins[i] = ac
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return c.admins[i].CallContext(ctx, result, method, args...)
}

// mustAdmin is admin, failing the test on error.
func (c *testCluster) mustAdmin(ctx context.Context, i int, result any, method string, args ...any) {
	c.t.Helper()
	if err := c.admin(ctx, i, result, method, args...); err != nil {
		c.fatal("%s on node %d: %v", method, i, err)
	}
}

// raftStatus is admin_raftStatus on node i.
func (c *testCluster) raftStatus(ctx context.Context, i int) tnode.RaftStatus {
	c.t.Helper()
	var st tnode.RaftStatus
	c.mustAdmin(ctx, i, &st, "admin_raftStatus")
	return st
}

// statUint reads a numeric raft stat.
func statUint(t *testing.T, st tnode.RaftStatus, key string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(st.Stats[key], 10, 64)
	if err != nil {
		t.Fatalf("raft stat %s = %q: %v (stats %v)", key, st.Stats[key], err, st.Stats)
	}
	return v
}

// waitLeader waits until every node in ids names the same leader, that
// leader is not notID, and (if it is in ids) it reports role "leader". It
// returns the leader's index and how long it took.
func (c *testCluster) waitLeader(ctx context.Context, ids []int, notID string, timeout time.Duration) (int, time.Duration) {
	c.t.Helper()
	start := time.Now()
	var last []string
	for {
		last = last[:0]
		agreed := ""
		ok := true
		infos := make(map[int]tnode.NodeInfo)
		for _, i := range ids {
			ni, err := c.info(ctx, i)
			if err != nil {
				last = append(last, fmt.Sprintf("node %d: %v", i, err))
				ok = false
				continue
			}
			infos[i] = ni
			last = append(last, fmt.Sprintf("node %d: role %s leader %.20s term %d height %d", i, ni.Role, ni.Leader, ni.Term, ni.Height))
			switch {
			case ni.Leader == "" || ni.Leader == notID:
				ok = false
			case agreed == "":
				agreed = ni.Leader
			case agreed != ni.Leader:
				ok = false
			}
		}
		if cr := c.crashes(); cr != "" {
			c.t.Fatalf("waiting for a leader among nodes %v: %s", ids, cr)
		}
		if ok && agreed != "" {
			li := c.indexOf(agreed)
			if ni, in := infos[li]; li >= 0 && (!in || ni.Role == "leader") {
				return li, time.Since(start)
			}
		}
		if time.Since(start) > timeout {
			c.fatal("no agreed leader among nodes %v within %v: %s", ids, timeout, strings.Join(last, "; "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// others returns the indexes in ids other than x.
func others(ids []int, x ...int) []int {
	var out []int
	for _, i := range ids {
		if !slices.Contains(x, i) {
			out = append(out, i)
		}
	}
	return out
}

// chainBlock is what every node must agree on at a height.
type chainBlock struct {
	Number       hexutil.Uint64 `json:"number"`
	Hash         common.Hash    `json:"hash"`
	ParentHash   common.Hash    `json:"parentHash"`
	StateRoot    common.Hash    `json:"stateRoot"`
	Miner        common.Address `json:"miner"`
	Transactions []common.Hash  `json:"transactions"`
}

// blocks fetches blocks from..to (inclusive) of node i in JSON-RPC batches.
func (c *testCluster) blocks(ctx context.Context, i int, from, to uint64) ([]chainBlock, error) {
	out := make([]chainBlock, 0, to-from+1)
	for lo := from; lo <= to; lo += 200 {
		hi := min(to, lo+199)
		res := make([]*chainBlock, hi-lo+1)
		batch := make([]gethrpc.BatchElem, len(res))
		for k := range batch {
			batch[k] = gethrpc.BatchElem{Method: "eth_getBlockByNumber", Args: []any{hexutil.EncodeUint64(lo + uint64(k)), false}, Result: &res[k]}
		}
		bctx, cancel := context.WithTimeout(ctx, rpcTimeout)
		err := c.rpcs[i].BatchCallContext(bctx, batch)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("node %d: blocks %d..%d: %w", i, lo, hi, err)
		}
		for k, e := range batch {
			h := lo + uint64(k)
			if e.Error != nil {
				return nil, fmt.Errorf("node %d: block %d: %w", i, h, e.Error)
			}
			if res[k] == nil {
				return nil, fmt.Errorf("node %d: block %d: null", i, h)
			}
			if uint64(res[k].Number) != h {
				return nil, fmt.Errorf("node %d: asked for block %d, got %d", i, h, res[k].Number)
			}
			out = append(out, *res[k])
		}
	}
	return out, nil
}

// compareChains fetches blocks 0..upTo from every node in ids and fails
// unless all have the same hash, parent hash, state root and transaction
// list at every height, the chain links, and no transaction hash appears
// in two places. It returns the chain and where each transaction is.
func (c *testCluster) compareChains(ctx context.Context, ids []int, upTo uint64) ([]chainBlock, map[common.Hash]uint64) {
	c.t.Helper()
	start := time.Now()
	var ref []chainBlock
	for k, i := range ids {
		bs, err := c.blocks(ctx, i, 0, upTo)
		if err != nil {
			c.t.Fatalf("compare chains: %v", err)
		}
		if k == 0 {
			ref = bs
			continue
		}
		for h := range bs {
			a, b := ref[h], bs[h]
			if a.Hash != b.Hash || a.StateRoot != b.StateRoot || a.ParentHash != b.ParentHash || !slices.Equal(a.Transactions, b.Transactions) {
				c.t.Fatalf("height %d differs: node %d has hash %s root %s parent %s (%d txs); node %d has hash %s root %s parent %s (%d txs)",
					h, ids[0], a.Hash, a.StateRoot, a.ParentHash, len(a.Transactions), i, b.Hash, b.StateRoot, b.ParentHash, len(b.Transactions))
			}
		}
	}
	where := make(map[common.Hash]uint64)
	for h, b := range ref {
		if h > 0 && b.ParentHash != ref[h-1].Hash {
			c.t.Fatalf("block %d: parent hash %s, but block %d is %s", h, b.ParentHash, h-1, ref[h-1].Hash)
		}
		for _, tx := range b.Transactions {
			if prev, dup := where[tx]; dup {
				c.t.Fatalf("transaction %s is in block %d and again in block %d", tx, prev, h)
			}
			where[tx] = uint64(h)
		}
	}
	c.t.Logf("nodes %v: identical blocks (hash, parent, state root, transactions) at every height 0..%d, %d transactions each exactly once (%v)",
		ids, upTo, len(where), time.Since(start).Round(time.Millisecond))
	return ref, where
}

// waitConverged waits until every node in ids has reached the highest
// height any of them reports, then checks that they all have the same block
// there; it returns that height and how long the wait took.
func (c *testCluster) waitConverged(ctx context.Context, ids []int, timeout time.Duration) (uint64, time.Duration) {
	c.t.Helper()
	start := time.Now()
	var target uint64
	for _, i := range ids {
		target = max(target, c.mustHeight(ctx, i))
	}
	hs := make(map[int]uint64)
	for {
		behind := false
		for _, i := range ids {
			h, err := c.height(ctx, i)
			if err != nil {
				c.fatal("eth_blockNumber on node %d: %v", i, err)
			}
			hs[i] = h
			if h < target {
				behind = true
			}
		}
		if !behind {
			break
		}
		if cr := c.crashes(); cr != "" {
			c.t.Fatalf("waiting for nodes %v to reach height %d: %s", ids, target, cr)
		}
		if time.Since(start) > timeout {
			c.fatal("nodes %v did not all reach height %d within %v: heights %v", ids, target, timeout, hs)
		}
		time.Sleep(25 * time.Millisecond)
	}
	took := time.Since(start)
	var want common.Hash
	for k, i := range ids {
		bs, err := c.blocks(ctx, i, target, target)
		if err != nil {
			c.t.Fatal(err)
		}
		if k == 0 {
			want = bs[0].Hash
		} else if bs[0].Hash != want {
			c.t.Fatalf("block %d: node %d has %s, node %d has %s", target, ids[0], want, i, bs[0].Hash)
		}
	}
	return target, took
}

// sendBatch submits txs to node i in one JSON-RPC batch and returns each
// one's error (nil: the node acknowledged it with its hash).
func (c *testCluster) sendBatch(ctx context.Context, i int, txs []*types.Transaction) ([]error, error) {
	batch := make([]gethrpc.BatchElem, len(txs))
	hashes := make([]common.Hash, len(txs))
	for k, tx := range txs {
		raw, err := tx.MarshalBinary()
		if err != nil {
			return nil, err
		}
		batch[k] = gethrpc.BatchElem{Method: "eth_sendRawTransaction", Args: []any{hexutil.Bytes(raw)}, Result: &hashes[k]}
	}
	bctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	if err := c.rpcs[i].BatchCallContext(bctx, batch); err != nil {
		return nil, err
	}
	errs := make([]error, len(txs))
	for k, e := range batch {
		switch {
		case e.Error != nil:
			errs[k] = e.Error
		case hashes[k] != txs[k].Hash():
			errs[k] = fmt.Errorf("node answered hash %s for tx %s", hashes[k], txs[k].Hash())
		}
	}
	return errs, nil
}

// mustSend submits txs to node i in batches of 100 and fails the test
// unless every one is acknowledged.
func (c *testCluster) mustSend(ctx context.Context, i int, txs []*types.Transaction) {
	c.t.Helper()
	for lo := 0; lo < len(txs); lo += 100 {
		part := txs[lo:min(len(txs), lo+100)]
		errs, err := c.sendBatch(ctx, i, part)
		if err != nil {
			c.fatal("submit batch to node %d: %v", i, err)
		}
		for k, e := range errs {
			if e != nil {
				c.t.Fatalf("node %d refused tx %s: %v", i, part[k].Hash(), e)
			}
		}
	}
}

// receipts fetches the receipts of hashes from node i in batches; a
// missing receipt is nil.
func (c *testCluster) receipts(ctx context.Context, i int, hashes []common.Hash) ([]*types.Receipt, error) {
	out := make([]*types.Receipt, len(hashes))
	for lo := 0; lo < len(hashes); lo += 500 {
		hi := min(len(hashes), lo+500)
		batch := make([]gethrpc.BatchElem, hi-lo)
		for k := range batch {
			batch[k] = gethrpc.BatchElem{Method: "eth_getTransactionReceipt", Args: []any{hashes[lo+k]}, Result: &out[lo+k]}
		}
		bctx, cancel := context.WithTimeout(ctx, rpcTimeout)
		err := c.rpcs[i].BatchCallContext(bctx, batch)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("node %d: receipts: %w", i, err)
		}
		for k, e := range batch {
			if e.Error != nil {
				return nil, fmt.Errorf("node %d: receipt of %s: %w", i, hashes[lo+k], e.Error)
			}
		}
	}
	return out, nil
}

// waitReceipts polls node i until every hash has a receipt or timeout
// passes; it returns the receipts found and the hashes still without one.
func (c *testCluster) waitReceipts(ctx context.Context, i int, hashes []common.Hash, timeout time.Duration) (map[common.Hash]*types.Receipt, []common.Hash) {
	c.t.Helper()
	got := make(map[common.Hash]*types.Receipt, len(hashes))
	missing := slices.Clone(hashes)
	deadline := time.Now().Add(timeout)
	for {
		rs, err := c.receipts(ctx, i, missing)
		if err != nil {
			c.fatal("%v", err)
		}
		still := missing[:0]
		for k, r := range rs {
			if r == nil {
				still = append(still, missing[k])
				continue
			}
			if r.TxHash != missing[k] {
				c.t.Fatalf("node %d: receipt for %s names tx %s", i, missing[k], r.TxHash)
			}
			got[missing[k]] = r
		}
		missing = still
		if len(missing) == 0 || time.Now().After(deadline) {
			return got, missing
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mustReceipts waits for every hash's receipt on each node in ids, checks
// status 1 and that every node puts the tx in the same block at the same
// index. It returns the receipts of the first node.
func (c *testCluster) mustReceipts(ctx context.Context, ids []int, hashes []common.Hash, timeout time.Duration) map[common.Hash]*types.Receipt {
	c.t.Helper()
	var ref map[common.Hash]*types.Receipt
	for k, i := range ids {
		got, missing := c.waitReceipts(ctx, i, hashes, timeout)
		if len(missing) > 0 {
			c.fatal("node %d: %d of %d transactions have no receipt after %v (first: %s)", i, len(missing), len(hashes), timeout, missing[0])
		}
		for h, r := range got {
			if r.Status != types.ReceiptStatusSuccessful {
				c.t.Fatalf("node %d: tx %s: receipt status %d, want 1", i, h, r.Status)
			}
			if r.BlockNumber == nil || r.BlockNumber.Sign() <= 0 {
				c.t.Fatalf("node %d: tx %s: receipt without a block number", i, h)
			}
			if k > 0 {
				w := ref[h]
				if r.BlockHash != w.BlockHash || r.BlockNumber.Cmp(w.BlockNumber) != 0 || r.TransactionIndex != w.TransactionIndex {
					c.t.Fatalf("tx %s: node %d says block %v (%s) index %d, node %d says block %v (%s) index %d",
						h, ids[0], w.BlockNumber, w.BlockHash, w.TransactionIndex, i, r.BlockNumber, r.BlockHash, r.TransactionIndex)
				}
			}
		}
		if k == 0 {
			ref = got
		}
	}
	return ref
}

// isolate cuts node x off from every node in peers, on both sides.
func (c *testCluster) isolate(ctx context.Context, x int, peers []int) {
	c.t.Helper()
	for _, j := range peers {
		c.mustAdmin(ctx, x, nil, "admin_isolatePeer", c.specs[j].PeerID)
		c.mustAdmin(ctx, j, nil, "admin_isolatePeer", c.specs[x].PeerID)
	}
}

// heal undoes isolate.
func (c *testCluster) heal(ctx context.Context, x int, peers []int) {
	c.t.Helper()
	for _, j := range peers {
		c.mustAdmin(ctx, x, nil, "admin_healPeer", c.specs[j].PeerID)
		c.mustAdmin(ctx, j, nil, "admin_healPeer", c.specs[x].PeerID)
	}
}

// waitNoPeers waits until node i reports no connected peer.
func (c *testCluster) waitNoPeers(ctx context.Context, i int, timeout time.Duration) {
	c.t.Helper()
	start := time.Now()
	for {
		ni := c.mustInfo(ctx, i)
		if len(ni.Peers) == 0 {
			return
		}
		if time.Since(start) > timeout {
			c.t.Fatalf("node %d still connected to %v after %v", i, ni.Peers, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// clusterDevKeys returns dev accounts from..to-1 as the project's keys.
func clusterDevKeys(t *testing.T, from, to int) []*crypto.PrivateKey {
	t.Helper()
	var out []*crypto.PrivateKey
	for i := from; i < to; i++ {
		k, err := genesis.DevKey(uint32(i))
		if err != nil {
			t.Fatalf("dev key %d: %v", i, err)
		}
		out = append(out, k)
	}
	return out
}

// randomAddrs returns n fresh addresses no one has used.
func randomAddrs(n int) []common.Address {
	out := make([]common.Address, n)
	for i := range out {
		crand.Read(out[i][:])
	}
	return out
}

// makeTransfer signs a transfer with chain.SignTx; kind selects legacy,
// EIP-1559 or EIP-2930 (newTransfer).
func makeTransfer(kind int, chainID *big.Int, key *crypto.PrivateKey, nonce uint64, to common.Address, value *big.Int) (*types.Transaction, error) {
	return chain.SignTx(newTransfer(kind, chainID, nonce, to, value), chainID, key)
}

// signTransfers signs perSender transfers from each key, nonces starting at
// startNonce[k], to the recipients in turn, value 1000+j.
func signTransfers(t *testing.T, chainID *big.Int, keys []*crypto.PrivateKey, startNonce []uint64, perSender int, to []common.Address) [][]*types.Transaction {
	t.Helper()
	out := make([][]*types.Transaction, len(keys))
	for s, k := range keys {
		for j := range perSender {
			tx, err := makeTransfer(j, chainID, k, startNonce[s]+uint64(j), to[(s*perSender+j)%len(to)], big.NewInt(int64(1000+j)))
			if err != nil {
				t.Fatalf("sign: %v", err)
			}
			out[s] = append(out[s], tx)
		}
	}
	return out
}

// hashesOf returns the hashes of txs.
func hashesOf(txs []*types.Transaction) []common.Hash {
	out := make([]common.Hash, len(txs))
	for i, tx := range txs {
		out[i] = tx.Hash()
	}
	return out
}

// nonceOf is the pending nonce of a on node i.
func (c *testCluster) nonceOf(ctx context.Context, i int, a common.Address) uint64 {
	c.t.Helper()
	var n hexutil.Uint64
	if err := c.call(ctx, i, &n, "eth_getTransactionCount", a, "pending"); err != nil {
		c.t.Fatalf("eth_getTransactionCount(%s) on node %d: %v", a, i, err)
	}
	return uint64(n)
}

// balance is eth_getBalance of a on node i at its latest block (a node
// keeps only its latest state).
func (c *testCluster) balance(ctx context.Context, i int, a common.Address) *big.Int {
	c.t.Helper()
	var b hexutil.Big
	if err := c.call(ctx, i, &b, "eth_getBalance", a, "latest"); err != nil {
		c.t.Fatalf("eth_getBalance(%s) on node %d: %v", a, i, err)
	}
	return (*big.Int)(&b)
}

var stateClosedRe = regexp.MustCompile(`msg="state closed" height=(\d+) hash=(0x[0-9a-f]{64}) state_root=0x[0-9a-f]{64} raft_index=(\d+)`)

// closedHead parses the "state closed" line a node logs on a clean stop.
func closedHead(t *testing.T, log string) (height uint64, hash common.Hash, raftIndex uint64) {
	t.Helper()
	m := stateClosedRe.FindStringSubmatch(log)
	if m == nil {
		t.Fatal(`no "state closed" line in the stopped node's log`)
	}
	height, _ = strconv.ParseUint(m[1], 10, 64)
	raftIndex, _ = strconv.ParseUint(m[3], 10, 64)
	return height, common.HexToHash(m[2]), raftIndex
}

// watchGaps polls node i's height every 50 ms until the returned function
// is called, which returns the longest time the height did not change.
func (c *testCluster) watchGaps(ctx context.Context, i int) func() time.Duration {
	stop := make(chan struct{})
	done := make(chan time.Duration, 1)
	go func() {
		var longest time.Duration
		last, changed := uint64(0), time.Now()
		for {
			if h, err := c.height(ctx, i); err == nil && h != last {
				last, changed = h, time.Now()
			}
			longest = max(longest, time.Since(changed))
			select {
			case <-stop:
				done <- longest
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return func() time.Duration {
		close(stop)
		return <-done
	}
}
