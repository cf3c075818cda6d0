// Command tallyd runs a Tally node.
//
//	tallyd --dev                         single-node chain on the embedded dev genesis
//	tallyd --config node.toml            a node configured by file (docs/config.md)
//	tallyd --datadir DIR --clear-halt    remove a halted node's halt record, then exit
//	tallyd --config node.toml --raft-fresh   start although raft/ or the data dir was lost (docs/cluster.md)
//
// Flags override the config file. SIGINT and SIGTERM shut the node down
// cleanly; a restart on the same data dir resumes where it stopped.
package main
