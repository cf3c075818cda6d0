// Package oplog is the append-only, hash-chained log of the actions people
// take through a service's operator tools (the bridge's operator log, the
// monitor's review log), kept in the service's Pebble database: who did
// what to which record, when and why. Each entry's Hash commits to every
// other field, Prev included, so an entry edited, deleted or reordered in
// the store breaks the chain and Verify names where; publishing the head
// (a ticket, a second system) detects a rewrite of the whole log too.
package oplog
