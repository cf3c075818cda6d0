package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/consensus"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/explorer"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/internal/durable"
	"github.com/tally-ledger/tally/internal/version"
	"github.com/tally-ledger/tally/mempool"
	"github.com/tally-ledger/tally/p2p"
	"github.com/tally-ledger/tally/rpc"
	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/store"
)

// Version is the node's version (internal/version: `git describe` stamped
// by the Makefile, else the module version), in the startup line and
// web3_clientVersion.
var Version = version.Get().Version

// Node is a running Tally node.
type Node struct {
	cfg     Config
	log     *slog.Logger
	key     *crypto.PrivateKey
	genesis *genesis.Genesis

	db      *store.DB
	senders *chain.SenderCache
	pool    *mempool.Pool
	adm     *Admission // admission: the pool journal, forwarding, replication
	// keeper sends expirePayments while this node leads (payments.go).
	keeper *keeper
	engine *consensus.Engine
	// member is the engine once Start returned, and asking is set while
	// Start asks the peers whether it may start Raft on an empty Raft
	// directory: what the member protocol answers from (startup.go).
	member atomic.Pointer[consensus.Engine]
	asking atomic.Bool
	rpc    *rpc.Server
	heads  *rpc.HeadFeed
	// pending is the feed of the transactions the pool admits.
	pending *rpc.PendingFeed
	admin   *adminServer

	// Cluster networking; host is nil for a node without p2p.listen.
	host      *p2p.Host
	heightsMu sync.Mutex
	heights   map[peer.ID]heightSample // other members' applied heights (leader)
	members   *Membership              // Raft membership follows the validator set (leader)
	// memberChanges counts the leader's membership changes, by action.
	memberChanges *prometheus.CounterVec
	allowedMu     sync.Mutex
	allowed       []peer.ID // the gater's allow list as last set, sorted
	allowedSet    bool
	stop          chan struct{}
	bg            sync.WaitGroup
	metrics       *metrics
	votes         *consensus.VoteRelay // commit votes and certificates

	listener net.Listener
	http     *http.Server
	httpDone chan struct{}
	// httpCancel ends the contexts of requests in progress (closeHTTP).
	httpCancel context.CancelFunc

	closeOnce sync.Once
}

// New opens the node's stores and starts consensus and the HTTP listener.
func New(cfg Config, logger *slog.Logger) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.DataDir == "" {
		return nil, errors.New("key datadir: required")
	}
	g, err := loadGenesis(cfg)
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: logger, genesis: g}
	// The data directory (synced into its parent: a power cut after the
	// first start must not take it away with the synced state and Raft
	// log inside) and the node key are written before the state database
	// watches the disk: watched here too, so that a start on a disk that
	// still stalls ends within store.max-sync-duration with its ALARM
	// instead of hanging unreported.
	dataFS, unwatch := cfg.Stalls().Watch(vfs.Default, cfg.DataDir, logger)
	if err := durable.MkdirAll(dataFS, cfg.DataDir); err != nil {
		unwatch.Close()
		return nil, fmt.Errorf("datadir: %w", err)
	}
	n.key, err = LoadOrCreateKey(dataFS, filepath.Join(cfg.DataDir, "nodekey"), cfg.Dev)
	unwatch.Close()
	if err != nil {
		return nil, err
	}
	if err := n.open(); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

func loadGenesis(cfg Config) (*genesis.Genesis, error) {
	switch {
	case cfg.Genesis != "":
		return genesis.Load(cfg.Genesis)
	case cfg.Dev:
		return genesis.Dev(), nil
	}
	return nil, errors.New("key genesis: a genesis file is required (or run with --dev)")
}

func (n *Node) open() error {
	var err error
	n.db, err = store.Open(StateDir(n.cfg.DataDir), store.Options{NoSync: n.cfg.Raft.NoSync, Logger: n.log, HistoryBlocks: n.cfg.State.HistoryBlocks,
		BlockCacheBytes: n.cfg.State.BlockCacheBytes, ReceiptCacheBytes: n.cfg.State.ReceiptCacheBytes, Stalls: n.cfg.Stalls()})
	if err != nil {
		return err
	}
	if err := n.db.InitGenesis(n.genesis); err != nil {
		return err
	}
	head, _ := n.db.Head()
	n.log.Info("state opened", "height", head.Number, "hash", head.Hash, "state_root", head.StateRoot, "raft_index", head.RaftIndex)

	n.senders = chain.NewSenderCache(chain.NewSigner(n.genesis.ChainIDBig()), n.cfg.Mempool.SenderCache)
	n.pending = rpc.NewPendingFeed(n.cfg.HTTP.MaxPendingTxs)
	n.pool = mempool.New(mempool.Config{MaxPerAccount: n.cfg.Mempool.MaxPerAccount, MaxTotal: n.cfg.Mempool.MaxTotal,
		GapGrace: time.Duration(n.cfg.Mempool.GapGrace), GapExpiry: time.Duration(n.cfg.Mempool.GapExpiry),
		OnAdmit: n.pending.Publish}, n.db, n.senders)
	if n.adm, err = OpenAdmission(AdmissionConfig{DB: n.db, Pool: n.pool, Senders: n.senders,
		FS: vfs.Default, Journal: filepath.Join(n.cfg.DataDir, PoolJournalFile), NoSync: n.cfg.Raft.NoSync,
		IsLeader: func() bool { return n.engine.IsLeader() }, IsValidator: n.isValidator,
		ReforwardRetry: time.Duration(n.cfg.P2P.ReforwardRetry),
		OnJournalFailure: func(err error) {
			if e := n.engine; e != nil {
				e.FSM.Halt(err)
			}
		},
		Log: n.log}); err != nil {
		return err
	}
	n.metrics = newMetrics(n)
	n.adm.cfg.Admitted, n.adm.cfg.Forwarded, n.adm.cfg.NotReplicated = n.metrics.admitted, n.metrics.forwarded, n.metrics.notReplicated
	n.adm.cfg.ForwardBatches = n.metrics.forwardBatches
	n.heads = rpc.NewHeadFeed(n.cfg.HTTP.MaxSubscriptions)

	net, err := n.openNetwork()
	if err != nil {
		return err
	}
	if n.host != nil {
		n.newMembership()
	}
	n.votes = n.newVotes() // after the network: votes go to the leader over it
	n.engine, err = consensus.Start(consensus.Config{
		Dir:       filepath.Join(n.cfg.DataDir, "raft"),
		LocalID:   net.id,
		Transport: net.transport,
		Bootstrap: net.bootstrap,
		FreshRaft: n.cfg.RaftFresh,
		AskPeers:  net.askPeers,
		Address:   libp2pIDs{}.Address,
		Key:       n.key,
		Builder: consensus.BuilderConfig{
			MaxBlockTxs:   n.cfg.Builder.MaxBlockTxs,
			MaxInflight:   n.cfg.Builder.MaxInflightBlocks,
			BlockInterval: time.Duration(n.cfg.Builder.BlockInterval),
			Heartbeat:     time.Duration(n.cfg.Builder.Heartbeat),
			ApplyTimeout:  consensus.DefaultBuilderConfig.ApplyTimeout,
			MaxVoterLag:   n.cfg.Builder.MaxVoterLag,
			SlowestVoter:  n.slowestVoter,
			Hold:          n.hold,
			Certificates:  n.votes.Collector.Ready,
			BlockClock:    n.cfg.BlockClock,
		},
		HeartbeatTimeout:   time.Duration(n.cfg.Raft.HeartbeatTimeout),
		ElectionTimeout:    time.Duration(n.cfg.Raft.ElectionTimeout),
		LeaderLeaseTimeout: time.Duration(n.cfg.Raft.LeaderLeaseTimeout),
		CommitTimeout:      time.Duration(n.cfg.Raft.CommitTimeout),
		SnapshotThreshold:  n.cfg.Raft.SnapshotThreshold,
		SnapshotInterval:   time.Duration(n.cfg.Raft.SnapshotInterval),
		TrailingLogs:       n.cfg.Raft.TrailingLogs,
		PeerCheckTimeout:   time.Duration(n.cfg.Raft.PeerCheckTimeout),
		NoSync:             n.cfg.Raft.NoSync,
		Stalls:             n.cfg.Stalls(),
		Logger:             n.log,
		LogLevel:           slog.LevelWarn,
		OnApplied:          n.applied,
		OnRestored:         n.votes.Restored,
		OnProposed:         n.metrics.proposed,
	}, n.db, n.pool, n.senders)
	if err != nil {
		return err
	}
	n.member.Store(n.engine)
	n.stop = make(chan struct{})
	n.bg.Add(2)
	go n.every(gapCheck, n.expireGaps)
	go n.every(journalCheck, func() { n.adm.CompactJournal() })
	if err := n.startKeeper(); err != nil {
		return err
	}
	n.startCluster()
	n.serveVotes()
	go n.votes.Run(n.engine)

	limits := n.cfg.HTTP.Limits(n.cfg.Dev)
	limits.OnRefused = func(bound string) { n.metrics.rpcRefused.WithLabelValues(bound).Inc() }
	rl := n.cfg.RateLimit
	limits.Rate = rpc.RateLimits{PerAccount: rl.PerAccount, AccountBurst: rl.AccountBurst, PerIP: rl.PerIP, IPBurst: rl.IPBurst, MaxTracked: rl.MaxTracked}
	if rl.ExemptTopTier {
		limits.Rate.Exempt = n.topTier
	}
	n.rpc, err = rpc.NewServer(n, limits, "tally/"+Version)
	if err != nil {
		return err
	}
	if err := n.rpc.RegisterName("tally", &TallyAPI{n: n}); err != nil {
		return err
	}
	if err := n.serveAdmin(); err != nil {
		return err
	}
	return n.serveHTTP(limits)
}

// serveHTTP serves the JSON-RPC port with the connection bounds and
// timeouts of limits (the [http] keys).
func (n *Node) serveHTTP(limits rpc.Limits) error {
	addr := net.JoinHostPort(n.cfg.HTTP.Addr, strconv.Itoa(n.cfg.HTTP.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return listenError("http.port", "--http.port", addr, err)
	}
	n.listener = ln
	mux := http.NewServeMux()
	mux.Handle("/metrics", n.metrics.handler())
	mux.HandleFunc("/healthz", n.healthz)
	if n.cfg.HTTP.Explorer {
		mux.Handle("/", explorer.Handler(n.rpc))
	} else {
		mux.Handle("/", n.rpc)
	}
	n.http = rpc.NewHTTPServer(mux, limits)
	// Requests' contexts end when Close gives up waiting for them.
	var base context.Context
	base, n.httpCancel = context.WithCancel(context.Background())
	n.http.BaseContext = func(net.Listener) context.Context { return base }
	n.httpDone = make(chan struct{})
	go func() {
		defer close(n.httpDone)
		if err := n.http.Serve(rpc.LimitListener(ln, limits)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("http server", "err", err)
		}
	}()
	n.log.Info("JSON-RPC listening", "addr", "http://"+ln.Addr().String())
	return nil
}

// topTier reports whether a is at the top KYC tier of the rules in force
// and not stopped: such accounts (the consortium's own, and the dev and
// testnet genesis accounts load tools send from) are exempt from the rate
// limits. A tier above the top one (left by governance removing tiers) has
// the top tier's limits in execution, so it counts as top here too. A
// stopped account (frozen, or suspended by a velocity rule) is never
// exempt: its transactions are still admitted and included (with status
// 0), so exempting it would let it spam unbounded. A state read that
// fails exempts no one: the limits then apply.
func (n *Node) topTier(a common.Address) bool {
	head, _ := n.db.Head()
	return n.exemptAt(a, max(uint64(time.Now().UnixMilli()), head.TimeMs+1))
}

// exemptAt is topTier for a transaction executed at block time t: a
// suspension stops the account while t < until and nothing after
// (decision 14), so the exemption comes back at until with no
// transaction. topTier passes the time the next block will have at the
// earliest: the leader stamps it with its clock, at least 1 ms after the head's.
func (n *Node) exemptAt(a common.Address, t uint64) bool {
	rules, err := n.db.Rules()
	if err != nil {
		return false
	}
	acct, err := n.db.Account(a)
	if err != nil || acct.Tier < rules.TopTier() {
		return false
	}
	stopped, err := state.NewOverlay(n.db).Stopped(a, acct, t)
	return err == nil && !stopped
}

// HTTPAddr is the address the JSON-RPC listener is bound to.
func (n *Node) HTTPAddr() string { return n.listener.Addr().String() }

// Address is the node key's address (its validator identity).
func (n *Node) Address() common.Address { return n.key.Address() }

func (n *Node) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	head, _ := n.db.Head()
	status, code := "ok", http.StatusOK
	if err := n.engine.Halted(); err != nil {
		status, code = "halted: "+err.Error(), http.StatusServiceUnavailable
	} else if leader, _ := n.engine.Raft.LeaderWithID(); leader == "" {
		status, code = "no leader", http.StatusServiceUnavailable
	}
	w.WriteHeader(code)
	fmt.Fprintf(w, "{\"status\":%q,\"height\":%d,\"raftState\":%q}\n", status, head.Number, n.engine.State().String())
}

// Close shuts the node down: HTTP first, then consensus, then the stores.
func (n *Node) Close() error {
	var errs []error
	n.closeOnce.Do(func() {
		if n.http != nil {
			n.closeHTTP()
		}
		if n.admin != nil {
			errs = append(errs, n.admin.close())
		}
		if n.rpc != nil {
			n.rpc.Stop()
		}
		if n.stop != nil {
			close(n.stop)
			n.bg.Wait()
		}
		if n.adm != nil {
			n.adm.StopNetwork()
		}
		if n.votes != nil && n.engine != nil {
			n.votes.Close()
		}
		if n.engine != nil {
			errs = append(errs, n.engine.Shutdown())
		}
		if n.host != nil {
			errs = append(errs, n.host.Close())
		}
		if n.adm != nil {
			errs = append(errs, n.adm.journal.Close())
		}
		if n.db != nil {
			if head, ok := n.db.Head(); ok {
				n.log.Info("state closed", "height", head.Number, "hash", head.Hash, "state_root", head.StateRoot, "raft_index", head.RaftIndex)
			}
			errs = append(errs, n.db.Close())
		}
	})
	return errors.Join(errs...)
}

// httpShutdownGrace is how long Close lets requests in progress finish
// (a variable so tests can shorten it).
var httpShutdownGrace = 5 * time.Second

// closeHTTP stops the JSON-RPC listener: requests in progress get
// httpShutdownGrace to finish, then their contexts are cancelled and their
// connections closed. A client still busy then (a send waiting for a
// leader that is gone, a body that never ends) is the client's problem,
// not a failed shutdown: the node still stops cleanly.
func (n *Node) closeHTTP() {
	ctx, cancel := context.WithTimeout(context.Background(), httpShutdownGrace)
	err := n.http.Shutdown(ctx)
	cancel()
	if err != nil {
		n.log.Warn("closing JSON-RPC connections still busy after the shutdown grace", "grace", httpShutdownGrace, "err", err)
		n.httpCancel()
		n.http.Close()
	}
	n.httpCancel()
	<-n.httpDone
}

// gapCheck is how often the pool drops transactions that waited behind a
// missing nonce longer than mempool.gap-expiry.
const gapCheck = time.Second

// expireGaps expires gapped transactions from the pool.
func (n *Node) expireGaps() {
	if gone := n.pool.ExpireGaps(); len(gone) > 0 {
		n.log.Info("dropped transactions waiting behind a missing nonce", "txs", len(gone), "waited_over", time.Duration(n.cfg.Mempool.GapExpiry))
	}
}

// every calls fn each interval d until the node stops. The caller has
// counted it in n.bg.
func (n *Node) every(d time.Duration, fn func()) {
	defer n.bg.Done()
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		fn()
	}
}

// Backend implementation for the rpc package.

// State implements rpc.Backend.
func (n *Node) State() *store.DB { return n.db }

// Senders implements rpc.Backend.
func (n *Node) Senders() *chain.SenderCache { return n.senders }

// SubmitTx implements rpc.Backend: the admission path's Submit
// (Admission.Submit); a JSON-RPC batch is AdmitBatch's.
func (n *Node) SubmitTx(ctx context.Context, tx *types.Transaction) error {
	if err := n.engine.Halted(); err != nil {
		return err
	}
	return n.adm.Submit(ctx, tx)
}

// Halted implements rpc.Halter: once the FSM has halted (it met a broken
// invariant, such as a quorum certificate for a block this node does not
// have), every eth_* call answers with this error.
func (n *Node) Halted() error { return n.engine.Halted() }

// Heads implements rpc.Backend.
func (n *Node) Heads() *rpc.HeadFeed { return n.heads }

// PendingFeed implements rpc.PendingFeeder.
func (n *Node) PendingFeed() *rpc.PendingFeed { return n.pending }

// applied runs in the FSM goroutine after each applied block.
func (n *Node) applied(a *store.Applied) {
	n.metrics.applied(a)
	n.votes.Applied(a)
	n.heads.Publish(a.Block)
	if n.members != nil {
		n.members.Kick()
	}
}

// hold is the builder's Hold: a networked node holds the block that would
// apply a validator's removal until the validator has left Raft.
func (n *Node) hold(base state.Reader, number uint64) string {
	if n.members == nil {
		return ""
	}
	return n.members.Hold(base, number)
}

// PendingNonce implements rpc.Backend.
func (n *Node) PendingNonce(a common.Address) (uint64, error) { return n.pool.PendingNonce(a) }

// PendingTx implements rpc.Backend.
func (n *Node) PendingTx(h common.Hash) (*types.Transaction, common.Address, bool) {
	return n.pool.Get(h)
}

// Syncing implements rpc.Backend. Applied blocks are final, so a node
// serves them as soon as it has them; it does not report catching up.
func (n *Node) Syncing() (bool, uint64, uint64) { return false, 0, 0 }

// ChainID returns the chain id.
func (n *Node) ChainID() *big.Int { return n.genesis.ChainIDBig() }
