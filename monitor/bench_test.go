package monitor

import (
	"syscall"
	"testing"
	"time"

	"github.com/tally-ledger/tally/internal/chaintest"
)

// BenchmarkFollow judges blocks of 1000 native transfers among the 20 dev
// accounts (what `tally bench` sends), read from a data dir as the node
// stores them: b.N blocks per run, reported as blocks/s and transfers/s.
func BenchmarkFollow(b *testing.B) {
	c := chaintest.New(b)
	c.SkipCerts = true
	const perBlock = 1000
	for range b.N {
		c.Apply(c.Transfers(perBlock)...)
	}
	cfg := testConfig(b)
	m := openOn(b, c, cfg)
	b.ResetTimer()
	cpu0 := cpuTime(b)
	n := 0
	for n < b.N {
		k, err := m.Step(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		n += k
	}
	b.StopTimer()
	// The machine is shared: CPU time per transfer is what judging costs,
	// whatever else runs; wall-clock rates depend on the neighbours.
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N*perBlock), "cpu-µs/transfer")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "blocks/s")
	b.ReportMetric(float64(b.N*perBlock)/b.Elapsed().Seconds(), "transfers/s")
	b.ReportMetric(0, "ns/op")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
