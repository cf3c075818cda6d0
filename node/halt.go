package node

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/tally-ledger/tally/store"
)

// StateDir is where a node keeps its state database under its data dir.
func StateDir(dataDir string) string { return filepath.Join(dataDir, "state") }

// ClearHalt removes the halt record from the (stopped) node's data dir and
// returns it; nil means the node had not halted. A node that halted stays
// halted across restarts until an operator, having dealt with the cause,
// clears the record (docs/cluster.md, "Halting").
func ClearHalt(dataDir string) (*store.HaltRecord, error) {
	if _, err := os.Stat(StateDir(dataDir)); err != nil {
		return nil, fmt.Errorf("clear halt: no node state in data dir %s: %w", dataDir, err)
	}
	db, err := store.Open(StateDir(dataDir), store.Options{})
	if err != nil {
		return nil, fmt.Errorf("clear halt: %w (is the node still running?)", err)
	}
	defer db.Close()
	rec, err := db.ClearHalt()
	if err != nil {
		return nil, fmt.Errorf("clear halt: %w", err)
	}
	return rec, nil
}
