// Package tally holds the files the whole module shares: the published ABI
// of every system contract (abi/*.json), embedded so that the node serves
// exactly what is published.
package tally

import "embed"

// ABIFiles holds abi/<Contract>.json, one JSON array per system contract.
//
//go:embed abi/*.json
var ABIFiles embed.FS
