// Package genesis owns the genesis file: the chain id, the rules (assets and
// their issuing banks, the compliance authority, governance members, KYC
// tiers and their limits, the preventive risk rules of risk.go), the validators and the initial accounts (tier and
// balances per asset), and the embedded dev genesis.
//
// A genesis file is JSON (documented in docs/genesis.md). Load parses it
// strictly (unknown fields are refused, naming the field) and Validate checks
// it; Hash is keccak256 of its canonical re-encoding, which block 0 carries in
// its extra data, so two different genesis files always give different
// genesis block hashes. The state package turns a Genesis into block 0.
package genesis
