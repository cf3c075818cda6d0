package chain

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	lru "github.com/hashicorp/golang-lru/v2"
)

// SenderCache remembers the recovered sender of each transaction hash, so a
// node recovers a signature once: on admission, and never again when the
// block holding the transaction is verified and applied. A transaction
// refused at admission is forgotten again (Forget) so that it does not
// push out the senders of transactions the node will apply. It is safe
// for concurrent use.
type SenderCache struct {
	signer types.Signer
	cache  *lru.Cache[common.Hash, common.Address]
	// recovered counts signature recoveries (cache misses).
	recovered atomic.Uint64
}

// NewSenderCache returns a cache holding up to size senders.
func NewSenderCache(signer types.Signer, size int) *SenderCache {
	c, err := lru.New[common.Hash, common.Address](size)
	if err != nil {
		panic(err) // only for size <= 0, a programming error
	}
	return &SenderCache{signer: signer, cache: c}
}

// Signer returns the signer the cache recovers with.
func (c *SenderCache) Signer() types.Signer { return c.signer }

// Sender returns the sender of tx, checking it with CheckTx and recovering
// the signature unless the hash is cached.
func (c *SenderCache) Sender(tx *types.Transaction) (common.Address, error) {
	h := tx.Hash()
	if from, ok := c.cache.Get(h); ok {
		return from, nil
	}
	c.recovered.Add(1)
	from, err := Sender(c.signer, tx)
	if err != nil {
		return common.Address{}, err
	}
	c.cache.Add(h, from)
	return from, nil
}

// Forget drops a hash: its transaction was refused, or is applied.
func (c *SenderCache) Forget(h common.Hash) { c.cache.Remove(h) }

// Contains reports whether the sender of the transaction with hash h is
// cached.
func (c *SenderCache) Contains(h common.Hash) bool { return c.cache.Contains(h) }

// Recovered returns how many signatures the cache has recovered (the
// checks a cached sender saved are not counted): the cost clients have put
// on the node's CPU.
func (c *SenderCache) Recovered() uint64 { return c.recovered.Load() }

// Senders recovers the senders of txs using all cores. froms[i] and errs[i]
// belong to txs[i]; errs is nil when every transaction recovered.
func (c *SenderCache) Senders(txs []*types.Transaction) (froms []common.Address, errs []error) {
	froms = make([]common.Address, len(txs))
	var (
		mu     sync.Mutex
		wg     sync.WaitGroup
		next   int
		failed []error
	)
	workers := runtime.GOMAXPROCS(0)
	if workers > len(txs) {
		workers = len(txs)
	}
	const chunk = 16
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				start := next
				next += chunk
				mu.Unlock()
				if start >= len(txs) {
					return
				}
				end := min(start+chunk, len(txs))
				for i := start; i < end; i++ {
					from, err := c.Sender(txs[i])
					if err != nil {
						mu.Lock()
						if failed == nil {
							failed = make([]error, len(txs))
						}
						failed[i] = err
						mu.Unlock()
						continue
					}
					froms[i] = from
				}
			}
		}()
	}
	wg.Wait()
	return froms, failed
}
