package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/internal/credentials"
	"github.com/tally-ledger/tally/internal/logrepeat"
	"github.com/tally-ledger/tally/internal/outbox"
	"github.com/tally-ledger/tally/internal/service"
	"github.com/tally-ledger/tally/txdecode"
	"github.com/tally-ledger/tally/wallet"
)

// Options are what a caller can give New besides the config file.
type Options struct {
	// Logger defaults to the [log] section's logger on stderr.
	Logger *slog.Logger
	// Key, when set, is the compliance key (instead of key.keystore-file).
	Key *crypto.PrivateKey
	// Source, when set, is read instead of the nodes (tests: a data dir);
	// ChainID and Assets must be set with it.
	Source  Source
	ChainID *big.Int
	Assets  txdecode.Assets
	// Now defaults to time.Now (review times, webhook schedule).
	Now func() time.Time
}

// Monitor follows the chain, judges every block with the detective rules
// and keeps the review queue. New opens it, Start runs it, Close stops it.
type Monitor struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	store   *Store
	metrics *metrics
	// client is the nodes' client (nil with Options.Source and no
	// endpoints): the source, the compliance key's transactions.
	client  *wallet.Client
	src     Source
	chainID *big.Int
	assets  txdecode.Assets
	senders *chain.SenderCache
	engine  *engine
	key     *crypto.PrivateKey
	// operators may use the review API.
	operators *credentials.Operators
	// outbox sends the webhook's notifications (nil without webhook.url).
	outbox *outbox.Outbox
	http   *http.Client

	kickWebhook, kickFreeze chan struct{}
	// freezeMu serialises the escalations' freezes (one nonce at a time).
	freezeMu sync.Mutex

	// workers serves the review API and runs the follower, the webhook
	// sender and the escalations' freezes.
	workers service.Workers
	closed  atomic.Bool
}

// New opens a monitor: it reads its credentials, opens the store and
// prepares the node client. Nothing is contacted yet.
func New(cfg Config, opts Options) (*Monitor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := checkCrashEnv(); err != nil {
		return nil, err
	}
	m := &Monitor{cfg: cfg, log: opts.Logger, now: opts.Now, key: opts.Key, src: opts.Source, chainID: opts.ChainID, assets: opts.Assets,
		kickWebhook: make(chan struct{}, 1), kickFreeze: make(chan struct{}, 1), http: &http.Client{}}
	if m.log == nil {
		m.log = cfg.NewLogger(os.Stderr)
	}
	if m.now == nil {
		m.now = time.Now
	}
	m.workers = service.Workers{Log: m.log, Repeats: logrepeat.New(time.Now), Failed: func(worker string) { m.metrics.errors.WithLabelValues(worker).Inc() }}
	if m.src != nil && (m.chainID == nil || m.assets == nil) {
		return nil, errors.New("monitor: Options.Source needs Options.ChainID and Options.Assets")
	}
	var err error
	if m.key == nil && cfg.Key.KeystoreFile != "" {
		if m.key, err = credentials.LoadKey(cfg.Key, cfg.Path); err != nil {
			return nil, err
		}
	}
	if cfg.Operator.TokensFile != "" {
		if m.operators, err = credentials.LoadOperators("operator.tokens-file", cfg.Path(cfg.Operator.TokensFile)); err != nil {
			return nil, err
		}
	}
	var webhookSecret []byte
	if cfg.Webhook.URL != "" {
		if webhookSecret, err = credentials.Secret("webhook.secret-file", cfg.Path(cfg.Webhook.SecretFile)); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(cfg.Path(cfg.DataDir), 0o700); err != nil {
		return nil, fmt.Errorf("key datadir: %w", err)
	}
	if m.store, err = OpenStore(cfg.Path(cfg.DataDir)); err != nil {
		return nil, err
	}
	if len(cfg.Nodes.Endpoints) > 0 {
		m.client, err = wallet.DialEndpoints(context.Background(), cfg.Nodes.Endpoints, wallet.Options{RetryFor: cfg.Nodes.Timeout.D()})
		if err != nil {
			m.store.Close()
			return nil, fmt.Errorf("key nodes.endpoints: %w", err)
		}
		if m.src == nil {
			m.src = NodeSource{C: m.client}
		}
	}
	m.metrics = newMetrics(m)
	if cfg.Webhook.URL != "" {
		w := cfg.Webhook
		m.outbox, err = outbox.New(m.store.db, prefixOutbox, keyOutboxSeq, outbox.Config{URL: w.URL, Secret: webhookSecret, Timeout: w.Timeout.D(),
			RetryMin: w.RetryMin.D(), RetryMax: w.RetryMax.D(), MaxAge: w.MaxAge.D(), MaxPending: w.MaxPending}, outbox.Options{
			Logger: m.log, Now: m.now, HTTP: m.http,
			Hooks: outbox.Hooks{
				Delivered: func() { m.metrics.webhooks.WithLabelValues("delivered").Inc() },
				Failed:    func() { m.metrics.webhooks.WithLabelValues("failed").Inc() },
				Dropped:   func(why string) { m.metrics.webhookDropped.WithLabelValues(why).Inc() },
			}})
		if err != nil {
			m.store.Close()
			return nil, err
		}
	}
	return m, nil
}

// Store returns the monitor's store (tools and tests read it).
func (m *Monitor) Store() *Store { return m.store }

// Addr is the review API's address, once started.
func (m *Monitor) Addr() string { return m.workers.Addr() }

// Start learns the chain (id, assets) from a node, retrying until one
// answers or ctx ends, starts the review API and the workers: the
// follower, the webhook sender and the escalations' freezes.
func (m *Monitor) Start(ctx context.Context) error {
	if err := m.prepare(ctx); err != nil {
		return err
	}
	if err := m.workers.Serve(m.cfg.Listen, "review API", m.handler()); err != nil {
		return err
	}
	m.workers.Loop("follower", m.cfg.Follow.PollInterval.D(), nil, func(ctx context.Context) (bool, error) {
		n, err := m.Step(ctx)
		return n > 0, err
	})
	if m.cfg.Webhook.URL != "" {
		m.workers.Loop("webhook", m.cfg.Webhook.RetryMin.D(), m.kickWebhook, func(ctx context.Context) (bool, error) {
			_, err := m.outbox.DeliverRound(ctx)
			return false, err
		})
	}
	m.workers.Loop("freeze", time.Second, m.kickFreeze, func(ctx context.Context) (bool, error) {
		return false, m.freezeRound(ctx)
	})
	m.log.Info("monitor started", "listen", m.Addr(), "chain", m.chainID, "assets", m.assets.Symbols())
	return nil
}

// prepare learns the chain and sets up the rules: everything Step needs.
func (m *Monitor) prepare(ctx context.Context) error {
	if err := m.resolve(ctx); err != nil {
		return err
	}
	// A cache as large as one read of blocks is of transactions at most:
	// each block's senders are recovered once.
	m.senders = chain.NewSenderCache(chain.NewSigner(m.chainID), 4096)
	var err error
	if m.engine, err = newEngine(m.cfg.Rules, m.assets); err != nil {
		return err
	}
	return nil
}

// resolve learns the chain id and the assets from a node (unless given).
func (m *Monitor) resolve(ctx context.Context) error {
	if m.chainID != nil && m.assets != nil {
		return nil
	}
	if m.client == nil {
		return errors.New("key nodes.endpoints: required")
	}
	return m.workers.Resolve(ctx, func(ctx context.Context) error {
		id, err := m.client.ChainID(ctx)
		if err != nil {
			return err
		}
		list, err := m.client.Assets(ctx)
		if err != nil {
			return err
		}
		m.chainID, m.assets = id, txdecode.FromSchema(list)
		return nil
	})
}

// Close stops the API and the workers (waiting for their rounds) and
// closes the store. It is safe to call more than once.
func (m *Monitor) Close() error {
	if !m.closed.CompareAndSwap(false, true) {
		return nil
	}
	err := m.workers.Stop()
	if m.client != nil {
		m.client.Close()
	}
	return errors.Join(err, m.store.Close())
}

// Run opens, starts and runs a monitor until ctx ends, then closes it:
// the whole of `tally monitor`.
func Run(ctx context.Context, cfg Config, opts Options) error {
	m, err := New(cfg, opts)
	if err != nil {
		return err
	}
	return service.Run(ctx, m.log, "monitor", m)
}

func msTime(ms uint64) time.Time { return time.UnixMilli(int64(ms)).UTC() }
