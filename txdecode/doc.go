// Package txdecode renders what a Tally transaction does as people read
// it: the operation's name (a native transfer, or a system operation of the
// published ABIs under abi/), its arguments with amounts in the asset's
// units ("12.50 HKD", not 1250) and bank or order references as text when
// they are printable UTF-8 ("ORDER-1001", not 0x4f52…), and the events of
// its receipt decoded the same way.
//
// It is the one decoder of the module: the CLI (tally tx, tally
// verify-proof, tally op, tally history) and the node's
// tally_decodeTransaction (package rpc, which the explorer reads) use it, so
// a payment reads the same everywhere. DecodeResult decodes what a view
// returned (tally op on a view). It knows the ABIs (package chain)
// but not the state: callers pass the assets they know (Assets), from
// tally_assets, the node's rules or a genesis file. An asset id it is not
// given is shown as "asset #N" with amounts in base units.
//
// Every decoded value carries two renderings: Value, stable for scripts
// (integers as decimal strings of base units, addresses EIP-55, bytes as
// 0x hex, arrays as arrays), and Text, for people.
package txdecode
