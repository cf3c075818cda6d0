// Package schema holds the JSON shapes of the tally_* JSON-RPC methods,
// shared by the server (package rpc) and the client (package wallet) so the
// two cannot drift. It imports nothing of ours.
package schema
