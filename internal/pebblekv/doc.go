// Package pebblekv holds the small Pebble helpers the services' own
// stores share (the bridge's, the risk monitor's, the webhook outbox's):
// big-endian integer keys, key concatenation, a prefix's upper bound for
// an iterator, and reads that copy the value out of Pebble's buffer and
// take a missing key as no value. The node's state database (package
// store) has its own key layout and does not use it.
package pebblekv
