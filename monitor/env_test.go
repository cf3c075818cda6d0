package monitor

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"path/filepath"
	"sort"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"

	"github.com/tally-ledger/tally/internal/chaintest"
	"github.com/tally-ledger/tally/store"
	"github.com/tally-ledger/tally/txdecode"
)

// dbSource reads a chaintest chain's data dir: real blocks, built and
// applied by state and store as a node does.
type dbSource struct{ db *store.DB }

func (d dbSource) Head(context.Context) (uint64, error) { return d.db.Tip().Head.Number, nil }

func (d dbSource) RawBlocks(_ context.Context, from uint64, count int) ([]store.RawBlock, error) {
	return d.db.RawBlocks(from, count, 8<<20)
}

// testConfig is a monitor's config for tests: its own data dir, an
// ephemeral port, no node (the source is given).
func testConfig(t testing.TB) Config {
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = filepath.Join(t.TempDir(), "monitor")
	cfg.Nodes.Endpoints = []string{"http://127.0.0.1:1"} // validated, never dialled with a source
	cfg.Log.Level = "warn"
	return cfg
}

// openOn opens a monitor reading chain c's data dir, ready to Step.
func openOn(t testing.TB, c *chaintest.Chain, cfg Config) *Monitor {
	t.Helper()
	cfg.Nodes.Endpoints = nil
	m, err := newForTest(cfg, Options{Source: dbSource{c.DB}, ChainID: c.ChainID, Assets: txdecode.FromGenesis(c.Genesis.Assets),
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// newForTest is New without the endpoint requirement (tests give a source).
func newForTest(cfg Config, opts Options) (*Monitor, error) {
	if len(cfg.Nodes.Endpoints) == 0 {
		cfg.Nodes.Endpoints = []string{"http://127.0.0.1:1"}
		m, err := New(cfg, opts)
		if err != nil {
			return nil, err
		}
		m.client.Close()
		m.client = nil
		return m, nil
	}
	return New(cfg, opts)
}

// catchUp steps until the monitor has judged the head.
func catchUp(t *testing.T, m *Monitor) {
	t.Helper()
	for {
		n, err := m.Step(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

// allAlerts lists every alert.
func allAlerts(t *testing.T, m *Monitor) []*Alert {
	t.Helper()
	as, err := m.store.Alerts(AlertFilter{Limit: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	return as
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

var _ io.Writer = testWriter{}

// cny is n whole CNY.
func cny(n int64) *big.Int { return chaintest.CNYUnits(n) }

// addr is dev account i.
func addr(i uint32) common.Address { return chaintest.Addr(i) }

// ruleAccounts are the (rule, account) pairs of alerts, sorted.
func ruleAccounts(as []*Alert) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, a.Rule+" "+a.Account.Hex())
	}
	sort.Strings(out)
	return out
}

// chainAddr is dev account i (the dev node's genesis is the same).
func chainAddr(i uint32) common.Address { return chaintest.Addr(i) }

// chainFrozenReason decodes a compliance Frozen event's reason.
func chainFrozenReason(l *types.Log) (string, error) {
	ev := chain.ComplianceABI.Events["Frozen"]
	if len(l.Topics) == 0 || l.Topics[0] != ev.ID {
		return "", fmt.Errorf("log is not a Frozen event")
	}
	vals, err := ev.Inputs.NonIndexed().Unpack(l.Data)
	if err != nil || len(vals) != 1 {
		return "", fmt.Errorf("decode Frozen: %v", err)
	}
	s, _ := vals[0].(string)
	return s, nil
}
