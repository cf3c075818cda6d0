package node

import (
	"strings"
	"testing"

	"github.com/tally-ledger/tally/rpc"
	"github.com/tally-ledger/tally/store"
)

// TestStateHistoryConfig: [state] history-blocks defaults to go-ethereum's
// 128, is taken from the file, and is refused outside 1..MaxHistoryBlocks
// naming the key.
func TestStateHistoryConfig(t *testing.T) {
	if got := DefaultConfig().State.HistoryBlocks; got != store.DefaultHistoryBlocks {
		t.Fatalf("default state.history-blocks %d", got)
	}
	cfg := DefaultConfig()
	if err := decodeConfig([]byte("[state]\nhistory-blocks = 1000\n"), &cfg); err != nil || cfg.State.HistoryBlocks != 1000 {
		t.Fatalf("history-blocks = 1000: %v, %d", err, cfg.State.HistoryBlocks)
	}
	for _, v := range []string{"0", "1048577", "-1", "\"many\""} {
		cfg := DefaultConfig()
		err := decodeConfig([]byte("[state]\nhistory-blocks = "+v+"\n"), &cfg)
		if err == nil || !strings.Contains(err.Error(), "state.history-blocks") {
			t.Errorf("history-blocks = %s: %v, want an error naming state.history-blocks", v, err)
		}
	}
}

// TestMulticallConfig: [http] max-multicall-calls defaults to
// rpc.DefaultMaxMulticallCalls, reaches the server's limits, and is
// refused below 1 naming the key.
func TestMulticallConfig(t *testing.T) {
	cfg := DefaultConfig()
	if cfg.HTTP.MaxMulticallCalls != rpc.DefaultMaxMulticallCalls || cfg.HTTP.Limits(false).MaxMulticallCalls != rpc.DefaultMaxMulticallCalls {
		t.Fatalf("default http.max-multicall-calls %d", cfg.HTTP.MaxMulticallCalls)
	}
	if err := decodeConfig([]byte("[http]\nmax-multicall-calls = 50\n"), &cfg); err != nil || cfg.HTTP.Limits(true).MaxMulticallCalls != 50 {
		t.Fatalf("max-multicall-calls = 50: %v, %d", err, cfg.HTTP.MaxMulticallCalls)
	}
	cfg = DefaultConfig()
	if err := decodeConfig([]byte("[http]\nmax-multicall-calls = 0\n"), &cfg); err == nil || !strings.Contains(err.Error(), "http.max-multicall-calls") {
		t.Fatalf("max-multicall-calls = 0: %v", err)
	}
}

// TestStateCacheConfig: [state] block-cache-bytes and receipt-cache-bytes
// default to the store's defaults, are taken from the file, and are
// refused below 1 naming the key.
func TestStateCacheConfig(t *testing.T) {
	cfg := DefaultConfig()
	if cfg.State.BlockCacheBytes != store.DefaultBlockCacheBytes || cfg.State.ReceiptCacheBytes != store.DefaultReceiptCacheBytes {
		t.Fatalf("defaults %d, %d", cfg.State.BlockCacheBytes, cfg.State.ReceiptCacheBytes)
	}
	if err := decodeConfig([]byte("[state]\nblock-cache-bytes = 1048576\nreceipt-cache-bytes = 2097152\n"), &cfg); err != nil ||
		cfg.State.BlockCacheBytes != 1<<20 || cfg.State.ReceiptCacheBytes != 2<<20 {
		t.Fatalf("from the file: %v, %d, %d", err, cfg.State.BlockCacheBytes, cfg.State.ReceiptCacheBytes)
	}
	for _, key := range []string{"block-cache-bytes", "receipt-cache-bytes"} {
		for _, v := range []string{"0", "-1", "\"big\""} {
			cfg := DefaultConfig()
			err := decodeConfig([]byte("[state]\n"+key+" = "+v+"\n"), &cfg)
			if err == nil || !strings.Contains(err.Error(), "state."+key) {
				t.Errorf("%s = %s: %v, want an error naming state.%s", key, v, err, key)
			}
		}
	}
}
