// Package logrepeat holds back a log line that repeats: a failure to reach
// the same peer or node, which the code retries over and over for as long
// as the peer is down. The first line of a kind is logged, then one per
// interval, the interval doubling from First up to Max, each carrying how
// many lines of its kind were held back since the last; a kind not seen
// for Forget starts afresh; Kind names a failure's kind from its text. It
// is the one rule the node's Raft logger (consensus), its libp2p dialer
// (p2p), the bridge's node client and workers and the monitor's workers
// log repeated failures by.
package logrepeat
