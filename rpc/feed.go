package rpc

import (
	"errors"
	"sync"

	"github.com/tally-ledger/tally/chain"
)

// ErrTooManySubscriptions is returned when a feed has MaxSubscribers.
var ErrTooManySubscriptions = errors.New("too many subscriptions")

// headBuffer is how many blocks a subscriber may fall behind before it is
// dropped (its subscription ends with an error, never stalling the node).
const headBuffer = 256

// HeadFeed fans applied blocks out to subscribers (eth_subscribe
// "newHeads"). Publish never blocks: a subscriber whose buffer is full is
// dropped. Safe for concurrent use.
type HeadFeed struct {
	max  int
	mu   sync.Mutex
	next int
	subs map[int]chan *chain.Block
	// reserved counts the subscribers of other feeds (Reserve).
	reserved int
}

// NewHeadFeed returns a feed bounded to max subscribers.
func NewHeadFeed(max int) *HeadFeed {
	return &HeadFeed{max: max, subs: make(map[int]chan *chain.Block)}
}

// Subscribe returns a channel of applied blocks and a function ending the
// subscription. The channel is closed when the subscriber is dropped or
// unsubscribes.
func (f *HeadFeed) Subscribe() (<-chan *chain.Block, func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.subs)+f.reserved >= f.max {
		return nil, nil, ErrTooManySubscriptions
	}
	id := f.next
	f.next++
	ch := make(chan *chain.Block, headBuffer)
	f.subs[id] = ch
	return ch, func() { f.drop(id) }, nil
}

func (f *HeadFeed) drop(id int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ch, ok := f.subs[id]; ok {
		delete(f.subs, id)
		close(ch)
	}
}

// Publish sends b to every subscriber, dropping those that are full.
func (f *HeadFeed) Publish(b *chain.Block) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, ch := range f.subs {
		select {
		case ch <- b:
		default:
			delete(f.subs, id)
			close(ch)
		}
	}
}

// Reserve counts a subscriber of another feed (pending transactions)
// against the feed's bound, so that every eth_subscribe subscription
// shares one (http.max-subscriptions); release gives the place back.
func (f *HeadFeed) Reserve() (release func(), err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.subs)+f.reserved >= f.max {
		return nil, ErrTooManySubscriptions
	}
	f.reserved++
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			f.reserved--
			f.mu.Unlock()
		})
	}, nil
}

// Len is the number of subscribers, those Reserve counts included.
func (f *HeadFeed) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs) + f.reserved
}
