package node

import (
	"strings"
	"testing"

	"github.com/tally-ledger/tally/state"
)

// TestStateHistoryConfig: [state] history-blocks defaults to go-ethereum's
// 128, is taken from the file, and is refused outside 1..MaxHistoryBlocks
// naming the key.
func TestStateHistoryConfig(t *testing.T) {
	if got := DefaultConfig().State.HistoryBlocks; got != state.DefaultHistoryBlocks {
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
