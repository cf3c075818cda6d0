package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/consensus"
	"github.com/tally-ledger/tally/p2p"
)

// rpcTimeout bounds how long a Raft RPC waits for its answer, as the
// node's libp2p transport does (p2p.RaftTransportConfig.Timeout). In the
// simulator it only ends calls whose answer was lost with a crashed node.
const rpcTimeout = 10 * time.Second

// Errors a simulated RPC fails with.
var (
	errDropped     = errors.New("sim: message dropped")
	errUnreachable = errors.New("sim: peer unreachable")
	errClosed      = errors.New("sim: transport closed")
)

// message is one Raft RPC or its answer, queued in the network until the
// scheduler delivers, delays or drops it.
type message struct {
	seq      uint64
	from, to int
	// epoch of the node at the receiving end when it was sent: a message
	// to or from an instance that has since crashed is dropped.
	fromEpoch, toEpoch int
	kind               string
	// A request carries cmd and the caller's done; an answer carries resp.
	cmd       any
	data      []byte        // the stream following cmd (InstallSnapshot's)
	votes     []*chain.Vote // a one-way vote message (no answer)
	queuedAt  time.Time     // when a vote message was queued (mergeVotes)
	done      chan raft.RPCResponse
	resp      *raft.RPCResponse
	notBefore time.Time
	// answers is the forwarded batch an answer (forward-resp) answers,
	// and held what the sender's answer confirmed of each of its
	// transactions: which validators held it when the answer was
	// produced (set by Sim.noteAnswers; admit.go, acked-held).
	answers *batchReq
	held    map[common.Hash]confirmation
}

// network is the simulated network: every Raft RPC between nodes is a
// queued message, and only the scheduler moves messages (deliver, drop,
// delay), so the order of delivery is the seeded RNG's choice.
type network struct {
	mu    sync.Mutex
	seq   uint64
	queue []*message
	// resets are the messages a crash took off the queue, whose callers
	// are yet to see their connection reset.
	resets []*message
	eps    []*endpoint
	cut    [][]bool // cut[i][j]: messages from i to j are lost (partition)
	// heights is each node's applied height, for the leader's membership
	// reconciler (simMembers.Height).
	heights []atomic.Uint64
	// engines is each node's running consensus engine, for the member
	// question of a node about to bootstrap (datadir.go).
	engines []atomic.Pointer[consensus.Engine]
	// launching marks the genesis validators of the cluster's first
	// start, launched together: each answers the others' member question
	// at genesis, as a node waiting to start Raft does (datadir.go).
	launching []atomic.Bool
	closed    bool
	// answered holds every batch of the admission path a node instance
	// answered, dups how many it answered again (forward.go).
	answered map[[32]byte]bool
	dups     int
	// answers are the answers to forwarded batches queued since
	// takeAnswers last took them (Sim.noteAnswers).
	answers []*message
}

func newNetwork(n int) *network {
	net := &network{eps: make([]*endpoint, n), cut: make([][]bool, n), heights: make([]atomic.Uint64, n),
		engines: make([]atomic.Pointer[consensus.Engine], n), launching: make([]atomic.Bool, n)}
	for i := range net.cut {
		net.cut[i] = make([]bool, n)
	}
	return net
}

// endpoint is one node instance's raft.Transport. A crash closes it: its
// pending calls fail and nothing it sends afterwards leaves it.
type endpoint struct {
	net      *network
	id       int
	epoch    int
	consumer chan raft.RPC
	// votes receives the commit votes other nodes send this instance.
	votes func(from string, vs []*chain.Vote)
	// batches answers the forwarded and relayed batches other nodes send
	// this instance (forward.go).
	batches func(protocol.ID) p2p.BatchHandler
	closed  chan struct{}
	once    sync.Once
	// filter is what every request passes through before raft gets it
	// (consensus.RequestFilterer; guarded by the network's mu).
	filter func(raft.RPC) (raft.RPC, bool)
}

var (
	_ raft.Transport   = (*endpoint)(nil)
	_ raft.WithPreVote = (*endpoint)(nil)
	_ raft.WithClose   = (*endpoint)(nil)

	_ consensus.RequestFilterer = (*endpoint)(nil)
)

// attach makes a fresh endpoint for node id at epoch.
func (n *network) attach(id, epoch int) *endpoint {
	ep := &endpoint{net: n, id: id, epoch: epoch, consumer: make(chan raft.RPC), closed: make(chan struct{})}
	n.mu.Lock()
	n.eps[id] = ep
	n.mu.Unlock()
	return ep
}

// detach closes node id's endpoint (a crash): calls waiting on it fail,
// and every queued message from or to it is taken off the queue at once
// (it could never be delivered), so that what is queued does not depend
// on how fast the old instance winds down. Their callers see the
// connection reset later, one at a time (resets, failReset).
func (n *network) detach(id int) {
	n.mu.Lock()
	ep := n.eps[id]
	n.eps[id] = nil
	if ep != nil {
		ep.Close()
	}
	var lost []*message
	kept := n.queue[:0]
	for _, m := range n.queue {
		if m.from == id || m.to == id {
			lost = append(lost, m)
		} else {
			kept = append(kept, m)
		}
	}
	n.queue = kept
	sortReady(lost)
	n.resets = append(n.resets, lost...)
	n.mu.Unlock()
}

// failReset fails the oldest RPC a crash cut (see detach); false if none
// is left.
func (n *network) failReset() bool {
	n.mu.Lock()
	if len(n.resets) == 0 {
		n.mu.Unlock()
		return false
	}
	m := n.resets[0]
	n.resets = n.resets[1:]
	n.mu.Unlock()
	n.fail(m, errUnreachable)
	return true
}

// addr is node i's Raft address (and server ID).
func addr(i int) raft.ServerAddress { return raft.ServerAddress(fmt.Sprintf("n%d", i)) }

func parseAddr(a raft.ServerAddress) (int, error) {
	var i int
	if _, err := fmt.Sscanf(string(a), "n%d", &i); err != nil {
		return 0, fmt.Errorf("sim: bad address %q", a)
	}
	return i, nil
}

// call queues a request from ep to target and waits for its answer.
func (ep *endpoint) call(target raft.ServerAddress, kind string, cmd any) (any, error) {
	return ep.callWith(target, kind, cmd, nil)
}

// callWith is call with data, the stream that follows the request (an
// installed snapshot's).
func (ep *endpoint) callWith(target raft.ServerAddress, kind string, cmd any, data []byte) (any, error) {
	to, err := parseAddr(target)
	if err != nil {
		return nil, err
	}
	done := make(chan raft.RPCResponse, 1)
	n := ep.net
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, errClosed
	}
	if n.eps[ep.id] != ep { // crashed: nothing leaves it any more
		n.mu.Unlock()
		return nil, errClosed
	}
	toEpoch := -1
	if to < len(n.eps) && n.eps[to] != nil {
		toEpoch = n.eps[to].epoch
	}
	n.seq++
	n.queue = append(n.queue, &message{seq: n.seq, from: ep.id, to: to, fromEpoch: ep.epoch, toEpoch: toEpoch, kind: kind, cmd: cmd, data: data, done: done})
	n.mu.Unlock()
	timer := time.NewTimer(rpcTimeout)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.Response, r.Error
	case <-ep.closed:
		return nil, errClosed
	case <-timer.C:
		return nil, fmt.Errorf("sim: %s to %s timed out", kind, target)
	}
}

// ready returns the queued messages deliverable at now, in queue order.
func (n *network) ready(now time.Time) []*message {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []*message
	for _, m := range n.queue {
		if !m.notBefore.After(now) {
			out = append(out, m)
		}
	}
	return out
}

// nextDue is the earliest notBefore of a delayed message (zero if none).
func (n *network) nextDue() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	var t time.Time
	for _, m := range n.queue {
		if t.IsZero() || m.notBefore.Before(t) {
			t = m.notBefore
		}
	}
	return t
}

func (n *network) take(m *message) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, q := range n.queue {
		if q == m {
			n.queue = append(n.queue[:i], n.queue[i+1:]...)
			return true
		}
	}
	return false
}

// alive reports whether the instance at epoch of node id is still up.
func (n *network) aliveLocked(id, epoch int) bool {
	return id >= 0 && id < len(n.eps) && n.eps[id] != nil && n.eps[id].epoch == epoch
}

// deliver hands m to its receiver. It reports false (and the message is
// lost) when either end crashed since it was sent or a partition cuts the
// link.
func (n *network) deliver(m *message) bool {
	if !n.take(m) {
		return false
	}
	n.mu.Lock()
	if n.cut[m.from][m.to] || !n.aliveLocked(m.from, m.fromEpoch) || !n.aliveLocked(m.to, m.toEpoch) {
		n.mu.Unlock()
		n.fail(m, errUnreachable)
		return false
	}
	ep := n.eps[m.to]
	filter := ep.filter
	n.mu.Unlock()
	if m.resp != nil { // an answer: to the waiting caller
		m.done <- *m.resp
		return true
	}
	if m.votes != nil {
		if ep.votes != nil {
			ep.votes(string(addr(m.from)), m.votes)
		}
		return true
	}
	if b, ok := m.cmd.(*batchReq); ok {
		go n.answerBatch(ep, m, b)
		return true
	}
	respCh := make(chan raft.RPCResponse, 1)
	rpc := raft.RPC{Command: m.cmd, RespChan: respCh}
	if m.data != nil {
		rpc.Reader = bytes.NewReader(m.data)
	}
	if filter != nil {
		var pass bool
		if rpc, pass = filter(rpc); !pass { // answered by the node's transport
			n.respond(ep, m, <-respCh)
			return true
		}
	}
	go func() {
		select {
		case ep.consumer <- rpc:
		case <-ep.closed:
			n.fail(m, errUnreachable) // the receiver crashed: the connection resets
			return
		}
		var r raft.RPCResponse
		select {
		case r = <-respCh:
		case <-ep.closed:
			n.fail(m, errUnreachable)
			return
		}
		n.respond(ep, m, r)
	}()
	return true
}

// respond queues r, the answer of receiver ep to request m.
func (n *network) respond(ep *endpoint, m *message, r raft.RPCResponse) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || n.eps[m.to] != ep {
		m.done <- raft.RPCResponse{Error: errUnreachable} // the receiver crashed
		return
	}
	n.seq++
	a := &message{seq: n.seq, from: m.to, to: m.from, fromEpoch: m.toEpoch, toEpoch: m.fromEpoch,
		kind: m.kind + "-resp", done: m.done, resp: &r}
	if b, ok := m.cmd.(*batchReq); ok && m.kind == kindForward {
		a.answers = b
		n.answers = append(n.answers, a)
	}
	n.queue = append(n.queue, a)
}

// takeAnswers returns the answers to forwarded batches queued since its
// last call.
func (n *network) takeAnswers() []*message {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := n.answers
	n.answers = nil
	return out
}

// drop loses m: the caller sees an error, as on a reset connection.
func (n *network) drop(m *message) bool {
	if !n.take(m) {
		return false
	}
	n.fail(m, errDropped)
	return true
}

func (n *network) fail(m *message, err error) {
	if m.done != nil {
		m.done <- raft.RPCResponse{Error: err}
	}
}

// sendVotes queues a one-way vote message from ep to target; a lost one
// is sent again at the relay's next resend.
func (ep *endpoint) sendVotes(target raft.ServerID, votes []*chain.Vote) error {
	to, err := parseAddr(raft.ServerAddress(target))
	if err != nil {
		return err
	}
	n := ep.net
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || n.eps[ep.id] != ep {
		return errClosed
	}
	toEpoch := -1
	if to < len(n.eps) && n.eps[to] != nil {
		toEpoch = n.eps[to].epoch
	}
	now := time.Now()
	for _, m := range n.queue {
		if m.kind == "votes" && m.from == ep.id && m.to == to && m.fromEpoch == ep.epoch && m.toEpoch == toEpoch && m.queuedAt.Equal(now) && m.notBefore.IsZero() {
			m.votes = mergeVotes(m.votes, votes)
			return nil
		}
	}
	n.seq++
	n.queue = append(n.queue, &message{seq: n.seq, from: ep.id, to: to, fromEpoch: ep.epoch, toEpoch: toEpoch, kind: "votes", votes: mergeVotes(nil, votes), queuedAt: now})
	return nil
}

// SendVotes implements consensus.VoteTransport over the simulated network.
func (ep *endpoint) SendVotes(_ context.Context, leader raft.ServerID, votes []*chain.Vote) error {
	return ep.sendVotes(leader, votes)
}

// delay holds m back until at.
func (n *network) delay(m *message, at time.Time) {
	n.mu.Lock()
	m.notBefore = at
	n.mu.Unlock()
}

// setCut cuts (or heals) the link between every node of a and every node of b.
func (n *network) setCut(a, b []int, cut bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, i := range a {
		for _, j := range b {
			n.cut[i][j], n.cut[j][i] = cut, cut
		}
	}
}

func (n *network) healAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i := range n.cut {
		for j := range n.cut[i] {
			n.cut[i][j] = false
		}
	}
}

// connected reports whether i and j can exchange messages.
func (n *network) connected(i, j int) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return !n.cut[i][j] && !n.cut[j][i]
}

// shutdown fails every queued message and refuses new ones.
func (n *network) shutdown() {
	n.mu.Lock()
	q := append(n.queue, n.resets...)
	n.queue, n.resets = nil, nil
	n.closed = true
	n.mu.Unlock()
	sort.Slice(q, func(i, j int) bool { return q[i].seq < q[j].seq })
	for _, m := range q {
		n.fail(m, errClosed)
	}
}

// Consumer implements raft.Transport.
func (ep *endpoint) Consumer() <-chan raft.RPC { return ep.consumer }

// LocalAddr implements raft.Transport.
func (ep *endpoint) LocalAddr() raft.ServerAddress { return addr(ep.id) }

// AppendEntriesPipeline implements raft.Transport: every append is a
// separate queued message.
func (ep *endpoint) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}

// AppendEntries implements raft.Transport.
func (ep *endpoint) AppendEntries(_ raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	out, err := ep.call(target, "append", args)
	if err != nil {
		return err
	}
	*resp = *out.(*raft.AppendEntriesResponse)
	return nil
}

// RequestVote implements raft.Transport.
func (ep *endpoint) RequestVote(_ raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	out, err := ep.call(target, "vote", args)
	if err != nil {
		return err
	}
	*resp = *out.(*raft.RequestVoteResponse)
	return nil
}

// RequestPreVote implements raft.WithPreVote.
func (ep *endpoint) RequestPreVote(_ raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	out, err := ep.call(target, "prevote", args)
	if err != nil {
		return err
	}
	*resp = *out.(*raft.RequestPreVoteResponse)
	return nil
}

// TimeoutNow implements raft.Transport (leadership transfer).
func (ep *endpoint) TimeoutNow(_ raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	out, err := ep.call(target, "timeout-now", args)
	if err != nil {
		return err
	}
	*resp = *out.(*raft.TimeoutNowResponse)
	return nil
}

// EncodePeer implements raft.Transport.
func (ep *endpoint) EncodePeer(_ raft.ServerID, a raft.ServerAddress) []byte { return []byte(a) }

// DecodePeer implements raft.Transport.
func (ep *endpoint) DecodePeer(b []byte) raft.ServerAddress { return raft.ServerAddress(b) }

// SetHeartbeatHandler implements raft.Transport: heartbeats go through the
// consumer like every other RPC.
func (ep *endpoint) SetHeartbeatHandler(func(raft.RPC)) {}

// FilterRequests implements consensus.RequestFilterer: every request is
// handed to raft through filter (the receiving side of the node's
// commit-index rule), in the goroutine that delivers it.
func (ep *endpoint) FilterRequests(filter func(raft.RPC) (raft.RPC, bool)) {
	ep.net.mu.Lock()
	defer ep.net.mu.Unlock()
	ep.filter = filter
}

// Close implements raft.WithClose.
func (ep *endpoint) Close() error {
	ep.once.Do(func() { close(ep.closed) })
	return nil
}
