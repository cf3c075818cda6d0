package node

import (
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/tally-ledger/tally/config"
	"github.com/tally-ledger/tally/consensus"
	"github.com/tally-ledger/tally/mempool"
	"github.com/tally-ledger/tally/p2p"
	"github.com/tally-ledger/tally/rpc"
	"github.com/tally-ledger/tally/store"
)

// Duration is a time.Duration written as "10ms", "1s" in config files.
type Duration = config.Duration

// Config is a node's configuration file (docs/config.md documents every key).
type Config struct {
	// DataDir holds the node key, the state database and the Raft data.
	DataDir string `toml:"datadir"`
	// Genesis is the genesis file; empty with Dev set means the embedded dev genesis.
	Genesis string `toml:"genesis"`
	// Dev runs a single-node chain on the embedded dev genesis.
	Dev bool `toml:"dev"`

	HTTP    HTTPConfig    `toml:"http"`
	P2P     P2PConfig     `toml:"p2p"`
	Admin   AdminConfig   `toml:"admin"`
	Raft    RaftConfig    `toml:"raft"`
	Builder BuilderConfig `toml:"builder"`
	Mempool MempoolConfig `toml:"mempool"`
	Log     LogConfig     `toml:"log"`
	// Votes bounds the commit votes and certificates (DESIGN.md decision 10).
	Votes VotesConfig `toml:"votes"`

	// RateLimit bounds how fast clients submit transactions to this node.
	RateLimit RateLimitConfig `toml:"ratelimit"`

	// State configures the state database.
	State StateConfig `toml:"state"`
	// Store configures the watch of the node's disks (the state database
	// and the Raft log).
	Store StoreConfig `toml:"store"`

	// RaftFresh starts the node as a fresh Raft member when its Raft
	// directory is empty although its state database applied Raft
	// entries, instead of refusing (consensus.ErrRaftStateLost;
	// docs/cluster.md). Set by tallyd --raft-fresh, never by the config
	// file: it is the operator's decision for one start.
	RaftFresh bool `toml:"-"`

	// BlockClock, if set, is the clock this node stamps the blocks it
	// builds with instead of time.Now (consensus.BuilderConfig.BlockClock).
	// A test hook, never set by the config file: node tests move block
	// time past a payment's expiry or a key-change delay without waiting.
	BlockClock func() time.Time `toml:"-"`
}

// StateConfig configures the state database.
type StateConfig struct {
	// HistoryBlocks is how many recent blocks' states the state reads
	// (eth_getBalance, eth_call, … at a block) serve, the head's included
	// (store.Options.HistoryBlocks); 1 keeps only the head.
	HistoryBlocks uint64 `toml:"history-blocks"`
	// BlockCacheBytes and ReceiptCacheBytes bound the decoded recent
	// blocks and receipts kept in memory, in estimated heap bytes
	// (store.Options.BlockCacheBytes, ReceiptCacheBytes).
	BlockCacheBytes   int64 `toml:"block-cache-bytes"`
	ReceiptCacheBytes int64 `toml:"receipt-cache-bytes"`
}

// Stalls is the watch of the node's disks for stalls that cfg asks for.
func (c *Config) Stalls() store.Stalls {
	return store.Stalls{MaxSyncDuration: time.Duration(c.Store.MaxSyncDuration)}
}

// StoreConfig configures the watch of the node's databases' disks.
type StoreConfig struct {
	// MaxSyncDuration is how long a write or sync of the state database
	// or the Raft log may hang before the node takes its disk as stalled
	// and ends its process, so that another node leads
	// (store.Stalls; 0: not watched).
	MaxSyncDuration Duration `toml:"max-sync-duration"`
}

// HTTPConfig configures the JSON-RPC listener.
type HTTPConfig struct {
	Addr          string `toml:"addr"`
	Port          int    `toml:"port"`
	MaxBodyBytes  int    `toml:"max-body-bytes"`
	MaxBatchItems int    `toml:"max-batch-items"`
	// WSOrigins are the browser origins allowed to open a WebSocket;
	// unset, only localhost (and "*", any, with Dev).
	WSOrigins []string `toml:"ws-origins"`
	// CORSOrigins are the browser origins whose pages may call the HTTP
	// JSON-RPC endpoint; unset, none (and "*", any, with Dev). "*" is
	// refused without Dev: a production node names its dApps' origins.
	CORSOrigins []string `toml:"cors-origins"`
	// MaxSubscriptions bounds eth_subscribe subscriptions across all clients.
	MaxSubscriptions int `toml:"max-subscriptions"`
	// MaxPendingTxs is how many of the last admitted transactions the
	// node keeps for eth_newPendingTransactionFilter filters, and so the
	// most one poll of such a filter returns.
	MaxPendingTxs int `toml:"max-pending-txs"`
	// MaxSubscriptionsPerIP and MaxSubscriptionsPerConnection bound them
	// per client address and per WebSocket connection.
	MaxSubscriptionsPerIP         int `toml:"max-subscriptions-per-ip"`
	MaxSubscriptionsPerConnection int `toml:"max-subscriptions-per-connection"`
	// MaxLogBlockRange bounds the blocks one eth_getLogs covers (and one
	// poll of a filter reads).
	MaxLogBlockRange int `toml:"max-log-block-range"`
	// MaxLogResults bounds the logs one eth_getLogs returns.
	MaxLogResults int `toml:"max-log-results"`
	// MaxFilters bounds the eth_newFilter and eth_newBlockFilter filters
	// installed across all clients, MaxFiltersPerIP those of one client
	// address.
	MaxFilters      int `toml:"max-filters"`
	MaxFiltersPerIP int `toml:"max-filters-per-ip"`
	// FilterTimeout removes a filter not polled for this long.
	FilterTimeout Duration `toml:"filter-timeout"`

	// ReadHeaderTimeout, ReadTimeout (header and body), WriteTimeout and
	// IdleTimeout bound a connection's time (rpc.NewHTTPServer).
	ReadHeaderTimeout Duration `toml:"read-header-timeout"`
	ReadTimeout       Duration `toml:"read-timeout"`
	WriteTimeout      Duration `toml:"write-timeout"`
	IdleTimeout       Duration `toml:"idle-timeout"`
	// MaxConnections and MaxConnectionsPerIP bound the open connections,
	// in all and from one client address; MaxWSConnections the WebSocket
	// ones.
	MaxConnections      int `toml:"max-connections"`
	MaxConnectionsPerIP int `toml:"max-connections-per-ip"`
	MaxWSConnections    int `toml:"max-ws-connections"`
	// MaxResponseBytes bounds one heavy read's reply, MaxBatchResponseBytes
	// a batch's, MaxHeavyReads the heavy reads running at once.
	MaxResponseBytes      int `toml:"max-response-bytes"`
	MaxBatchResponseBytes int `toml:"max-batch-response-bytes"`
	MaxHeavyReads         int `toml:"max-heavy-reads"`
	// MaxHeavyReadsPerIP is one client address's share of the heavy-read
	// slots; MaxHeavyReadQueue and MaxHeavyReadQueuePerIP bound the reads
	// waiting for a slot, HeavyReadWait how long one waits.
	MaxHeavyReadsPerIP     int      `toml:"max-heavy-reads-per-ip"`
	MaxHeavyReadQueue      int      `toml:"max-heavy-read-queue"`
	MaxHeavyReadQueuePerIP int      `toml:"max-heavy-read-queue-per-ip"`
	HeavyReadWait          Duration `toml:"heavy-read-wait"`

	// MaxMulticallCalls bounds the inner calls of one eth_call to
	// Multicall3, nested ones included (rpc.Limits.MaxMulticallCalls).
	MaxMulticallCalls int `toml:"max-multicall-calls"`

	// Explorer serves the block explorer (package explorer) on GET / and
	// /explorer/… of this port; off, GET / is go-ethereum's empty answer.
	Explorer bool `toml:"explorer"`
}

// Limits returns the JSON-RPC bounds of the [http] section, for a dev
// node (dev) or not: an unset ws-origins allows any origin only on a dev
// chain, localhost otherwise; an unset cors-origins allows any origin on a
// dev chain (a dApp on http://localhost:3000 works against tallyd --dev)
// and none otherwise.
func (h HTTPConfig) Limits(dev bool) rpc.Limits {
	l := rpc.Limits{MaxBodyBytes: h.MaxBodyBytes, MaxBatchItems: h.MaxBatchItems, MaxBatchResponseBytes: h.MaxBatchResponseBytes,
		WSOrigins: h.WSOrigins, CORSOrigins: h.CORSOrigins,
		MaxLogBlockRange: uint64(h.MaxLogBlockRange), MaxLogResults: h.MaxLogResults,
		MaxFilters: h.MaxFilters, MaxFiltersPerIP: h.MaxFiltersPerIP, FilterTimeout: time.Duration(h.FilterTimeout),
		MaxSubscriptionsPerIP: h.MaxSubscriptionsPerIP, MaxSubscriptionsPerConn: h.MaxSubscriptionsPerConnection,
		ReadHeaderTimeout: time.Duration(h.ReadHeaderTimeout), ReadTimeout: time.Duration(h.ReadTimeout),
		WriteTimeout: time.Duration(h.WriteTimeout), IdleTimeout: time.Duration(h.IdleTimeout),
		MaxConns: h.MaxConnections, MaxConnsPerIP: h.MaxConnectionsPerIP, MaxWSConns: h.MaxWSConnections,
		MaxResponseBytes: h.MaxResponseBytes, MaxHeavyReads: h.MaxHeavyReads, MaxHeavyReadsPerIP: h.MaxHeavyReadsPerIP,
		MaxHeavyReadQueue: h.MaxHeavyReadQueue, MaxHeavyReadQueuePerIP: h.MaxHeavyReadQueuePerIP, HeavyReadWait: time.Duration(h.HeavyReadWait),
	}
	l.MaxMulticallCalls = h.MaxMulticallCalls
	if l.WSOrigins == nil && dev {
		l.WSOrigins = []string{"*"}
	}
	if l.CORSOrigins == nil && dev {
		l.CORSOrigins = []string{"*"}
	}
	return l
}

// P2PConfig configures the libp2p host that carries Raft and forwarding.
type P2PConfig struct {
	// Listen are multiaddrs to listen on; empty runs without networking
	// (a single-validator chain over an in-memory transport).
	Listen []string `toml:"listen"`
	// Peers are the other consortium nodes' multiaddrs, each ending in /p2p/<peer id>.
	Peers []string `toml:"peers"`
	// MaxForwardBatch bounds the transactions a follower forwards in one message.
	MaxForwardBatch int `toml:"max-forward-batch"`
	// ReforwardRetry bounds how long a pending transaction re-sent to a
	// new leader is retried while no leader can be reached (it leaves the
	// retry as soon as it leaves the pool).
	ReforwardRetry Duration `toml:"reforward-retry"`
}

// AdminConfig configures the authenticated admin JSON-RPC listener.
type AdminConfig struct {
	// Addr is the listen address; keep it on localhost.
	Addr string `toml:"addr"`
	// Port is the admin port; 0 disables the admin listener.
	Port int `toml:"port"`
	// TokenFile holds the bearer token (created with a random token on first
	// start if missing); relative paths are under the data dir.
	TokenFile string `toml:"token-file"`
	// MaxConnections bounds the admin listener's open connections, so a
	// flood on the management network cannot take the node's descriptors.
	MaxConnections int `toml:"max-connections"`
}

// RaftConfig tunes Raft. The timeout defaults are chosen for failover:
// a follower that hears nothing from the leader for heartbeat-timeout
// (randomised up to twice that) calls an election, so writes resume
// within about 2 x heartbeat-timeout of a leader fault plus an election
// round trip; docs/cluster.md has the measurements and the trade-off
// with false elections under load.
type RaftConfig struct {
	HeartbeatTimeout   Duration `toml:"heartbeat-timeout"`
	ElectionTimeout    Duration `toml:"election-timeout"`
	LeaderLeaseTimeout Duration `toml:"leader-lease-timeout"`
	CommitTimeout      Duration `toml:"commit-timeout"`
	SnapshotThreshold  uint64   `toml:"snapshot-threshold"`
	SnapshotInterval   Duration `toml:"snapshot-interval"`
	TrailingLogs       uint64   `toml:"trailing-logs"`
	// PeerCheckTimeout bounds how long a genesis validator that finds no
	// Raft state and a state at genesis keeps asking its peers while too
	// few answered to tell a first start from a lost data directory
	// (docs/cluster.md) before it gives up and exits; 0: no bound.
	PeerCheckTimeout Duration `toml:"peer-check-timeout"`
	// NoSync turns off fsync (benchmarks on throwaway data only).
	NoSync bool `toml:"no-sync"`
}

// Raft timeout defaults (raft.heartbeat-timeout, raft.election-timeout,
// raft.leader-lease-timeout). A leader fault is noticed by the followers
// after 1-2 heartbeat timeouts, so writes resume about 1-1.6 s after it
// (docs/benchmarks.md). Pre-vote (on in hashicorp/raft since v1.7) keeps
// a follower that merely missed heartbeats from disrupting a healthy
// leader. The lease is as long as hashicorp/raft allows (the heartbeat
// timeout): a leader that steps down is a false election when it was only
// slow, while a cut-off leader gains little from the extra quarter second
// (it cannot replicate what it admits, so its clients get errors).
const (
	DefaultHeartbeatTimeout   = 500 * time.Millisecond
	DefaultElectionTimeout    = 500 * time.Millisecond
	DefaultLeaderLeaseTimeout = 500 * time.Millisecond
	// DefaultPeerCheckTimeout is raft.peer-check-timeout: no bound. A
	// validator that waits for its peers cannot make progress without
	// them anyway, and the first start of a chain whose validators are
	// started minutes or hours apart must not fail; the wait is logged.
	DefaultPeerCheckTimeout = 0
	// minRaftTimeout is hashicorp/raft's own floor (5 ms) raised to what
	// a network between banks can meet.
	minRaftTimeout = 50 * time.Millisecond
)

// BuilderConfig tunes block production.
type BuilderConfig struct {
	MaxBlockTxs       int      `toml:"max-block-txs"`
	MaxInflightBlocks int      `toml:"max-inflight-blocks"`
	BlockInterval     Duration `toml:"block-interval"`
	Heartbeat         Duration `toml:"heartbeat"`
	// MaxVoterLag pauses block production while the slowest reachable
	// voter trails by more blocks than this (0: never).
	MaxVoterLag uint64 `toml:"max-voter-lag"`
}

// VotesConfig bounds the commit vote machinery: each validator signs the
// hash of every block it applies and sends the vote to the leader, which
// puts a quorum's votes into a later block as a certificate.
type VotesConfig struct {
	// Window is how many heights below the head votes are kept for, by the
	// leader collecting them and by a validator re-sending its own.
	Window uint64 `toml:"window"`
	// MaxAhead is how many heights above its head the leader holds votes for.
	MaxAhead uint64 `toml:"max-ahead"`
	// ResendInterval is how often a validator re-sends its votes not yet
	// certified (it also re-sends at once to a new leader).
	ResendInterval Duration `toml:"resend-interval"`
}

// Bounds of the [votes] keys.
const (
	maxVoteWindow   = 1 << 20
	maxVoteMaxAhead = 4096
)

// MempoolConfig bounds the mempool.
type MempoolConfig struct {
	MaxPerAccount int `toml:"max-per-account"`
	MaxTotal      int `toml:"max-total"`
	// GapGrace is how long a sender's transactions may wait behind a
	// missing nonce before new ones behind it are refused, naming the
	// nonce (mempool.Config.GapGrace).
	GapGrace Duration `toml:"gap-grace"`
	// GapExpiry is how long transactions wait behind a missing nonce
	// before they leave the pool (mempool.Config.GapExpiry).
	GapExpiry Duration `toml:"gap-expiry"`
	// SenderCache is how many recovered senders the node remembers, by
	// transaction hash (chain.SenderCache, least recently used first out):
	// the pending transactions' (so applying a block recovers no
	// signature admission recovered) and recent ones' (for the RPC's
	// "from" fields). About 210 bytes each (docs/benchmarks.md).
	SenderCache int `toml:"sender-cache"`
}

// DefaultSenderCache is mempool.sender-cache unset: twice the default
// mempool.max-total, so a full pool's senders stay with room for recent
// transactions.
const DefaultSenderCache = 1 << 20

// maxSenderCache bounds mempool.sender-cache (about 3.4 GiB full).
const maxSenderCache = 1 << 24

// RateLimitConfig is rpc.RateLimits in the config file: token buckets per
// sender and per client IP on eth_sendRawTransaction, since with no fees
// nothing else bounds spam (DESIGN.md decision 8).
type RateLimitConfig struct {
	// PerAccount is one sender's sustained rate in tx/s (0: off).
	PerAccount   float64 `toml:"per-account"`
	AccountBurst int     `toml:"account-burst"`
	// PerIP is one client address's sustained rate in tx/s (0: off).
	PerIP   float64 `toml:"per-ip"`
	IPBurst int     `toml:"ip-burst"`
	// MaxTracked bounds the senders, and the client addresses, tracked.
	MaxTracked int `toml:"max-tracked"`
	// ExemptTopTier exempts senders at the top KYC tier (neither frozen nor
	// suspended) from both limits, so load tools on the genesis accounts
	// run unthrottled.
	ExemptTopTier bool `toml:"exempt-top-tier"`
}

// maxPendingTxs bounds http.max-pending-txs: the feed keeps a pointer to
// each transaction (about 300 bytes with it), so 10^6 are about 300 MB.
const maxPendingTxs = 1_000_000

// maxRateLimitTracked bounds ratelimit.max-tracked: a bucket and its LRU
// entry take about 200 bytes, so two tables of 10^7 are about 4 GB.
const maxRateLimitTracked = 10_000_000

// LogConfig configures logging.
type LogConfig struct {
	// Level is debug, info, warn or error.
	Level string `toml:"level"`
	// Format is text or json.
	Format string `toml:"format"`
}

// DefaultConfig returns the configuration of a node that sets nothing.
func DefaultConfig() Config {
	b := consensus.DefaultBuilderConfig
	l := rpc.DefaultLimits
	return Config{
		HTTP: HTTPConfig{Addr: "127.0.0.1", Port: 8545, Explorer: true, MaxBodyBytes: l.MaxBodyBytes, MaxBatchItems: l.MaxBatchItems,
			MaxSubscriptions: 1000, MaxPendingTxs: rpc.DefaultPendingTxs, MaxSubscriptionsPerIP: l.MaxSubscriptionsPerIP, MaxSubscriptionsPerConnection: l.MaxSubscriptionsPerConn,
			MaxLogBlockRange: int(l.MaxLogBlockRange), MaxLogResults: l.MaxLogResults,
			MaxFilters: l.MaxFilters, MaxFiltersPerIP: l.MaxFiltersPerIP, FilterTimeout: Duration(l.FilterTimeout),
			ReadHeaderTimeout: Duration(l.ReadHeaderTimeout), ReadTimeout: Duration(l.ReadTimeout),
			WriteTimeout: Duration(l.WriteTimeout), IdleTimeout: Duration(l.IdleTimeout),
			MaxConnections: l.MaxConns, MaxConnectionsPerIP: l.MaxConnsPerIP, MaxWSConnections: l.MaxWSConns,
			MaxResponseBytes: l.MaxResponseBytes, MaxBatchResponseBytes: l.MaxBatchResponseBytes, MaxHeavyReads: l.MaxHeavyReads,
			MaxHeavyReadsPerIP: l.MaxHeavyReadsPerIP, MaxHeavyReadQueue: l.MaxHeavyReadQueue, MaxHeavyReadQueuePerIP: l.MaxHeavyReadQueuePerIP,
			HeavyReadWait:     Duration(l.HeavyReadWait),
			MaxMulticallCalls: rpc.DefaultMaxMulticallCalls},
		P2P:   P2PConfig{MaxForwardBatch: 1000, ReforwardRetry: Duration(p2p.DefaultRelayRetry)},
		Admin: AdminConfig{Addr: "127.0.0.1", Port: 0, TokenFile: "admin.token", MaxConnections: 16},
		Raft: RaftConfig{
			HeartbeatTimeout: Duration(DefaultHeartbeatTimeout), ElectionTimeout: Duration(DefaultElectionTimeout),
			LeaderLeaseTimeout: Duration(DefaultLeaderLeaseTimeout), CommitTimeout: Duration(5 * time.Millisecond),
			SnapshotThreshold: 8192, SnapshotInterval: Duration(2 * time.Minute), TrailingLogs: 10240,
			PeerCheckTimeout: Duration(DefaultPeerCheckTimeout),
		},
		Builder: BuilderConfig{MaxBlockTxs: b.MaxBlockTxs, MaxInflightBlocks: b.MaxInflight,
			BlockInterval: Duration(b.BlockInterval), Heartbeat: Duration(b.Heartbeat), MaxVoterLag: 64},
		Mempool: MempoolConfig{MaxPerAccount: mempool.DefaultConfig.MaxPerAccount, MaxTotal: mempool.DefaultConfig.MaxTotal,
			GapGrace: Duration(mempool.DefaultConfig.GapGrace), GapExpiry: Duration(mempool.DefaultConfig.GapExpiry),
			SenderCache: DefaultSenderCache},
		Log: LogConfig{Level: "info", Format: "text"},
		Votes: VotesConfig{Window: consensus.DefaultVoteConfig.Window, MaxAhead: consensus.DefaultVoteConfig.MaxAhead,
			ResendInterval: Duration(time.Second)},

		RateLimit: RateLimitConfig{PerAccount: rpc.DefaultLimits.Rate.PerAccount, AccountBurst: rpc.DefaultLimits.Rate.AccountBurst,
			PerIP: rpc.DefaultLimits.Rate.PerIP, IPBurst: rpc.DefaultLimits.Rate.IPBurst, MaxTracked: rpc.DefaultLimits.Rate.MaxTracked,
			ExemptTopTier: true},
		State: StateConfig{HistoryBlocks: store.DefaultHistoryBlocks, BlockCacheBytes: store.DefaultBlockCacheBytes, ReceiptCacheBytes: store.DefaultReceiptCacheBytes},
		Store: StoreConfig{MaxSyncDuration: Duration(store.DefaultMaxSyncDuration)},
	}
}

// LoadConfig reads a TOML config file over the defaults. Unknown keys and
// bad values are refused with an error naming the key.
func LoadConfig(path string) (Config, error) {
	cfg, err := ReadConfig(path)
	if err != nil {
		return cfg, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// ReadConfig reads a TOML config file over the defaults, refusing unknown
// keys and values of the wrong type, but leaves Validate to the caller:
// tallyd validates once its flags (--dev among them, which decides
// whether http.cors-origins may be "*") are applied over the file.
func ReadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	if err := config.Decode(data, &cfg); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

func decodeConfig(data []byte, cfg *Config) error {
	if err := config.Decode(data, cfg); err != nil {
		return err
	}
	return cfg.Validate()
}

// Validate checks values; errors name the key.
func (c *Config) Validate() error {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("key %s: %s", key, fmt.Sprintf(format, args...))
	}
	if c.HTTP.Addr != "" && net.ParseIP(c.HTTP.Addr) == nil && c.HTTP.Addr != "localhost" {
		return bad("http.addr", "%q is not an IP address", c.HTTP.Addr)
	}
	if c.HTTP.Port < 0 || c.HTTP.Port > 65535 {
		return bad("http.port", "%d out of range 0..65535", c.HTTP.Port)
	}
	if c.Admin.Addr != "" && net.ParseIP(c.Admin.Addr) == nil && c.Admin.Addr != "localhost" {
		return bad("admin.addr", "%q is not an IP address", c.Admin.Addr)
	}
	if c.Admin.Port < 0 || c.Admin.Port > 65535 {
		return bad("admin.port", "%d out of range 0..65535", c.Admin.Port)
	}
	if c.Admin.MaxConnections < 1 {
		return bad("admin.max-connections", "%d: must be at least 1", c.Admin.MaxConnections)
	}
	if c.Admin.Port > 0 && c.Admin.TokenFile == "" {
		return bad("admin.token-file", "required when admin.port is set")
	}
	for i, a := range c.P2P.Listen {
		if _, err := multiaddr.NewMultiaddr(a); err != nil {
			return bad(fmt.Sprintf("p2p.listen[%d]", i), "%q: %v", a, err)
		}
	}
	for i, a := range c.P2P.Peers {
		if _, err := peer.AddrInfoFromString(a); err != nil {
			return bad(fmt.Sprintf("p2p.peers[%d]", i), "%q: need a multiaddr ending in /p2p/<peer id>: %v", a, err)
		}
	}
	if c.P2P.MaxForwardBatch < 1 || c.P2P.MaxForwardBatch > 10000 {
		return bad("p2p.max-forward-batch", "must be 1..10000")
	}
	if d := time.Duration(c.P2P.ReforwardRetry); d < 10*time.Second || d > 24*time.Hour {
		return bad("p2p.reforward-retry", "must be 10s..24h")
	}
	if c.HTTP.MaxBodyBytes < 1024 {
		return bad("http.max-body-bytes", "must be at least 1024")
	}
	if err := validateCORSOrigins(c.HTTP.CORSOrigins, c.Dev); err != nil {
		return err
	}
	if c.HTTP.MaxPendingTxs < 1 || c.HTTP.MaxPendingTxs > maxPendingTxs {
		return bad("http.max-pending-txs", "%d: must be 1..%d", c.HTTP.MaxPendingTxs, maxPendingTxs)
	}
	if c.HTTP.MaxSubscriptions < 0 {
		return bad("http.max-subscriptions", "must not be negative")
	}
	if c.HTTP.MaxBatchItems < 1 {
		return bad("http.max-batch-items", "must be at least 1")
	}
	if c.HTTP.MaxLogBlockRange < 1 {
		return bad("http.max-log-block-range", "must be at least 1")
	}
	if c.HTTP.MaxLogResults < 1 {
		return bad("http.max-log-results", "must be at least 1")
	}
	if c.HTTP.MaxFilters < 1 {
		return bad("http.max-filters", "must be at least 1")
	}
	if c.HTTP.FilterTimeout <= 0 {
		return bad("http.filter-timeout", "must be a positive duration")
	}
	if err := c.HTTP.validateBounds(); err != nil {
		return err
	}
	for key, d := range map[string]Duration{"raft.heartbeat-timeout": c.Raft.HeartbeatTimeout, "raft.election-timeout": c.Raft.ElectionTimeout,
		"raft.leader-lease-timeout": c.Raft.LeaderLeaseTimeout, "raft.commit-timeout": c.Raft.CommitTimeout,
		"raft.snapshot-interval": c.Raft.SnapshotInterval,
		"builder.block-interval": c.Builder.BlockInterval, "builder.heartbeat": c.Builder.Heartbeat} {
		if d <= 0 {
			return bad(key, "must be a positive duration")
		}
	}
	if c.Raft.PeerCheckTimeout < 0 {
		return bad("raft.peer-check-timeout", "must be 0 (no bound) or a positive duration")
	}
	if c.Raft.LeaderLeaseTimeout > c.Raft.HeartbeatTimeout {
		return bad("raft.leader-lease-timeout", "must not exceed raft.heartbeat-timeout")
	}
	if c.Raft.ElectionTimeout < c.Raft.HeartbeatTimeout {
		return bad("raft.election-timeout", "must be at least raft.heartbeat-timeout")
	}
	for key, d := range map[string]Duration{"raft.heartbeat-timeout": c.Raft.HeartbeatTimeout, "raft.election-timeout": c.Raft.ElectionTimeout,
		"raft.leader-lease-timeout": c.Raft.LeaderLeaseTimeout} {
		if d < Duration(minRaftTimeout) {
			return bad(key, "%v: must be at least %v", time.Duration(d), minRaftTimeout)
		}
	}
	if c.Builder.MaxBlockTxs < 1 || c.Builder.MaxBlockTxs > 100_000 {
		return bad("builder.max-block-txs", "must be 1..100000")
	}
	if c.Builder.MaxInflightBlocks < 1 || c.Builder.MaxInflightBlocks > 16 {
		return bad("builder.max-inflight-blocks", "must be 1..16")
	}
	if c.Mempool.MaxPerAccount < 1 {
		return bad("mempool.max-per-account", "must be at least 1")
	}
	if c.Mempool.MaxTotal < c.Mempool.MaxPerAccount {
		return bad("mempool.max-total", "must be at least mempool.max-per-account")
	}
	if c.Mempool.GapGrace < Duration(time.Second) {
		return bad("mempool.gap-grace", "%v: must be at least 1s", time.Duration(c.Mempool.GapGrace))
	}
	if c.Mempool.GapExpiry < c.Mempool.GapGrace {
		return bad("mempool.gap-expiry", "%v: must be at least mempool.gap-grace", time.Duration(c.Mempool.GapExpiry))
	}
	if c.Mempool.SenderCache < 1024 || c.Mempool.SenderCache > maxSenderCache {
		return bad("mempool.sender-cache", "%d: must be 1024..%d", c.Mempool.SenderCache, maxSenderCache)
	}
	if c.Votes.Window < 1 || c.Votes.Window > maxVoteWindow {
		return bad("votes.window", "%d: must be 1..%d", c.Votes.Window, maxVoteWindow)
	}
	if c.Votes.MaxAhead < 1 || c.Votes.MaxAhead > maxVoteMaxAhead {
		return bad("votes.max-ahead", "%d: must be 1..%d", c.Votes.MaxAhead, maxVoteMaxAhead)
	}
	if c.Votes.ResendInterval < Duration(10*time.Millisecond) {
		return bad("votes.resend-interval", "%v: must be at least 10ms", time.Duration(c.Votes.ResendInterval))
	}
	if err := c.RateLimit.validate(); err != nil {
		return err
	}
	if c.State.HistoryBlocks < 1 || c.State.HistoryBlocks > store.MaxHistoryBlocks {
		return bad("state.history-blocks", "%d: must be 1..%d", c.State.HistoryBlocks, store.MaxHistoryBlocks)
	}
	if c.State.BlockCacheBytes < 1 {
		return bad("state.block-cache-bytes", "%d: must be positive", c.State.BlockCacheBytes)
	}
	if c.State.ReceiptCacheBytes < 1 {
		return bad("state.receipt-cache-bytes", "%d: must be positive", c.State.ReceiptCacheBytes)
	}
	if d := time.Duration(c.Store.MaxSyncDuration); d != 0 && d < store.MinMaxSyncDuration {
		return bad("store.max-sync-duration", "%v: must be 0 (not watched) or at least %v", d, store.MinMaxSyncDuration)
	}
	if _, err := ParseLevel(c.Log.Level); err != nil {
		return bad("log.level", "%v", err)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		return bad("log.format", "%q: use text or json", c.Log.Format)
	}
	return nil
}

// validateCORSOrigins checks http.cors-origins: each entry is a browser
// origin as a page sends it (scheme://host[:port], no path), or "*" on a
// dev chain only, since "*" lets every web page a node's user opens call
// the node.
func validateCORSOrigins(origins []string, dev bool) error {
	for i, o := range origins {
		key := fmt.Sprintf("http.cors-origins[%d]", i)
		if o == "*" {
			if !dev {
				return fmt.Errorf("key %s: \"*\" (any web page may call this node) is only accepted with --dev (dev = true); name the origins of your dApps, e.g. [\"https://wallet.bank.example\"]", key)
			}
			continue
		}
		u, err := url.Parse(o)
		if err != nil || u.Scheme == "" || u.Host == "" || u.Opaque != "" || u.User != nil ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || strings.Contains(o, "*") {
			return fmt.Errorf("key %s: %q is not an origin: write scheme://host[:port] as the browser sends it, e.g. \"https://wallet.bank.example\" or \"http://localhost:3000\"", key, o)
		}
		if u.Path == "/" {
			return fmt.Errorf("key %s: %q: an origin has no path; write %q", key, o, strings.TrimSuffix(o, "/"))
		}
	}
	return nil
}

// validateBounds checks the [http] keys that bound what a client can hold
// or make the node do; each must be set (0 would mean no bound, or
// nothing served).
func (h *HTTPConfig) validateBounds() error {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("key http.%s: %s", key, fmt.Sprintf(format, args...))
	}
	for _, d := range []struct {
		key string
		v   Duration
	}{{"read-header-timeout", h.ReadHeaderTimeout}, {"read-timeout", h.ReadTimeout}, {"write-timeout", h.WriteTimeout}, {"idle-timeout", h.IdleTimeout},
		{"heavy-read-wait", h.HeavyReadWait}} {
		if d.v <= 0 {
			return bad(d.key, "%v: must be a positive duration", time.Duration(d.v))
		}
	}
	if h.ReadHeaderTimeout > h.ReadTimeout {
		return bad("read-header-timeout", "%v: must not exceed http.read-timeout (%v), which covers the header too", time.Duration(h.ReadHeaderTimeout), time.Duration(h.ReadTimeout))
	}
	for _, n := range []struct {
		key string
		v   int
	}{{"max-connections", h.MaxConnections}, {"max-connections-per-ip", h.MaxConnectionsPerIP}, {"max-ws-connections", h.MaxWSConnections},
		{"max-filters-per-ip", h.MaxFiltersPerIP}, {"max-subscriptions-per-ip", h.MaxSubscriptionsPerIP},
		{"max-subscriptions-per-connection", h.MaxSubscriptionsPerConnection}, {"max-heavy-reads", h.MaxHeavyReads},
		{"max-heavy-reads-per-ip", h.MaxHeavyReadsPerIP}, {"max-heavy-read-queue", h.MaxHeavyReadQueue}, {"max-heavy-read-queue-per-ip", h.MaxHeavyReadQueuePerIP},
		{"max-multicall-calls", h.MaxMulticallCalls}} {
		if n.v < 1 {
			return bad(n.key, "%d: must be at least 1", n.v)
		}
	}
	if h.MaxConnectionsPerIP > h.MaxConnections {
		return bad("max-connections-per-ip", "%d: must not exceed http.max-connections (%d)", h.MaxConnectionsPerIP, h.MaxConnections)
	}
	if h.MaxFiltersPerIP > h.MaxFilters {
		return bad("max-filters-per-ip", "%d: must not exceed http.max-filters (%d), or one client could take them all", h.MaxFiltersPerIP, h.MaxFilters)
	}
	// Every call that is not a heavy read answers within 1 MiB (a
	// transaction is at most ~66 KB of JSON, a fee history ~600 KB), so a
	// batch's calls each stay within max-response-bytes (rpc.batchCut).
	if h.MaxResponseBytes < 1<<20 {
		return bad("max-response-bytes", "%d: must be at least 1048576 (1 MiB), above any single call's reply that is not a heavy read", h.MaxResponseBytes)
	}
	if h.MaxResponseBytes >= h.MaxBatchResponseBytes {
		return bad("max-batch-response-bytes", "%d: must be above http.max-response-bytes (%d): a batch's reply is cut one call's bound below it", h.MaxBatchResponseBytes, h.MaxResponseBytes)
	}
	return nil
}

// validate checks the [ratelimit] keys as rpc.RateLimits.Validate does,
// naming the key.
func (r *RateLimitConfig) validate() error {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("key ratelimit.%s: %s", key, fmt.Sprintf(format, args...))
	}
	for _, l := range []struct {
		rateKey, burstKey string
		rate              float64
		burst             int
	}{{"per-account", "account-burst", r.PerAccount, r.AccountBurst}, {"per-ip", "ip-burst", r.PerIP, r.IPBurst}} {
		// !(rate >= 0) also catches nan, which TOML allows.
		if !(l.rate >= 0) || math.IsInf(l.rate, 0) {
			return bad(l.rateKey, "%v: must be a finite number of tx/s, at least 0 (0 turns the limit off)", l.rate)
		}
		if l.burst < 0 {
			return bad(l.burstKey, "%d: must not be negative", l.burst)
		}
		if l.rate > 0 && l.burst < 1 {
			return bad(l.burstKey, "%d: must be at least 1 while ratelimit.%s is set (a bucket of 0 refuses everything)", l.burst, l.rateKey)
		}
	}
	if r.MaxTracked < 0 || r.MaxTracked > maxRateLimitTracked || ((r.PerAccount > 0 || r.PerIP > 0) && r.MaxTracked < 1) {
		return bad("max-tracked", "%d: must be 1..%d", r.MaxTracked, maxRateLimitTracked)
	}
	return nil
}

// ParseLevel parses a log level name.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%q: use debug, info, warn or error", s)
	}
	return l, nil
}
