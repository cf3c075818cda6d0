package node

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/rpc"
)

func TestLoadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.toml")
	os.WriteFile(path, []byte(`
datadir = "/var/lib/tally"
[http]
port = 9000
[builder]
block-interval = "20ms"
max-inflight-blocks = 3
[raft]
heartbeat-timeout = "3s"
election-timeout = "3s"
[votes]
window = 99
`), 0o600)
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Port != 9000 || time.Duration(cfg.Builder.BlockInterval) != 20*time.Millisecond || cfg.Builder.MaxInflightBlocks != 3 || cfg.HTTP.Addr != "127.0.0.1" ||
		cfg.Votes.Window != 99 || cfg.Votes.MaxAhead != DefaultConfig().Votes.MaxAhead || time.Duration(cfg.Votes.ResendInterval) != time.Second {
		t.Fatalf("%+v", cfg)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	cases := map[string]struct{ toml, want string }{
		"typo":                {"[http]\nprot = 1\n", "http.prot"},
		"unknown section":     {"[htp]\nport = 1\n", "htp"},
		"wrong type":          {"[http]\nport = \"x\"\n", "http.port"},
		"bad duration":        {"[builder]\nblock-interval = \"soon\"\n", "builder.block-interval"},
		"out of range":        {"[http]\nport = 70000\n", "http.port"},
		"zero inflight":       {"[builder]\nmax-inflight-blocks = 0\n", "builder.max-inflight-blocks"},
		"tiny sender cache":   {"[mempool]\nsender-cache = 10\n", "mempool.sender-cache"},
		"huge sender cache":   {"[mempool]\nsender-cache = 100000000\n", "mempool.sender-cache"},
		"bad level":           {"[log]\nlevel = \"loud\"\n", "log.level"},
		"bad addr":            {"[http]\naddr = \"not an ip\"\n", "http.addr"},
		"lease":               {"[raft]\nleader-lease-timeout = \"5s\"\n", "raft.leader-lease-timeout"},
		"peer check":          {"[raft]\npeer-check-timeout = \"-1s\"\n", "raft.peer-check-timeout"},
		"not toml":            {"this is = = not toml", "line"},
		"votes typo":          {"[votes]\nwindows = 5\n", "votes.windows"},
		"votes window":        {"[votes]\nwindow = 0\n", "votes.window"},
		"votes ahead":         {"[votes]\nmax-ahead = 100000\n", "votes.max-ahead"},
		"votes resend":        {"[votes]\nresend-interval = \"1ms\"\n", "votes.resend-interval"},
		"read timeout":        {"[http]\nread-timeout = \"0s\"\n", "http.read-timeout"},
		"header timeout":      {"[http]\nread-header-timeout = \"1m\"\n", "http.read-header-timeout"},
		"write timeout":       {"[http]\nwrite-timeout = \"-1s\"\n", "http.write-timeout"},
		"idle timeout":        {"[http]\nidle-timeout = \"0s\"\n", "http.idle-timeout"},
		"no conns":            {"[http]\nmax-connections = 0\n", "http.max-connections"},
		"per-ip conns":        {"[http]\nmax-connections-per-ip = 4096\n", "http.max-connections-per-ip"},
		"ws conns":            {"[http]\nmax-ws-connections = 0\n", "http.max-ws-connections"},
		"filters per ip":      {"[http]\nmax-filters-per-ip = 5000\n", "http.max-filters-per-ip"},
		"subs per ip":         {"[http]\nmax-subscriptions-per-ip = 0\n", "http.max-subscriptions-per-ip"},
		"subs per conn":       {"[http]\nmax-subscriptions-per-connection = -1\n", "http.max-subscriptions-per-connection"},
		"response bytes":      {"[http]\nmax-response-bytes = 10\n", "http.max-response-bytes"},
		"batch bytes":         {"[http]\nmax-batch-response-bytes = 0\n", "http.max-batch-response-bytes"},
		"heavy reads":         {"[http]\nmax-heavy-reads = 0\n", "http.max-heavy-reads"},
		"response over batch": {"[http]\nmax-response-bytes = 16777216\n", "http.max-response-bytes"},
		"heavy per ip":        {"[http]\nmax-heavy-reads-per-ip = 0\n", "http.max-heavy-reads-per-ip"},
		"heavy queue":         {"[http]\nmax-heavy-read-queue = 0\n", "http.max-heavy-read-queue"},
		"heavy queue ip":      {"[http]\nmax-heavy-read-queue-per-ip = -1\n", "http.max-heavy-read-queue-per-ip"},
		"heavy wait":          {"[http]\nheavy-read-wait = \"0s\"\n", "http.heavy-read-wait"},
		"admin conns":         {"[admin]\nmax-connections = 0\n", "admin.max-connections"},
		"reforward short":     {"[p2p]\nreforward-retry = \"1s\"\n", "p2p.reforward-retry"},
		"reforward long":      {"[p2p]\nreforward-retry = \"48h\"\n", "p2p.reforward-retry"},
		"bounds typo":         {"[http]\nmax-connection = 5\n", "http.max-connection"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.toml")
			os.WriteFile(path, []byte(c.toml), 0o600)
			_, err := LoadConfig(path)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want mention of %q", err, c.want)
			}
		})
	}
}

func FuzzDecodeConfig(f *testing.F) {
	f.Add([]byte("[http]\nport = 8545\n"))
	f.Add([]byte("[builder]\nblock-interval = \"10ms\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := DefaultConfig()
		if decodeConfig(data, &cfg) == nil {
			if err := cfg.Validate(); err != nil {
				t.Fatalf("accepted config fails validation: %v", err)
			}
		}
	})
}

func TestRateLimitConfig(t *testing.T) {
	def := DefaultConfig().RateLimit
	if def != (RateLimitConfig{PerAccount: 50, AccountBurst: 100, PerIP: 500, IPBurst: 1000, MaxTracked: 100_000, ExemptTopTier: true}) {
		t.Fatalf("defaults %+v", def)
	}
	path := filepath.Join(t.TempDir(), "c.toml")
	os.WriteFile(path, []byte(`
[ratelimit]
per-account = 5
account-burst = 10
per-ip = 0.5
ip-burst = 2
max-tracked = 1000
exempt-top-tier = false
`), 0o600)
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := (RateLimitConfig{PerAccount: 5, AccountBurst: 10, PerIP: 0.5, IPBurst: 2, MaxTracked: 1000}); cfg.RateLimit != want {
		t.Fatalf("got %+v, want %+v", cfg.RateLimit, want)
	}
	off := DefaultConfig()
	off.RateLimit = RateLimitConfig{}
	if err := off.Validate(); err != nil {
		t.Fatalf("limits off with zero bursts and max-tracked: %v", err)
	}

	cases := map[string]struct{ toml, want string }{
		"typo":               {"[ratelimit]\nper-acount = 1\n", "ratelimit.per-acount"},
		"wrong type":         {"[ratelimit]\naccount-burst = 1.5\n", "ratelimit.account-burst"},
		"bool type":          {"[ratelimit]\nexempt-top-tier = \"yes\"\n", "ratelimit.exempt-top-tier"},
		"negative rate":      {"[ratelimit]\nper-ip = -1\n", "ratelimit.per-ip"},
		"nan rate":           {"[ratelimit]\nper-account = nan\n", "ratelimit.per-account"},
		"infinite rate":      {"[ratelimit]\nper-ip = inf\n", "ratelimit.per-ip"},
		"zero burst":         {"[ratelimit]\naccount-burst = 0\n", "ratelimit.account-burst"},
		"zero ip burst":      {"[ratelimit]\nip-burst = 0\n", "ratelimit.ip-burst"},
		"negative burst":     {"[ratelimit]\nper-account = 0\naccount-burst = -1\n", "ratelimit.account-burst"},
		"nothing tracked":    {"[ratelimit]\nmax-tracked = 0\n", "ratelimit.max-tracked"},
		"too much tracked":   {"[ratelimit]\nmax-tracked = 20000000\n", "ratelimit.max-tracked"},
		"burst without rate": {"[ratelimit]\nper-account = 0\nper-ip = 1\nip-burst = 0\n", "ratelimit.ip-burst"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.toml")
			os.WriteFile(path, []byte(c.toml), 0o600)
			_, err := LoadConfig(path)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want mention of %q", err, c.want)
			}
		})
	}
}

// startConfiguredDevNode starts a dev node on cfg (as startDevNode does
// on the defaults) and waits until it leads.
func startConfiguredDevNode(t *testing.T, cfg Config) *Node {
	t.Helper()
	cfg.Dev = true
	cfg.DataDir = t.TempDir()
	cfg.HTTP.Port = 0
	cfg.Raft.HeartbeatTimeout = Duration(200 * time.Millisecond)
	cfg.Raft.ElectionTimeout = Duration(200 * time.Millisecond)
	cfg.Raft.LeaderLeaseTimeout = Duration(100 * time.Millisecond)
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

// The [ratelimit] keys reach the JSON-RPC server, and exempt-top-tier
// exempts exactly the top-tier accounts.
func TestRateLimitWiredIntoNode(t *testing.T) {
	key, err := genesis.DevKey(0) // top tier in the dev genesis
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := crypto.GenerateKey() // tier 0
	if err != nil {
		t.Fatal(err)
	}
	id := big.NewInt(genesis.DevChainID)
	to := common.Address{0x42}
	for _, exempt := range []bool{true, false} {
		cfg := DefaultConfig()
		cfg.RateLimit = RateLimitConfig{PerAccount: 0.001, AccountBurst: 1, MaxTracked: 100, ExemptTopTier: exempt}
		n := startConfiguredDevNode(t, cfg)
		if !n.topTier(key.Address()) || n.topTier(fresh.Address()) {
			t.Fatalf("topTier: dev account %v, fresh key %v; want true, false", n.topTier(key.Address()), n.topTier(fresh.Address()))
		}
		rc, err := gethrpc.Dial("http://" + n.HTTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		var errs []error
		var txs []*types.Transaction
		for nonce := uint64(0); nonce < 3; nonce++ {
			tx, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, Nonce: nonce, To: &to, Value: big.NewInt(1), Gas: 21000}), id, key)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := tx.MarshalBinary()
			var h common.Hash
			errs = append(errs, rc.CallContext(context.Background(), &h, "eth_sendRawTransaction", hexutil.Encode(raw)))
			txs = append(txs, tx)
		}
		if errs[0] != nil {
			t.Fatalf("exempt-top-tier=%v: first transaction: %v", exempt, errs[0])
		}
		for i := 1; i < len(errs); i++ {
			if exempt {
				if errs[i] != nil {
					t.Fatalf("exempt-top-tier=true: top-tier sender throttled: %v", errs[i])
				}
				continue
			}
			var rerr gethrpc.Error
			if !errors.As(errs[i], &rerr) || rerr.ErrorCode() != rpc.CodeLimitExceeded || !strings.Contains(errs[i].Error(), "rate limit exceeded for account "+key.Address().Hex()) {
				t.Fatalf("exempt-top-tier=false: tx %d: %v, want -32005 for the account", i, errs[i])
			}
			if _, _, ok := n.pool.Get(txs[i].Hash()); ok {
				t.Fatalf("throttled transaction %d admitted", i)
			}
		}
	}
}
