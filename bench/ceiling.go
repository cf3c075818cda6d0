package bench

import (
	"fmt"
	"math/big"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
)

// DefaultCeilingTxs is how many transactions Ceiling decodes and recovers:
// about a second of work on the project's 2-core machine.
const DefaultCeilingTxs = 20_000

// Ceiling measures R, the raw ceiling every throughput figure is a ratio
// to: transactions per second that decoding (chain.DecodeTx) and sender
// recovery (chain.Sender: libsecp256k1 under cgo) take on all cores, with no
// cache. Every node recovers the sender of every transaction it sees, so
// no node can admit more than R transfers per second on this machine.
// The machine's speed changes 2-3x from day to day; R measured in the
// same run as a load is what makes a throughput figure comparable.
//
// n transfers are signed first (not timed), legacy EIP-155 ones when
// legacy is set (what the load sends), then decoded and recovered on
// runtime.GOMAXPROCS(0) goroutines.
func Ceiling(n int, legacy bool) (float64, error) {
	if n < 1 {
		return 0, fmt.Errorf("ceiling: %d transactions", n)
	}
	chainID := big.NewInt(1337)
	key, err := crypto.KeyFromMnemonic(crypto.TestMnemonic, "", 0)
	if err != nil {
		return 0, err
	}
	to := common.Address{0x7a, 0x11}
	raws := make([][]byte, n)
	for i := range raws {
		var inner types.TxData
		if legacy {
			inner = &types.LegacyTx{Nonce: uint64(i), To: &to, Value: big.NewInt(1), Gas: 21000, GasPrice: new(big.Int)}
		} else {
			inner = &types.DynamicFeeTx{ChainID: chainID, Nonce: uint64(i), To: &to, Value: big.NewInt(1), Gas: 21000}
		}
		tx, err := chain.SignTx(types.NewTx(inner), chainID, key)
		if err != nil {
			return 0, err
		}
		if raws[i], err = tx.MarshalBinary(); err != nil {
			return 0, err
		}
	}
	signer := chain.NewSigner(chainID)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, runtime.GOMAXPROCS(0))
	start := time.Now()
	for w := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				tx, err := chain.DecodeTx(raws[i])
				if err == nil {
					var from common.Address
					from, err = chain.Sender(signer, tx)
					if err == nil && from != key.Address() {
						err = fmt.Errorf("recovered %s, signed by %s", from, key.Address())
					}
				}
				if err != nil {
					errs[w] = fmt.Errorf("ceiling: tx %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	return float64(n) / elapsed.Seconds(), nil
}
