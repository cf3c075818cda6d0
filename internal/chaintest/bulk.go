package chaintest

import (
	"math/big"
	"runtime"
	"sync"

	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
)

// Transfers returns n plain native transfers between the dev accounts
// (round robin over senders, each to the next account), with consecutive
// nonces, signed on all cores. They are not applied.
func (c *Chain) Transfers(n int) []*types.Transaction {
	c.T.Helper()
	type job struct {
		from  uint32
		nonce uint64
	}
	jobs := make([]job, n)
	for i := range jobs {
		from := uint32(i % genesis.DevAccounts)
		a := Addr(from)
		nonce, ok := c.nonces[a]
		if !ok {
			var err error
			if nonce, err = c.DB.Nonce(a); err != nil {
				c.T.Fatal(err)
			}
		}
		c.nonces[a] = nonce + 1
		jobs[i] = job{from: from, nonce: nonce}
	}
	out := make([]*types.Transaction, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				j := jobs[i]
				to := Addr((j.from + 1) % genesis.DevAccounts)
				tx := types.NewTx(&types.DynamicFeeTx{ChainID: c.ChainID, Nonce: j.nonce, To: &to, Value: big.NewInt(1), Gas: 21000})
				out[i], errs[i] = chain.SignTx(tx, c.ChainID, Key(j.from))
			}
		}(w)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			c.T.Fatalf("sign transfer %d: %v", i, err)
		}
	}
	return out
}
