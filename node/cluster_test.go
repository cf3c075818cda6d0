package node

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/p2p"
	"github.com/tally-ledger/tally/store"
)

func TestWriteTestnet(t *testing.T) {
	dir := t.TempDir()
	nodes, err := WriteTestnet(dir, 3, 21000)
	if err != nil {
		t.Fatal(err)
	}
	g, err := genesis.Load(filepath.Join(dir, "genesis.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Validators) != 3 || len(g.Alloc) != len(genesis.Dev().Alloc) || g.ChainID != genesis.DevChainID {
		t.Fatalf("genesis: %d validators, %d allocations, chain %d", len(g.Validators), len(g.Alloc), g.ChainID)
	}
	for i, nd := range nodes {
		cfg, err := LoadConfig(nd.Config)
		if err != nil {
			t.Fatalf("node %d config: %v", i, err)
		}
		if cfg.HTTP.Port != 21000+i || cfg.Admin.Port != 21200+i || len(cfg.P2P.Peers) != 2 {
			t.Fatalf("node %d ports/peers: %+v", i, cfg)
		}
		key, err := LoadOrCreateKey(vfs.Default, filepath.Join(cfg.DataDir, "nodekey"), false)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := p2p.PeerIDFromKey(key)
		vid, _ := p2p.PeerIDFromPublicKey(g.Validators[i].PublicKey)
		if id.String() != nd.PeerID || vid != id {
			t.Fatalf("node %d: key, genesis and config disagree on the peer id", i)
		}
	}
	if _, err := WriteTestnet(dir, 3, 21000); err == nil {
		t.Fatal("overwrote an existing testnet")
	}
	for _, bad := range []struct{ n, port int }{{0, 21000}, {MaxTestnetNodes + 1, 21000}, {3, 80}, {3, 65500}} {
		if _, err := WriteTestnet(t.TempDir(), bad.n, bad.port); err == nil {
			t.Errorf("WriteTestnet(%d, %d) accepted", bad.n, bad.port)
		}
	}
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestAdminAPI(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Dev = true
	cfg.DataDir = t.TempDir()
	cfg.HTTP.Port = 0
	cfg.Admin.Port = freePort(t)
	cfg.Raft.HeartbeatTimeout = Duration(200 * time.Millisecond)
	cfg.Raft.ElectionTimeout = Duration(200 * time.Millisecond)
	cfg.Raft.LeaderLeaseTimeout = Duration(100 * time.Millisecond)
	n, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	url := "http://" + n.admin.ln.Addr().String()

	// No token, or a wrong one: 401 with a JSON-RPC error.
	for _, auth := range []string{"", "Bearer wrong-token-wrong-token"} {
		req, _ := http.NewRequest("POST", url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"admin_raftStatus","params":[]}`))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "unauthorized") {
			t.Fatalf("auth %q: %d %s", auth, resp.StatusCode, body)
		}
	}
	token, err := os.ReadFile(filepath.Join(cfg.DataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(cfg.DataDir, "admin.token")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v", fi.Mode().Perm())
	}
	rc, err := gethrpc.DialOptions(t.Context(), url, gethrpc.WithHeaders(http.Header{"Authorization": {"Bearer " + strings.TrimSpace(string(token))}}))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var st RaftStatus
	deadline := time.Now().Add(10 * time.Second)
	for st.State != "Leader" && time.Now().Before(deadline) {
		if err := rc.Call(&st, "admin_raftStatus"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.State != "Leader" || len(st.Servers) != 1 || st.Servers[0].Suffrage != "Voter" {
		t.Fatalf("raft status %+v", st)
	}
	var cp Checkpoint
	if err := rc.Call(&cp, "admin_checkpoint", "relative/dir"); err == nil {
		t.Fatal("relative checkpoint dir accepted")
	}
	out := filepath.Join(t.TempDir(), "backup")
	if err := rc.Call(&cp, "admin_checkpoint", out); err != nil {
		t.Fatal(err)
	}
	if err := rc.Call(&cp, "admin_checkpoint", out); err == nil {
		t.Fatal("checkpoint over an existing dir accepted")
	}
	db, err := store.Open(out, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	head, _ := db.Head()
	if head.Number < uint64(cp.Height) {
		t.Fatalf("checkpoint head %d, reported %d", head.Number, cp.Height)
	}
	if err := rc.Call(nil, "admin_addObserver", "/ip4/127.0.0.1/tcp/1"); err == nil {
		t.Fatal("observer on a node without p2p accepted")
	}

	// tally_nodeInfo on the public port.
	pub, _ := gethrpc.Dial("http://" + n.HTTPAddr())
	defer pub.Close()
	var info NodeInfo
	if err := pub.Call(&info, "tally_nodeInfo"); err != nil {
		t.Fatal(err)
	}
	if info.Role != "leader" || info.Address != n.Address() || info.Term == 0 {
		t.Fatalf("node info %+v", info)
	}
	// The admin namespace is not on the public port.
	if err := pub.Call(nil, "admin_raftStatus"); err == nil {
		t.Fatal("admin method served on the public port")
	}
}

// TestTestnetDefaultPorts: a testnet of any size on the default base uses
// no port of a dev node (JSON-RPC 8545), so both run on one machine, and
// node 0's admin port is where `tally admin` looks by default.
func TestTestnetDefaultPorts(t *testing.T) {
	nodes, err := WriteTestnet(t.TempDir(), MaxTestnetNodes, DefaultTestnetBasePort)
	if err != nil {
		t.Fatal(err)
	}
	dev := DefaultConfig().HTTP.Port
	for i, nd := range nodes {
		cfg, err := LoadConfig(nd.Config)
		if err != nil {
			t.Fatal(err)
		}
		p2pPort := DefaultTestnetBasePort + testnetP2POffset + i
		if cfg.HTTP.Port == dev || cfg.Admin.Port == dev || p2pPort == dev || !strings.Contains(nd.P2P, fmt.Sprintf("/tcp/%d/", p2pPort)) {
			t.Fatalf("node %d: rpc %d, admin %d, p2p %s: collides with a dev node's %d", i, cfg.HTTP.Port, cfg.Admin.Port, nd.P2P, dev)
		}
	}
	if cfg, _ := LoadConfig(nodes[0].Config); cfg.Admin.Port != DefaultTestnetAdminPort {
		t.Fatalf("node 0 admin port %d, want DefaultTestnetAdminPort %d", cfg.Admin.Port, DefaultTestnetAdminPort)
	}
}
