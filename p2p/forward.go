package p2p

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum/rlp"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// ForwardProtocol carries transactions from a follower to the leader: one
// request (a batch of raw transactions) and one response (a verdict per
// transaction) per stream.
const ForwardProtocol = protocol.ID("/tally/forward/1.0.0")

// RelayProtocol carries, in the same frames, transactions some node has
// already acknowledged to its client: the leader's replication of its own
// admissions, and pending transactions re-sent to a new leader. The
// receiver admits them without the rules that answer a client (a stale
// nonce gap refuses a client's new transaction, never a relayed one: the
// relayed ones are what fills the gap, in whatever order they arrive).
const RelayProtocol = protocol.ID("/tally/relay/1.0.0")

// Bounds of the forwarding protocol.
const (
	// MaxForwardTxs caps the transactions in one forwarded batch.
	MaxForwardTxs = 10000
	// MaxForwardBytes caps one request or response frame.
	MaxForwardBytes = 16 << 20
	// ForwardQueue caps the transactions waiting to be forwarded.
	ForwardQueue = 100000
	// forwardTimeout bounds one batch's round trip.
	forwardTimeout = 10 * time.Second
	// maxForwardBackoff caps the wait between attempts while there is no
	// reachable leader: an election takes a few hundred milliseconds, and
	// the batch should reach the winner soon after.
	maxForwardBackoff = 100 * time.Millisecond
)

// Forwarding errors.
var (
	ErrNoLeader     = errors.New("no leader to forward to")
	ErrForwardQueue = errors.New("forward queue full")
)

// The words a receiver's verdict starts with for a transaction it holds
// already, which its sender must tell apart from a refusal and from each
// other (a node's mempool.ErrKnown and mempool.ErrAlreadyApplied):
//
//   - VerdictKnown: in its pool (go-ethereum's "already known"). To a
//     forward sent again, the first attempt may have put it there: the
//     Forwarder reads it as admitted;
//   - VerdictApplied: in its chain. Never read as admitted: the sender's
//     client is told the transaction is applied, and the sender keeps no
//     copy of it (its own state may not have applied it yet).
//
// Either counts as held for a replica (Replicator).
const (
	VerdictKnown   = "already known"
	VerdictApplied = "transaction already applied"
)

// RemoteError is the leader's verdict on a forwarded transaction, passed
// back to the client unchanged.
type RemoteError struct{ Msg string }

func (e *RemoteError) Error() string { return e.Msg }

// SubmitFunc admits one forwarded raw transaction on the leader.
type SubmitFunc func(raw []byte) error

// ServeForward makes h answer forwarded batches with submit.
func ServeForward(h host.Host, submit SubmitFunc, log *slog.Logger) {
	ServeForwardPrepared(h, ForwardProtocol, nil, submit, nil, log)
}

// ServeForwardPrepared makes h answer batches of protocol proto
// (ForwardProtocol or RelayProtocol) with a BatchHandler of prepare,
// submit and finish.
func ServeForwardPrepared(h host.Host, proto protocol.ID, prepare func(raws [][]byte), submit SubmitFunc, finish func() error, log *slog.Logger) {
	ServeBatches(h, proto, BatchHandler{Prepare: prepare, Submit: submit, Finish: finish}, log)
}

// ServeBatches makes h answer batches of protocol proto with handler; a
// batch the handler refuses whole has its stream reset, which the sender
// takes as a batch that did not get through.
func ServeBatches(h host.Host, proto protocol.ID, handler BatchHandler, log *slog.Logger) {
	h.SetStreamHandler(proto, func(s network.Stream) {
		defer s.Close()
		s.SetDeadline(time.Now().Add(forwardTimeout))
		var raws [][]byte
		if err := readFrame(s, &raws); err != nil {
			log.Debug("bad forward request", "peer", s.Conn().RemotePeer(), "err", err)
			s.Reset()
			return
		}
		verdicts, err := handler.Handle(s.Conn().RemotePeer(), raws)
		if err != nil {
			log.Debug("refused forward request", "peer", s.Conn().RemotePeer(), "err", err)
			s.Reset()
			return
		}
		if err := writeFrame(s, verdicts); err != nil {
			log.Debug("write forward response", "peer", s.Conn().RemotePeer(), "err", err)
		}
	})
}

// BatchHandler is the receiving end of a forwarded or relayed batch,
// whatever carried it (a libp2p stream in a node, the cluster simulator's
// network in internal/sim): Prepare, if not nil, runs on the whole batch
// before Submit runs on its transactions one by one (the node recovers a
// batch's senders on all cores there, so admission, sequential in the
// batch's order, finds them cached); Finish, if not nil, runs after the
// last Submit and before the verdicts are sent: the node makes what it
// admitted durable there, once per batch; if it fails, every transaction
// admitted gets its error as verdict instead. Accept, if not nil, runs
// first: an error refuses the whole batch, as one that did not get
// through (a node that does not lead refuses forwarded batches, so that
// the sender retries against the leader).
//
// Admit, if not nil, takes the place of Prepare and Submit: it admits the
// whole batch in order and returns one error per transaction (nil:
// admitted). The node's handler is one, so that each transaction is
// decoded once for both its sender's recovery and its admission. It is
// told which peer sent the batch (the stream's authenticated remote peer
// in a node), since what its verdicts promise depends on it: the leader
// answers "admitted" to a forwarding validator, whose own copy is the
// second holder, but only once another voter holds the transaction too
// when the sender is no voter of the leader's configuration (an
// observer, or a validator removed whose log trails its removal, which
// cannot know it no longer counts).
type BatchHandler struct {
	Accept  func() error
	Prepare func(raws [][]byte)
	Submit  SubmitFunc
	Admit   func(from peer.ID, raws [][]byte) []error
	Finish  func() error
}

// errBatchTooLarge refuses a batch of more than MaxForwardTxs transactions.
var errBatchTooLarge = fmt.Errorf("batch of more than %d transactions", MaxForwardTxs)

// Handle admits raws, sent by peer from, and returns one verdict per
// transaction, "" for admitted and the error's message otherwise; a batch
// over MaxForwardTxs is refused whole.
func (b BatchHandler) Handle(from peer.ID, raws [][]byte) ([]string, error) {
	if len(raws) > MaxForwardTxs {
		return nil, errBatchTooLarge
	}
	if b.Accept != nil {
		if err := b.Accept(); err != nil {
			return nil, err
		}
	}
	var errs []error
	if b.Admit != nil {
		if errs = b.Admit(from, raws); len(errs) != len(raws) {
			return nil, fmt.Errorf("%d verdicts for %d transactions", len(errs), len(raws))
		}
	} else {
		if b.Prepare != nil {
			b.Prepare(raws)
		}
		errs = make([]error, len(raws))
		for i, raw := range raws {
			errs[i] = b.Submit(raw)
		}
	}
	verdicts := make([]string, len(raws))
	for i, err := range errs {
		if err != nil {
			verdicts[i] = err.Error()
			if verdicts[i] == "" {
				verdicts[i] = "rejected"
			}
		}
	}
	if b.Finish != nil {
		if err := b.Finish(); err != nil {
			for i := range verdicts {
				if verdicts[i] == "" {
					verdicts[i] = err.Error()
				}
			}
		}
	}
	return verdicts, nil
}

// BatchTransport is how a Forwarder and a Replicator reach another node:
// one batch of raw transactions to peer to over proto (ForwardProtocol or
// RelayProtocol), one verdict per transaction back, or an error when the
// batch or its answer did not get through (the batch may then have been
// admitted or not). A node's is its libp2p host (HostTransport); the
// cluster simulator's is its simulated network, which loses, delays and
// reorders batches as it does Raft's messages, so that both run this
// package's retry and verdict rules.
type BatchTransport interface {
	RoundTrip(ctx context.Context, to peer.ID, proto protocol.ID, raws [][]byte) ([]string, error)
}

// HostTransport is the BatchTransport over h's streams, answered by
// ServeForwardPrepared on the other end.
func HostTransport(h host.Host) BatchTransport { return hostTransport{h} }

type hostTransport struct{ h host.Host }

func (t hostTransport) RoundTrip(ctx context.Context, to peer.ID, proto protocol.ID, raws [][]byte) ([]string, error) {
	return roundTrip(ctx, t.h, to, proto, raws)
}

// writeFrame writes v as RLP behind a uvarint length.
func writeFrame(w io.Writer, v any) error {
	b, err := rlp.EncodeToBytes(v)
	if err != nil {
		return err
	}
	if len(b) > MaxForwardBytes {
		return fmt.Errorf("frame of %d bytes over %d", len(b), MaxForwardBytes)
	}
	bw := bufio.NewWriter(w)
	var n [binary.MaxVarintLen64]byte
	bw.Write(n[:binary.PutUvarint(n[:], uint64(len(b)))])
	bw.Write(b)
	return bw.Flush()
}

// readFrame reads a bounded frame written by writeFrame into v.
func readFrame(r io.Reader, v any) error {
	br := bufio.NewReader(r)
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return err
	}
	if n > MaxForwardBytes {
		return fmt.Errorf("frame of %d bytes over %d", n, MaxForwardBytes)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(br, b); err != nil {
		return err
	}
	return rlp.DecodeBytes(b, v)
}

type forwardReq struct {
	raw  []byte
	done chan error
	// relay marks a transaction already acknowledged elsewhere (Send),
	// sent over RelayProtocol.
	relay bool
	// keep, for a relayed transaction (nil: always), reports whether it
	// is still worth sending (still pending where it was sent from).
	keep func() bool
}

// batcher queues transactions (at most ForwardQueue) and hands them to
// deliver in batches of at most maxBatch, with a fixed number of batches
// in flight; callers wait for their own transaction's verdict.
type batcher struct {
	maxBatch int
	queue    chan forwardReq
	stop     chan struct{}
	closeErr error // what transactions submitted after close fail with
	// direct counts the transactions submitAll has in flight: with the
	// queue's, at most ForwardQueue wait for a verdict.
	direct atomic.Int64
	wg     sync.WaitGroup
}

func newBatcher(maxBatch int) batcher {
	if maxBatch <= 0 || maxBatch > MaxForwardTxs {
		maxBatch = MaxForwardTxs
	}
	return batcher{maxBatch: maxBatch, queue: make(chan forwardReq, ForwardQueue), stop: make(chan struct{})}
}

// run starts senders goroutines feeding deliver.
func (b *batcher) run(senders int, deliver func([]forwardReq)) {
	for range senders {
		b.wg.Add(1)
		go b.loop(deliver)
	}
}

// submit queues raw and waits for its verdict or the end of ctx.
func (b *batcher) submit(ctx context.Context, raw []byte, what string) error {
	req := forwardReq{raw: raw, done: make(chan error, 1)}
	select {
	case b.queue <- req:
	default:
		return ErrForwardQueue
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
}

// submitAll hands raws to deliver at once, as batches of their own (not
// mixed with the queue's transactions, so a client's batch travels as one
// message), cut at maxBatch transactions and maxBatchPayload bytes of
// frame, and waits for every verdict or the end of ctx: errs[i] is
// raws[i]'s. The transactions waiting this way and in the queue are at
// most ForwardQueue: past it every one fails with ErrForwardQueue. Once
// the batcher is closed every transaction fails with its close error.
func (b *batcher) submitAll(ctx context.Context, raws [][]byte, what string, deliver func([]forwardReq)) []error {
	errs := make([]error, len(raws))
	select {
	case <-b.stop:
		for i := range errs {
			errs[i] = b.closeErr
		}
		return errs
	default:
	}
	n := int64(len(raws))
	if b.direct.Add(n) > ForwardQueue-int64(len(b.queue)) {
		b.direct.Add(-n)
		for i := range errs {
			errs[i] = ErrForwardQueue
		}
		return errs
	}
	defer b.direct.Add(-n)
	reqs := make([]forwardReq, len(raws))
	for i, raw := range raws {
		reqs[i] = forwardReq{raw: raw, done: make(chan error, 1)}
	}
	for start := 0; start < len(reqs); {
		end, size := start, 0
		for end < len(reqs) && end-start < b.maxBatch {
			n := int(rlp.BytesSize(reqs[end].raw))
			if end > start && size+n > maxBatchPayload {
				break
			}
			end, size = end+1, size+n
		}
		go deliver(reqs[start:end])
		start = end
	}
	for i, req := range reqs {
		select {
		case errs[i] = <-req.done:
		case <-ctx.Done():
			errs[i] = fmt.Errorf("%s: %w", what, ctx.Err())
		}
	}
	return errs
}

// close stops the senders; queued transactions fail with err.
func (b *batcher) close(err error) {
	b.closeErr = err
	close(b.stop)
	b.wg.Wait()
	for {
		select {
		case req := <-b.queue:
			req.done <- err
		default:
			return
		}
	}
}

// maxBatchPayload is the most the transactions of one batch may take in
// its request frame (an RLP list of byte strings): MaxForwardBytes less the
// widest list header, so a batch the batcher makes is never a frame
// writeFrame refuses (one refused frame failed every transaction in it).
var maxBatchPayload = MaxForwardBytes - (int(rlp.ListSize(MaxForwardBytes)) - MaxForwardBytes)

// loop makes batches of at most maxBatch transactions and maxBatchPayload
// bytes of frame; a transaction that does not fit starts the next batch.
func (b *batcher) loop(deliver func([]forwardReq)) {
	defer b.wg.Done()
	var carry *forwardReq
	for {
		var batch []forwardReq
		if carry != nil {
			batch, carry = append(batch, *carry), nil
		} else {
			select {
			case <-b.stop:
				return
			case req := <-b.queue:
				batch = append(batch, req)
			}
		}
		size := int(rlp.BytesSize(batch[0].raw))
	fill:
		for len(batch) < b.maxBatch {
			select {
			case req := <-b.queue:
				n := int(rlp.BytesSize(req.raw))
				if size+n > maxBatchPayload {
					carry = &req
					break fill
				}
				batch, size = append(batch, req), size+n
			default:
				break fill
			}
		}
		deliver(batch)
	}
}

// Forwarder sends transactions to the current leader in batches and hands
// each caller the leader's verdict. A batch that cannot be delivered (no
// leader, the leader went away) is retried, against whichever node leads
// next, until the caller's context ends.
type Forwarder struct {
	batcher
	tr     BatchTransport
	self   peer.ID
	leader func() (peer.ID, bool)
	// local admits a batch when this node has become the leader;
	// localRelay (local when nil) admits relayed transactions.
	local, localRelay SubmitFunc
	// retryFor bounds how long a batch is retried without a reachable
	// leader; relayFor (a time.Duration), a batch of relayed transactions
	// (Send).
	retryFor time.Duration
	relayFor atomic.Int64
	log      *slog.Logger
	// down is set from the first batch that found no leader to the next
	// one delivered: an episode without a leader is logged once, not once
	// per batch.
	down atomic.Bool
}

// forwardSenders is how many batches may be in flight at once.
const forwardSenders = 2

// NewForwarder starts a forwarder; leader reports the current leader's
// peer ID (false when there is none). When the leader is this node, queued
// transactions are admitted with local instead of being sent.
func NewForwarder(h host.Host, leader func() (peer.ID, bool), local SubmitFunc, maxBatch int, log *slog.Logger) *Forwarder {
	return NewForwarderOver(HostTransport(h), h.ID(), leader, local, maxBatch, log)
}

// NewForwarderOver is NewForwarder over any transport; self is this
// node's peer ID (a leader equal to it is this node).
func NewForwarderOver(tr BatchTransport, self peer.ID, leader func() (peer.ID, bool), local SubmitFunc, maxBatch int, log *slog.Logger) *Forwarder {
	f := &Forwarder{batcher: newBatcher(maxBatch), tr: tr, self: self, leader: leader, local: local, log: log, retryFor: forwardTimeout}
	f.relayFor.Store(int64(DefaultRelayRetry))
	f.run(forwardSenders, f.deliver)
	return f
}

// Forward sends raw to the leader and returns its verdict: nil when the
// leader admitted it, a *RemoteError with the leader's message, or an error
// when it could not be delivered before ctx ended.
func (f *Forwarder) Forward(ctx context.Context, raw []byte) error {
	return f.submit(ctx, raw, "forward to leader")
}

// ForwardBatch sends raws to the leader as one batch (more only past
// MaxForwardBytes or the forwarder's batch size) and returns each one's
// verdict, as Forward does: a client's JSON-RPC batch reaches the leader
// whole, where it is recovered on all cores, instead of in the bursts the
// queue happens to hold.
func (f *Forwarder) ForwardBatch(ctx context.Context, raws [][]byte) []error {
	return f.submitAll(ctx, raws, "forward to leader", f.deliver)
}

// Close stops the forwarder; queued transactions fail with ErrNoLeader.
func (f *Forwarder) Close() { f.close(ErrNoLeader) }

// SetLocalRelay sets how relayed transactions (Send) are admitted when
// this node has become the leader; call it before the first Send.
func (f *Forwarder) SetLocalRelay(fn SubmitFunc) { f.localRelay = fn }

// DefaultRelayRetry is how long a relayed batch (Send) is retried while
// no leader can be reached, unless SetRelayRetry says otherwise (the
// node's p2p.reforward-retry).
const DefaultRelayRetry = 10 * time.Minute

// SetRelayRetry sets how long a batch of relayed transactions (Send) is
// retried while no leader can be reached (d > 0), from the next batch
// on. A client's forward gives up after forwardTimeout, since
// its client waits and can try another node; a relayed transaction was
// acknowledged long ago, nobody waits for it, and it must reach the next
// leader however long the cluster takes to elect one, as long as it is
// still pending (SendKeeping).
func (f *Forwarder) SetRelayRetry(d time.Duration) {
	if d > 0 {
		f.relayFor.Store(int64(d))
	}
}

// deliver sends one batch, retrying while there is no reachable leader,
// for up to forwardTimeout (a relayed batch: relayFor, SetRelayRetry);
// callers whose context ended have stopped waiting, and their verdicts
// are dropped.
func (f *Forwarder) deliver(batch []forwardReq) {
	var client, relay []forwardReq
	for _, req := range batch {
		if req.relay {
			relay = append(relay, req)
		} else {
			client = append(client, req)
		}
	}
	if len(client) > 0 {
		f.deliverProto(client, ForwardProtocol)
	}
	if len(relay) > 0 {
		f.deliverProto(relay, RelayProtocol)
	}
}

// deliverProto is deliver for a batch of one protocol.
func (f *Forwarder) deliverProto(batch []forwardReq, proto protocol.ID) {
	retryFor := f.retryFor
	if proto == RelayProtocol {
		retryFor = time.Duration(f.relayFor.Load())
	}
	deadline := time.Now().Add(retryFor)
	backoff := 20 * time.Millisecond
	for attempt := 0; ; attempt++ {
		if attempt > 0 && proto == RelayProtocol {
			if batch = kept(batch); len(batch) == 0 {
				return
			}
		}
		verdicts, err := f.send(batch, proto)
		if err == nil {
			if f.down.CompareAndSwap(true, false) {
				f.log.Info("forwarding to the leader works again")
			}
			for i, req := range batch {
				// A retried batch may have reached the leader before its
				// response was lost: "already known" (pooled, never
				// VerdictApplied) then means admitted.
				if attempt > 0 && strings.HasPrefix(verdicts[i], VerdictKnown) {
					verdicts[i] = ""
				}
				if verdicts[i] != "" {
					req.done <- &RemoteError{Msg: verdicts[i]}
				} else {
					req.done <- nil
				}
			}
			return
		}
		if time.Now().After(deadline) {
			if !errors.Is(err, ErrNoLeader) {
				err = fmt.Errorf("%w: %v", ErrNoLeader, err)
			}
			if f.down.CompareAndSwap(false, true) {
				f.log.Warn("forwarding to the leader failed (logged once until forwarding works again)", "txs", len(batch), "err", err)
			}
			for _, req := range batch {
				req.done <- err
			}
			return
		}
		select {
		case <-f.stop:
			for _, req := range batch {
				req.done <- ErrNoLeader
			}
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxForwardBackoff)
	}
}

func (f *Forwarder) send(batch []forwardReq, proto protocol.ID) ([]string, error) {
	leader, ok := f.leader()
	if !ok {
		return nil, ErrNoLeader
	}
	if leader == f.self {
		local := f.local
		if proto == RelayProtocol && f.localRelay != nil {
			local = f.localRelay
		}
		verdicts := make([]string, len(batch))
		for i, req := range batch {
			if err := local(req.raw); err != nil {
				verdicts[i] = err.Error()
			}
		}
		return verdicts, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), forwardTimeout)
	defer cancel()
	// A leader that stops answering (paused, cut off) is replaced by an
	// election long before forwardTimeout: the batch goes to the new
	// leader as soon as this node learns of it, not when the old one
	// wakes up.
	moved := f.watchLeader(ctx, cancel, leader)
	raws := make([][]byte, len(batch))
	for i, req := range batch {
		raws[i] = req.raw
	}
	verdicts, err := f.tr.RoundTrip(ctx, leader, proto, raws)
	return verdicts, f.why(err, moved)
}

// roundTrip sends raws to target over proto (ForwardProtocol or
// RelayProtocol) and returns its verdicts; the stream is reset when ctx
// ends.
func roundTrip(ctx context.Context, h host.Host, target peer.ID, proto protocol.ID, raws [][]byte) ([]string, error) {
	s, err := h.NewStream(ctx, target, proto)
	if err != nil {
		return nil, fmt.Errorf("open stream to %s: %w", target, err)
	}
	defer s.Close()
	stopReset := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stopReset()
	if err := writeFrame(s, raws); err != nil {
		s.Reset()
		return nil, fmt.Errorf("forward to %s: %w", target, err)
	}
	if err := s.CloseWrite(); err != nil {
		s.Reset()
		return nil, fmt.Errorf("forward to %s: %w", target, err)
	}
	var verdicts []string
	if err := readFrame(s, &verdicts); err != nil {
		s.Reset()
		return nil, fmt.Errorf("forward to %s: response: %w", target, err)
	}
	if len(verdicts) != len(raws) {
		return nil, fmt.Errorf("forward to %s: %d verdicts for %d txs", target, len(verdicts), len(raws))
	}
	return verdicts, nil
}

// errLeaderChanged is why a forward in flight was abandoned.
var errLeaderChanged = errors.New("leader changed")

// leaderPoll is how often a forward in flight checks that its target still
// leads (a cheap read of Raft's state).
const leaderPoll = 10 * time.Millisecond

// watchLeader cancels ctx (with cancel) as soon as target is no longer the
// leader this node knows; the returned flag says whether it did.
func (f *Forwarder) watchLeader(ctx context.Context, cancel context.CancelFunc, target peer.ID) *atomic.Bool {
	moved := new(atomic.Bool)
	go func() {
		t := time.NewTicker(leaderPoll)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if cur, ok := f.leader(); !ok || cur != target {
				moved.Store(true)
				cancel()
				return
			}
		}
	}()
	return moved
}

// why names a leader change as the cause of err.
func (f *Forwarder) why(err error, moved *atomic.Bool) error {
	if err != nil && moved.Load() {
		return fmt.Errorf("%w: %w", errLeaderChanged, err)
	}
	return err
}

// kept returns the requests of batch still worth sending, answering the
// others (whose keep says no) with ErrNoLeader.
func kept(batch []forwardReq) []forwardReq {
	out := batch[:0]
	for _, req := range batch {
		if req.keep == nil || req.keep() {
			out = append(out, req)
		} else {
			req.done <- ErrNoLeader
		}
	}
	return out
}

// Send queues raw for the leader over RelayProtocol without waiting for
// the verdict (pending transactions re-sent to a new leader).
func (f *Forwarder) Send(raw []byte) error { return f.SendKeeping(raw, nil) }

// SendKeeping is Send for a transaction that is worth sending only while
// keep reports true (nil: always): between tries without a reachable
// leader, one that keep no longer wants (included meanwhile, or dropped
// from the pool) leaves the batch. It fails with ErrForwardQueue when
// the queue is full (SendKeepingWait waits for room instead).
func (f *Forwarder) SendKeeping(raw []byte, keep func() bool) error {
	select {
	case f.queue <- forwardReq{raw: raw, done: make(chan error, 1), relay: true, keep: keep}:
		return nil
	default:
		return ErrForwardQueue
	}
}

// SendKeepingWait is SendKeeping that waits for room in a full queue
// until ctx ends (an error wrapping ErrForwardQueue) or the forwarder is
// closed (ErrNoLeader): the rest of a pool re-sent to a new leader goes
// as the queue drains rather than being dropped (node.Admission.Reforward).
func (f *Forwarder) SendKeepingWait(ctx context.Context, raw []byte, keep func() bool) error {
	req := forwardReq{raw: raw, done: make(chan error, 1), relay: true, keep: keep}
	select {
	case <-f.stop:
		return ErrNoLeader
	default:
	}
	select {
	case f.queue <- req:
		return nil
	case <-f.stop:
		return ErrNoLeader
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrForwardQueue, ctx.Err())
	}
}
