package audit_test

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/audit"
	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/internal/chaintest"
)

// Size of the benchmark chain: blocks of plain transfers.
const (
	benchBlocks      = 20
	benchTxsPerBlock = 1000
)

// transferChain builds a closed chain of benchBlocks blocks of transfers
// and returns its genesis, data dir and raw encoded transactions.
func transferChain(b *testing.B) (*genesis.Genesis, string, [][]byte) {
	b.Helper()
	c := chaintest.New(b)
	var raws [][]byte
	for range benchBlocks {
		txs := c.Transfers(benchTxsPerBlock)
		for _, tx := range txs {
			enc, err := tx.MarshalBinary()
			if err != nil {
				b.Fatal(err)
			}
			raws = append(raws, enc)
		}
		c.Apply(txs...)
	}
	c.Close()
	g, err := genesis.Parse(c.GenesisJSON)
	if err != nil {
		b.Fatal(err)
	}
	return g, c.Dir, raws
}

// BenchmarkAuditReplay audits a data dir of transfers and, alternately,
// decodes and recovers the same transactions' senders on all cores (the
// machine's raw rate, the audit's ceiling), and reports both rates and
// their ratio: DESIGN.md's target is a ratio of at least 0.8.
func BenchmarkAuditReplay(b *testing.B) {
	g, dir, raws := transferChain(b)
	scratch := b.TempDir()
	signer := chain.NewSigner(g.ChainIDBig())
	var auditTime, recoverTime time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		src, err := audit.OpenDataDir(dir)
		if err != nil {
			b.Fatal(err)
		}
		rep, err := audit.Run(context.Background(), audit.Config{Genesis: g, Source: src, ScratchDir: scratch})
		src.Close()
		if err != nil || !rep.OK {
			b.Fatalf("audit: %v %+v", err, rep.Failures)
		}
		auditTime += time.Since(start)
		start = time.Now()
		recoverAll(b, signer, raws)
		recoverTime += time.Since(start)
	}
	n := float64(b.N * len(raws))
	b.ReportMetric(n/auditTime.Seconds(), "audit-tx/s")
	b.ReportMetric(n/recoverTime.Seconds(), "recover-tx/s")
	b.ReportMetric(recoverTime.Seconds()/auditTime.Seconds(), "ratio")
}

// recoverAll decodes every raw transaction and recovers its sender on all cores.
func recoverAll(b *testing.B, signer types.Signer, raws [][]byte) {
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(raws); i += workers {
				tx := new(types.Transaction)
				if err := tx.UnmarshalBinary(raws[i]); err != nil {
					b.Error(err)
					return
				}
				if _, err := chain.Sender(signer, tx); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
