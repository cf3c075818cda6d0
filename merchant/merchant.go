package merchant

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/internal/credentials"
	"github.com/tally-ledger/tally/internal/logrepeat"
	"github.com/tally-ledger/tally/internal/outbox"
	"github.com/tally-ledger/tally/internal/service"
	"github.com/tally-ledger/tally/wallet"
)

// Options are what a caller can give New besides the config file.
type Options struct {
	// Logger defaults to the [log] section's logger on stderr.
	Logger *slog.Logger
	// Now defaults to time.Now (registration times, expiry, the webhook
	// schedule).
	Now func() time.Time
}

// Notifier follows the chain, matches payments and refunds to the
// registered orders and notifies the merchant's webhook. New opens it,
// Start runs it, Close stops it.
type Notifier struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	store   *Store
	metrics *metrics
	client  *wallet.Client
	tokens  *credentials.Operators
	outbox  *outbox.Outbox
	payees  []common.Address
	// batch is the blocks one eth_getLogs reads: follow.batch, halved
	// while the node refuses a range as holding too many logs.
	batch int

	// Learnt from the node at Start: the chain id and the assets by
	// symbol, and their facades (what eth_getLogs reads).
	chainID uint64
	assets  map[string]wallet.Asset
	facades []common.Address

	kickWebhook chan struct{}
	// workers serves the order API and runs the follower and the
	// webhook sender.
	workers service.Workers
	closed  atomic.Bool
}

// New opens a notifier: it reads its credentials, opens the store and
// prepares the node client. Nothing is contacted yet.
func New(cfg Config, opts Options) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Notifier{cfg: cfg, log: opts.Logger, now: opts.Now, payees: cfg.payees(),
		batch: cfg.Follow.Batch, kickWebhook: make(chan struct{}, 1)}
	if n.log == nil {
		n.log = cfg.NewLogger(os.Stderr)
	}
	n.workers = service.Workers{Log: n.log, Repeats: logrepeat.New(time.Now), Failed: func(worker string) { n.metrics.errors.WithLabelValues(worker).Inc() }}
	if n.now == nil {
		n.now = time.Now
	}
	var err error
	if cfg.API.TokensFile != "" {
		if n.tokens, err = credentials.LoadOperators("api.tokens-file", cfg.Path(cfg.API.TokensFile)); err != nil {
			return nil, err
		}
	}
	var secret []byte
	if cfg.Webhook.URL != "" {
		if secret, err = credentials.Secret("webhook.secret-file", cfg.Path(cfg.Webhook.SecretFile)); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(cfg.Path(cfg.DataDir), 0o700); err != nil {
		return nil, fmt.Errorf("key datadir: %w", err)
	}
	if n.store, err = OpenStore(cfg.Path(cfg.DataDir)); err != nil {
		return nil, err
	}
	n.metrics = newMetrics(n)
	if cfg.Webhook.URL != "" {
		w := cfg.Webhook
		n.outbox, err = outbox.New(n.store.db, prefixOutbox, keyOutboxSeq, outbox.Config{URL: w.URL, Secret: secret, Timeout: w.Timeout.D(),
			RetryMin: w.RetryMin.D(), RetryMax: w.RetryMax.D(), MaxAge: w.MaxAge.D(), MaxPending: w.MaxPending}, outbox.Options{
			Logger: n.log, Now: n.now,
			Hooks: outbox.Hooks{
				Delivered: func() { n.metrics.webhooks.WithLabelValues("delivered").Inc() },
				Failed:    func() { n.metrics.webhooks.WithLabelValues("failed").Inc() },
				Dropped:   func(why string) { n.metrics.webhookDropped.WithLabelValues(why).Inc() },
			}})
		if err != nil {
			n.store.Close()
			return nil, err
		}
	}
	n.client, err = wallet.DialEndpoints(context.Background(), cfg.Nodes.Endpoints, wallet.Options{RetryFor: cfg.Nodes.Timeout.D()})
	if err != nil {
		n.store.Close()
		return nil, fmt.Errorf("key nodes.endpoints: %w", err)
	}
	return n, nil
}

// Store returns the notifier's store (tools and tests read it).
func (n *Notifier) Store() *Store { return n.store }

// Addr is the API's address, once started.
func (n *Notifier) Addr() string { return n.workers.Addr() }

// Start learns the chain (id, assets) from a node, retrying until one
// answers or ctx ends, then starts the API, the follower and the webhook
// sender.
func (n *Notifier) Start(ctx context.Context) error {
	if err := n.resolve(ctx); err != nil {
		return err
	}
	if err := n.workers.Serve(n.cfg.Listen, "order API", n.handler()); err != nil {
		return err
	}
	n.workers.Loop("follower", n.cfg.Follow.PollInterval.D(), nil, func(ctx context.Context) (bool, error) {
		k, err := n.Step(ctx)
		return k > 0, err
	})
	if n.outbox != nil {
		n.workers.Loop("webhook", n.cfg.Webhook.RetryMin.D(), n.kickWebhook, func(ctx context.Context) (bool, error) {
			_, err := n.outbox.DeliverRound(ctx)
			return false, err
		})
	}
	n.log.Info("merchant notifier started", "listen", n.Addr(), "chain", n.chainID, "payees", n.payees)
	return nil
}

// resolve learns the chain id and the assets from a node.
func (n *Notifier) resolve(ctx context.Context) error {
	var id *big.Int
	var list []wallet.Asset
	err := n.workers.Resolve(ctx, func(ctx context.Context) error {
		var err error
		if id, err = n.client.ChainID(ctx); err != nil {
			return err
		}
		list, err = n.client.Assets(ctx)
		return err
	})
	if err != nil {
		return err
	}
	if !id.IsUint64() {
		return fmt.Errorf("the node's chain id %s does not fit a payment request", id)
	}
	n.chainID = id.Uint64()
	n.assets = map[string]wallet.Asset{}
	n.facades = nil
	for _, a := range list {
		n.assets[a.Symbol] = a
		n.facades = append(n.facades, a.Address)
	}
	return nil
}

// Close stops the API and the workers (waiting for their rounds) and
// closes the store. It is safe to call more than once.
func (n *Notifier) Close() error {
	if !n.closed.CompareAndSwap(false, true) {
		return nil
	}
	err := n.workers.Stop()
	n.client.Close()
	return errors.Join(err, n.store.Close())
}

// Run opens, starts and runs a notifier until ctx ends, then closes it:
// the whole of `tally merchant`.
func Run(ctx context.Context, cfg Config, opts Options) error {
	n, err := New(cfg, opts)
	if err != nil {
		return err
	}
	return service.Run(ctx, n.log, "merchant notifier", n)
}
