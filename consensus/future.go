package consensus

import (
	"context"
	"reflect"

	"github.com/hashicorp/raft"
)

// Every wait of this package on a hashicorp/raft future (Apply, Barrier,
// LeadershipTransfer, and the configuration changes the node makes through
// Engine.Await) is bounded by a stop channel: raft v1.8.0 leaves futures
// unanswered when it shuts down. An entry committed and handed to the FSM
// goroutine (its buffered fsmMutateCh) when Shutdown closes raft's
// shutdownCh is never applied, and its future never answered (runFSM
// returns on shutdownCh, processLogs may pick the buffered channel or
// shutdownCh at random); a LeadershipTransfer future left in the buffered
// leadershipTransferCh while the main loop is busy (inside StoreLogs, where
// the Raft log's disk-failure hook runs) is never read. A goroutine
// waiting on such a future waited forever: Engine.Shutdown hung on its
// WaitGroup (the 900 s consensus test hang in CI) and the cluster
// simulator's bubble ended with a builder goroutine still blocked in
// fut.Error() ("blocked goroutines remain").
//
// Two ways were weighed. The builder could learn each proposal's outcome
// from the FSM's applied and skipped callbacks instead of the future; but
// a refusal (ErrLeadershipTransferInProgress, ErrNotLeader, a full queue)
// exists only on the future, and the builder must see it to pause
// (retryAt), and the Barrier and the leadership transfer have no FSM
// callback at all: the future stays the source of truth. So the wait is
// bounded instead, with raft's own mechanism: every raft future embeds a
// deferError whose exported ShutdownCh field makes Error return
// ErrRaftShutdown once the channel closes; raft sets it on the futures of
// snapshot restores, not on Apply, Barrier or LeadershipTransfer ones.
// boundFuture sets it to the engine's stop channel, so no extra goroutine
// waits for raft and none is left behind. TestFutureKindsAreBound checks
// on a real raft that each kind of future the engine waits on is bound,
// so an upgrade of hashicorp/raft that moves the field fails the tests
// rather than bringing the unbounded waits back.

// waitFuture returns f's answer, or raft.ErrRaftShutdown once stop is
// closed if raft has not answered by then (a nil stop: no bound). An
// answer that comes with stop already closed may be reported either way:
// the outcome of an entry raft was shutting down under is uncertain
// anyway.
func waitFuture(f raft.Future, stop chan struct{}) error {
	if stop == nil || boundFuture(f, stop) {
		return f.Error()
	}
	// Not a raft future with a deferError: raft's errorFuture (which
	// answers at once) or a test's Proposer. The caller still returns
	// when stop closes; the goroutine ends when f answers.
	answer := make(chan error, 1)
	go func() { answer <- f.Error() }()
	select {
	case err := <-answer:
		return err
	case <-stop:
		return raft.ErrRaftShutdown
	}
}

// boundFuture sets f's deferError.ShutdownCh to stop unless raft set it
// already; it reports whether f is bound (to stop or to raft's own
// shutdown channel). It must be called before f.Error and not
// concurrently with it: raft reads the field only in Error.
func boundFuture(f raft.Future, stop chan struct{}) bool {
	v := reflect.ValueOf(f)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return false
	}
	field := v.Elem().FieldByName("ShutdownCh")
	if !field.IsValid() || !field.CanSet() || field.Type() != reflect.TypeOf(stop) {
		return false
	}
	if field.IsNil() {
		field.Set(reflect.ValueOf(stop))
	}
	return true
}

// stopWith returns a channel closed when ctx ends, for waitFuture, and
// the function that releases it early (without closing it).
func stopWith(ctx context.Context) (chan struct{}, func() bool) {
	stop := make(chan struct{})
	return stop, context.AfterFunc(ctx, func() { close(stop) })
}
