package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
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
	cfg Config
	log *slog.Logger
	// repeats holds back a failure logged again and again (a node down).
	repeats *logrepeat.Limiter
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

	ln       net.Listener
	srv      *http.Server
	httpDone chan struct{}
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	closed   atomic.Bool
	// lastErr is the follower's last error, for /v1/status.
	lastErr atomic.Pointer[string]
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
	m := &Monitor{repeats: logrepeat.New(time.Now), cfg: cfg, log: opts.Logger, now: opts.Now, key: opts.Key, src: opts.Source, chainID: opts.ChainID, assets: opts.Assets,
		kickWebhook: make(chan struct{}, 1), kickFreeze: make(chan struct{}, 1), http: &http.Client{}}
	if m.log == nil {
		m.log = cfg.NewLogger(os.Stderr)
	}
	if m.now == nil {
		m.now = time.Now
	}
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
func (m *Monitor) Addr() string {
	if m.ln == nil {
		return ""
	}
	return m.ln.Addr().String()
}

// Start learns the chain (id, assets) from a node, retrying until one
// answers or ctx ends, starts the review API and the workers: the
// follower, the webhook sender and the escalations' freezes.
func (m *Monitor) Start(ctx context.Context) error {
	if err := m.prepare(ctx); err != nil {
		return err
	}
	var err error
	if m.ln, err = net.Listen("tcp", m.cfg.Listen); err != nil {
		return fmt.Errorf("key listen: %w", err)
	}
	m.srv = &http.Server{Handler: m.handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
	m.httpDone = make(chan struct{})
	go func() {
		defer close(m.httpDone)
		if err := m.srv.Serve(m.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("review API stopped", "err", err)
		}
	}()
	wctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.loop(wctx, "follower", m.cfg.Follow.PollInterval.D(), nil, func(ctx context.Context) (bool, error) {
		n, err := m.Step(ctx)
		return n > 0, err
	})
	if m.cfg.Webhook.URL != "" {
		m.loop(wctx, "webhook", m.cfg.Webhook.RetryMin.D(), m.kickWebhook, func(ctx context.Context) (bool, error) {
			_, err := m.outbox.DeliverRound(ctx)
			return false, err
		})
	}
	m.loop(wctx, "freeze", time.Second, m.kickFreeze, func(ctx context.Context) (bool, error) {
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

// loop runs round every interval (at once again when it reports more
// work, or when kicked) until ctx ends.
func (m *Monitor) loop(ctx context.Context, name string, interval time.Duration, kicked chan struct{}, round func(context.Context) (bool, error)) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		failing := "" // the kind of the last round's failure
		for {
			more, err := round(ctx)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				m.metrics.errors.WithLabelValues(name).Inc()
				msg := fmt.Sprintf("%s: %v", name, err)
				m.lastErr.Store(&msg)
				// A node down fails every round the same way: that
				// is logged once per doubling interval (logrepeat).
				failing = name + ": " + logrepeat.Kind(err.Error())
				if ok, suppressed := m.repeats.Allow(failing); ok {
					m.log.Warn("round failed", "worker", name, "repeats_suppressed", suppressed, "err", err)
				}
				more = false
			} else if failing != "" {
				m.repeats.Reset(failing) // the next failure is logged at once
				failing = ""
			}
			if more {
				continue
			}
			select {
			case <-ctx.Done():
				return
			case <-kicked:
			case <-time.After(interval):
			}
		}
	}()
}

// resolve learns the chain id and the assets from a node (unless given).
func (m *Monitor) resolve(ctx context.Context) error {
	if m.chainID != nil && m.assets != nil {
		return nil
	}
	if m.client == nil {
		return errors.New("key nodes.endpoints: required")
	}
	delay := 500 * time.Millisecond
	attempt := 0
	for {
		id, err := m.client.ChainID(ctx)
		var list []wallet.Asset
		if err == nil {
			list, err = m.client.Assets(ctx)
		}
		if err == nil {
			m.chainID, m.assets = id, txdecode.FromSchema(list)
			return nil
		}
		attempt++
		if ok, suppressed := m.repeats.Allow("resolve"); ok {
			m.log.Warn("no node answers; retrying (repeats logged once per doubling interval)", "attempt", attempt, "retry_in", delay, "repeats_suppressed", suppressed, "err", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("learn the chain from nodes.endpoints: %w (last: %v)", ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 10*time.Second)
	}
}

// Close stops the API and the workers (waiting for their rounds) and
// closes the store. It is safe to call more than once.
func (m *Monitor) Close() error {
	if !m.closed.CompareAndSwap(false, true) {
		return nil
	}
	var errs []error
	if m.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, m.srv.Shutdown(ctx))
		cancel()
		<-m.httpDone
	}
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
	if m.client != nil {
		m.client.Close()
	}
	errs = append(errs, m.store.Close())
	return errors.Join(errs...)
}

// Run opens, starts and runs a monitor until ctx ends, then closes it:
// the whole of `tally monitor`.
func Run(ctx context.Context, cfg Config, opts Options) error {
	m, err := New(cfg, opts)
	if err != nil {
		return err
	}
	if err := m.Start(ctx); err != nil {
		m.Close()
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	<-ctx.Done()
	m.log.Info("monitor stopping")
	return m.Close()
}

// kick wakes a worker without waiting for its tick.
func kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func msTime(ms uint64) time.Time { return time.UnixMilli(int64(ms)).UTC() }
