package p2p

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// memTransport is a BatchTransport between handlers in one process, as
// the cluster simulator's network is: loseAnswers answers of to are lost
// after its handler ran (the batch was admitted, the sender sees an
// error), and an unknown peer is unreachable. Every batch is sent by
// peer from.
type memTransport struct {
	from        peer.ID
	mu          sync.Mutex
	handlers    map[peer.ID]BatchHandler
	loseAnswers map[peer.ID]int
	calls       map[peer.ID]int
}

func (m *memTransport) RoundTrip(_ context.Context, to peer.ID, _ protocol.ID, raws [][]byte) ([]string, error) {
	m.mu.Lock()
	h, ok := m.handlers[to]
	m.calls[to]++
	m.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("open stream to %s: unreachable", to)
	}
	verdicts, err := h.Handle(m.from, raws)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.loseAnswers[to] > 0 {
		m.loseAnswers[to]--
		return nil, errors.New("stream reset")
	}
	return verdicts, nil
}

// poolHandler admits each raw once, answering "already known" after.
func poolHandler(admitted map[string]int, mu *sync.Mutex) BatchHandler {
	return BatchHandler{Submit: func(raw []byte) error {
		mu.Lock()
		defer mu.Unlock()
		admitted[string(raw)]++
		if admitted[string(raw)] > 1 {
			return errors.New("already known")
		}
		return nil
	}}
}

// TestForwardAnswerLost: the leader admits a forwarded batch but its
// answer is lost; the forwarder sends the batch again and the leader's
// "already known" for it means admitted, while a transaction the leader
// already held at the first attempt is the client's own duplicate and
// stays refused.
func TestForwardAnswerLost(t *testing.T) {
	var mu sync.Mutex
	admitted := map[string]int{"dup": 1}
	tr := &memTransport{handlers: map[peer.ID]BatchHandler{"leader": poolHandler(admitted, &mu)},
		loseAnswers: map[peer.ID]int{"leader": 1}, calls: map[peer.ID]int{}}
	f := NewForwarderOver(tr, "follower", func() (peer.ID, bool) { return "leader", true }, nil, 0, testLogger())
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.Forward(ctx, []byte("tx")); err != nil {
		t.Fatalf("forward whose first answer was lost: %v", err)
	}
	if tr.calls["leader"] != 2 || admitted["tx"] != 2 {
		t.Fatalf("calls %d, admissions %d: want the batch sent twice", tr.calls["leader"], admitted["tx"])
	}
	var re *RemoteError
	if err := f.Forward(ctx, []byte("dup")); !errors.As(err, &re) || re.Msg != "already known" {
		t.Fatalf("a transaction the leader held before: %v, want its verdict \"already known\"", err)
	}
}

// TestHandleBatch: verdicts per transaction, Finish's error replaces the
// admitted ones' verdicts, and a batch over MaxForwardTxs is refused whole
// before anything is admitted.
func TestHandleBatch(t *testing.T) {
	var submitted int
	submit := func(raw []byte) error {
		submitted++
		switch string(raw) {
		case "bad":
			return errors.New("invalid sender")
		case "empty":
			return errors.New("")
		}
		return nil
	}
	for _, tc := range []struct {
		name   string
		raws   [][]byte
		finish error
		accept error
		want   []string
		err    bool
	}{
		{"refused whole", [][]byte{[]byte("ok")}, nil, errors.New("not the leader"), nil, true},
		{"verdicts", [][]byte{[]byte("ok"), []byte("bad"), []byte("empty")}, nil, nil, []string{"", "invalid sender", "rejected"}, false},
		{"finish fails", [][]byte{[]byte("ok"), []byte("bad")}, errors.New("pool journal: EIO"), nil, []string{"pool journal: EIO", "invalid sender"}, false},
		{"too many", make([][]byte, MaxForwardTxs+1), nil, nil, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			submitted = 0
			h := BatchHandler{Accept: func() error { return tc.accept }, Submit: submit, Finish: func() error { return tc.finish }}
			got, err := h.Handle("follower", tc.raws)
			if tc.err {
				if err == nil || submitted != 0 {
					t.Fatalf("err %v after %d submits, want a refusal before any", err, submitted)
				}
				return
			}
			if err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestHandleBatchAdmit: a handler's Admit takes the batch whole in place
// of Prepare and Submit, told who sent it; its verdicts are worded as
// Submit's, and a verdict count other than the batch's refuses the batch
// rather than answering transactions with another's verdict.
func TestHandleBatchAdmit(t *testing.T) {
	admit := func(from peer.ID, raws [][]byte) []error {
		if from != "follower" {
			t.Errorf("Admit told the batch came from %q, want \"follower\"", from)
		}
		errs := make([]error, len(raws))
		for i, raw := range raws {
			switch string(raw) {
			case "bad":
				errs[i] = errors.New("invalid sender")
			case "empty":
				errs[i] = errors.New("")
			}
		}
		return errs
	}
	h := BatchHandler{Admit: admit, Submit: func([]byte) error { t.Fatal("Submit called beside Admit"); return nil },
		Finish: func() error { return errors.New("pool journal: EIO") }}
	got, err := h.Handle("follower", [][]byte{[]byte("ok"), []byte("bad"), []byte("empty")})
	if want := []string{"pool journal: EIO", "invalid sender", "rejected"}; err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %q, %v; want %q", got, err, want)
	}
	short := BatchHandler{Admit: func(_ peer.ID, raws [][]byte) []error { return make([]error, len(raws)-1) }}
	if got, err := short.Handle("follower", [][]byte{[]byte("a"), []byte("b")}); err == nil {
		t.Fatalf("verdicts %q for a handler that answered one of two", got)
	}
}

// TestReplicateOverTransport: one target unreachable, one whose first
// answer is lost: the second attempt's "already known" counts as held.
func TestReplicateOverTransport(t *testing.T) {
	var mu sync.Mutex
	admitted := map[string]int{}
	tr := &memTransport{handlers: map[peer.ID]BatchHandler{"b": poolHandler(admitted, &mu)},
		loseAnswers: map[peer.ID]int{"b": 1}, calls: map[peer.ID]int{}}
	r := NewReplicatorOver(tr, func() []peer.ID { return []peer.ID{"a", "b"} }, 0, testLogger())
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Replicate(ctx, []byte("tx")); err != nil {
		t.Fatalf("replicate: %v", err)
	}
	if admitted["tx"] != 2 {
		t.Fatalf("admitted %d times, want 2 (the first answer lost)", admitted["tx"])
	}
}

// TestReplicatorCloseEndsRetries: Close answers a transaction still being
// retried against unreachable targets at once, not after replicateTimeout.
func TestReplicatorCloseEndsRetries(t *testing.T) {
	// In a synctest bubble the clock only moves while every goroutine
	// waits, so the time Close takes is exact, not the machine's load.
	synctest.Test(t, func(t *testing.T) {
		tr := &memTransport{handlers: map[peer.ID]BatchHandler{}, calls: map[peer.ID]int{}}
		r := NewReplicatorOver(tr, func() []peer.ID { return []peer.ID{"gone"} }, 0, testLogger())
		errc := make(chan error, 1)
		go func() { errc <- r.Replicate(context.Background(), []byte("tx")) }()
		time.Sleep(3 * replicateRetry)
		start := time.Now()
		r.Close()
		err := <-errc
		if !errors.Is(err, ErrNotReplicated) {
			t.Fatalf("replicate during Close: %v, want ErrNotReplicated", err)
		}
		if d := time.Since(start); d >= replicateRetry {
			t.Fatalf("Close took %s of the retries' time", d)
		}
	})
}
