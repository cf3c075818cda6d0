package p2p

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// forwardPair is a leader that admits transactions unless their first
// byte is 0xff, and a follower forwarding to it.
func forwardPair(t *testing.T) (leader, follower *Host, admitted func() int) {
	lk, fk := newKey(t), newKey(t)
	lid, fid := peerID(t, lk), peerID(t, fk)
	loop := []string{"/ip4/127.0.0.1/tcp/0"}
	leader = newHost(t, lk, loop, fid)
	follower = newHost(t, fk, loop, lid)
	addPeers(t, follower, leader)
	var mu sync.Mutex
	n := 0
	ServeForward(leader.Libp2p(), func(raw []byte) error {
		if len(raw) > 0 && raw[0] == 0xff {
			return fmt.Errorf("nonce too low: tx %x", raw)
		}
		mu.Lock()
		n++
		mu.Unlock()
		return nil
	}, testLogger())
	return leader, follower, func() int { mu.Lock(); defer mu.Unlock(); return n }
}

func TestForwardVerdicts(t *testing.T) {
	leader, follower, admitted := forwardPair(t)
	fw := NewForwarder(follower.Libp2p(), func() (peer.ID, bool) { return leader.ID(), true }, nil, 100, testLogger())
	defer fw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 500)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			raw := []byte{byte(i % 7), byte(i >> 8), byte(i)}
			if i%50 == 0 {
				raw[0] = 0xff
			}
			errs[i] = fw.Forward(ctx, raw)
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		var remote *RemoteError
		switch {
		case i%50 == 0 && (!errors.As(err, &remote) || !bytes.Contains([]byte(remote.Msg), []byte("nonce too low"))):
			t.Fatalf("tx %d: %v, want the leader's refusal", i, err)
		case i%50 != 0 && err != nil:
			t.Fatalf("tx %d: %v", i, err)
		}
	}
	if got := admitted(); got != 490 {
		t.Fatalf("leader admitted %d, want 490", got)
	}
}

func TestForwardWithoutLeader(t *testing.T) {
	_, follower, _ := forwardPair(t)
	fw := NewForwarder(follower.Libp2p(), func() (peer.ID, bool) { return "", false }, nil, 100, testLogger())
	fw.retryFor = 300 * time.Millisecond
	defer fw.Close()
	start := time.Now()
	err := fw.Forward(context.Background(), []byte{1})
	if !errors.Is(err, ErrNoLeader) {
		t.Fatalf("err %v, want ErrNoLeader", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("forward did not give up")
	}
	// A caller's context bounds its wait.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := fw.Forward(ctx, []byte{2}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want deadline", err)
	}
}

// TestForwardRetriesNewLeader: the first leader is unreachable, the next
// one answers; the batch is delivered once a leader is reachable.
func TestForwardRetriesNewLeader(t *testing.T) {
	leader, follower, admitted := forwardPair(t)
	stranger := peerID(t, newKey(t))
	var mu sync.Mutex
	current := stranger
	fw := NewForwarder(follower.Libp2p(), func() (peer.ID, bool) { mu.Lock(); defer mu.Unlock(); return current, true }, nil, 100, testLogger())
	defer fw.Close()
	go func() {
		time.Sleep(200 * time.Millisecond)
		mu.Lock()
		current = leader.ID()
		mu.Unlock()
	}()
	if err := fw.Forward(context.Background(), []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if admitted() != 1 {
		t.Fatal("not admitted by the new leader")
	}
}

func TestFrameBounds(t *testing.T) {
	var buf bytes.Buffer
	if err := writeFrame(&buf, [][]byte{{1}, {2, 3}}); err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	if err := readFrame(&buf, &got); err != nil || len(got) != 2 {
		t.Fatalf("round trip: %v %v", got, err)
	}
	// A length over the bound is refused before anything is allocated.
	huge := []byte{0xff, 0xff, 0xff, 0xff, 0x7f}
	if err := readFrame(bytes.NewReader(huge), &got); err == nil {
		t.Fatal("oversized frame accepted")
	}
}

func FuzzReadFrame(f *testing.F) {
	var buf bytes.Buffer
	writeFrame(&buf, [][]byte{{1, 2}, {3}})
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		var raws [][]byte
		readFrame(bytes.NewReader(data), &raws)
		var verdicts []string
		readFrame(bytes.NewReader(data), &verdicts)
	})
}

// TestForwardToSelfWhenLeader: once this node leads, queued transactions
// are admitted locally instead of waiting for a remote leader.
func TestForwardToSelfWhenLeader(t *testing.T) {
	_, follower, _ := forwardPair(t)
	var got [][]byte
	var mu sync.Mutex
	local := func(raw []byte) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, raw)
		if raw[0] == 0xff {
			return errors.New("nonce too low")
		}
		return nil
	}
	fw := NewForwarder(follower.Libp2p(), func() (peer.ID, bool) { return follower.ID(), true }, local, 100, testLogger())
	defer fw.Close()
	if err := fw.Forward(context.Background(), []byte{1}); err != nil {
		t.Fatal(err)
	}
	var remote *RemoteError
	if err := fw.Forward(context.Background(), []byte{0xff}); !errors.As(err, &remote) {
		t.Fatalf("local refusal: %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("admitted locally %d, want 2", len(got))
	}
}

// TestForwardLeavesStalledLeader: the leader takes a forwarded batch and
// never answers (a paused process: its connection stays open). When an
// election makes another node leader, the batch in flight is sent to the
// new leader at once, well before the forward's own 10 s timeout, and
// the caller gets the new leader's verdict.
func TestForwardLeavesStalledLeader(t *testing.T) {
	leader, follower, admitted := forwardPair(t)
	sk := newKey(t)
	stalled := newHost(t, sk, []string{tcpLoopback}, follower.ID())
	follower.SetAllowed([]peer.ID{leader.ID(), stalled.ID()})
	addPeers(t, follower, stalled)
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	got := make(chan struct{}, 1)
	stalled.Libp2p().SetStreamHandler(ForwardProtocol, func(s network.Stream) {
		select {
		case got <- struct{}{}:
		default:
		}
		<-block
		s.Reset()
	})
	var current atomic.Value
	current.Store(stalled.ID())
	fw := NewForwarder(follower.Libp2p(), func() (peer.ID, bool) { return current.Load().(peer.ID), true }, nil, 100, testLogger())
	defer fw.Close()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- fw.Forward(ctx, []byte{9, 9})
	}()
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the batch never reached the stalled leader")
	}
	current.Store(leader.ID()) // the election
	if err := <-done; err != nil {
		t.Fatalf("forward after the leader changed: %v (the batch stayed with the stalled leader)", err)
	}
	if admitted() != 1 {
		t.Fatalf("new leader admitted %d, want 1", admitted())
	}
}

// TestBatchesFitTheFrame: transactions queued faster than they are sent
// are batched within the request frame's bound, however large each is: a
// batch over MaxForwardBytes used to fail every transaction in it.
func TestBatchesFitTheFrame(t *testing.T) {
	b := newBatcher(MaxForwardTxs)
	const n, size = 800, 30 << 10 // 24 MB queued, a frame holds 16 MB
	errs := make(chan error, n)
	for i := range n {
		raw := bytes.Repeat([]byte{byte(i)}, size)
		go func() { errs <- b.submit(context.Background(), raw, "test") }()
	}
	waitFor(t, 10*time.Second, "all queued", func() bool { return len(b.queue) == n })
	var mu sync.Mutex
	var batches []int
	b.run(1, func(batch []forwardReq) {
		raws := make([][]byte, len(batch))
		for i, req := range batch {
			raws[i] = req.raw
		}
		err := writeFrame(io.Discard, raws)
		mu.Lock()
		batches = append(batches, len(batch))
		mu.Unlock()
		for _, req := range batch {
			req.done <- err
		}
	})
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("a batch was refused: %v (batches %v)", err, batches)
		}
	}
	b.close(errors.New("closed"))
	if len(batches) < 2 {
		t.Fatalf("batches %v: %d MB in one frame", batches, n*size>>20)
	}
}

// TestForwardFinish: the leader's finish hook runs once per batch, after
// every admission and before the verdicts leave; when it fails, every
// transaction admitted gets its error as verdict (the node could not make
// them durable), and refusals keep their own.
func TestForwardFinish(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("fail=%v", fail), func(t *testing.T) {
			lk, fk := newKey(t), newKey(t)
			lid, fid := peerID(t, lk), peerID(t, fk)
			loop := []string{"/ip4/127.0.0.1/tcp/0"}
			leader, follower := newHost(t, lk, loop, fid), newHost(t, fk, loop, lid)
			addPeers(t, follower, leader)
			var mu sync.Mutex
			admitted, finishes, admittedAtFinish := 0, 0, 0
			ServeForwardPrepared(leader.Libp2p(), ForwardProtocol, nil, func(raw []byte) error {
				if raw[0] == 0xff {
					return errors.New("nonce too low")
				}
				mu.Lock()
				admitted++
				mu.Unlock()
				return nil
			}, func() error {
				mu.Lock()
				defer mu.Unlock()
				finishes++
				admittedAtFinish = admitted
				if fail {
					return errors.New("pool journal: disk full")
				}
				return nil
			}, testLogger())
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			raws := [][]byte{{1}, {0xff}, {2}}
			verdicts, err := roundTrip(ctx, follower.Libp2p(), leader.ID(), ForwardProtocol, raws)
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"", "nonce too low", ""}
			if fail {
				want = []string{"pool journal: disk full", "nonce too low", "pool journal: disk full"}
			}
			if fmt.Sprint(verdicts) != fmt.Sprint(want) {
				t.Fatalf("verdicts %q, want %q", verdicts, want)
			}
			if finishes != 1 || admittedAtFinish != 2 {
				t.Fatalf("finish ran %d times, after %d admissions; want once, after 2", finishes, admittedAtFinish)
			}
		})
	}
}

// syncLog is a log buffer the forwarder's goroutines write to.
type syncLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// TestForwardNoLeaderSaidOnce: while there is no leader, every forward
// fails with "no leader to forward to" said once in its message, and the
// episode is logged once, not once per batch; once a batch is delivered
// the next episode is logged again.
func TestForwardNoLeaderSaidOnce(t *testing.T) {
	leader, follower, _ := forwardPair(t)
	var hasLeader atomic.Bool
	var log syncLog
	fw := NewForwarder(follower.Libp2p(), func() (peer.ID, bool) {
		if hasLeader.Load() {
			return leader.ID(), true
		}
		return "", false
	}, nil, 100, slog.New(slog.NewTextHandler(&log, nil)))
	fw.retryFor = 50 * time.Millisecond
	defer fw.Close()
	episode := func() {
		t.Helper()
		for i := range 3 {
			err := fw.Forward(context.Background(), []byte{byte(i + 1)})
			if !errors.Is(err, ErrNoLeader) || err.Error() != "no leader to forward to" {
				t.Fatalf("forward without a leader: %v, want %q once", err, ErrNoLeader)
			}
		}
	}
	episode()
	if n := strings.Count(log.String(), "level=WARN"); n != 1 {
		t.Fatalf("3 failed forwards logged %d warnings, want 1:\n%s", n, log.String())
	}
	hasLeader.Store(true)
	if err := fw.Forward(context.Background(), []byte{9}); err != nil {
		t.Fatalf("forward with a leader: %v", err)
	}
	if !strings.Contains(log.String(), "forwarding to the leader works again") {
		t.Fatalf("recovery not logged:\n%s", log.String())
	}
	hasLeader.Store(false)
	episode()
	if n := strings.Count(log.String(), "level=WARN"); n != 2 {
		t.Fatalf("a second episode: %d warnings in all, want 2:\n%s", n, log.String())
	}
}

// TestForwardBatchOneMessage: a client's batch given to ForwardBatch
// reaches the leader as one request (recovered there in one Prepare call),
// each transaction gets its own verdict in order, and a batch larger than
// the forwarder's batch size is cut at it. A batch that would take the
// transactions waiting past ForwardQueue, or one sent after the forwarder
// is closed, fails whole (ErrForwardQueue, ErrNoLeader).
func TestForwardBatchOneMessage(t *testing.T) {
	lk, fk := newKey(t), newKey(t)
	loop := []string{"/ip4/127.0.0.1/tcp/0"}
	leader := newHost(t, lk, loop, peerID(t, fk))
	follower := newHost(t, fk, loop, peerID(t, lk))
	addPeers(t, follower, leader)
	var mu sync.Mutex
	var requests []int // the size of each request the leader got
	ServeForwardPrepared(leader.Libp2p(), ForwardProtocol, func(raws [][]byte) {
		mu.Lock()
		defer mu.Unlock()
		requests = append(requests, len(raws))
	}, func(raw []byte) error {
		if raw[0] == 0xff {
			return errors.New("nonce too low")
		}
		return nil
	}, nil, testLogger())
	fw := NewForwarder(follower.Libp2p(), func() (peer.ID, bool) { return leader.ID(), true }, nil, 400, testLogger())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range []struct {
		txs  int
		want []int
	}{{300, []int{300}}, {1000, []int{400, 400, 200}}} {
		mu.Lock()
		requests = nil
		mu.Unlock()
		raws := make([][]byte, c.txs)
		for i := range raws {
			raws[i] = []byte{byte(i % 7), byte(i >> 8), byte(i)}
			if i%10 == 3 {
				raws[i][0] = 0xff
			}
		}
		errs := fw.ForwardBatch(ctx, raws)
		for i, err := range errs {
			var remote *RemoteError
			if i%10 == 3 {
				if !errors.As(err, &remote) || remote.Msg != "nonce too low" {
					t.Fatalf("%d txs, tx %d: %v, want the leader's refusal", c.txs, i, err)
				}
			} else if err != nil {
				t.Fatalf("%d txs, tx %d: %v", c.txs, i, err)
			}
		}
		mu.Lock()
		got := append([]int(nil), requests...)
		mu.Unlock()
		slices.Sort(got)
		want := slices.Clone(c.want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("%d txs reached the leader in requests of %v, want %v", c.txs, got, want)
		}
	}
	// More than ForwardQueue transactions waiting is refused whole, as a
	// full queue refuses one.
	over := make([][]byte, ForwardQueue+1)
	for i := range over {
		over[i] = []byte{1}
	}
	for _, err := range fw.ForwardBatch(ctx, over) {
		if !errors.Is(err, ErrForwardQueue) {
			t.Fatalf("over the queue bound: %v, want ErrForwardQueue", err)
		}
	}
	fw.Close()
	for _, err := range fw.ForwardBatch(ctx, [][]byte{{1}, {2}}) {
		if !errors.Is(err, ErrNoLeader) {
			t.Fatalf("after Close: %v, want ErrNoLeader", err)
		}
	}
}

// TestServeBatchesNamesSender: the handler of a batch that crossed a
// libp2p stream is told the stream's authenticated remote peer, which is
// what the node judges a forwarding peer's own copy by (a sender that is
// no voter of the leader's configuration does not count as a holder).
func TestServeBatchesNamesSender(t *testing.T) {
	leader, follower, _ := forwardPair(t)
	var mu sync.Mutex
	var got []peer.ID
	ServeBatches(leader.Libp2p(), RelayProtocol, BatchHandler{Admit: func(from peer.ID, raws [][]byte) []error {
		mu.Lock()
		got = append(got, from)
		mu.Unlock()
		return make([]error, len(raws))
	}}, testLogger())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := HostTransport(follower.Libp2p()).RoundTrip(ctx, leader.ID(), RelayProtocol, [][]byte{{1}}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != follower.ID() {
		t.Fatalf("handler told the batch came from %v, want [%s]", got, follower.ID())
	}
}

// blockedTransport answers no batch until release is closed.
type blockedTransport struct{ release chan struct{} }

func (b blockedTransport) RoundTrip(ctx context.Context, _ peer.ID, _ protocol.ID, raws [][]byte) ([]string, error) {
	select {
	case <-b.release:
		return make([]string, len(raws)), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// TestSendKeepingWait: with the forward queue full, SendKeeping fails at
// once while SendKeepingWait waits for room: until its context ends
// (ErrForwardQueue), until the queue drains (queued), or until the
// forwarder closes (ErrNoLeader).
func TestSendKeepingWait(t *testing.T) {
	tr := blockedTransport{release: make(chan struct{})}
	fw := NewForwarderOver(tr, "self", func() (peer.ID, bool) { return "leader", true }, nil, 1, testLogger())
	for i := 0; ; i++ {
		if err := fw.Send([]byte{byte(i), byte(i >> 8), byte(i >> 16)}); err != nil {
			if !errors.Is(err, ErrForwardQueue) {
				t.Fatal(err)
			}
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := fw.SendKeepingWait(ctx, []byte("late"), nil); !errors.Is(err, ErrForwardQueue) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("full queue, context ended: %v, want ErrForwardQueue and the deadline", err)
	}
	done := make(chan error, 1)
	go func() { done <- fw.SendKeepingWait(context.Background(), []byte("waits"), nil) }()
	close(tr.release)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("queue drained: %v, want queued", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("SendKeepingWait still waiting after the queue drained")
	}
	fw.Close()
	if err := fw.SendKeepingWait(context.Background(), []byte("closed"), nil); !errors.Is(err, ErrNoLeader) {
		t.Fatalf("closed forwarder: %v, want ErrNoLeader", err)
	}
}
