package store

import (
	"context"

	"golang.org/x/sync/semaphore"
)

// swapLock is DB.mu: held shared by readers of pdb and exclusively by
// ReplaceWith and Close, with sync.RWMutex's rules (a waiting exclusive
// holder goes before later shared ones, so a shared holder must not take
// it again). It is golang.org/x/sync's weighted semaphore, whose waiters
// block on channels rather than on a runtime semaphore, because some
// shared holders wait for the disk while they hold it (Checkpoint,
// RecordHalt and ClearHalt sync the write-ahead log): a goroutine
// waiting on a sync.Mutex or RWMutex is never "durably blocked" for a
// testing/synctest bubble, so with a sync.RWMutex a replacement waiting
// for a checkpoint on a slow disk kept the cluster simulator's fake clock
// from reaching the end of the sync it waited for (seed 387 of
// internal/sim; TestSwapWaitsDurably). The Raft log's write lock is a
// channel for the same reason (consensus.RaftStore).
type swapLock struct{ sem *semaphore.Weighted }

// swapReaders is the weight of the exclusive hold: more shared holders
// than any process runs at once.
const swapReaders = 1 << 40

func newSwapLock() swapLock { return swapLock{semaphore.NewWeighted(swapReaders)} }

// Acquire never fails with a context that is never done.
func (l swapLock) RLock()   { _ = l.sem.Acquire(context.Background(), 1) }
func (l swapLock) RUnlock() { l.sem.Release(1) }
func (l swapLock) Lock()    { _ = l.sem.Acquire(context.Background(), swapReaders) }
func (l swapLock) Unlock()  { l.sem.Release(swapReaders) }
