package bridge

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/internal/credentials"
	"github.com/tally-ledger/tally/internal/logrepeat"
	"github.com/tally-ledger/tally/wallet"
)

// Options are what a caller can give New besides the config file.
type Options struct {
	// Logger defaults to the [log] section's logger on stderr.
	Logger *slog.Logger
	// Key, when set, is used instead of key.keystore-file (tools that hold
	// the key already, and tests).
	Key *crypto.PrivateKey
	// Now defaults to time.Now; the HMAC replay window is checked against it.
	Now func() time.Time
}

// Bridge is one issuing bank's bridge between its core banking system and
// the chain. New opens it, Start runs it, Close stops it.
type Bridge struct {
	cfg  Config
	log  *slog.Logger
	key  *crypto.PrivateKey
	bank common.Address
	// intakeSecret verifies the core's POSTs; orderSecret signs the
	// bridge's orders to the core (one secret per direction).
	intakeSecret, orderSecret []byte
	operators                 *credentials.Operators
	now                       func() time.Time

	store   *Store
	nodes   *nodes
	metrics *metrics
	info    ChainInfo
	core    *http.Client

	// signMu serialises signing and sending, so the outbox and the closer,
	// which sign with the same key, never pick the same pending nonce.
	signMu sync.Mutex

	kickOutbox, kickPayout, kickCloser, kickReverser chan struct{}

	// payState is the payout sender's retry schedule.
	payState payoutState

	lastErr atomic.Pointer[WorkerError]
	// repeats holds back a worker's repeated "no node answers" (noteError).
	repeats *logrepeat.Limiter

	ln       net.Listener
	srv      *http.Server
	httpDone chan struct{}
	// opLn, opSrv: the operator listener (operator.listen), if any.
	opLn    net.Listener
	opSrv   *http.Server
	opDone  chan struct{}
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started bool
	closed  atomic.Bool

	// hooks are for tests only: crash simulation and worker selection.
	hooks hooks
}

// hooks let tests stop the bridge at a precise point, as a crash would.
type hooks struct {
	// crash is asked at each crash point (see the crashAt* constants);
	// true makes the worker stop there, as if the process died.
	crash func(point string) bool
	// workers, when non-nil, selects the workers Start runs.
	workers map[string]bool
}

// Crash points, in the order a deposit or a payout passes them.
const (
	crashAfterDepositsRecorded = "deposits-recorded" // intake: deposit batch fsynced, not answered
	crashAfterMintRecorded     = "mint-recorded"     // signed and fsynced, not sent
	crashAfterMintSent         = "mint-sent"         // sent, receipt not awaited
	crashAfterClaimSigned      = "claim-signed"      // claimWithdrawal signed, not sent (nothing recorded: its order id is derived)
	crashAfterClaimSent        = "claim-sent"        // claimWithdrawal sent, receipt not awaited, no order sent
	crashAfterOrderSent        = "order-sent"        // pain.001 answered 2xx, not recorded as ordered
	crashAfterCloseRecorded    = "close-recorded"    // settle/refund signed and fsynced, not sent
	crashAfterCloseSent        = "close-sent"        // sent, receipt not awaited
	crashAfterReverseRecorded  = "reverse-recorded"  // reverseMint signed and fsynced, not sent
	crashAfterReverseSent      = "reverse-sent"      // sent, receipt not awaited
)

// errCrashed stops a worker at a crash point.
var errCrashed = errors.New("simulated crash")

// crashAt is asked at each crash point: CrashAtEnv kills the process
// there (crashPoint); hooks.crash stops the worker.
func (b *Bridge) crashAt(point string) bool {
	crashPoint(point)
	return b.hooks.crash != nil && b.hooks.crash(point)
}

// WorkerError is the last error a worker met, for /v1/status.
type WorkerError struct {
	At      time.Time `json:"at"`
	Worker  string    `json:"worker"`
	Message string    `json:"message"`
}

// Worker names.
const (
	workerOutbox   = "outbox"
	workerFollower = "follower"
	workerPayout   = "payout"
	workerCloser   = "closer"
	workerReverser = "reverser"
)

// New opens a bridge: it reads the key and the secret, opens the store and
// prepares the node clients. Nothing is contacted yet.
func New(cfg Config, opts Options) (*Bridge, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := checkCrashEnv(); err != nil {
		return nil, err
	}
	b := &Bridge{cfg: cfg, log: opts.Logger, now: opts.Now, repeats: logrepeat.New(time.Now),
		kickOutbox: make(chan struct{}, 1), kickPayout: make(chan struct{}, 1), kickCloser: make(chan struct{}, 1), kickReverser: make(chan struct{}, 1),
		payState: payoutState{orders: map[uint64]*backoff{}}}
	if b.log == nil {
		b.log = cfg.NewLogger(os.Stderr)
	}
	if b.now == nil {
		b.now = time.Now
	}
	b.key = opts.Key
	if b.key == nil {
		k, err := credentials.LoadKey(cfg.Key, cfg.Path)
		if err != nil {
			return nil, err
		}
		b.key = k
	}
	b.bank = b.key.Address()
	var err error
	if b.intakeSecret, err = credentials.Secret("auth.intake-secret-file", cfg.Path(cfg.Auth.IntakeSecretFile)); err != nil {
		return nil, err
	}
	if b.orderSecret, err = credentials.Secret("auth.order-secret-file", cfg.Path(cfg.Auth.OrderSecretFile)); err != nil {
		return nil, err
	}
	if bytes.Equal(b.intakeSecret, b.orderSecret) {
		return nil, fmt.Errorf("key auth.order-secret-file: the same secret as auth.intake-secret-file; each direction needs its own")
	}
	if cfg.Operator.TokensFile != "" {
		if b.operators, err = credentials.LoadOperators("operator.tokens-file", cfg.Path(cfg.Operator.TokensFile)); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(cfg.Path(cfg.DataDir), 0o700); err != nil {
		return nil, fmt.Errorf("key datadir: %w", err)
	}
	b.store, err = OpenStore(cfg.Path(cfg.DataDir), cfg.Limits.MaxRefusals, b.log)
	if err != nil {
		return nil, err
	}
	b.nodes, err = dialNodes(context.Background(), cfg.Nodes.Endpoints, cfg.Nodes.Timeout.D(), b.log)
	if err != nil {
		b.store.Close()
		return nil, fmt.Errorf("key nodes.endpoints: %w", err)
	}
	b.metrics = newMetrics(b.store, b.now)
	b.store.OnReversing = func(*Deposit) { kick(b.kickReverser) }
	b.nodes.onFailover = b.metrics.failovers.Inc
	if b.core, err = cfg.coreClient(); err != nil {
		b.store.Close()
		return nil, err
	}
	return b, nil
}

// Store returns the bridge's store (tools and tests read it).
func (b *Bridge) Store() *Store { return b.store }

// Bank returns the issuing bank's address (the key's).
func (b *Bridge) Bank() common.Address { return b.bank }

// Info returns the chain and asset the bridge serves (set by Start).
func (b *Bridge) Info() ChainInfo { return b.info }

// Addr returns the intake server's address, once started.
func (b *Bridge) Addr() string {
	if b.ln == nil {
		return ""
	}
	return b.ln.Addr().String()
}

// OperatorAddr returns the address serving the operator endpoints,
// /v1/status and /metrics: operator.listen's, else the intake's.
func (b *Bridge) OperatorAddr() string {
	if b.opLn != nil {
		return b.opLn.Addr().String()
	}
	return b.Addr()
}

// Start resolves the chain and asset, starts the intake server and the
// workers. It returns once they run; Close stops them. Resolving needs a
// node: on the first start Start waits (retrying) until one answers or ctx
// ends; later starts use what the first recorded and check it when a node
// answers.
func (b *Bridge) Start(ctx context.Context) error {
	if b.started {
		return errors.New("bridge already started")
	}
	if err := b.resolveChain(ctx); err != nil {
		return err
	}
	tlsCfg, err := b.cfg.serverTLS()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", b.cfg.Listen)
	if err != nil {
		return fmt.Errorf("key listen: %w", err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	b.ln = ln
	b.srv = &http.Server{Handler: b.handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
	b.httpDone = make(chan struct{})
	go func() {
		defer close(b.httpDone)
		if err := b.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			b.log.Error("intake server", "err", err)
		}
	}()
	if b.cfg.Operator.Listen != "" {
		oln, err := net.Listen("tcp", b.cfg.Operator.Listen)
		if err != nil {
			b.srv.Close()
			<-b.httpDone
			return fmt.Errorf("key operator.listen: %w", err)
		}
		if tlsCfg != nil {
			oln = tls.NewListener(oln, tlsCfg)
		}
		mux := http.NewServeMux()
		b.operatorRoutes(mux)
		b.opLn = oln
		b.opSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
			WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
		b.opDone = make(chan struct{})
		go func() {
			defer close(b.opDone)
			if err := b.opSrv.Serve(oln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				b.log.Error("operator server", "err", err)
			}
		}()
	}
	b.started = true
	wctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	for _, w := range []struct {
		name     string
		interval time.Duration
		kick     chan struct{}
		round    func(context.Context) error
	}{
		{workerOutbox, b.cfg.Outbox.PollInterval.D(), b.kickOutbox, b.outboxRound},
		{workerFollower, b.cfg.Follower.PollInterval.D(), nil, b.followRound},
		{workerPayout, b.cfg.Payout.PollInterval.D(), b.kickPayout, b.payoutRound},
		{workerCloser, b.cfg.Closer.PollInterval.D(), b.kickCloser, b.closeRound},
		{workerReverser, b.cfg.Closer.PollInterval.D(), b.kickReverser, b.reverseRound},
	} {
		if b.hooks.workers != nil && !b.hooks.workers[w.name] {
			continue
		}
		b.wg.Add(1)
		go b.loop(wctx, w.name, w.interval, w.kick, w.round)
	}
	b.log.Info("bridge started", "listen", "http://"+ln.Addr().String(), "asset", b.info.Symbol, "bank", b.bank,
		"chainId", b.info.ChainID, "nodes", strings.Join(b.cfg.Nodes.Endpoints, ","))
	return nil
}

// loop runs one worker: a round now, then one every interval or when
// kicked, until ctx ends. A round that fails is logged and retried at the
// next tick; the records say where it stopped.
func (b *Bridge) loop(ctx context.Context, name string, interval time.Duration, kick chan struct{}, round func(context.Context) error) {
	defer b.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := "" // the kind of the last round's failure
	for {
		err := round(ctx)
		if errors.Is(err, errCrashed) {
			b.log.Warn("worker stopped at a simulated crash point", "worker", name)
			return
		}
		if err != nil && ctx.Err() == nil {
			failing = failureKind(name, err)
			b.noteError(name, err)
		} else if err == nil && failing != "" {
			b.repeats.Reset(failing) // the next failure is logged at once
			failing = ""
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-kick:
		}
	}
}

// noteError records a worker's error for /v1/status and the metrics, and
// logs it. A round fails every tick the same way while its cause lasts (no
// node answers), so each kind of failure is logged through b.repeats: the
// first, then one per doubling interval with the count held back.
func (b *Bridge) noteError(worker string, err error) {
	b.metrics.errors.WithLabelValues(worker).Inc()
	b.lastErr.Store(&WorkerError{At: b.now().UTC(), Worker: worker, Message: err.Error()})
	if ok, suppressed := b.repeats.Allow(failureKind(worker, err)); ok {
		b.log.Warn("worker round failed", "worker", worker, "repeats_suppressed", suppressed, "err", err)
	}
}

// failureKind is the kind of a worker's failure for b.repeats.
func failureKind(worker string, err error) string {
	return worker + ": " + logrepeat.Kind(err.Error())
}

// kick wakes a worker without waiting for its tick.
func kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Close stops the workers (waiting for the running rounds), the intake
// server and the store. It is safe to call more than once.
func (b *Bridge) Close() error {
	if !b.closed.CompareAndSwap(false, true) {
		return nil
	}
	var errs []error
	if b.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, b.srv.Shutdown(ctx))
		cancel()
		<-b.httpDone
	}
	if b.opSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, b.opSrv.Shutdown(ctx))
		cancel()
		<-b.opDone
	}
	if b.cancel != nil {
		b.cancel()
	}
	b.wg.Wait()
	b.nodes.close()
	errs = append(errs, b.store.Close())
	return errors.Join(errs...)
}

// Run opens, starts and runs a bridge until ctx ends, then closes it: the
// whole of `tally bridge`.
func Run(ctx context.Context, cfg Config, opts Options) error {
	b, err := New(cfg, opts)
	if err != nil {
		return err
	}
	if err := b.Start(ctx); err != nil {
		b.Close()
		if ctx.Err() != nil {
			// Stopped while waiting for a node on the first start: a
			// requested stop, not a failure.
			b.log.Info("bridge stopped before it started", "err", err)
			return nil
		}
		return err
	}
	<-ctx.Done()
	b.log.Info("bridge stopping")
	return b.Close()
}

// resolveChain learns (or checks) the chain id, the asset and that the key
// is an issuing bank of it.
func (b *Bridge) resolveChain(ctx context.Context) error {
	stored, err := b.store.ChainInfo()
	if err != nil {
		return err
	}
	delay := 500 * time.Millisecond
	attempt := 0
	for {
		ci, err := b.fetchChainInfo(ctx)
		if err == nil {
			if stored != nil && (stored.ChainID != ci.ChainID || stored.AssetID != ci.AssetID || stored.Decimals != ci.Decimals ||
				stored.Bank != ci.Bank || stored.Symbol != ci.Symbol) {
				return fmt.Errorf("the nodes serve chain %d asset %s (id %d, %d decimals) for bank %s, but this data dir was made for chain %d asset %s (id %d, %d decimals) and bank %s",
					ci.ChainID, ci.Symbol, ci.AssetID, ci.Decimals, ci.Bank, stored.ChainID, stored.Symbol, stored.AssetID, stored.Decimals, stored.Bank)
			}
			if stored == nil || stored.MinorUnits == nil {
				if err := b.store.SetChainInfo(ci); err != nil {
					return err
				}
			}
			b.info = *ci
			return nil
		}
		if !errors.Is(err, errNoNode) {
			return err
		}
		if stored != nil {
			b.log.Warn("no node answers; starting with the chain recorded on the first start", "err", err)
			b.info = *stored
			return nil
		}
		attempt++
		if ok, suppressed := b.repeats.Allow("resolve chain"); ok {
			b.log.Warn("no node answers; the first start needs one, retrying (repeats logged once per doubling interval)",
				"attempt", attempt, "retry_in", delay, "repeats_suppressed", suppressed, "err", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("resolve chain: %w (last: %v)", ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 10*time.Second)
	}
}

func (b *Bridge) fetchChainInfo(ctx context.Context) (*ChainInfo, error) {
	id, err := b.nodes.chainID(ctx)
	if err != nil {
		return nil, err
	}
	a, err := b.nodes.assetBySymbol(ctx, b.cfg.Asset)
	if err != nil {
		if errors.Is(err, errNoNode) {
			return nil, err
		}
		return nil, fmt.Errorf("key asset: %w", err)
	}
	op, err := wallet.AssetOp(a.ID, "isIssuer", b.bank)
	if err != nil {
		return nil, err
	}
	out, err := b.nodes.view(ctx, op)
	if err != nil {
		return nil, err
	}
	if ok, _ := out[0].(bool); !ok {
		return nil, fmt.Errorf("key key.keystore-file: %s is not an issuing bank of %s", b.bank, a.Symbol)
	}
	op, err = wallet.AssetOp(a.ID, "minorUnits")
	if err != nil {
		return nil, err
	}
	out, err = b.nodes.view(ctx, op)
	if err != nil {
		return nil, err
	}
	minor, ok := out[0].(uint8)
	if !ok {
		return nil, fmt.Errorf("minorUnits() of %s returned %T", a.Symbol, out[0])
	}
	return &ChainInfo{ChainID: id.Uint64(), AssetID: a.ID, Symbol: a.Symbol, Decimals: a.Decimals, MinorUnits: &minor,
		Facade: a.Address, Bank: b.bank}, nil
}

// ---- signing and sending, shared by the outbox and the closer ----

// signAndSend signs op with the bank's pending nonce, lets record persist
// the signed transaction (fsync) and only then sends it. The record comes
// first so that a crash after sending never leaves a transaction the
// bridge does not know it sent. A send the node refuses is logged and
// reported as sent=false: the recovery path (receipt, then is it known,
// then is the work already done on chain) decides what happens next.
func (b *Bridge) signAndSend(ctx context.Context, op wallet.Op, record func(*SignedTx) error, crashRecorded, crashSent string) (*SignedTx, bool, error) {
	b.signMu.Lock()
	defer b.signMu.Unlock()
	nonce, err := b.nodes.pendingNonce(ctx, b.bank)
	if err != nil {
		return nil, false, err
	}
	chainID := new(big.Int).SetUint64(b.info.ChainID)
	tx, err := wallet.SignOp(b.key, chainID, nonce, op)
	if err != nil {
		return nil, false, err
	}
	raw, err := tx.MarshalBinary()
	if err != nil {
		return nil, false, fmt.Errorf("encode %s: %w", op.Method, err)
	}
	st := &SignedTx{Raw: raw, Hash: tx.Hash(), Nonce: nonce, SignedAt: b.now().UTC()}
	if err := record(st); err != nil {
		return nil, false, err
	}
	if b.crashAt(crashRecorded) {
		return nil, false, errCrashed
	}
	b.metrics.txs.WithLabelValues(op.Method).Inc()
	if err := b.nodes.sendSigned(ctx, tx); err != nil {
		if strings.Contains(err.Error(), "already known") {
			return st, true, nil
		}
		if errors.Is(err, errNoNode) || ctx.Err() != nil {
			return st, false, err
		}
		b.log.Warn("node refused a signed transaction; it will be looked up and re-signed if unknown",
			"op", op.Method, "tx", st.Hash, "nonce", nonce, "err", err)
		return st, false, nil
	}
	if b.crashAt(crashSent) {
		return nil, false, errCrashed
	}
	return st, true, nil
}

// txOutcome is what the chain says about a recorded transaction.
type txOutcome int

const (
	txUnknown txOutcome = iota // no receipt, and no node knows it: re-sign
	txPending                  // known but not applied within the wait
	txApplied                  // receipt status 1
	txFailed                   // receipt status 0
)

// lookupTx finds out what happened to a recorded transaction, waiting up
// to wait for a receipt while the nodes know it.
func (b *Bridge) lookupTx(ctx context.Context, st *SignedTx, wait time.Duration) (txOutcome, error) {
	r, err := b.nodes.receipt(ctx, st.Hash)
	if err != nil {
		return txPending, err
	}
	if r == nil {
		known, err := b.nodes.txKnown(ctx, st.Hash)
		if err != nil {
			return txPending, err
		}
		if !known {
			return txUnknown, nil
		}
		if r, err = b.nodes.waitReceipt(ctx, st.Hash, wait); err != nil {
			return txPending, err
		}
		if r == nil {
			return txPending, nil
		}
	}
	if r.Status == types.ReceiptStatusSuccessful {
		return txApplied, nil
	}
	return txFailed, nil
}
