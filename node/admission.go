package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/mempool"
	"github.com/tally-ledger/tally/p2p"
	"github.com/tally-ledger/tally/rpc"
	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/store"
)

// Admission is a node's admission path apart from JSON-RPC: what becomes
// of a client's transaction (admitted here and replicated to another
// validator when this node leads, forwarded to the leader otherwise), of
// a transaction a follower forwarded or another node relayed, and of the
// pool after a leader change, with the pool journal that makes every
// answer durable first (docs/architecture.md, "Admitted transactions
// survive a node"). A node runs it over its libp2p host; the cluster
// simulator (internal/sim) runs the same code over its simulated network
// and crashable file system, so that the promise that an acknowledged
// transaction is never lost is checked by the thousand.
type Admission struct {
	cfg     AdmissionConfig
	journal *poolJournal
	// Set by StartNetwork; nil on a node without peers.
	forwarder  *p2p.Forwarder
	replicator *p2p.Replicator
	// voters reports the other voters of this node's Raft configuration
	// (StartNetwork's): a forwarding peer among them counts as a holder.
	voters   func() []peer.ID
	stopOnce sync.Once
	// reforwardMu guards stopRest, which stops the goroutine sending what
	// an earlier Reforward could not queue (nil: none runs); restWG
	// tracks it.
	reforwardMu sync.Mutex
	stopRest    context.CancelFunc
	restWG      sync.WaitGroup
	// inboundMu guards inboundStopped; inboundWG tracks the forwarded and
	// relayed batches being handled. libp2p runs each stream's handler in
	// a goroutine of its own and closing the host does not wait for them,
	// so StopNetwork refuses new ones and waits for those running before
	// the stores they use close.
	inboundMu      sync.Mutex
	inboundStopped bool
	inboundWG      sync.WaitGroup
}

// ErrStopping refuses a batch that arrives while the node shuts down.
var ErrStopping = errors.New("node shutting down")

// Counter is a metric the admission path counts (a prometheus.Counter in
// a node).
type Counter interface{ Inc() }

// AdmissionConfig is what the admission path works with.
type AdmissionConfig struct {
	DB      *store.DB
	Pool    *mempool.Pool
	Senders *chain.SenderCache
	// FS and Journal are the file system and path of the pool journal
	// (PoolJournalFile in the data dir); NoSync skips its fsyncs.
	FS      vfs.FS
	Journal string
	NoSync  bool
	// JournalCompactMin is the size below which the pool journal is
	// never rewritten (0: 1 MiB). The cluster simulator sets a few KiB,
	// so that its runs, whose pools stay small, rewrite it too.
	JournalCompactMin int64
	// IsLeader reports whether this node leads now.
	IsLeader func() bool
	// IsValidator reports whether this node is a validator now: in its
	// applied state's validator set and a voter of its Raft
	// configuration (IsVoter); nil: always. Only a validator's copy of a
	// transaction counts as one of the two holders an acknowledgement
	// needs (docs/design.md, "Invariants"): an observer takes no part in
	// consensus, and nothing obliges the cluster to keep it or to hear
	// from it again. Both are asked because either may lag: a removed
	// validator stops receiving blocks before its state applies its
	// removal, but learns it from the Raft configuration (found by the
	// cluster simulator, seed 7); a validator just added is a non-voter
	// until it has caught up, and counts only then.
	IsValidator func() bool
	// OnJournalFailure is called once, on a goroutine of its own, when
	// the pool journal fails (a write, sync or rewrite that failed): the
	// node can vouch for no admission after it, and refuses them all, so
	// the node halts on it, as on its other disks' failures (a halted
	// leader hands the lead to another voter; a leader that stayed would
	// refuse every transaction its followers forward). nil: nothing. Read
	// when the journal fails.
	OnJournalFailure func(error)
	// ReforwardRetry bounds how long Reforward's transactions are retried
	// without a reachable leader (p2p.reforward-retry; 0: the default).
	ReforwardRetry time.Duration
	Log            *slog.Logger
	// Admitted, Forwarded and NotReplicated count admissions, forwards the
	// leader admitted, and the leader's own admissions no other validator
	// confirmed holding; nil counts nothing.
	Admitted, Forwarded, NotReplicated Counter
	// ForwardBatches counts the forwarded batches received (one message
	// each); nil counts nothing.
	ForwardBatches Counter
}

// OpenAdmission opens the pool journal and re-admits what it holds into
// the pool (restore); call it before consensus applies blocks.
func OpenAdmission(cfg AdmissionConfig) (*Admission, error) {
	a := &Admission{cfg: cfg}
	if err := a.restore(); err != nil {
		return nil, err
	}
	return a, nil
}

func inc(c Counter) {
	if c != nil {
		c.Inc()
	}
}

// StartNetwork starts forwarding to the leader and replicating to the
// other voters over tr: self is this node's peer ID, leader reports the
// leader's (false without one), voters the other voters', maxBatch caps
// a batch (p2p.forward-batch). Without it the node admits every
// transaction itself (a chain of one validator).
func (a *Admission) StartNetwork(tr p2p.BatchTransport, self peer.ID, leader func() (peer.ID, bool), voters func() []peer.ID, maxBatch int) {
	a.voters = voters
	a.forwarder = p2p.NewForwarderOver(tr, self, leader, a.AdmitForwarded, maxBatch, a.cfg.Log)
	a.forwarder.SetLocalRelay(a.AdmitRelayed)
	a.forwarder.SetRelayRetry(a.cfg.ReforwardRetry)
	a.replicator = p2p.NewReplicatorOver(tr, voters, maxBatch, a.cfg.Log)
	a.replicator.SetHolders(a.holdersNeeded)
}

// validator reports whether this node's own copy of a transaction counts
// as held by a validator (AdmissionConfig.IsValidator).
func (a *Admission) validator() bool { return a.cfg.IsValidator == nil || a.cfg.IsValidator() }

// holdersNeeded is how many of the voters this node replicates to must
// hold a transaction before its client hears of it: one besides this
// node, a validator; two, of which the leader may be one, when this node
// is an observer, whose own copy does not count.
func (a *Admission) holdersNeeded() int {
	if a.validator() {
		return 1
	}
	return 2
}

// Handler is the receiving end of proto (p2p.ForwardProtocol or
// p2p.RelayProtocol): each batch's senders recovered at once, each
// transaction admitted, the journal synced before the verdicts go back.
//
// A node that does not lead refuses forwarded batches whole, and the
// sender's forwarder retries against the leader it learns of next: a
// follower that admitted them would hold them with no one to propose
// them until the next leader change, though its sender acknowledged
// them (found by the cluster simulator: a removed validator, whose view
// of the leader stays stale, forwarded to a follower). Relayed batches
// are copies for safekeeping and go to any node.
func (a *Admission) Handler(proto string) p2p.BatchHandler {
	admit, accept := a.admitForwardedBatch, a.acceptForwards
	if proto == string(p2p.RelayProtocol) {
		admit, accept = a.admitRelayedBatch, nil
	}
	return p2p.BatchHandler{Accept: accept, Admit: func(from peer.ID, raws [][]byte) []error {
		if !a.enterInbound() {
			errs := make([]error, len(raws))
			for i := range errs {
				errs[i] = ErrStopping
			}
			return errs
		}
		defer a.inboundWG.Done()
		return admit(from, raws)
	}, Finish: func() error {
		if !a.enterInbound() {
			return ErrStopping
		}
		defer a.inboundWG.Done()
		return a.journal.Sync()
	}}
}

// enterInbound counts a batch handler in, unless the network stopped.
func (a *Admission) enterInbound() bool {
	a.inboundMu.Lock()
	defer a.inboundMu.Unlock()
	if a.inboundStopped {
		return false
	}
	a.inboundWG.Add(1)
	return true
}

// ErrNotLeader refuses a forwarded batch sent to a node that does not lead.
var ErrNotLeader = errors.New("not the leader")

func (a *Admission) acceptForwards() error {
	if !a.cfg.IsLeader() {
		return ErrNotLeader
	}
	return nil
}

// Close stops forwarding and replicating (what waits fails) and closes
// the journal.
func (a *Admission) Close() error {
	a.StopNetwork()
	return a.journal.Close()
}

// StopNetwork stops forwarding and replicating, what waits for them
// fails, then refuses forwarded and relayed batches and waits for those
// being handled. Close calls it too; it runs once.
func (a *Admission) StopNetwork() {
	a.stopOnce.Do(func() {
		if a.forwarder != nil {
			a.forwarder.Close()
			a.restWG.Wait() // SendKeepingWait returns once the forwarder is closed
		}
		if a.replicator != nil {
			a.replicator.Close()
		}
		// After the replicator: a handler waiting for a copy on another
		// voter returns once it is closed.
		a.inboundMu.Lock()
		a.inboundStopped = true
		a.inboundMu.Unlock()
		a.inboundWG.Wait()
	})
}

// leads reports whether this node admits its clients' transactions
// itself: it leads, or it has no network to forward over.
func (a *Admission) leads() bool { return a.forwarder == nil || a.cfg.IsLeader() }

// Submit is SubmitTx's admission: the leader admits into its pool and
// answers once another validator holds the transaction too (AdmitLocal);
// a follower checks the transaction, forwards it to the leader and
// returns the leader's verdict, keeping an admitted transaction in its own
// pool so it can forward it again to a new leader until it is applied
// (Forward). Either way an admitted transaction is on two validators
// before its client hears of it, so the loss of either one loses nothing
// acknowledged, and in the pool journal of each node that answered for
// it, so the crash of all of them loses nothing either.
func (a *Admission) Submit(ctx context.Context, tx *types.Transaction) error {
	if a.leads() {
		return a.AdmitLocal(ctx, tx)
	}
	if _, err := a.cfg.Senders.Sender(tx); err != nil {
		return err // decode, chain id and signature are checked here, not by the leader
	}
	if err := a.appliedHere(tx); err != nil {
		return err // answered here: see forwardBatch
	}
	return a.Forward(ctx, tx)
}

// AdmitLocal admits tx into this node's pool and, on a networked node,
// waits until another validator holds it as well.
func (a *Admission) AdmitLocal(ctx context.Context, tx *types.Transaction) error {
	if _, err := a.cfg.Pool.Add(tx); err != nil {
		return a.Refused(ctx, tx, err)
	}
	inc(a.cfg.Admitted)
	a.JournalTx(tx)
	return a.SyncAndReplicate(ctx, tx)
}

// Refused is the answer to the leader's own client when its pool refused
// tx with err. "already known" is a re-send, which a wallet takes for
// admitted (wallet.Client): it is said only once another validator holds
// the transaction too, as "admitted" is (found by the cluster simulator);
// other refusals are answered as they are.
func (a *Admission) Refused(ctx context.Context, tx *types.Transaction, err error) error {
	if errors.Is(err, mempool.ErrKnown) {
		if rerr := a.replicate(ctx, tx); rerr != nil {
			return rerr
		}
	}
	return err
}

// JournalTx queues tx in the pool journal.
func (a *Admission) JournalTx(tx *types.Transaction) {
	raw, err := tx.MarshalBinary()
	if err != nil {
		return // a transaction the pool admitted always encodes
	}
	a.journal.Append(raw)
}

// SyncAndReplicate waits until tx, queued in the journal, is synced and
// another validator holds it; the two run together, so the fsync hides
// behind the replication's round trip.
func (a *Admission) SyncAndReplicate(ctx context.Context, tx *types.Transaction) error {
	synced := make(chan error, 1)
	go func() { synced <- a.journal.Sync() }()
	rerr := a.replicate(ctx, tx)
	if err := <-synced; err != nil {
		return err
	}
	return rerr
}

// replicate waits until another validator holds tx, which this node
// admitted from its own client (nil at once without other validators).
//
// The answer agrees with what becomes of the transaction: the leader
// waits, rather than drop the transaction from its pool, because a
// follower's refusal of the copy is almost always its state lagging the
// leader's by a block (p2p.Replicator asks again until it holds the copy),
// and a transaction the leader has applied in the meantime is committed
// on a majority, which is more than held (checked last). Dropping it
// instead would race the builder, which may already have it in a block
// on its way to commit. What is left is a leader that reaches no other
// validator for the whole replication timeout (cut off): it cannot commit
// either, steps down within its lease, and answers an error while it
// still holds the transaction; that error is an unavailability, not a
// verdict, and a client re-sends the same bytes to another node
// (wallet.Client does), which keeps one transaction for one intent.
func (a *Admission) replicate(ctx context.Context, tx *types.Transaction) error {
	if a.replicator == nil {
		return nil
	}
	raw, err := tx.MarshalBinary()
	if err != nil {
		return err
	}
	return a.replicated(tx, a.replicator.Replicate(ctx, raw))
}

// Forward sends tx to the leader and, once admitted there, keeps it in the
// local pool so it can be sent again to a new leader until it is applied.
func (a *Admission) Forward(ctx context.Context, tx *types.Transaction) error {
	raw, err := tx.MarshalBinary()
	if err != nil {
		return err
	}
	verdict := fromLeader(tx, a.forwarder.Forward(ctx, raw))
	if verdict != nil && !leaderHolds(verdict) {
		return verdict
	}
	if verdict == nil {
		inc(a.cfg.Forwarded)
	}
	// Admitted, or "already known", which a wallet re-sending takes for
	// admitted (wallet.Client): either way this node keeps a copy, so
	// that two hold it (found by the cluster simulator: a node that
	// crashed after forwarding, the re-send answered by the leader's copy
	// alone).
	kept, err := a.keep(tx, raw)
	if err != nil {
		return err
	}
	switch next, err := forwardedCopy(kept, a.validator()); next {
	case copyNotReplicated:
		return err
	case copyReplicate:
		if err := a.replicate(ctx, tx); err != nil {
			return err
		}
	}
	return verdict
}

// copyNext is what a forwarding node does before it passes on the
// leader's verdict ("admitted", or "already known", which a wallet takes
// for admitted) on a transaction the leader now holds, given what its
// own pool said of its copy (forwardedCopy).
type copyNext int

const (
	// copyAnswer: the leader's verdict is the answer now. This node kept
	// its copy, and a voter's copy is the second holder the leader
	// counted on; or it has applied the transaction (committed on a
	// majority, more than held); or it is no voter, and the leader,
	// judging the sender by its own configuration, answered only once
	// another voter held the transaction (admitForwardedBatch):
	// replicating again only kept the client waiting while a holder
	// could crash (found by the cluster simulator, seed 13).
	copyAnswer copyNext = iota
	// copyReplicate: answered once another validator holds it too, as
	// the leader answers its own clients. The copy was in this pool
	// already: the forwarder admitted it here, this node having become
	// the leader while the batch waited, or a copy came here before, so
	// nobody else may hold it (found by the cluster simulator, seeds 1
	// and 101). An observer replicates it too: it cannot tell which.
	copyReplicate
	// copyNotReplicated: answered p2p.ErrNotReplicated's words, an
	// unavailability on which a wallet sends it to another node, whose
	// copy makes the second. This node, a voter, could not keep its copy
	// (its pool refused it: full, or a read of its disk failed), and the
	// leader counted it as the second holder, so the leader alone holds
	// it (found by the cluster simulator, seed 284: a voter whose disk
	// failed a read acknowledged a transfer only the leader held). It is
	// not replicated instead: the leader answers a replication round
	// "already known", which counted as the second holder (seed 390).
	copyNotReplicated
)

// forwardedCopy is the rule for a forwarded transaction the leader holds
// once this node's pool answered kept (nil: kept) for its copy and voter
// says whether this node's copy counts as a validator's
// (AdmissionConfig.IsValidator): what to do before answering, and for
// copyNotReplicated the answer. Forward (a single call) and
// keepForwarded (a batch) both follow it.
func forwardedCopy(kept error, voter bool) (copyNext, error) {
	switch {
	case kept == nil, errors.Is(kept, mempool.ErrAlreadyApplied):
		return copyAnswer, nil
	case errors.Is(kept, mempool.ErrKnown):
		return copyReplicate, nil
	case !voter:
		return copyAnswer, nil
	}
	return copyNotReplicated, fmt.Errorf("%w: this node could not keep its copy: %v (the leader holds it, and it may still be included: check its receipt before re-sending)", p2p.ErrNotReplicated, kept)
}

// leaderHolds reports whether the leader's verdict on a forwarded
// transaction is "already known": it holds it in its pool.
func leaderHolds(verdict error) bool {
	var re *p2p.RemoteError
	return errors.As(verdict, &re) && strings.HasPrefix(re.Msg, p2p.VerdictKnown)
}

// fromLeader is the answer to this node's client for tx given the
// leader's verdict: the verdict itself, unless the leader has applied tx
// (p2p.VerdictApplied), when it is answered as this node answers for a
// transaction it has applied (errApplied), and never read as admitted.
//
// A verdict that is the leader's own storage failing (state.ErrStorage)
// is no verdict on tx: it is answered as this node answers its own
// storage's failures (-32603, on which a wallet asks another node), not
// as a refusal (found by the cluster simulator, seed 434).
func fromLeader(tx *types.Transaction, verdict error) error {
	var re *p2p.RemoteError
	if errors.As(verdict, &re) && strings.HasPrefix(re.Msg, p2p.VerdictApplied) {
		return errApplied(tx)
	}
	if errors.As(verdict, &re) && strings.HasPrefix(re.Msg, state.ErrStorage.Error()) {
		return fmt.Errorf("%w on the leader: %s", state.ErrStorage, strings.TrimPrefix(strings.TrimPrefix(re.Msg, state.ErrStorage.Error()), ": "))
	}
	return verdict
}

// keep adds tx, which the leader holds, to this node's pool and makes it
// durable in the journal before the client hears of it, as the leader
// does. The leader's verdict is the answer: its client rules (a stale
// nonce gap) are not applied again here, so the copy is kept unless this
// node's own state refuses it (kept says why; an error is the journal's).
func (a *Admission) keep(tx *types.Transaction, raw []byte) (kept, err error) {
	_, kept = a.cfg.Pool.AddRelayed(tx)
	if kept == nil {
		a.journal.Append(raw)
	}
	return kept, a.journal.Sync()
}

// admitForwardedBatch is AdmitForwarded for a whole forwarded batch, sent
// by peer from, and admitRelayedBatch AdmitRelayed for a relayed one
// (Handler).
//
// The forwarding node keeps its own copy of what the leader admits, and
// the leader's "admitted" (or "already known") makes two holders of that
// copy and the leader's; but only a validator's copy counts. A sender
// that is not a voter of this node's configuration (an observer, a
// validator just added and not yet promoted, or one removed whose log
// trails its removal and which still takes itself for a validator: found
// by the cluster simulator, seed 12) has its admitted transactions
// replicated to another voter first, as this node's own clients' are
// (countsAsHolder, replicateForSender).
func (a *Admission) admitForwardedBatch(from peer.ID, raws [][]byte) []error {
	inc(a.cfg.ForwardBatches)
	txs, errs := a.admitRaws(raws, a.cfg.Pool.Add, true)
	if a.replicator != nil && !a.countsAsHolder(from) {
		a.replicateForSender(txs, raws, errs)
	}
	return peerVerdicts(errs)
}

func (a *Admission) admitRelayedBatch(_ peer.ID, raws [][]byte) []error {
	_, errs := a.admitRaws(raws, a.cfg.Pool.AddRelayed, false)
	return peerVerdicts(errs)
}

// countsAsHolder reports whether peer from's copy of a transaction counts
// as a validator's: it is a voter of this node's latest Raft
// configuration (an unknown sender does not count).
func (a *Admission) countsAsHolder(from peer.ID) bool {
	return from != "" && a.voters != nil && slices.Contains(a.voters(), from)
}

// replicateForSender waits until another voter holds each transaction of
// a forwarded batch this node holds (errs[i] nil or "already known"),
// replicated as one batch, and makes ErrNotReplicated the verdict of those
// none confirmed (they stay pending here: replicated).
func (a *Admission) replicateForSender(txs []*types.Transaction, raws [][]byte, errs []error) {
	var at []int
	var sub [][]byte
	for i, err := range errs {
		if txs[i] != nil && (err == nil || errors.Is(err, mempool.ErrKnown)) {
			at, sub = append(at, i), append(sub, raws[i])
		}
	}
	if len(sub) == 0 {
		return
	}
	for k, rerr := range a.replicator.ReplicateBatch(context.Background(), sub) {
		if rerr = a.replicated(txs[at[k]], rerr); rerr != nil {
			errs[at[k]] = rerr
		}
	}
}

// admitRaws admits a batch another node sent, as admitRaw does each of
// its transactions, decoding each once: the senders are recovered on all
// cores in one step (a batch of 1,000 would otherwise wait for 1,000
// recoveries in a row), then the transactions admitted in the batch's
// order. errs[i] is raws[i]'s error, txs[i] the transaction (nil when it
// did not decode); peerVerdicts words them for the peer.
//
// The sending node has recovered these senders already, but they are
// recovered here again rather than taken from it: a sender taken on a
// peer's word would be what this node's pool, its blocks and its sender
// cache (which its own block checks read) hold for the transaction, so a
// faulty or malicious peer naming another account as the sender would
// have this node build blocks every other validator refuses, or spend an
// account that never signed. Every node recovers every sender itself
// (docs/design.md); this node does it once per transaction, here, and its
// block checks find the result cached.
func (a *Admission) admitRaws(raws [][]byte, add func(*types.Transaction) (common.Address, error), count bool) (txs []*types.Transaction, errs []error) {
	errs = make([]error, len(raws))
	txs = make([]*types.Transaction, len(raws))
	decoded := make([]*types.Transaction, 0, len(raws))
	for i, raw := range raws {
		tx, err := chain.DecodeTx(raw)
		if err != nil {
			errs[i] = err
			continue
		}
		txs[i] = tx
		decoded = append(decoded, tx)
	}
	if len(decoded) > 1 {
		a.cfg.Senders.Senders(decoded)
	}
	for i, tx := range txs {
		if tx != nil {
			errs[i] = a.admitTx(tx, raws[i], add, count)
		}
	}
	return txs, errs
}

// AdmitForwarded admits a transaction a follower forwarded into this
// node's pool (should this node have just lost the lead, it forwards its
// pool to the next leader) and queues it in the pool journal, which the
// caller syncs before passing the verdict on; the verdict is worded as the
// JSON-RPC error the follower's client gets.
func (a *Admission) AdmitForwarded(raw []byte) error {
	return a.admitRaw(raw, a.cfg.Pool.Add, true)
}

// AdmitRelayed admits a transaction another node already acknowledged
// (the leader's replication, or a pending transaction re-sent to a new
// leader): as AdmitForwarded, without the refusal of a transaction behind
// a stale nonce gap, since relayed transactions fill gaps in any order.
func (a *Admission) AdmitRelayed(raw []byte) error {
	return a.admitRaw(raw, a.cfg.Pool.AddRelayed, false)
}

// admitRaw decodes raw, admits it with add and journals it; a refused
// transaction's sender is forgotten unless the pool holds it.
func (a *Admission) admitRaw(raw []byte, add func(*types.Transaction) (common.Address, error), count bool) error {
	tx, err := chain.DecodeTx(raw)
	if err != nil {
		return peerVerdict(err)
	}
	return peerVerdict(a.admitTx(tx, raw, add, count))
}

// admitTx is admitRaw for tx, decoded from raw, with the pool's own error.
func (a *Admission) admitTx(tx *types.Transaction, raw []byte, add func(*types.Transaction) (common.Address, error), count bool) error {
	if _, err := add(tx); err != nil {
		if _, _, pending := a.cfg.Pool.Get(tx.Hash()); !pending {
			a.cfg.Senders.Forget(tx.Hash())
		}
		return err
	}
	if count {
		inc(a.cfg.Admitted)
	}
	a.journal.Append(raw)
	return nil
}

// peerVerdict words err, an admission error, as the peer that sent the
// transaction passes it on: as the JSON-RPC error its client gets
// (rpc.ClientError; nil stays nil).
//
// A transaction this node has applied keeps its own words
// (p2p.VerdictApplied), which rpc.ClientError would make "already known"
// as for a pooled one: the forwarding node must tell them apart, since it
// reads a retried forward's "already known" as admitted and keeps a copy
// of what the leader holds, and neither is true of an applied one (its
// own state may not have applied it yet). It answers its client as it
// answers for what it has applied itself (fromLeader).
func peerVerdict(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, mempool.ErrAlreadyApplied):
		return err
	}
	return rpc.ClientError(err)
}

// peerVerdicts is peerVerdict of each of errs.
func peerVerdicts(errs []error) []error {
	for i, err := range errs {
		errs[i] = peerVerdict(err)
	}
	return errs
}

// Reforward sends every pending transaction to a new leader; transactions
// the leader already has come back "already known". Without a reachable
// leader each is retried for up to AdmissionConfig.ReforwardRetry while
// it is still pending here (a client's forward gives up after 10 s: its
// client can try another node; nobody waits for these).
//
// What does not fit in the forward queue (p2p.ForwardQueue, full of a
// bigger pool or of client forwards waiting for a leader) is sent as the
// queue drains, by one goroutine, for up to ReforwardRetry too, skipping
// what is no longer pending; a later Reforward (another leader) stops it
// and sends the whole pool again. Before, the first full queue ended the
// re-forward, and the rest of the pool reached the new leader only
// through the next leader change.
func (a *Admission) Reforward() {
	if a.forwarder == nil {
		return
	}
	a.reforwardMu.Lock()
	defer a.reforwardMu.Unlock()
	if a.stopRest != nil {
		a.stopRest()
		a.stopRest = nil
	}
	pending := a.cfg.Pool.All()
	if len(pending) == 0 {
		return
	}
	a.cfg.Log.Info("re-forwarding pending transactions to the new leader", "txs", len(pending))
	for i, tx := range pending {
		raw, err := tx.MarshalBinary()
		if err != nil {
			continue
		}
		if err := a.forwarder.SendKeeping(raw, a.stillPending(tx)); err != nil {
			rest := pending[i:]
			a.cfg.Log.Warn("re-forward: the forward queue is full; the rest is sent as it drains", "txs", len(rest), "err", err)
			ctx, cancel := context.WithTimeout(context.Background(), a.reforwardRetry())
			a.stopRest = cancel
			a.restWG.Add(1)
			go func() {
				defer a.restWG.Done()
				defer cancel()
				a.reforwardRest(ctx, rest)
			}()
			return
		}
	}
}

// reforwardRest queues rest, what Reforward could not, waiting for room
// in the forward queue until ctx ends or the forwarder stops.
func (a *Admission) reforwardRest(ctx context.Context, rest []*types.Transaction) {
	for k, tx := range rest {
		keep := a.stillPending(tx)
		if !keep() {
			continue
		}
		raw, err := tx.MarshalBinary()
		if err != nil {
			continue
		}
		if err := a.forwarder.SendKeepingWait(ctx, raw, keep); err != nil {
			// Replaced by a later Reforward, or the node stops: nothing
			// to say; out of time: these wait for the next leader change.
			if errors.Is(err, context.DeadlineExceeded) {
				a.cfg.Log.Warn("re-forward: transactions not sent to the leader", "txs", len(rest)-k, "err", err)
			}
			return
		}
	}
}

// stillPending reports, when called, whether tx is still in the pool.
func (a *Admission) stillPending(tx *types.Transaction) func() bool {
	h := tx.Hash()
	return func() bool { _, _, ok := a.cfg.Pool.Get(h); return ok }
}

// reforwardRetry is AdmissionConfig.ReforwardRetry, or its default.
func (a *Admission) reforwardRetry() time.Duration {
	if a.cfg.ReforwardRetry > 0 {
		return a.cfg.ReforwardRetry
	}
	return p2p.DefaultRelayRetry
}

// poolRaws returns the encodings of every transaction in the pool.
func (a *Admission) poolRaws() [][]byte {
	txs := a.cfg.Pool.All()
	out := make([][]byte, 0, len(txs))
	for _, tx := range txs {
		if raw, err := tx.MarshalBinary(); err == nil {
			out = append(out, raw)
		}
	}
	return out
}

// restore opens the pool journal and re-admits what it holds (as
// relayed transactions: they were acknowledged, and fill gaps in any
// order); those applied meanwhile or no longer valid are dropped. The
// journal is then rewritten with the pool's contents. The node re-sends
// its pool to the leader as soon as it sees one (Reforward).
func (a *Admission) restore() error {
	j, raws, err := openPoolJournal(a.cfg.FS, a.cfg.Journal, a.cfg.NoSync)
	if err != nil {
		return err
	}
	a.journal = j
	if a.cfg.JournalCompactMin > 0 {
		j.compactMin = a.cfg.JournalCompactMin
	}
	j.onFail = func(err error) {
		if f := a.cfg.OnJournalFailure; f != nil {
			f(err)
		}
	}
	// Most records are of transactions applied since: they are skipped by
	// hash before any sender is recovered, and the senders of the rest are
	// recovered on all cores at once.
	start := time.Now()
	var txs []*types.Transaction
	applied := 0
	for _, raw := range raws {
		tx, err := chain.DecodeTx(raw)
		if err != nil {
			continue
		}
		if done, err := a.cfg.DB.HasTx(tx.Hash()); err != nil {
			j.Close()
			return fmt.Errorf("pool journal: %w", err)
		} else if done {
			applied++
			continue
		}
		txs = append(txs, tx)
	}
	if len(txs) > 1 {
		a.cfg.Senders.Senders(txs)
	}
	restored := 0
	for _, tx := range txs {
		if _, err := a.cfg.Pool.AddRelayed(tx); err == nil {
			restored++
		}
	}
	if len(raws) > 0 {
		a.cfg.Log.Info("pool restored from its journal", "records", len(raws), "applied", applied, "restored", restored, "took", time.Since(start).Round(time.Millisecond))
	}
	if err := j.rewrite(a.poolRaws); err != nil {
		j.Close()
		return err
	}
	return nil
}

// CompactJournal rewrites the pool journal once it has grown enough, and
// reports whether it did.
func (a *Admission) CompactJournal() bool {
	if !a.journal.needsRewrite() {
		return false
	}
	if err := a.journal.rewrite(a.poolRaws); err != nil {
		a.cfg.Log.Error("pool journal rewrite failed", "err", err)
		return false
	}
	return true
}
